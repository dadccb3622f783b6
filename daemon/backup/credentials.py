"""Where push credentials come from: HTTPS tokens per host, kept in the system keyring.

A `CredentialSource` answers one question, "which token for this host?", where the host
is the URL's host with its port when the URL names one (``github.com``,
``127.0.0.1:8080``). `KeyringCredentials` keeps tokens in the keyring under the
service ``labmind`` and the user name ``token:<host>``; `StaticCredentials` holds them
in memory (tests, a token handed over for one run). SSH needs no source: pushes use the
SSH agent unless a key file is configured (see `labmind.daemon.backup.push.SshKey`).

Tokens are never logged and never appear in a ``repr`` or an error message. Keyring
failures (no backend on a headless machine, a locked collection, a broken D-Bus) become
a one-line `CredentialError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

SERVICE = "labmind"
"""The keyring service labmind's tokens are filed under."""


class CredentialError(Exception):
    """The credential store cannot be used; the one-line message says why."""


class CredentialSource(Protocol):
    """Tokens for HTTPS pushes, by host (``github.com``, ``127.0.0.1:8080``)."""

    def token(self, host: str) -> str | None:
        """The token for ``host``, or ``None`` when there is none."""
        ...


def token_username(host: str) -> str:
    """The keyring user name a host's token is filed under: ``token:<host>``."""
    return f"token:{_checked_host(host)}"


class KeyringCredentials:
    """Tokens in the system keyring (``service``, user name ``token:<host>``).

    ``backend`` pins a keyring backend; by default the process-wide one is used
    (whatever `keyring.set_keyring` or keyring's own discovery chose).
    """

    def __init__(self, service: str = SERVICE, *, backend: KeyringBackend | None = None) -> None:
        self.service = service
        self._backend = backend

    def __repr__(self) -> str:
        return f"KeyringCredentials(service={self.service!r})"

    def token(self, host: str) -> str | None:
        username = token_username(host)
        try:
            return self._keyring().get_password(self.service, username)
        except Exception as exc:  # any backend failure is the store's, not the caller's
            raise CredentialError(_describe(exc, f"read the token for {host}")) from None

    def set_token(self, host: str, token: str) -> None:
        """Store ``token`` for ``host``, replacing any previous one."""
        username = token_username(host)
        if not token or token != token.strip() or "\n" in token:
            raise ValueError("a token must be one non-empty line without surrounding spaces")
        try:
            self._keyring().set_password(self.service, username, token)
        except Exception as exc:
            raise CredentialError(
                _describe(exc, f"store the token for {host}", secret=token)
            ) from None

    def delete_token(self, host: str) -> bool:
        """Forget the token for ``host``; False when there was none."""
        if self.token(host) is None:
            return False
        try:
            self._keyring().delete_password(self.service, token_username(host))
        except Exception as exc:
            raise CredentialError(_describe(exc, f"delete the token for {host}")) from None
        return True

    def _keyring(self) -> KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()


class StaticCredentials:
    """Tokens held in memory, by host; ``repr`` shows the hosts only."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._tokens = dict(tokens or {})

    def __repr__(self) -> str:
        return f"StaticCredentials(hosts={sorted(self._tokens)!r})"

    def token(self, host: str) -> str | None:
        return self._tokens.get(host)


def _checked_host(host: str) -> str:
    if not host or any(c.isspace() for c in host) or "/" in host or "@" in host:
        raise ValueError(f"not a host name: {host!r}")
    return host.lower()


def _describe(exc: BaseException, action: str, *, secret: str | None = None) -> str:
    """One line saying why the keyring could not ``action`` (never the secret itself)."""
    if isinstance(exc, keyring.errors.NoKeyringError):
        return (
            f"cannot {action}: no keyring backend is available on this machine "
            "(start a Secret Service such as gnome-keyring or KWallet, or install keyrings.alt)"
        )
    if isinstance(exc, keyring.errors.KeyringLocked):
        return f"cannot {action}: the keyring is locked (unlock it and try again)"
    detail = " ".join(str(exc).split())
    if secret:
        detail = detail.replace(secret, "***")
    detail = detail[:200]
    kind = type(exc).__name__
    return f"cannot {action}: keyring error {kind}" + (f": {detail}" if detail else "")
