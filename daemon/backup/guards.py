"""What must never enter a snapshot: secret file names, secret-looking content, huge files.

`Guards.check` looks at one changed file before its blob is written and answers either
``None`` (it may go in) or a `HeldBack` record that says, in one line, why it stays out.
A record names the file and the kind of problem, never the secret itself.

Order of the checks: the user's allow-list (gitignore-style globs) lets a path through
every check; then the filename denylist; then the size cap; then the content scan
(detect-secrets, run offline on text files under ``max_scan_bytes``; for notebooks on
their cell sources and text outputs at any size, never on image outputs, whose base64
would read as high-entropy secrets).
"""

from __future__ import annotations

import fnmatch
import json
import os
import stat
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Protocol

from pathspec import GitIgnoreSpec

DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024
"""Files larger than this are held back (GitHub refuses files over 100 MB)."""

DEFAULT_MAX_SCAN_BYTES = 2 * 1024 * 1024
"""Text files up to this size are scanned for secrets; larger ones only get the name checks."""

_BINARY_SNIFF_BYTES = 8000
"""A NUL byte in this many leading bytes marks a file as binary (git's own rule)."""

SECRET_NAME_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    "id_rsa",
    "id_ed25519",
    "id_ecdsa",
    "id_dsa",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "*.kdbx",
    "*.ovpn",
    "*.tfvars",
    "*.tfvars.json",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    ".htpasswd",
    "credentials",
    "credentials.json",
    "secrets.*",
    "kubeconfig",
)
"""Basenames (fnmatch, compared in lower case) of files that hold secrets by their nature."""

SECRET_NAME_EXCEPTIONS: tuple[str, ...] = (".env.example", ".env.sample", ".env.template")
"""Basenames that match `SECRET_NAME_PATTERNS` but are conventionally secret-free templates."""

SECRET_PATH_SUFFIXES: tuple[str, ...] = (
    ".aws/credentials",
    ".docker/config.json",
    ".kube/config",
)
"""Trailing path parts (lower case) of credential files whose basename alone is harmless."""


@dataclass(frozen=True)
class HeldBack:
    """A changed file kept out of a snapshot: its repository-relative path and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def secret_name_match(path: str) -> str | None:
    """The denylist pattern that ``path`` (relative, ``/``-separated) matches, or ``None``."""
    lower = path.lower()
    name = PurePosixPath(lower).name
    for suffix in SECRET_PATH_SUFFIXES:
        if lower == suffix or lower.endswith("/" + suffix):
            return suffix
    if name in SECRET_NAME_EXCEPTIONS:
        return None
    for pattern in SECRET_NAME_PATTERNS:
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
    return None


class SecretScanner(Protocol):
    """Looks inside one text file for secrets."""

    def find_secret(self, file: Path) -> str | None:
        """A one-line description of the first secret found (kind and line), or ``None``."""
        ...


_DETECT_SECRETS_LOCK = threading.Lock()
"""detect-secrets keeps its settings in process-wide state; one scan at a time."""


class DetectSecretsScanner:
    """`SecretScanner` backed by detect-secrets with its default plugins and filters.

    Every default plugin works offline (regular expressions and entropy); no plugin
    verifies a secret against its service.
    """

    def find_secret(self, file: Path) -> str | None:
        """The kind and line of the first secret detect-secrets reports in ``file``."""
        from detect_secrets.core.scan import scan_file
        from detect_secrets.settings import default_settings

        with _DETECT_SECRETS_LOCK, default_settings():
            for secret in scan_file(str(file)):
                return f"{secret.type} on line {secret.line_number}"
        return None


@dataclass(frozen=True)
class Guards:
    """The checks every changed file passes before it may enter a snapshot."""

    allow: tuple[str, ...] = ()
    """Gitignore-style globs of paths the user lets through every check."""
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_scan_bytes: int = DEFAULT_MAX_SCAN_BYTES
    scanner: SecretScanner = field(default_factory=DetectSecretsScanner)

    @cached_property
    def _allow_spec(self) -> GitIgnoreSpec:
        return GitIgnoreSpec.from_lines(self.allow)

    def allowed(self, path: str) -> bool:
        """Whether the user's allow-list covers ``path`` (relative, ``/``-separated)."""
        return bool(self.allow) and bool(self._allow_spec.match_file(path))

    def check_quick(self, path: str, info: os.stat_result) -> HeldBack | None:
        """The checks that need no reading: allow-list, file name, size."""
        if self.allowed(path):
            return None
        pattern = secret_name_match(path)
        if pattern is not None:
            return HeldBack(path, f"secret file name (matches {pattern})")
        if info.st_size > self.max_file_bytes:
            return HeldBack(
                path,
                f"too large ({_megabytes(info.st_size)} > {_megabytes(self.max_file_bytes)})",
            )
        return None

    def check(self, path: str, file: Path) -> HeldBack | None:
        """Check the file at ``file`` (repository path ``path``); ``None`` lets it in."""
        info = file.lstat()
        quick = self.check_quick(path, info)
        if quick is not None or self.allowed(path):
            return quick
        if not stat.S_ISREG(info.st_mode):
            return None
        if path.lower().endswith(".ipynb"):
            found = self._scan_notebook(file)
            if found is not None:
                return HeldBack(path, f"looks like a secret in a notebook: {found}")
            return None
        if info.st_size > self.max_scan_bytes or _looks_binary(file):
            return None
        found = self.scanner.find_secret(file)
        if found is not None:
            return HeldBack(path, f"looks like a secret: {found}")
        return None

    def _scan_notebook(self, file: Path) -> str | None:
        """Scan a notebook's cell sources and text outputs at any size, not its images."""
        text = notebook_text(file.read_bytes())
        if text is None:
            size = file.stat().st_size
            if size > self.max_scan_bytes or _looks_binary(file):
                return None
            return self.scanner.find_secret(file)
        with tempfile.TemporaryDirectory(prefix="labmind-scan-") as folder:
            extracted = Path(folder) / "notebook.txt"
            extracted.write_text(text, encoding="utf-8")
            return self.scanner.find_secret(extracted)


def notebook_text(data: bytes) -> str | None:
    """The text a notebook holds (cell sources, text and JSON outputs; no images), or
    ``None`` when ``data`` is not a notebook."""
    try:
        notebook = json.loads(data)
    except (ValueError, RecursionError):
        return None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return None
    parts: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        parts.append(_joined(cell.get("source")))
        for output in cell.get("outputs") or ():
            if not isinstance(output, dict):
                continue
            parts.append(_joined(output.get("text")))
            data_field = output.get("data")
            if isinstance(data_field, dict):
                parts.extend(
                    _joined(value) if isinstance(value, str | list) else json.dumps(value)
                    for kind, value in data_field.items()
                    if not kind.startswith("image/")
                )
    return "\n".join(p for p in parts if p)


def _joined(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return ""


def _looks_binary(file: Path) -> bool:
    with file.open("rb") as handle:
        return b"\0" in handle.read(_BINARY_SNIFF_BYTES)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
