"""In-memory keyrings for tests: the process-wide keyring is never the user's."""

from __future__ import annotations

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.compat import properties


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict; never picked by keyring's own discovery."""

    @properties.classproperty
    def priority(self) -> float:
        raise RuntimeError("test backend: only used when set explicitly")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


def no_keyring() -> KeyringBackend:
    """keyring's own stand-in for "no backend on this machine" (raises NoKeyringError)."""
    return fail.Keyring()  # type: ignore[no-untyped-call]
