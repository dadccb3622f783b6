"""What not to index under one watched root: built-in excludes, ``.gitignore`` and friends.

Rules are checked the way git checks them, highest precedence first:

1. ``extra_patterns`` from the user's configuration (gitignore syntax, relative to the root);
2. ``.gitignore`` files, the one nearest the path first, each relative to its own folder;
3. ``.git/info/exclude``;
4. built-in excludes (VCS folders, virtualenvs, caches, build output), which a
   ``!pattern`` above can re-include, except for ``.git``, ``.hg`` and ``.svn``.

As in git, nothing inside an ignored folder can be re-included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pathspec import GitIgnoreSpec

VCS_DIRS = frozenset({".git", ".hg", ".svn"})
"""Always ignored, whatever the ignore files say."""

BUILTIN_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "build",
        "dist",
        ".ipynb_checkpoints",
        ".idea",
        "site-packages",
    }
)
BUILTIN_DIR_SUFFIXES = (".egg-info",)
BUILTIN_FILES = frozenset({".DS_Store"})
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
"""A folder holding one of these is a Python environment (whatever its name)."""

GITIGNORE = ".gitignore"

_Parts = tuple[str, ...]


def _read_spec(path: Path) -> GitIgnoreSpec | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    spec = GitIgnoreSpec.from_lines(text.splitlines())
    return spec if len(spec) else None


def _compile(patterns: Sequence[str]) -> GitIgnoreSpec | None:
    spec = GitIgnoreSpec.from_lines(list(patterns))
    return spec if len(spec) else None


def _verdict(spec: GitIgnoreSpec | None, parts: Sequence[str], is_dir: bool) -> bool | None:
    """True ignored, False re-included (``!pattern``), None when no pattern matches."""
    if spec is None:
        return None
    relative = "/".join(parts) + ("/" if is_dir else "")
    result: bool | None = spec.check_file(relative).include
    return result


class IgnoreRules:
    """The ignore rules of one watched root. Paths given to it are absolute, under ``root``."""

    def __init__(self, root: Path, extra_patterns: Sequence[str] = ()) -> None:
        self.root = root
        self._extra = _compile(extra_patterns)
        self._exclude_path = root / ".git" / "info" / "exclude"
        self._exclude = _read_spec(self._exclude_path)
        self._specs: dict[_Parts, GitIgnoreSpec | None] = {}
        self._dirs: dict[_Parts, bool] = {}

    def reload(self) -> None:
        """Forget what was read from ignore files; they are read again when next needed."""
        self._exclude = _read_spec(self._exclude_path)
        self._specs = {}
        self._dirs = {}

    def is_ignore_file(self, path: Path) -> bool:
        """Whether ``path`` is a ``.gitignore`` or ``.git/info/exclude`` (a change means reload)."""
        if path == self._exclude_path:
            return True
        return path.name == GITIGNORE and path.is_relative_to(self.root)

    def is_ignored(self, path: Path, is_dir: bool) -> bool:
        """Whether ``path`` (or a folder above it) is excluded; paths outside the root are."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return True
        if not parts:
            return False
        dirs = self._dirs
        for depth in range(1, len(parts)):
            ancestor = parts[:depth]
            ignored = dirs.get(ancestor)
            if ignored is None:
                ignored = dirs[ancestor] = self._decide(ancestor, True)
            if ignored:
                return True
        if is_dir:
            ignored = dirs.get(parts)
            if ignored is None:
                ignored = dirs[parts] = self._decide(parts, True)
            return ignored
        return self._decide(parts, False)

    def _decide(self, parts: _Parts, is_dir: bool) -> bool:
        """The rules for ``parts`` alone (its folders are checked separately)."""
        if is_dir and parts[-1] in VCS_DIRS:
            return True
        verdict = _verdict(self._extra, parts, is_dir)
        if verdict is not None:
            return verdict
        for depth in range(len(parts) - 1, -1, -1):
            verdict = _verdict(self._gitignore(parts[:depth]), parts[depth:], is_dir)
            if verdict is not None:
                return verdict
        verdict = _verdict(self._exclude, parts, is_dir)
        if verdict is not None:
            return verdict
        return self._builtin(parts, is_dir)

    def _gitignore(self, folder: _Parts) -> GitIgnoreSpec | None:
        try:
            return self._specs[folder]
        except KeyError:
            spec = self._specs[folder] = _read_spec(self.root.joinpath(*folder, GITIGNORE))
            return spec

    def _builtin(self, parts: _Parts, is_dir: bool) -> bool:
        name = parts[-1]
        if not is_dir:
            return name in BUILTIN_FILES
        if name in BUILTIN_DIRS or name.endswith(BUILTIN_DIR_SUFFIXES):
            return True
        folder = self.root.joinpath(*parts)
        for marker in ENVIRONMENT_MARKERS:
            try:
                if (folder / marker).exists():
                    return True
            except OSError:
                continue
        return False
