"""The daemon survives crashes, bad files and a damaged index, and says what to do."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from labmind.indexers.chunking import chunk_text
from labmind.indexers.lexical import LexicalIndex

from .conftest import CLI, Lab, wait_until


def make_files(root: Path, count: int) -> None:
    for i in range(count):
        folder = root / f"pkg{i % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i}.py").write_text(
            f"def unique_fn_{i}(x):\n    return x + {i}\n\n\n"
            f"class Holder{i}:\n    def value(self):\n        return {i}\n"
        )


def expected_chunks(root: Path) -> int:
    return sum(len(chunk_text(p.read_text(), "python")) for p in root.rglob("*.py"))


def test_kill_9_mid_indexing_then_restart_converges(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_files(project, 3000)
    job = lexical_lab.json("index", str(project))
    assert "job_id" not in job or job  # the command answers before indexing is done
    with lexical_lab.client() as client:
        assert wait_until(lambda: client.progress().processed_files > 200, timeout=60)
        pid = client.status().pid
        assert client.progress().jobs_done < client.progress().jobs_submitted
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=10)

    # offline edits while the daemon is down
    (project / "pkg0" / "mod0.py").write_text("def renamed_after_crash():\n    return 0\n")
    (project / "pkg1" / "mod1.py").unlink()
    (project / "pkg2" / "added_later.py").write_text("def added_offline():\n    return 2\n")

    lexical_lab.cli("index", "--wait")
    status = lexical_lab.json("status")
    files = sorted(project.rglob("*.py"))
    assert status["files"] == len(files)
    assert status["chunks"] == expected_chunks(project)
    lexical_lab.stop()
    with LexicalIndex.open(lexical_lab.paths.lexical_dir) as index:
        assert index.doc_count() == status["chunks"]

    hits = lexical_lab.search("unique_fn_2500", "--mode", "lexical")
    assert [h["path"] for h in hits if h["symbol"] == "unique_fn_2500"] == [
        str(project / "pkg0" / "mod2500.py")
    ]
    assert lexical_lab.search("renamed_after_crash")[0]["path"].endswith("pkg0/mod0.py")
    assert not any(h["path"].endswith("pkg1/mod1.py") for h in lexical_lab.search("unique_fn_1"))
    assert lexical_lab.search("added_offline")[0]["path"].endswith("added_later.py")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_bad_files_are_skipped_with_reasons(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "good.py").write_text("def good_function():\n    return 1\n")
    (project / "blob.py").write_bytes(b"\x00\x01\x02" * 1000)
    (project / "huge.py").write_text("x = 1\n" * 1_000_000)
    (project / "latin1.py").write_bytes(
        "def caf\xe9_menu():\n    return 'cr\xe8me'\n".encode("latin-1")
    )
    (project / "broken.py").symlink_to(project / "missing.py")
    (project / "loop").symlink_to(project)
    (project / "sub").mkdir()
    (project / "sub" / "back").symlink_to(project / "sub")
    os.mkfifo(project / "pipe.py")

    lexical_lab.cli("index", str(project), "--wait")
    skipped = {Path(s["path"]).name: s["reason"] for s in lexical_lab.json("skipped")}
    assert "binary" in skipped["blob.py"]
    assert "large" in skipped["huge.py"]
    assert "broken.py" in skipped
    assert lexical_lab.search("good_function")[0]["path"].endswith("good.py")
    assert lexical_lab.search("menu")[0]["path"].endswith("latin1.py")
    assert lexical_lab.json("status")["files"] == 2

    # a watched folder that disappears is reported; the daemon stays up
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.py").write_text("def in_other():\n    pass\n")
    lexical_lab.cli("index", str(other), "--wait")
    subprocess.run(["rm", "-rf", str(other)], check=True)

    def reported() -> bool:
        roots = {r["path"]: r for r in lexical_lab.json("watch", "ls")}
        return bool(roots[str(other)]["error"])

    assert wait_until(reported, timeout=20)
    assert lexical_lab.json("status")["pid"] > 0


def test_corrupt_index_says_rebuild_and_rebuild_recovers(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_files(project, 30)
    lexical_lab.cli("index", str(project), "--wait")
    lexical_lab.stop()
    lexical = lexical_lab.paths.lexical_dir
    for child in lexical.iterdir():
        child.write_bytes(b"not an index")

    broken = lexical_lab.cli("search", "unique_fn_3", "--json", check=False)
    assert broken.returncode == 1
    message = broken.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "labmind index --rebuild" in message

    lexical_lab.cli("index", "--rebuild", "--wait")
    hits = lexical_lab.search("unique_fn_3")
    assert hits[0]["path"].endswith("mod3.py")
    assert lexical_lab.json("status")["chunks"] == expected_chunks(project)


def test_one_daemon_per_home_and_clean_sigterm(lexical_lab: Lab) -> None:
    lexical_lab.cli("start")
    pid = lexical_lab.pid()
    second = subprocess.run(
        [*CLI, "daemon"], env=lexical_lab.env, capture_output=True, text=True, timeout=60
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert lexical_lab.pid() == pid

    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: _zombie(pid) or not Path(f"/proc/{pid}").exists(), timeout=30)
    assert not lexical_lab.paths.socket_path.exists()
    down = lexical_lab.cli("--no-autostart", "status", check=False)
    assert down.returncode == 1
    assert "labmind start" in down.stderr
