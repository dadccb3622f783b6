"""Pushing snapshots, and on request branches that are ahead, to a remote; never forcing.

Rules:

- The user's repository is only read. A push goes through an anonymous remote made from
  a URL (`remote_url` reads ``remote.<name>.pushurl`` or ``.url``), so ``.git/config``
  is never written, and nothing else changes either: no remote-tracking ref, no
  ``FETCH_HEAD``, index, HEAD or branch.
- No refspec carries ``+``. The remote's refs are listed first (over a push
  connection, which also proves the credentials); a ref is pushed only when the remote
  lacks it or holds a strict ancestor of the local commit. Equal is ``up_to_date``;
  anything else (diverged, behind, or a commit this repository does not have) is
  ``non_fast_forward`` and the remote is left alone. During the push the remote must
  still hold what was listed, and libgit2 refuses non-fast-forwards as well.
- Credentials: HTTPS sends the user ``x-access-token`` with the token the
  `CredentialSource` has for the URL's host (``host:port`` when the URL names a port);
  SSH uses the agent, or a configured `SshKey`; ``git://`` and local paths need none.
  The first rejected credential ends the attempt: libgit2 would otherwise ask again
  for each of its retries.
- Server-side refusals (pre-receive hooks, branch or push protection) do not fail the
  push call; they arrive per ref in ``push_update_reference``. They become
  ``rejected`` with the server's reason and what its hook printed.
- Outcomes are values, never exceptions: every network, server or credential problem
  is a `PushResult` whose ``status`` says what happened (``unreachable`` lets a
  scheduler back off while offline). Only misuse (an invalid ref name) raises.
- libgit2 waits forever on a server that accepts a connection and then says nothing;
  `set_network_timeouts` (process-wide, call once at start) turns that into
  ``unreachable``.
- A result's message is one line and holds no secret: passwords in URLs are masked and
  every token handed to libgit2 is blanked out of it, and nothing logs a token.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pygit2
from pygit2.enums import CredentialType, Option

from .credentials import CredentialError, CredentialSource
from .snapshot import snapshot_ref

log = logging.getLogger(__name__)

PushStatus = Literal[
    "pushed", "up_to_date", "non_fast_forward", "rejected", "auth_failed", "unreachable", "error"
]

TOKEN_USERNAME = "x-access-token"  # noqa: S105 - a user name, not a secret
"""The HTTPS user name sent with a token (what GitHub, GitLab and Gitea accept)."""

SNAPSHOT_BRANCH_PREFIX = "refs/heads/labmind/"

_DIRECTION_PUSH = 1  # GIT_DIRECTION_PUSH: list refs the way a push sees them
_ZERO = pygit2.Oid(hex="0" * 40)
_MAX_MESSAGE = 600

_UNREACHABLE = re.compile(
    r"failed to connect|failed to resolve address|connection refused|timed out|"
    r"network is unreachable|no route to host|connection reset|could not resolve",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"authentication|status code: 40[13]|credentials|permission denied \(publickey",
    re.IGNORECASE,
)
_NON_FAST_FORWARD = re.compile(
    r"non-fast-?forward|not present locally|fetch first|stale info", re.IGNORECASE
)
_PROGRESS = re.compile(
    r"^(resolving deltas|counting objects|compressing objects|writing objects|"
    r"unpacking objects|total \d+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PushResult:
    """What happened to one ref."""

    status: PushStatus
    remote_ref: str
    local_commit: str | None
    """The commit that was (or would have been) pushed, as hex; None if unknown."""
    remote_commit: str | None
    """What the remote held before the push, as hex; None if absent or not listed."""
    message: str
    """One line for a person; never contains a credential."""

    @property
    def ok(self) -> bool:
        """True when the remote now holds the local commit."""
        return self.status in ("pushed", "up_to_date")


@dataclass(frozen=True)
class SshKey:
    """A key file for SSH pushes (instead of the agent)."""

    private_key: Path
    public_key: Path | None = None
    passphrase: str = field(default="", repr=False)


def set_network_timeouts(connect_s: float = 15.0, io_s: float = 120.0) -> None:
    """Bound how long libgit2 waits to connect and for each read, for every remote.

    A process-wide libgit2 setting; a timeout surfaces as ``unreachable``.
    """
    if connect_s <= 0 or io_s <= 0:
        raise ValueError("timeouts must be positive")
    pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, max(1, round(connect_s * 1000)))
    pygit2.option(Option.SET_SERVER_TIMEOUT, max(1, round(io_s * 1000)))


def remote_url(repo: pygit2.Repository, name: str = "origin") -> str | None:
    """The URL pushes to remote ``name`` go to (``pushurl``, else ``url``); config is only read."""
    for key in (f"remote.{name}.pushurl", f"remote.{name}.url"):
        value = _config_str(repo, key)
        if value:
            return value
    return None


def snapshot_remote_ref(host_name: str, branch: str) -> str:
    """Where the snapshots of ``branch`` taken on ``host_name`` go on the remote."""
    return _valid_ref(f"{SNAPSHOT_BRANCH_PREFIX}{host_name}/{branch}")


def push_snapshot(
    repo: pygit2.Repository,
    branch: str,
    url: str,
    *,
    host_name: str,
    credentials: CredentialSource,
    ssh_key: SshKey | None = None,
    proxy: bool | str | None = True,
) -> PushResult:
    """Push ``refs/labmind/snapshots/<branch>`` to ``refs/heads/labmind/<host_name>/<branch>``."""
    return push_ref(
        repo,
        url,
        snapshot_ref(branch),
        snapshot_remote_ref(host_name, branch),
        credentials=credentials,
        ssh_key=ssh_key,
        proxy=proxy,
    )


def push_ref(
    repo: pygit2.Repository,
    url: str,
    local_ref: str,
    remote_ref: str,
    *,
    credentials: CredentialSource,
    ssh_key: SshKey | None = None,
    proxy: bool | str | None = True,
) -> PushResult:
    """Fast-forward ``remote_ref`` at ``url`` to ``local_ref``'s commit, or report why not.

    ``proxy``: True follows git's proxy settings and environment, None uses none, a
    string names one.
    """
    _valid_ref(local_ref)
    _valid_ref(remote_ref)
    link = _Link(url, credentials, ssh_key, proxy)
    local = _ref_commit(repo, local_ref)
    if local is None:
        return _report(
            PushResult("error", remote_ref, None, None, f"nothing to push: no {local_ref} here")
        )
    listing = link.list_refs(repo)
    if isinstance(listing, _Failure):
        return _report(listing.result(remote_ref, local, None))
    update = _Update(local_ref, remote_ref, local, listing.get(remote_ref))
    planned = _plan(repo, update, link.display)
    if planned is not None:
        return _report(planned)
    return _report(link.push(repo, [update])[0])


def push_branches_ahead(
    repo: pygit2.Repository,
    url: str,
    *,
    credentials: CredentialSource,
    remote_name: str = "origin",
    ssh_key: SshKey | None = None,
    proxy: bool | str | None = True,
) -> list[PushResult]:
    """Fast-forward each branch's upstream on ``remote_name`` when the local branch is ahead.

    Only local branches whose upstream (``branch.<name>.remote`` and ``.merge``) is on
    ``remote_name`` are considered; an upstream the remote no longer has is left
    alone (not recreated) and not reported. Diverged and behind branches are reported
    as ``non_fast_forward``, equal ones as ``up_to_date``.
    """
    tracked = _tracked_branches(repo, remote_name)
    if not tracked:
        return []
    link = _Link(url, credentials, ssh_key, proxy)
    listing = link.list_refs(repo)
    if isinstance(listing, _Failure):
        return [_report(listing.result(remote, local, None)) for _, remote, local in tracked]
    planned: dict[str, PushResult] = {}
    updates: list[_Update] = []
    for local_ref, remote_ref, local in tracked:
        if remote_ref not in listing:
            continue
        update = _Update(local_ref, remote_ref, local, listing[remote_ref])
        result = _plan(repo, update, link.display)
        if result is None:
            updates.append(update)
        else:
            planned[local_ref] = result
    if updates:
        planned.update(zip((u.local_ref for u in updates), link.push(repo, updates), strict=True))
    return [_report(planned[ref]) for ref, _, _ in tracked if ref in planned]


@dataclass(frozen=True)
class _Update:
    local_ref: str
    remote_ref: str
    local: pygit2.Oid
    remote: pygit2.Oid | None


@dataclass(frozen=True)
class _Failure:
    """A failure that hit every ref of one connection."""

    status: PushStatus
    message: str

    def result(self, remote_ref: str, local: pygit2.Oid, remote: pygit2.Oid | None) -> PushResult:
        return PushResult(self.status, remote_ref, str(local), _hex(remote), self.message)


class _Refused(Exception):
    """Raised inside a callback to stop libgit2; carries the outcome."""

    def __init__(self, status: PushStatus, message: str) -> None:
        super().__init__(message)
        self.status: PushStatus = status


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials that stop after one refusal, and the server's per-ref answers."""

    def __init__(
        self,
        url: str,
        source: CredentialSource,
        ssh_key: SshKey | None,
        expected: Mapping[str, pygit2.Oid | None] | None = None,
    ) -> None:
        super().__init__()
        self._url = url
        self._source = source
        self._ssh_key = ssh_key
        self._expected = dict(expected or {})
        self.attempts = 0
        self.secrets: list[str] = []
        self.answers: dict[str, str | None] = {}
        self.remote_output: list[str] = []

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.Username | pygit2.UserPass | pygit2.Keypair:
        ssh_user = username_from_url or _url_user(self._url) or "git"
        if allowed_types == CredentialType.USERNAME:
            return pygit2.Username(ssh_user)  # SSH asks for the name first; not a credential
        self.attempts += 1
        host = _credential_host(self._url)
        if self.attempts > 1:
            raise _Refused("auth_failed", f"{host} refused the credentials")
        if allowed_types & CredentialType.SSH_KEY:
            return self._keypair(ssh_user)
        if allowed_types & CredentialType.USERPASS_PLAINTEXT:
            try:
                token = self._source.token(host)
            except CredentialError as exc:
                raise _Refused("auth_failed", str(exc)) from None
            if not token:
                raise _Refused("auth_failed", f"{host} wants a token and none is stored for it")
            self.secrets.append(token)
            return pygit2.UserPass(TOKEN_USERNAME, token)
        raise _Refused("auth_failed", f"{host} asks for a kind of credential labmind lacks")

    def _keypair(self, user: str) -> pygit2.Keypair:
        key = self._ssh_key
        if key is None:
            return pygit2.KeypairFromAgent(user)
        if key.passphrase:
            self.secrets.append(key.passphrase)
        return pygit2.Keypair(user, key.public_key, key.private_key, key.passphrase)

    def sideband_progress(self, string: str) -> None:
        self.remote_output.append(string)

    def push_negotiation(self, updates: list[pygit2.remotes.PushUpdate]) -> None:
        for update in updates:
            expected = self._expected.get(update.dst_refname)
            if update.src != (expected or _ZERO):
                raise _Refused(
                    "non_fast_forward",
                    f"{update.dst_refname} moved on the remote while the push was prepared",
                )

    def push_update_reference(self, refname: str, message: str | None) -> None:
        self.answers[refname] = message

    def server_said(self) -> str:
        """What the server printed (hook output), without progress lines, on one line."""
        lines = re.split(r"[\r\n]+", "".join(self.remote_output))
        kept = [line.strip() for line in lines if line.strip() and not _PROGRESS.match(line)]
        return " | ".join(kept)


