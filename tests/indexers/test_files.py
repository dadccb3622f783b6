from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labmind.indexers.files import Skip, SourceFile, read_source

LIMIT = 1_000_000
NOBODY = 65534


def read(path: Path, max_bytes: int = LIMIT) -> SourceFile:
    result = read_source(path, max_bytes)
    assert isinstance(result, SourceFile), result
    return result


def skipped(path: Path, max_bytes: int = LIMIT) -> str:
    result = read_source(path, max_bytes)
    assert isinstance(result, Skip), result
    assert "\n" not in result.reason
    return result.reason


def as_unprivileged(action: Callable[[], str]) -> str:
    """Run ``action`` as an ordinary user: as root, in a child that dropped to ``nobody``.

    Root reads files whatever their mode, so a chmod 000 file is only unreadable to
    someone else.
    """
    if os.geteuid() != 0:
        return action()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with os.fdopen(write_end, "w") as out:
                json.dump(action(), out)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        payload = result.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    answer: str = json.loads(payload)
    return answer


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="lm-files-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_reads_utf8_text_with_size_mtime_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    data = "print('héllo')\r\nx = 1\n".encode()
    path.write_bytes(data)
    source = read(path)
    assert source.text == "print('héllo')\r\nx = 1\n"
    assert source.size == len(data)
    assert source.sha256 == hashlib.sha256(data).hexdigest()
    assert source.mtime_ns == path.stat().st_mtime_ns


def test_utf8_bom_is_dropped_from_the_text(tmp_path: Path) -> None:
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbfimport os\n")
    assert read(path).text == "import os\n"


def test_utf16_with_bom_is_text_not_binary(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes("línea uno\nline two\n".encode("utf-16"))
    assert read(path).text == "línea uno\nline two\n"


def test_latin1_text_is_decoded_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "old.py"
    path.write_bytes("# café à la crème\nname = 'Müller'\n".encode("latin-1"))
    assert read(path).text == "# café à la crème\nname = 'Müller'\n"


def test_mostly_utf8_with_a_stray_byte_keeps_the_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mixed.py"
    path.write_bytes("naïve = 'ünïcödé'\n".encode() + b"bad = '\xff'\n")
    assert read(path).text == "naïve = 'ünïcödé'\nbad = '\ufffd'\n"


def test_binary_files_are_skipped(tmp_path: Path) -> None:
    with_nul = tmp_path / "model.py"
    with_nul.write_bytes(b"import os\n\x00\x01\x02weights")
    assert skipped(with_nul).startswith("binary")
    controls = tmp_path / "blob.txt"
    controls.write_bytes(bytes(range(1, 32)) * 40)
    assert skipped(controls).startswith("binary")


def test_text_with_ansi_colours_and_tabs_is_not_binary(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"\x1b[31mred\x1b[0m\tok\n" * 100)
    assert read(path).text.startswith("\x1b[31mred")


def test_huge_file_is_skipped_with_size_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b"[" + b"1," * 3000 + b"1]")
    reason = skipped(path, max_bytes=2048)
    assert reason == "too large: 5.9 KiB is over the 2.0 KiB limit"
    assert read(path, max_bytes=10_000).size == 6003


def test_file_deleted_before_reading_has_vanished(tmp_path: Path) -> None:
    path = tmp_path / "gone.py"
    path.write_text("x = 1\n")
    path.unlink()
    assert skipped(path).startswith("vanished")


def test_file_under_a_path_that_is_no_longer_a_folder(tmp_path: Path) -> None:
    (tmp_path / "pkg").write_text("now a file\n")
    assert skipped(tmp_path / "pkg" / "mod.py").startswith("vanished")


def test_broken_symlink_and_symlink_loop(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.symlink_to(tmp_path / "missing.py")
    assert skipped(broken) == "broken symlink: its target does not exist"
    loop = tmp_path / "loop.py"
    loop.symlink_to(tmp_path / "loop.py")
    assert skipped(loop) == "broken symlink: a symlink loop"


def test_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.py").write_text("x = 1\n")
    link = tmp_path / "link.py"
    link.symlink_to(tmp_path / "real.py")
    assert read(link).text == "x = 1\n"


def test_folders_and_pipes_are_not_regular_files(tmp_path: Path) -> None:
    folder = tmp_path / "pkg.py"
    folder.mkdir()
    assert skipped(folder) == "not a regular file (a directory)"
    pipe = tmp_path / "pipe.py"
    os.mkfifo(pipe)
    assert skipped(pipe) == "not a regular file (a named pipe)"


def test_file_without_read_permission_is_unreadable(shared_tmp: Path) -> None:
    path = shared_tmp / "secret.py"
    path.write_text("token = 'x'\n")
    path.chmod(0o000)

    def attempt() -> str:
        result = read_source(path, LIMIT)
        return result.reason if isinstance(result, Skip) else "read it"

    assert as_unprivileged(attempt) == "unreadable: permission denied"
