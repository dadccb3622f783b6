"""Finding the files to index under a watched root.

The walk never enters an ignored folder, follows symlinks to files but not to
folders (as git does, so a symlinked dataset or a symlink loop costs nothing), and
reports what it cannot read instead of raising.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from .ignore import IgnoreRules
from .languages import language_for_path

OnSkip = Callable[[Path, str], None]
"""Called with a path and a one-line reason for each thing the walk had to leave out."""


def iter_files(root: Path, rules: IgnoreRules, on_skip: OnSkip) -> Iterator[Path]:
    """Regular files under ``root`` that are not ignored and have a language, in name order."""
    try:
        info = root.stat()
    except OSError as error:
        on_skip(root, f"root unavailable: {_reason(error)}")
        return
    if not stat.S_ISDIR(info.st_mode):
        on_skip(root, "root is not a folder")
        return
    seen = {(info.st_dev, info.st_ino)}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as error:
            if error.errno in {errno.ENOENT, errno.ENOTDIR} and not root.is_dir():
                on_skip(root, "root vanished during the walk")
                return
            on_skip(folder, f"unreadable folder: {_reason(error)}")
            continue
        subfolders: list[Path] = []
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_symlink():
                    target = _follow(entry, path, rules, on_skip)
                    if target is not None:
                        yield target
                elif entry.is_dir(follow_symlinks=False):
                    if rules.is_ignored(path, is_dir=True):
                        continue
                    folder_info = path.lstat()
                    key = (folder_info.st_dev, folder_info.st_ino)
                    if key not in seen:
                        seen.add(key)
                        subfolders.append(path)
                elif (
                    entry.is_file(follow_symlinks=False)
                    and language_for_path(path) is not None
                    and not rules.is_ignored(path, is_dir=False)
                ):
                    yield path
            except OSError as error:
                if error.errno != errno.ENOENT:
                    on_skip(path, f"unreadable: {_reason(error)}")
        pending.extend(reversed(subfolders))


def _follow(
    entry: os.DirEntry[str], path: Path, rules: IgnoreRules, on_skip: OnSkip
) -> Path | None:
    """The symlink itself when it points at a file worth indexing; reports broken ones."""
    if rules.is_ignored(path, is_dir=False):
        return None
    try:
        target = entry.stat()
    except OSError as error:
        if error.errno == errno.ENOENT:
            on_skip(path, "broken symlink: its target does not exist")
        elif error.errno == errno.ELOOP:
            on_skip(path, "broken symlink: a symlink loop")
        else:
            on_skip(path, f"unreadable symlink: {_reason(error)}")
        return None
    if stat.S_ISDIR(target.st_mode):
        if not rules.is_ignored(path, is_dir=True):
            on_skip(path, "symlink to a folder: not followed")
        return None
    if stat.S_ISREG(target.st_mode) and language_for_path(path) is not None:
        return path
    return None


def _reason(error: OSError) -> str:
    if error.errno in {errno.EACCES, errno.EPERM}:
        return "permission denied"
    if error.errno == errno.ENOENT:
        return "no such file or folder"
    return error.strerror or str(error)
