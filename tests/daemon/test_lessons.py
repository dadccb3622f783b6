"""Lessons in the daemon's store: incremental mining, the user's edits, pre-flight warnings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon.lessons import LessonService, command_scripts
from labmind.daemon.notification_rules import notice_for
from labmind.daemon.protocol import LessonUpdate, SearchRequest
from labmind.daemon.server import ApiError
from labmind.daemon.store import Store
from labmind.daemon.suggestions import Suggester

FAILURE = "import cv2 fails:\nImportError: libGL.so.1: cannot open shared object file"
ADVICE = "Use Pillow instead:\n```python\nfrom PIL import Image\n```"


class Events:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, event: Mapping[str, Any]) -> None:
        self.published.append(dict(event))

    def of(self, kind: str, what: str) -> list[dict[str, Any]]:
        return [e for e in self.published if e["type"] == kind and e.get("event") == what]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = Store(tmp_path / "store.db")
    yield found
    found.close()


def put_chat(store: Store, cid: str, title: str, updated: float, *turns: tuple[str, str]) -> None:
    with store.transaction() as tx:
        tx.execute("DELETE FROM conversations WHERE id=?", (cid,))
        tx.execute(
            "INSERT INTO conversations(id, source, title, created, updated, model, origin, "
            "imported_at) VALUES (?, 'chatgpt', ?, ?, ?, NULL, 'test', 0)",
            (cid, title, updated, updated),
        )
        for i, (role, text) in enumerate(turns):
            tx.execute(
                "INSERT INTO messages(conversation_id, message_id, position, role, created, "
                "on_path, text) VALUES (?, ?, ?, ?, ?, 1, ?)",
                (cid, f"{cid}-m{i}", i, role, updated + i, text),
            )


def service(store: Store, events: Events, tmp_path: Path) -> LessonService:
    return LessonService(store, events, tmp_path / "runs")


def test_mining_is_incremental_and_reimports_do_not_duplicate(store: Store, tmp_path: Path) -> None:
    lessons = service(store, Events(), tmp_path)
    put_chat(store, "c1", "Resize images", 100.0, ("user", FAILURE), ("assistant", ADVICE))
    put_chat(store, "c2", "Plots", 100.0, ("user", "I use torch and numpy; how do I plot?"))
    assert lessons.mine_chats() == 1
    assert lessons.mine_chats() == 0
    put_chat(store, "c1", "Resize images", 200.0, ("user", FAILURE), ("assistant", ADVICE))
    assert lessons.mine_chats() == 1
    [found] = lessons.lessons()
    assert (found.library, found.resolution, found.count) == (
        "opencv-python",
        "use pillow instead",
        1,
    )
    assert found.evidence == ["chat:c1#c1-m0"]
    assert found.status == "active"
    put_chat(store, "c3", "Docker", 300.0, ("user", FAILURE))
    assert lessons.mine_chats() == 1
    [found] = lessons.lessons()
    assert found.count == 2 and found.last_seen == 300.0


def test_failed_runs_are_mined_once(store: Store, tmp_path: Path) -> None:
    lessons = service(store, Events(), tmp_path)
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO sweeps(id, name, spec_path, spec, submitted_at) "
            "VALUES ('s', 'n', '/x', '{}', 0)"
        )
        tx.execute(
            "INSERT INTO runs(id, sweep_id, idx, name, status, priority, params, command, "
            "attempt, submitted_at) VALUES ('s-0', 's', 0, 'n', 'failed', 0, '{}', 'python t.py',"
            " 1, 0)"
        )
        tx.execute(
            "INSERT INTO attempts(run_id, attempt, params, command, ended_at, failure, summary) "
            "VALUES ('s-0', 1, '{}', 'python t.py', 50, 'missing_module', "
            "'missing Python module ''timm''')"
        )
    log = tmp_path / "runs" / "s-0" / "1" / "output.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "Traceback (most recent call last):\nModuleNotFoundError: No module named 'timm'\n"
    )
    assert lessons.mine_runs() == 1
    assert lessons.mine_runs() == 0
    [found] = lessons.lessons()
    assert (found.library, found.evidence) == ("timm", ["run:s-0"])


def test_dismiss_edit_and_restore(store: Store, tmp_path: Path) -> None:
    lessons = service(store, Events(), tmp_path)
    put_chat(store, "c1", "Resize images", 100.0, ("user", FAILURE), ("assistant", ADVICE))
    lessons.mine_chats()
    [found] = lessons.lessons()
    edited = lessons.update(found.id[:4], LessonUpdate(resolution="use scikit-image"))
    assert (edited.status, edited.resolution) == ("edited", "use scikit-image")
    dismissed = lessons.update("opencv-python", LessonUpdate(status="dismissed", note="fine now"))
    assert dismissed.status == "dismissed" and dismissed.note == "fine now"
    assert lessons.lessons() == []
    assert [x.id for x in lessons.lessons(include_dismissed=True)] == [found.id]
    put_chat(store, "c1", "Resize images", 200.0, ("user", FAILURE), ("assistant", ADVICE))
    lessons.mine_chats()
    assert lessons.lessons() == [], "a re-import does not bring a dismissed lesson back"
    assert lessons.update(found.id, LessonUpdate(status="active")).status == "active"
    with pytest.raises(ApiError, match="no lesson"):
        lessons.update("nope", LessonUpdate(status="dismissed"))


def test_preflight_warns_once_per_file_and_lesson(store: Store, tmp_path: Path) -> None:
    events = Events()
    lessons = service(store, events, tmp_path)
    put_chat(store, "c1", "Resize images", 100.0, ("user", FAILURE), ("assistant", ADVICE))
    lessons.mine_chats()
    code = tmp_path / "code"
    code.mkdir()
    script = code / "prep.py"
    script.write_text("import os\nimport cv2\n")
    other = code / "plot.py"
    other.write_text("import matplotlib.pyplot as plt\n")
    for _ in range(2):
        lessons.files_changed([script, other, code / "notes.md"])
        lessons.check_files()
    warned = events.of("lesson", "preflight")
    assert len(warned) == 1
    assert warned[0]["path"] == str(script)
    assert warned[0]["library"] == "opencv-python"
    assert "pillow" in warned[0]["message"]
    notice = notice_for(warned[0], None)
    assert notice is not None and "prep.py imports opencv-python" in notice.notification.title


def test_command_scripts(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import torch\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "run.py").write_text("")
    found = command_scripts("python train.py --lr {lr} && python -m pkg.run", tmp_path)
    assert found == [tmp_path / "train.py", tmp_path / "pkg" / "run.py"]


def test_search_and_suggest(store: Store, tmp_path: Path) -> None:
    lessons = service(store, Events(), tmp_path)
    put_chat(store, "c1", "Resize images", 100.0, ("user", FAILURE), ("assistant", ADVICE))
    lessons.mine_chats()
    hits = lessons.search(SearchRequest(query="opencv libGL", kind="lesson")).hits
    assert [h.kind for h in hits] == ["lesson"]
    assert lessons.search(SearchRequest(query="gradient boosting", kind="lesson")).hits == []

    def no_search(req: SearchRequest) -> Any:
        raise RuntimeError("no index")

    suggester = Suggester(lessons, no_search, lambda cid: "Resize images")
    found = suggester.suggest("crop and resize a folder of photos")
    assert [x.library for x in found.lessons] == ["opencv-python"]
    assert "Avoid opencv-python" in found.preamble
    assert 'use pillow instead (worked in chat "Resize images"' in found.preamble
    assert suggester.suggest("fit a gradient boosting regressor").lessons == []
