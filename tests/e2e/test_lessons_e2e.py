"""A researcher's chats teach labmind which library failed and what replaced it; a later
`suggest` says so, and a new file importing the failed library raises one warning."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon.client import DaemonError, DaemonUnavailable

from .conftest import Lab, wait_until

EVAL = Path(__file__).resolve().parents[1] / "fixtures" / "lessons" / "conversations.json"
TROUBLE = "Resize training images"
NOISY = ("KeyError in my dataframe code", "Shape mismatch in my model", "Plotting training curves")

pytestmark = pytest.mark.slow


def export(tmp_path: Path) -> Path:
    chats = [c for c in json.loads(EVAL.read_text()) if c["title"] in (TROUBLE, *NOISY)]
    assert len(chats) == 4
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(chats))
    return path


class EventLog:
    """The daemon's event stream, read on a thread."""

    def __init__(self, lab: Lab) -> None:
        self.events: list[dict[str, Any]] = []
        self.client = lab.client()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in self.client.events():
                self.events.append({"type": event.type, **event.data})
        except (DaemonError, DaemonUnavailable):
            return

    def lessons(self, path: Path) -> list[dict[str, Any]]:
        return [
            e
            for e in list(self.events)
            if e["type"] == "lesson" and e.get("event") == "preflight" and e["path"] == str(path)
        ]


def test_a_failed_library_becomes_a_lesson_a_suggestion_and_one_warning(
    lexical_lab: Lab, tmp_path: Path
) -> None:
    lab = lexical_lab
    job = json.loads(lab.cli("import", str(export(tmp_path)), "--json").stdout)
    assert job["state"] == "done" and job["added"] == 4

    def mined() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = lab.json("lessons")
        return found

    assert wait_until(lambda: bool(mined()), timeout=30)
    lessons = mined()
    assert [x["library"] for x in lessons] == ["opencv-python"], "noisy chats taught nothing"
    lesson = lessons[0]
    assert lesson["replacement"] == "pillow"
    assert "pillow" in lesson["resolution"] and "libGL" in lesson["symptom"]
    assert lesson["count"] == 1 and lesson["evidence"][0].startswith("chat:")

    suggestion = lab.json("suggest", "resize a folder of photos to 224x224 thumbnails")
    assert [x["id"] for x in suggestion["lessons"]] == [lesson["id"]]
    preamble = suggestion["preamble"]
    assert "Avoid opencv-python" in preamble and "use pillow instead" in preamble
    assert TROUBLE in preamble
    plain = lab.cli("suggest", "resize a folder of photos").stdout
    assert plain.startswith("Task: resize a folder of photos") and "Avoid opencv-python" in plain
    unrelated = lab.json("suggest", "fit a gradient boosting regressor on tabular data")
    assert unrelated["lessons"] == []

    hits = lab.search("opencv", "--kind", "lesson")
    assert [h["kind"] for h in hits] == ["lesson"] and hits[0]["path"] == f"lesson:{lesson['id']}"

    code = tmp_path / "code"
    code.mkdir()
    (code / "readme.md").write_text("# thumbnails\n")
    log = EventLog(lab)
    probes = iter(range(1000))

    def live() -> bool:
        probe = tmp_path / f"probe{next(probes)}"
        probe.mkdir()
        lab.cli("watch", "add", str(probe))
        return any(e["type"] == "watch" for e in list(log.events))

    assert wait_until(live, timeout=20, every=0.2), "the event stream is not live"
    lab.cli("watch", "add", str(code))
    script = code / "thumbs.py"
    script.write_text("import os\nimport cv2\n\nprint(cv2.__version__)\n")
    assert wait_until(lambda: bool(log.lessons(script)), timeout=30)
    script.write_text("import os\nimport cv2\n\nprint('again', cv2.__version__)\n")
    sentinel = code / "later.py"
    sentinel.write_text("from PIL import Image\nimport cv2\n")
    assert wait_until(lambda: bool(log.lessons(sentinel)), timeout=30)
    warned = log.lessons(script)
    assert len(warned) == 1
    assert warned[0]["lesson"] == lesson["id"] and warned[0]["library"] == "opencv-python"
    assert "thumbs.py imports cv2" in warned[0]["message"]

    lab.cli("lessons", "dismiss", lesson["id"])
    assert lab.json("lessons") == []
    assert [x["status"] for x in lab.json("lessons", "--all")] == ["dismissed"]
    edited = lab.json("lessons", "edit", lesson["id"][:5], "--resolution", "use scikit-image")
    assert edited["resolution"] == "use scikit-image"
    failed = lab.cli("lessons", "dismiss", "no-such-lesson", check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith("labmind: no lesson 'no-such-lesson'")
    assert len(failed.stderr.strip().splitlines()) == 1
