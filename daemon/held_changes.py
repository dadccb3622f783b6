"""What the watcher and scans asked the indexer to do while indexing was paused.

Nothing about a change but its path is kept: on resume every held file is looked at on
disk (a file that is gone is forgotten) and every held folder is reconciled with the
store, so the order and kind of the events in between do not matter. Past ``limit``
paths, the watched roots are rescanned instead (the start-up reconciliation), so a long
pause over a busy folder costs bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HELD_PATHS_MAX = 20_000


def _under(path: Path, folders: Iterable[str]) -> bool:
    text = str(path)
    return any(text == f or text.startswith(f.rstrip("/") + "/") for f in folders)


@dataclass(frozen=True)
class Replay:
    """The work to queue on resume: whole roots, then files and folders outside them."""

    roots: tuple[str, ...] = ()
    files: frozenset[Path] = frozenset()
    folders: frozenset[Path] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.roots or self.files or self.folders)


class HeldChanges:
    """Paths and roots to index when indexing resumes (not thread-safe: the caller locks)."""

    def __init__(self, limit: int = HELD_PATHS_MAX) -> None:
        self.limit = limit
        self._files: set[Path] = set()
        self._folders: set[Path] = set()
        self._roots: set[str] = set()
        self._everything = False

    def __len__(self) -> int:
        """How many paths and roots are held (over ``limit``: every root will be rescanned)."""
        paths = self.limit + 1 if self._everything else len(self._files) + len(self._folders)
        return paths + len(self._roots)

    def add(
        self,
        files: Iterable[Path] = (),
        folders: Iterable[Path] = (),
        roots: Iterable[str] = (),
    ) -> None:
        if self._everything:
            return
        self._files.update(files)
        self._folders.update(folders)
        self._roots.update(roots)
        if len(self._files) + len(self._folders) > self.limit:
            self._everything = True
            self._files.clear()
            self._folders.clear()

    def forget_root(self, root: str) -> None:
        """A root is no longer watched: nothing under it is to be indexed."""
        self._roots.discard(root)
        self._files = {p for p in self._files if not _under(p, (root,))}
        self._folders = {p for p in self._folders if not _under(p, (root,))}

    def take(self, watched: Iterable[str]) -> Replay:
        """Everything held, as work for the roots in ``watched``; empties the set."""
        known = list(watched)
        roots = known if self._everything else [r for r in known if r in self._roots]
        replay = Replay(
            roots=tuple(roots),
            files=frozenset(p for p in self._files if not _under(p, roots)),
            folders=frozenset(p for p in self._folders if not _under(p, roots)),
        )
        self._files.clear()
        self._folders.clear()
        self._roots.clear()
        self._everything = False
        return replay
