"""The tray under Xvfb with a private session bus and a fake StatusNotifierWatcher: the
GUI registers a StatusNotifierItem, and its menu, read over D-Bus, has every item."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.dbus_notifications import SessionBus, have_dbus_daemon
from tests.e2e.conftest import Lab, wait_until

from .status_notifier import FakeWatcher, read_menu
from .xvfb import Xvfb, have_xvfb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_xvfb(), reason="Xvfb is not installed"),
    pytest.mark.skipif(not have_dbus_daemon(), reason="dbus-daemon is not installed"),
]


@pytest.fixture
def display() -> Iterator[str]:
    with Xvfb() as server:
        yield server.display


def labels(node: dict[str, Any]) -> list[str]:
    return [child["label"] for child in node["children"] if child["type"] != "separator"]


def submenu(node: dict[str, Any], label: str) -> dict[str, Any]:
    return next(child for child in node["children"] if child["label"].startswith(label))


@contextmanager
def tray_process(display: str, bus: str, home: Path, log: Path) -> Iterator[None]:
    """`python -m labmind.gui` on the display and bus, logging to `log`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABMIND_", "XDG_RUN"))}
    env.update(
        DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=bus, LABMIND_HOME=str(home), QT_QPA_PLATFORM="xcb"
    )
    with log.open("w") as out:
        gui = subprocess.Popen(
            [sys.executable, "-m", "labmind.gui"], env=env, stdout=out, stderr=out
        )
        try:
            yield
        finally:
            gui.terminate()
            gui.wait(10)


def search_label(menu: dict[str, Any]) -> str:
    return str(menu["children"][0]["label"])


def test_the_tray_registers_and_its_menu_has_every_item(
    display: str, tmp_path: Path, lexical_lab: Lab
) -> None:
    lexical_lab.cli("start")
    log = tmp_path / "gui.log"
    with (
        SessionBus() as bus,
        FakeWatcher(bus.address) as watcher,
        tray_process(display, bus.address, lexical_lab.home, log),
    ):
        service = watcher.wait_for_item()
        assert service is not None, log.read_text()
        # the hotkey comes from the daemon's settings once the GUI is connected
        menu = read_menu(bus.address, service)

        def shows_hotkey() -> bool:
            nonlocal menu
            menu = read_menu(bus.address, service)
            return "Ctrl+Alt+K" in search_label(menu)

        wait_until(shows_hotkey)
    assert search_label(menu) == "Search…\tCtrl+Alt+K"
    top = labels(menu)
    assert [label.split("\t")[0] for label in top] == [
        "Search…",
        "Dashboard…",
        "Recent alerts",
        "Experiments",
        "Backups",
        "Pause indexing and backup",
        "Settings…",
        "Open data folder",
        "Quit",
    ]
    assert labels(submenu(menu, "Backups"))[-2:] == ["Back up now", "Open backups…"]
    assert labels(submenu(menu, "Recent alerts")) == ["No alerts"]
    assert labels(submenu(menu, "Experiments")) == ["Open experiments…", "No experiments yet"]
    assert "tray icon shown" in log.read_text()


def test_the_tray_waits_for_a_watcher_that_comes_later(display: str, tmp_path: Path) -> None:
    log = tmp_path / "gui.log"
    with SessionBus() as bus, tray_process(display, bus.address, tmp_path / "home", log):
        wait_until(lambda: "daemon unavailable" in log.read_text())
        assert "daemon unavailable" in log.read_text()
        with FakeWatcher(bus.address) as watcher:
            assert watcher.wait_for_item() is not None, log.read_text()
    assert "no system tray" not in log.read_text()
