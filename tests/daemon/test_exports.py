"""The export folder watcher offers settled downloads, never ones still in progress."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.exports import ExportFolderWatcher

WAIT_S = 10.0


@pytest.fixture
def offered(tmp_path: Path) -> Iterator[tuple[Path, queue.Queue[Path]]]:
    folder = tmp_path / "Downloads"
    folder.mkdir()
    (folder / "already-there.zip").write_bytes(b"zip")
    seen: queue.Queue[Path] = queue.Queue()
    watcher = ExportFolderWatcher(folder, seen.put, settle_s=0.2)
    watcher.start()
    yield folder, seen
    watcher.stop()


def test_entries_present_at_start_are_offered(offered: tuple[Path, queue.Queue[Path]]) -> None:
    folder, seen = offered
    assert seen.get(timeout=WAIT_S) == folder / "already-there.zip"


def test_a_finished_download_is_offered_once_and_partial_names_never(
    offered: tuple[Path, queue.Queue[Path]],
) -> None:
    folder, seen = offered
    assert seen.get(timeout=WAIT_S).name == "already-there.zip"
    partial = folder / "chatgpt-export.zip.crdownload"
    with partial.open("wb") as out:
        for _ in range(5):
            out.write(b"x" * 1024)
            out.flush()
    os.replace(partial, folder / "chatgpt-export.zip")
    assert seen.get(timeout=WAIT_S) == folder / "chatgpt-export.zip"
    (folder / "unpacked").mkdir()
    (folder / "unpacked" / "conversations.json").write_text("[]")
    assert seen.get(timeout=WAIT_S) == folder / "unpacked"
    assert seen.empty()


def test_a_missing_folder_is_not_an_error(tmp_path: Path) -> None:
    seen: queue.Queue[Path] = queue.Queue()
    watcher = ExportFolderWatcher(tmp_path / "nowhere", seen.put, settle_s=0.1)
    watcher.start()
    watcher.stop()
    assert seen.empty()
