"""Where an export keeps its conversation files, and in which order to read them.

An export arrives as one JSON file, an unpacked folder, or the zip the service sent.
Each is a ``Container`` of files (the top level and one folder deep, as ``/``-separated
names) that opens a file as a binary stream; a zip member is streamed, never extracted.
``plan`` finds the conversation files in a container: ``conversations-NNN.json`` shards
in the order ``export_manifest.json`` lists them, then by number, or the one
``conversations.json``.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

MANIFEST = "export_manifest.json"
"""The file of newer ChatGPT exports that lists the conversation shards."""

MAX_MANIFEST_BYTES = 4 * 1024**2
"""Larger manifests are ignored (the shards are then read in number order)."""

BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte-order mark some tools write at the start of JSON files."""

_SHARD_NAME = re.compile(r"^conversations(?:-(\d+))?\.json$", re.IGNORECASE)
_LISTED_SHARD = re.compile(r"(?:.*/)?conversations[^/]*\.json", re.IGNORECASE)
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_FALLBACK = "reading conversations-NNN.json in number order"


class Container(Protocol):
    """The files of an export: a folder, a zip, or one JSON file."""

    def names(self) -> list[str]:
        """Files at the top and one folder deep, as ``/``-separated relative names."""
        ...

    def size(self, name: str) -> int:
        """The (uncompressed) size of a file in bytes."""
        ...

    def declared_limit(self, name: str) -> int | None:
        """The most bytes a file may yield, where a zip declares it; else None."""
        ...

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        """The file as a binary stream, closed when the ``with`` block ends."""
        ...


def container_for(path: Path) -> Container | None:
    """The container at ``path``, or None when it is neither a file nor a folder.

    Raises ``zipfile.BadZipFile`` for a file that starts like a zip but is not one.
    """
    if path.is_dir():
        return Folder(path)
    if not path.is_file():
        return None
    if _looks_like_zip(path):
        return Zip(path)
    return SingleFile(path)


def _looks_like_zip(path: Path) -> bool:
    """A zip signature at the start, or a zip directory at the end (self-extractors)."""
    with path.open("rb") as stream:
        if stream.read(4) in _ZIP_SIGNATURES:
            return True
    return zipfile.is_zipfile(path)


def plan(container: Container) -> tuple[list[str], list[str]]:
    """The conversation files in reading order, and one-line notes about the manifest.

    Shards the manifest lists come first, in its order; shards it does not list follow
    in number order, so a stale manifest never hides a file.
    """
    if isinstance(container, SingleFile):
        return container.names(), []
    by_name = shards_by_name(container)
    if not by_name:
        return [], []
    base = str(PurePosixPath(by_name[0]).parent)
    manifest = MANIFEST if base == "." else f"{base}/{MANIFEST}"
    if manifest not in container.names():
        return by_name, []
    listed, notes = _manifest_shards(container, manifest, base)
    return [*listed, *(name for name in by_name if name not in listed)], notes


def shards_by_name(container: Container) -> list[str]:
    """``conversations-NNN.json`` by number, else ``conversations.json``, in one folder.

    The top folder wins over subfolders; among subfolders the first in name order.
    """
    if isinstance(container, SingleFile):
        return container.names()
    candidates = [
        name
        for name in container.names()
        if _SHARD_NAME.match(PurePosixPath(name).name) and not name.startswith("__MACOSX/")
    ]
    if not candidates:
        return []
    folders = sorted({str(PurePosixPath(name).parent) for name in candidates})
    base = "." if "." in folders else folders[0]
    here = [name for name in candidates if str(PurePosixPath(name).parent) == base]
    numbered = sorted(
        (name for name in here if _shard_number(name) is not None),
        key=lambda name: (_shard_number(name) or 0, name),
    )
    return numbered or sorted(here)


def _shard_number(name: str) -> int | None:
    found = _SHARD_NAME.match(PurePosixPath(name).name)
    return int(found.group(1)) if found and found.group(1) else None


def _manifest_shards(container: Container, manifest: str, base: str) -> tuple[list[str], list[str]]:
    """Conversation files an ``export_manifest.json`` lists, in its order, and notes.

    The manifest's shape is not documented, so any string anywhere in it that names a
    ``conversations….json`` file counts, whether bare or as a ``path``/``name`` field.
    """
    if container.size(manifest) > MAX_MANIFEST_BYTES:
        return [], [f"{manifest}: larger than {MAX_MANIFEST_BYTES} bytes, ignored; {_FALLBACK}"]
    with container.open(manifest) as stream:
        raw = stream.read(MAX_MANIFEST_BYTES + 1)
    try:
        document = json.loads(raw.removeprefix(BOM))
    except (ValueError, RecursionError):
        return [], [f"{manifest}: not valid JSON, ignored; {_FALLBACK}"]
    present = set(container.names())
    listed: list[str] = []
    notes: list[str] = []
    for text in _strings(document):
        name = text.strip().replace("\\", "/").removeprefix("./").lstrip("/")
        if not _LISTED_SHARD.fullmatch(name):
            continue
        options = [name] if base == "." else [f"{base}/{name}", name]
        found = next((option for option in options if option in present), None)
        if found is None:
            notes.append(f"{manifest}: lists {name}, which is not in the export")
        elif found not in listed:
            listed.append(found)
    if not listed and not notes:
        notes.append(f"{manifest}: lists no conversation files; {_FALLBACK}")
    return listed, notes


def _strings(document: object) -> Iterator[str]:
    """Every string in a JSON document (keys excluded), in document order."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


class Folder:
    """An unpacked export: files at the top of a folder and one folder deep."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = []
            for entry in sorted(self._root.iterdir()):
                if entry.is_file():
                    self._names.append(entry.name)
                elif entry.is_dir():
                    self._names += _files_in(entry, prefix=f"{entry.name}/")
        return self._names

    def size(self, name: str) -> int:
        return (self._root / name).stat().st_size

    def declared_limit(self, name: str) -> int | None:
        return None

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        with (self._root / name).open("rb") as stream:
            yield stream


def _files_in(folder: Path, *, prefix: str) -> list[str]:
    try:
        return [f"{prefix}{entry.name}" for entry in sorted(folder.iterdir()) if entry.is_file()]
    except OSError:
        return []


class SingleFile:
    """An export that is one JSON file (``conversations.json`` under any name)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def names(self) -> list[str]:
        return [self._path.name]

    def size(self, name: str) -> int:
        return self._path.stat().st_size

    def declared_limit(self, name: str) -> int | None:
        return None

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        with self._path.open("rb") as stream:
            yield stream


@dataclass(frozen=True, slots=True)
class ZipMember:
    """What a zip's directory says about one member, before anything is read."""

    name: str
    size: int
    compressed_size: int
    encrypted: bool


class Zip:
    """A zipped export, read member by member as streams; never extracted."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with zipfile.ZipFile(path) as archive:
            self._infos = {
                info.filename: info
                for info in archive.infolist()
                if not info.is_dir() and info.filename.count("/") <= 1
            }

    def names(self) -> list[str]:
        return list(self._infos)

    def size(self, name: str) -> int:
        return self._infos[name].file_size

    def declared_limit(self, name: str) -> int | None:
        return self._infos[name].file_size

    def member(self, name: str) -> ZipMember:
        info = self._infos[name]
        return ZipMember(name, info.file_size, info.compress_size, bool(info.flag_bits & 0x1))

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(self._path) as archive, archive.open(self._infos[name]) as stream:
            yield stream