class _Link:
    """One remote URL with its credentials: lists refs and pushes updates."""

    def __init__(
        self,
        url: str,
        source: CredentialSource,
        ssh_key: SshKey | None,
        proxy: bool | str | None,
    ) -> None:
        self.url = url
        self.display = mask_url(url)
        self._source = source
        self._ssh_key = ssh_key
        self._proxy = proxy

    def list_refs(self, repo: pygit2.Repository) -> dict[str, pygit2.Oid] | _Failure:
        callbacks = _Callbacks(self.url, self._source, self._ssh_key)
        try:
            remote = repo.remotes.create_anonymous(self.url)
            remote.connect(callbacks=callbacks, direction=_DIRECTION_PUSH, proxy=self._proxy)
            heads = remote.list_heads(connect=False)
        except (pygit2.GitError, _Refused) as exc:
            return self._failure(exc, callbacks)
        return {
            head.name: head.oid
            for head in heads
            if head.name and not head.name.endswith("^{}") and head.oid != _ZERO
        }

    def push(self, repo: pygit2.Repository, updates: Sequence[_Update]) -> list[PushResult]:
        expected = {u.remote_ref: u.remote for u in updates}
        callbacks = _Callbacks(self.url, self._source, self._ssh_key, expected)
        specs = [f"{u.local}:{u.remote_ref}" for u in updates]  # the planned commit; no '+'
        try:
            remote = repo.remotes.create_anonymous(self.url)
            remote.push(specs, callbacks=callbacks, proxy=self._proxy)
        except (pygit2.GitError, _Refused) as exc:
            failure = self._failure(exc, callbacks)
            return [failure.result(u.remote_ref, u.local, u.remote) for u in updates]
        return [self._answer(u, callbacks) for u in updates]

    def _answer(self, update: _Update, callbacks: _Callbacks) -> PushResult:
        local, remote = str(update.local), _hex(update.remote)
        if update.remote_ref not in callbacks.answers:
            message = f"{self.display} did not report on {update.remote_ref}"
            return PushResult("error", update.remote_ref, local, remote, self._clean(message, []))
        reason = callbacks.answers[update.remote_ref]
        if reason is None:
            message = f"pushed {local[:12]} to {update.remote_ref} on {self.display}"
            return PushResult("pushed", update.remote_ref, local, remote, self._clean(message, []))
        status: PushStatus = "non_fast_forward" if _NON_FAST_FORWARD.search(reason) else "rejected"
        said = callbacks.server_said()
        message = f"{self.display} rejected {update.remote_ref}: {reason}"
        if said:
            message += f"; remote: {said}"
        return PushResult(
            status, update.remote_ref, local, remote, self._clean(message, callbacks.secrets)
        )

    def _failure(self, exc: Exception, callbacks: _Callbacks) -> _Failure:
        text = str(exc)
        if isinstance(exc, _Refused):
            status = exc.status
        elif isinstance(exc, pygit2.AuthError) or _AUTH.search(text):
            status = "auth_failed"
        elif _UNREACHABLE.search(text):
            status = "unreachable"
        elif _NON_FAST_FORWARD.search(text):
            status = "non_fast_forward"
        else:
            status = "error"
        prefix = {
            "auth_failed": "authentication failed",
            "unreachable": f"cannot reach {self.display}",
            "non_fast_forward": "not pushed, nothing forced",
        }.get(status, f"push to {self.display} failed")
        return _Failure(status, self._clean(f"{prefix}: {text}", callbacks.secrets))

    def _clean(self, message: str, secrets: Sequence[str]) -> str:
        message = " ".join(mask_url(message).split())
        for secret in {*secrets, *_url_secrets(self.url)}:
            message = message.replace(secret, "***")
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        return message


