"""Desktop notifications from a real daemon, over a private D-Bus session bus."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.dbus_notifications import (
    NotificationServer,
    NotifyCall,
    SessionBus,
    have_dbus_daemon,
)

from .conftest import Lab, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_dbus_daemon(), reason="needs dbus-daemon (make venv)"),
]

TRAIN = """
import sys
print(f"seed {sys.argv[1]}: epoch 1 loss 0.93")
print("Traceback (most recent call last):", file=sys.stderr)
print('  File "train.py", line 3, in <module>', file=sys.stderr)
print("ModuleNotFoundError: No module named 'flash_attn'", file=sys.stderr)
sys.exit(1)
"""

OPENER = """#!/bin/sh
here="$(dirname "$0")"
printf '%s' "$1" > "$here/opened.tmp" && mv "$here/opened.tmp" "$here/opened"
"""


@pytest.fixture
def server(lab: Lab) -> Iterator[NotificationServer]:
    with SessionBus() as bus, NotificationServer(bus.address) as server:
        lab.env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
        yield server
        lab.stop()


def failures(calls: list[NotifyCall], run: str) -> list[NotifyCall]:
    return [c for c in calls if c.title == f"Run {run} failed"]


def runs(lab: Lab) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in lab.json("exp", "ls")}


def test_an_unfixable_run_fails_with_one_notification_whose_buttons_act(
    lab: Lab, server: NotificationServer, tmp_path: Path
) -> None:
    opener = tmp_path / "opener.sh"
    opener.write_text(OPENER)
    opener.chmod(0o755)
    lab.configure(
        "[embedder]\nenabled = false\n[experiments]\nslots = 2\n"
        f'[notifications]\nmin_interval_s = 0\nopen_command = "{opener}"\n'
    )
    (tmp_path / "train.py").write_text(TRAIN)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps(
            {
                "name": "broken",
                "command": f"{sys.executable} train.py {{seed}}",
                "workdir": ".",
                "params": {"list": [{"seed": 1}, {"seed": 2}]},
            }
        )
    )
    lab.cli("start")

    first, second = (r["id"] for r in lab.json("exp", "submit", str(spec))["runs"])
    lab.cli("exp", "wait", "--timeout", "120", check=False)
    calls = server.wait_for(lambda c: bool(failures(c, first) and failures(c, second)), 60)

    assert {r["status"] for r in runs(lab).values()} == {"failed"}
    [one] = failures(calls, first)
    [two] = failures(calls, second)
    assert one.body.startswith("missing Python module 'flash_attn'\n\n")
    assert one.body.endswith(
        "seed 1: epoch 1 loss 0.93\nTraceback (most recent call last):\n"
        '  File "train.py", line 3, in <module>\n'
        "ModuleNotFoundError: No module named 'flash_attn'"
    )
    assert one.actions == {"default": "", "open_logs": "Open logs", "retry": "Retry"}
    assert one.app_name == "labmind"

    server.invoke(one.id, "open_logs")
    opened = tmp_path / "opened"
    assert wait_until(opened.exists, 30)
    assert opened.read_text() == str(lab.paths.data_dir / "runs" / first / "1" / "output.log")

    server.invoke(two.id, "retry")
    assert wait_until(lambda: runs(lab)[second]["attempt"] == 2, 60)
    assert runs(lab)[first]["attempt"] == 1
