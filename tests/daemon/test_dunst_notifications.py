"""A failed run shown by the real dunst, under Xvfb, on a private D-Bus session bus."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.daemon.config import NotificationsConfig
from labmind.daemon.events import EventBus
from labmind.daemon.notifications import NotificationService
from labmind.daemon.opener import RecordingOpener
from labmind.daemon.system_notifier import SystemNotifier

from ..gui.xvfb import Xvfb, have_xvfb
from ..processes import stop
from .dbus_notifications import SessionBus, have_dbus_daemon
from .notification_fakes import FakeRuns, failed, until

pytestmark = pytest.mark.skipif(
    not (have_xvfb() and have_dbus_daemon() and shutil.which("dunst") and shutil.which("dunstctl")),
    reason="needs Xvfb, dbus-daemon and dunst (make venv)",
)

START_S = 15.0
DUNSTRC = """\
[global]
    idle_threshold = 0
[urgency_low]
    timeout = 0
[urgency_normal]
    timeout = 0
[urgency_critical]
    timeout = 0
"""


class Dunst:
    def __init__(self, env: dict[str, str], config: Path) -> None:
        self.env = env
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dunst:
        self.config.write_text(DUNSTRC)
        self._process = subprocess.Popen(
            ["dunst", "-config", str(self.config)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_S
        while self.count() is None:
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.__exit__(None, None, None)
                raise RuntimeError("dunst did not come up on the private session bus")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        stop(process, START_S)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["dunstctl", *args], env=self.env, capture_output=True, text=True, timeout=START_S
        )

    def count(self) -> int | None:
        done = self.ctl("count", "displayed")
        return int(done.stdout) if done.returncode == 0 and done.stdout.strip().isdigit() else None


@pytest.fixture
def dunst(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Dunst]:
    with Xvfb() as x, SessionBus() as bus:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
        monkeypatch.setenv("DISPLAY", x.display)
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus.address, "DISPLAY": x.display}
        with Dunst(env, tmp_path / "dunstrc") as server:
            yield server


def test_a_failed_run_is_exactly_one_notification_in_dunst(dunst: Dunst) -> None:
    assert dunst.count() == 0

    async def scenario() -> None:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        service = NotificationService(
            bus, SystemNotifier(), FakeRuns(), RecordingOpener(), NotificationsConfig()
        )
        service.start()
        try:
            bus.publish(failed(3, "CUDA out of memory", "RuntimeError: CUDA out of memory"))
            await until(lambda: dunst.count() == 1)
        finally:
            await service.stop()

    asyncio.run(scenario())

    assert dunst.count() == 1
    assert dunst.ctl("close-all").returncode == 0
    history = dunst.ctl("history").stdout
    assert history.count('"summary"') == 1
    assert "Run 5eed-3 failed" in history
    assert "CUDA out of memory" in history