def _plan(repo: pygit2.Repository, update: _Update, where: str) -> PushResult | None:
    """None when the update is a fast-forward to push; otherwise the result without pushing."""
    local, remote = update.local, update.remote
    local_hex, remote_hex = str(local), _hex(remote)
    ref = update.remote_ref
    if remote is None:
        return None
    if remote == local:
        message = f"{ref} on {where} is already at {local_hex[:12]}"
        return PushResult("up_to_date", ref, local_hex, remote_hex, message)
    relation = _relation(repo, local, remote)
    if relation == "ahead":
        return None
    detail = {
        "unknown": "it holds commits this repository does not have",
        "behind": f"it is ahead of {update.local_ref}",
        "diverged": f"it has diverged from {update.local_ref}",
    }[relation]
    message = f"not pushed, nothing forced: {ref} on {where} is at {str(remote)[:12]} and {detail}"
    return PushResult("non_fast_forward", ref, local_hex, remote_hex, message)


def _relation(
    repo: pygit2.Repository, local: pygit2.Oid, remote: pygit2.Oid
) -> Literal["ahead", "behind", "diverged", "unknown"]:
    if remote not in repo:
        return "unknown"
    try:
        if repo.descendant_of(local, remote):
            return "ahead"
        if repo.descendant_of(remote, local):
            return "behind"
    except pygit2.GitError:
        return "unknown"  # the remote's object is not a commit
    return "diverged"


