"""Opening a chat export (a JSON file, a folder or a zip) and streaming its conversations.

An export is recognised by what it holds, never by its name: ``conversations.json`` or
``conversations-NNN.json`` shards (at the top or one folder deep) whose first
conversation has ChatGPT's ``mapping`` or Claude's ``chat_messages``. Conversations are
read one at a time with ijson, straight from the file or the zip member, so memory stays
bounded by the largest single conversation however large the export is. A zip is never
extracted; its members are checked against zip-bomb limits before anything is read.

Damage costs as little as possible: a truncated shard yields every complete conversation
before the cut, a conversation that cannot be parsed is skipped; both are recorded in
``Export.problems`` as one-line messages that name the file.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Literal

import ijson

from .chatgpt import parse_chatgpt
from .claude import parse_claude
from .layout import BOM, Container, Zip, container_for, plan, shards_by_name
from .model import Conversation, ConversationError, Source, single_line

ExportKind = Source
"""Which assistant wrote an export: ``"chatgpt"`` or ``"claude"``."""

MAX_TOTAL_BYTES = 4 * 1024**3
"""Most uncompressed bytes of conversation files a zip may declare (zip-bomb guard)."""

MAX_COMPRESSION_RATIO = 200
"""Most uncompressed bytes per compressed byte a large zip member may declare."""

RATIO_CHECKED_ABOVE = 1024**2
"""Members smaller than this (uncompressed) are not held to ``MAX_COMPRESSION_RATIO``."""

SNIFF_BYTES = 64 * 1024
"""How much of a file ``sniff`` reads to recognise an export."""

OPEN_SNIFF_BYTES = 1024**2
"""How much of the first conversation file ``open_export`` reads to tell its kind."""

_JSON_SPACE = b" \t\r\n"
_READ_SIZE = 64 * 1024
_Head = Literal["chatgpt", "claude", "empty"] | None


class ExportError(Exception):
    """A path is not a readable chat export; the one-line message names it and says why."""

    def __init__(self, message: str) -> None:
        super().__init__(single_line(message))


class Export:
    """A chat export that ``open_export`` recognised: its kind, size and conversations.

    ``total_bytes`` is the size of the conversation files (uncompressed) and
    ``bytes_read`` how much of them ``conversations()`` has read so far: the two make a
    progress bar. ``problems`` lists what went wrong while reading, one line each, with
    the file named; it starts afresh with each call of ``conversations()``.

    Made by ``open_export``; it holds no open files between calls, so it may be kept.
    """

    def __init__(
        self,
        path: Path,
        kind: ExportKind,
        *,
        container: Container,
        shards: Sequence[str],
        notes: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.kind: ExportKind = kind
        self.total_bytes = sum(container.size(name) for name in shards)
        self.problems: list[str] = list(notes)
        self._container = container
        self._shards = tuple(shards)
        self._notes = tuple(notes)
        self._bytes_read = 0

    @property
    def files(self) -> tuple[str, ...]:
        """The conversation files, in reading order (names relative to the export)."""
        return self._shards

    @property
    def bytes_read(self) -> int:
        """Bytes of the conversation files read so far by ``conversations()``."""
        return self._bytes_read

    def conversations(self) -> Iterator[Conversation]:
        """Every usable conversation, streamed file by file in export order.

        Never raises for damaged input: a truncated or invalid file ends with a problem
        and reading goes on with the next file; a conversation that does not parse is
        recorded as a problem and skipped.
        """
        self.problems[:] = self._notes
        self._bytes_read = 0
        parse = parse_chatgpt if self.kind == "chatgpt" else parse_claude
        for name in self._shards:
            yield from self._read_shard(name, parse)

    def _read_shard(self, name: str, parse: Callable[..., Conversation]) -> Iterator[Conversation]:
        count = 0
        try:
            with self._container.open(name) as raw:
                stream = _MeteredStream(
                    raw, on_read=self._count, limit=self._container.declared_limit(name)
                )
                start = stream.first_byte()
                if start not in (b"[", b"{"):
                    self._problem(
                        f"{name}: not a JSON array or object" if start else f"{name}: empty file"
                    )
                    return
                prefix = "item" if start == b"[" else ""
                for obj in ijson.items(stream, prefix, use_float=True):
                    count += 1
                    origin = f"{name}: conversation {count}"
                    try:
                        conversation = parse(obj, origin=origin)
                    except ConversationError as error:
                        self._problem(_one_line(error))
                        continue
                    except Exception as error:  # a parser bug must not end the import
                        self._problem(f"{origin}: {type(error).__name__}: {_one_line(error)}")
                        continue
                    yield conversation
        except ijson.JSONError as error:
            if "premature EOF" in str(error):
                self._problem(f"{name}: truncated JSON after {count} conversations")
            else:
                self._problem(
                    f"{name}: invalid JSON after {count} conversations: {_one_line(error)}"
                )
        except _Oversize:
            self._problem(
                f"{name}: stopped after {count} conversations: "
                "the zip member holds more than it declares (possible zip bomb)"
            )
        except Exception as error:  # unreadable, corrupt zip data, encrypted member …
            self._problem(
                f"{name}: unreadable after {count} conversations: "
                f"{type(error).__name__}: {_one_line(error)}"
            )

    def _count(self, size: int) -> None:
        self._bytes_read += size

    def _problem(self, line: str) -> None:
        self.problems.append(single_line(line))

    def __repr__(self) -> str:
        return f"Export({str(self.path)!r}, kind={self.kind!r}, files={len(self._shards)})"


def sniff(path: Path) -> ExportKind | None:
    """The kind of chat export at ``path`` (a file, folder or zip), or None.

    Fast and quiet: reads at most ``SNIFF_BYTES`` from the start of the first
    conversation file (of the next ones only while they hold empty arrays) and answers
    None for anything missing, unreadable or not an export; never raises.
    """
    try:
        container = container_for(path)
        if container is None:
            return None
        return _export_kind(container, shards_by_name(container), SNIFF_BYTES)[0]
    except Exception:  # sniffing is a yes/no question: odd input answers no
        return None


def open_export(path: Path) -> Export:
    """The chat export at ``path``: a ChatGPT or Claude JSON file, a folder, or a zip.

    Raises ``ExportError`` (one line naming the path) when the path is missing or
    unreadable, is not an export, is a zip that holds no conversations, or is a zip whose
    conversation files are larger than ``MAX_TOTAL_BYTES`` or compressed more than
    ``MAX_COMPRESSION_RATIO`` times (a zip bomb).
    """
    try:
        return _open(path)
    except ExportError:
        raise
    except Exception as error:  # odd input must surface as an ExportError only
        raise ExportError(f"{path}: cannot read: {_one_line(error)}") from error


def _open(path: Path) -> Export:
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder")
    try:
        container = container_for(path)
    except zipfile.BadZipFile as error:
        raise ExportError(f"{path}: not a valid zip file: {_one_line(error)}") from error
    except OSError as error:
        raise ExportError(f"{path}: cannot read: {_one_line(error)}") from error
    if container is None:
        raise ExportError(f"{path}: not a file or folder")
    shards, notes = plan(container)
    if not shards:
        where = "zip" if isinstance(container, Zip) else "folder"
        raise ExportError(
            f"{path}: not a chat export: the {where} holds no conversations.json "
            "or conversations-NNN.json"
        )
    if isinstance(container, Zip):
        _check_zip_limits(path, container, shards)
    kind, why = _export_kind(container, shards, OPEN_SNIFF_BYTES)
    if kind is None:
        raise ExportError(f"{path}: not a ChatGPT or Claude export: {why}")
    return Export(path, kind, container=container, shards=shards, notes=notes)


def _check_zip_limits(path: Path, archive: Zip, names: Sequence[str]) -> None:
    """Raise ``ExportError`` when the members to be read look like a zip bomb."""
    total = 0
    for name in names:
        member = archive.member(name)
        if member.encrypted:
            raise ExportError(f"{path}: {name} is encrypted")
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise ExportError(
                f"{path}: {name}: conversation files would unpack to more than "
                f"{MAX_TOTAL_BYTES} bytes (possible zip bomb)"
            )
        ratio = member.size / max(member.compressed_size, 1)
        if member.size > RATIO_CHECKED_ABOVE and ratio > MAX_COMPRESSION_RATIO:
            raise ExportError(
                f"{path}: {name} is compressed {ratio:.0f} times, over the limit of "
                f"{MAX_COMPRESSION_RATIO} (possible zip bomb)"
            )


def _export_kind(
    container: Container, shards: Sequence[str], limit: int
) -> tuple[ExportKind | None, str]:
    """The kind told by the first conversation of the first non-empty shard, and why not."""
    for name in shards:
        with container.open(name) as stream:
            head = stream.read(limit)
        found, why = _head_kind(head)
        if found == "empty":
            continue
        if found is None:
            return None, f"{name}: {why}"
        return found, ""
    return None, "the conversation files hold no conversations"


def _head_kind(head: bytes) -> tuple[_Head, str]:
    """What the start of a conversation file holds, and a reason when it is no export."""
    head = head.removeprefix(BOM)
    start = head.lstrip(_JSON_SPACE)[:1]
    if start not in (b"[", b"{"):
        return None, "not a JSON array or object"
    top = "item" if start == b"[" else ""
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head)):
            if prefix == top and event == "map_key":
                if value in ("mapping", "current_node"):
                    return "chatgpt", ""
                if value == "chat_messages":
                    return "claude", ""
            elif prefix == top and event == "end_map":
                break
            elif top and prefix == "" and event == "end_array":
                return "empty", ""
            elif top and prefix == top and event not in ("start_map", "map_key"):
                return None, "the first element is not an object"
    except ijson.JSONError as error:
        if "premature EOF" not in str(error):
            return None, f"invalid JSON: {_one_line(error)}"
    return None, "the first conversation has neither mapping (ChatGPT) nor chat_messages (Claude)"


class _Oversize(Exception):
    """A stream yielded more bytes than its zip entry declares."""


class _MeteredStream:
    """A binary stream that counts the bytes read through it and stops past a limit.

    ``first_byte`` looks ahead to the first JSON character (after a byte-order mark and
    white space) without losing it, so the caller can tell an array from an object.
    """

    def __init__(
        self, raw: IO[bytes], *, on_read: Callable[[int], None], limit: int | None
    ) -> None:
        self._raw = raw
        self._on_read = on_read
        self._limit = limit
        self._total = 0
        self._pending = b""

    def first_byte(self) -> bytes:
        """The first byte that is not white space (or a BOM); b"" for an empty stream."""
        chunk = self._take(_READ_SIZE).removeprefix(BOM)
        while chunk:
            stripped = chunk.lstrip(_JSON_SPACE)
            if stripped:
                self._pending = stripped
                return stripped[:1]
            chunk = self._take(_READ_SIZE)
        return b""

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all when negative); b"" only at the end."""
        if size == 0:
            return b""
        if self._pending:
            cut = len(self._pending) if size < 0 else size
            data, self._pending = self._pending[:cut], self._pending[cut:]
            return data
        return self._take(size)

    def _take(self, size: int) -> bytes:
        data = self._raw.read(size)
        self._total += len(data)
        if self._limit is not None and self._total > self._limit:
            raise _Oversize
        self._on_read(len(data))
        return data


def _one_line(error: BaseException) -> str:
    """The first line of an error message, kept short (ijson's span several lines)."""
    text = str(error)
    if text.startswith(("b'", 'b"')):
        text = text[2:].split("\\n", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    return first if len(first) <= 200 else f"{first[:197]}..."
