"""A real labmind daemon in a fresh LABMIND_HOME, driven through the real CLI and socket."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon.client import DaemonClient
from labmind.daemon.paths import Paths

CLI = [sys.executable, "-m", "labmind.daemon"]


@dataclass
class Lab:
    """One labmind home: run CLI commands in it and talk to its daemon."""

    home: Path
    env: dict[str, str]

    @property
    def paths(self) -> Paths:
        return Paths.resolve(self.env)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"labmind {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def search(self, query: str, *extra: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.json("search", query, *extra)
        return result

    def client(self) -> DaemonClient:
        return DaemonClient(self.paths)

    def pid(self) -> int:
        pid: int = self.json("status")["pid"]
        return pid

    @property
    def downloads(self) -> Path:
        """The lab's export folder (the daemon watches it for chat exports)."""
        return self.home / "downloads"

    def configure(self, text: str) -> None:
        """Write config.toml; the export folder stays in the lab, and backups and desktop
        notifications stay off unless ``text`` says otherwise."""
        if "[chats]" not in text:
            text += f'\n[chats]\nexport_dir = "{self.downloads}"\n'
        if "[backup]" not in text:
            text += "\n[backup]\nenabled = false\n"
        if "[notifications]" not in text:
            text += "\n[notifications]\nenabled = false\n"
        self.paths.config_dir.mkdir(parents=True, exist_ok=True)
        self.paths.config_file.write_text(text)

    def stop(self) -> None:
        self.cli("stop", check=False, timeout=60)


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, every: float = 0.05) -> bool:
    """Poll a condition the test cannot be told about, up to a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


@pytest.fixture
def lab() -> Iterator[Lab]:
    home = Path(tempfile.mkdtemp(prefix="lm-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABMIND_", "XDG_RUNTIME"))}
    env.update(LABMIND_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    lab = Lab(home, env)
    lab.downloads.mkdir()
    lab.configure("")
    yield lab
    lab.stop()
    pid_file = lab.paths.pid_file
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def lexical_lab(lab: Lab) -> Lab:
    """A lab whose daemon does not embed: for tests about files, not semantics."""
    lab.configure("[embedder]\nenabled = false\n")
    return lab
