"""Reading one file for indexing, safely: every IO problem becomes a :class:`Skip`."""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

SNIFF_BYTES = 8192
"""How much of the start of a file the binary check looks at."""

CONTROL_RATIO = 0.3
"""Share of control bytes above which a file without NUL bytes still counts as binary."""

_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")
_NOT_CONTROLS = bytes(b for b in range(256) if b >= 0x20 or b in _TEXT_CONTROLS)
"""Every byte but the control bytes that do not occur in text (deleted to count those)."""
_UTF16_32_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
"""Non-blocking, so a named pipe that slipped past the checks cannot hang the reader."""
_VANISHED = "vanished: deleted before it could be read"
_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file's decoded text and what identifies that version of it."""

    text: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a file is not indexed, in one line."""

    reason: str


def read_source(path: Path, max_bytes: int) -> SourceFile | Skip:
    """Read and decode ``path``; never raises for IO trouble, returns a :class:`Skip` instead.

    Symlinks to files are followed. Text that is not UTF-8 is decoded leniently.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        return _open_failure(path, error)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Skip(f"not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            return _too_large(info.st_size, max_bytes)
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as error:
        return _read_failure(error)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        return _too_large(len(data), max_bytes)
    text = decode(data)
    if text is None:
        return Skip("binary file")
    return SourceFile(
        text=text,
        size=len(data),
        mtime_ns=info.st_mtime_ns,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def decode(data: bytes) -> str | None:
    """``data`` as text, or None when it looks binary.

    UTF-8 (with or without BOM) and UTF-16/32 with a BOM are decoded as such; other
    bytes as UTF-8 with replacement characters when most of it is UTF-8, else as
    Windows-1252 (which covers Latin-1 text).
    """
    for bom, encoding in _UTF16_32_BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if looks_binary(data[:SNIFF_BYTES]):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lenient = data.decode("utf-8", errors="replace")
    replaced = lenient.count("\ufffd")
    decoded_multibyte = len(lenient) - len(lenient.encode("ascii", "ignore")) - replaced
    if decoded_multibyte > replaced:
        return lenient
    return data.decode("cp1252", errors="replace")


def looks_binary(head: bytes) -> bool:
    """A NUL byte, or many control bytes, in the start of a file."""
    if b"\0" in head:
        return True
    if not head:
        return False
    controls = len(head.translate(None, _NOT_CONTROLS))
    return controls / len(head) > CONTROL_RATIO


def _read_at_most(fd: int, limit: int) -> bytes:
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        part = os.read(fd, min(remaining, 1 << 20))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _open_failure(path: Path, error: OSError) -> Skip:
    if error.errno == errno.ENOENT:
        try:
            is_link = path.is_symlink()
        except OSError:
            is_link = False
        return Skip("broken symlink: its target does not exist" if is_link else _VANISHED)
    if error.errno == errno.ELOOP:
        return Skip("broken symlink: a symlink loop")
    if error.errno == errno.ENOTDIR:
        return Skip("vanished: a parent folder is no longer a folder")
    if error.errno in {errno.EACCES, errno.EPERM}:
        return Skip("unreadable: permission denied")
    return _read_failure(error)


def _read_failure(error: OSError) -> Skip:
    if error.errno == errno.EISDIR:
        return Skip("not a regular file (a directory)")
    if error.errno == errno.ENOENT:
        return Skip(_VANISHED)
    if error.errno in {errno.EACCES, errno.EPERM}:
        return Skip("unreadable: permission denied")
    return Skip(f"unreadable: {error.strerror or error}")


def _too_large(size: int, max_bytes: int) -> Skip:
    return Skip(f"too large: {_human(size)} is over the {_human(max_bytes)} limit")


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _file_kind(mode: int) -> str:
    for test, name in _NOT_REGULAR:
        if test(mode):
            return name
    return "not a plain file"