def _tracked_branches(
    repo: pygit2.Repository, remote_name: str
) -> list[tuple[str, str, pygit2.Oid]]:
    """``(local ref, upstream ref on the remote, local commit)`` for branches tracking it."""
    found: list[tuple[str, str, pygit2.Oid]] = []
    for name in sorted(repo.branches.local):
        if _config_str(repo, f"branch.{name}.remote") != remote_name:
            continue
        merge = _config_str(repo, f"branch.{name}.merge")
        local_ref = f"refs/heads/{name}"
        local = _ref_commit(repo, local_ref)
        if merge and merge.startswith("refs/heads/") and local is not None:
            found.append((local_ref, merge, local))
    return found


def _ref_commit(repo: pygit2.Repository, ref: str) -> pygit2.Oid | None:
    reference = repo.references.get(ref)
    if reference is None:
        return None
    try:
        return reference.peel(pygit2.Commit).id
    except (pygit2.GitError, ValueError):
        return None


def _config_str(repo: pygit2.Repository, key: str) -> str | None:
    try:
        return str(repo.config[key])
    except KeyError:
        return None


def _valid_ref(ref: str) -> str:
    if not ref.startswith("refs/") or not pygit2.reference_is_valid_name(ref):
        raise ValueError(f"not a valid full ref name: {ref!r}")
    return ref


