"""Files prepared by worker processes come out exactly as the daemon would prepare them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import psutil

from labmind.daemon.preparing import FileJob, PreparePool, prepare


def make_project(root: Path, files: int) -> list[FileJob]:
    jobs = []
    for i in range(files):
        path = root / f"pkg{i % 5}" / f"module_{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            f"import os\n\n\ndef read_table_{i}(path):\n    return open(path).read().split()\n\n\n"
            f"class Loader{i}:\n    def load(self, name):\n"
            f"        return os.path.join(name, '{i}')\n"
        )
        jobs.append(FileJob(1, str(root), str(path), 1_000_000, None))
    binary = root / "blob.py"
    binary.write_bytes(b"\x00\x01" * 100)
    jobs.append(FileJob(1, str(root), str(binary), 1_000_000, None))
    same = root / "pkg0" / "module_0.py"
    sha = hashlib.sha256(same.read_bytes()).hexdigest()
    jobs.append(FileJob(1, str(root), str(same), 1_000_000, sha))
    image = root / "figure.png"
    image.write_bytes(b"\x89PNG")
    jobs.append(FileJob(1, str(root), str(image), 1_000_000, None))
    return jobs


def test_workers_prepare_the_same_chunks_in_the_same_order(tmp_path: Path) -> None:
    jobs = make_project(tmp_path, 70)
    here = [prepare(job) for job in jobs]
    with PreparePool(2) as pool:
        there = list(pool.prepare(jobs))
    assert there == here
    updates = [p.update for p in here if p is not None and p.update is not None]
    assert len(updates) == 70
    assert all(len(u.chunks) >= 2 for u in updates)
    skipped, touched, image = here[-3:]
    assert skipped is not None and skipped.skipped
    assert touched is not None and touched.touched is not None and touched.update is None
    assert image is None, "files of no indexed kind are left alone"


POOL_SCRIPT = """
import os, sys, time
from labmind.daemon.preparing import PreparePool, FileJob
if __name__ == "__main__":
    pool = PreparePool(2)
    list(pool.prepare([FileJob(1, "/", "/nonexistent.py", 1000, None)] * 40))
    print("ready", flush=True)
    time.sleep(600)
"""


def test_pool_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    assert parent.stdout.readline().strip() == "ready"
    workers = [
        child.pid
        for child in psutil.Process(parent.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]
    assert len(workers) == 2

    parent.kill()
    parent.wait()

    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
