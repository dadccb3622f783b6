"""Tokens in the keyring: where they are filed, and how a missing or locked keyring is told."""

from __future__ import annotations

import keyring.errors
import pytest

from labmind.daemon.backup import CredentialError, KeyringCredentials, StaticCredentials

from ..keyrings import MemoryKeyring, no_keyring

TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"


def test_a_token_is_filed_under_token_host_and_can_be_replaced_and_deleted(
    memory_keyring: MemoryKeyring,
) -> None:
    store = KeyringCredentials()

    store.set_token("github.com", TOKEN)
    store.set_token("127.0.0.1:8080", "local-token")

    assert memory_keyring.passwords == {
        ("labmind", "token:github.com"): TOKEN,
        ("labmind", "token:127.0.0.1:8080"): "local-token",
    }
    assert store.token("github.com") == TOKEN
    assert store.token("GitHub.com") == TOKEN
    assert store.token("gitlab.com") is None
    store.set_token("github.com", "rotated-token")
    assert store.token("github.com") == "rotated-token"
    assert store.delete_token("github.com") is True
    assert store.token("github.com") is None
    assert store.delete_token("github.com") is False
    assert store.token("127.0.0.1:8080") == "local-token"


def test_another_service_name_keeps_its_own_tokens(memory_keyring: MemoryKeyring) -> None:
    KeyringCredentials("labmind-test").set_token("github.com", TOKEN)

    assert KeyringCredentials().token("github.com") is None
    assert KeyringCredentials("labmind-test").token("github.com") == TOKEN


def test_without_a_keyring_backend_the_error_is_one_clear_line() -> None:
    store = KeyringCredentials(backend=no_keyring())

    for action in (
        lambda: store.token("github.com"),
        lambda: store.set_token("github.com", TOKEN),
        lambda: store.delete_token("github.com"),
    ):
        with pytest.raises(CredentialError) as caught:
            action()
        message = str(caught.value)
        assert "no keyring backend is available" in message
        assert "github.com" in message
        assert "\n" not in message and TOKEN not in message


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("collection is locked")


class BrokenKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError(f"D-Bus said no to\n{password}")


def test_a_locked_or_broken_keyring_says_so_without_the_token() -> None:
    with pytest.raises(CredentialError, match="the keyring is locked"):
        KeyringCredentials(backend=LockedKeyring()).token("github.com")

    with pytest.raises(CredentialError) as caught:
        KeyringCredentials(backend=BrokenKeyring()).set_token("github.com", TOKEN)
    message = str(caught.value)
    assert message.startswith("cannot store the token for github.com: keyring error")
    assert "PasswordSetError" in message and "D-Bus said no" in message
    assert TOKEN not in message and "\n" not in message
    assert caught.value.__suppress_context__  # a traceback does not show the original either


def test_the_process_wide_keyring_is_used_when_none_is_pinned(
    memory_keyring: MemoryKeyring,
) -> None:
    memory_keyring.passwords[("labmind", "token:github.com")] = TOKEN

    assert KeyringCredentials().token("github.com") == TOKEN


def test_nothing_shows_a_token_in_its_repr(memory_keyring: MemoryKeyring) -> None:
    store = KeyringCredentials()
    store.set_token("github.com", TOKEN)
    static = StaticCredentials({"github.com": TOKEN})

    assert TOKEN not in repr(store) and TOKEN not in repr(static)
    assert "github.com" in repr(static)
    assert static.token("github.com") == TOKEN and static.token("gitlab.com") is None


@pytest.mark.parametrize("host", ["", "git hub.com", "https://github.com", "me@github.com"])
def test_a_host_that_is_not_one_is_refused(memory_keyring: MemoryKeyring, host: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        KeyringCredentials().token(host)


@pytest.mark.parametrize("token", ["", " padded ", "two\nlines"])
def test_a_token_must_be_one_clean_line(memory_keyring: MemoryKeyring, token: str) -> None:
    with pytest.raises(ValueError, match="one non-empty line"):
        KeyringCredentials().set_token("github.com", token)
    assert memory_keyring.passwords == {}