def _hex(oid: pygit2.Oid | None) -> str | None:
    return None if oid is None else str(oid)


def _credential_host(url: str) -> str:
    """The host tokens are filed under: ``github.com``, ``127.0.0.1:8080``."""
    if "://" not in url:
        return _scp_parts(url)[1]
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2].lower()
    default_port = {"https": ":443", "http": ":80"}.get(parts.scheme, "")
    return host.removesuffix(default_port) if default_port else host


def _url_user(url: str) -> str | None:
    if "://" not in url:
        return _scp_parts(url)[0]
    return urlsplit(url).username


def _scp_parts(url: str) -> tuple[str | None, str]:
    """``user@host:path`` → (user, host); a plain path gives ("", "")."""
    match = re.match(r"^(?:([^@/:]+)@)?([^/:]+):", url)
    if match is None:
        return None, ""
    return match.group(1), match.group(2).lower()


def _url_secrets(url: str) -> list[str]:
    """Credentials written into a URL (a password, or a token given as the user name)."""
    if "://" not in url:
        return []
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    if parts.username and parts.scheme in ("http", "https"):
        found.append(parts.username)
    return [s for s in found if len(s) >= 4]


def mask_url(text: str) -> str:
    """Hide the userinfo of HTTP(S) URLs and the password of any URL in ``text``."""
    text = re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)
    return re.sub(r"([a-z+]+://[^/:@\s]+):[^/@\s]+@", r"\1:***@", text)


def _report(result: PushResult) -> PushResult:
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, "push %s: %s", result.status, result.message)
    return result
