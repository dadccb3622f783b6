"""The search popup with a fake daemon: results as you type, keys, opening, copying."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from labmind.daemon.client import DaemonClient
from labmind.daemon.protocol import SearchRequest, Suggestion
from labmind.gui.popup import (
    SEARCH_PLACEHOLDER,
    SUGGEST_PLACEHOLDER,
    SearchPopup,
    display_root,
    short_path,
)
from labmind.gui.tasks import TaskRunner
from tests.e2e.conftest import Lab

from .fake_daemon import FakeDaemon, RecordingLauncher, hit, suggestion

LESSON_CHATS = Path(__file__).resolve().parents[1] / "fixtures" / "lessons" / "conversations.json"


def editor(path: str, line: int) -> list[str]:
    return ["code", "-g", f"{path}:{line}"]


@pytest.fixture
def daemon(tmp_path: Path) -> FakeDaemon:
    source = tmp_path / "loader.py"
    source.write_text("".join(f"line_{n} = {n}\n" for n in range(1, 41)))
    return FakeDaemon(
        hits=[
            hit(str(source), 10, title="load_batches"),
            hit(str(tmp_path / "model.py"), 3, title="Model"),
            hit("chat:c1", 2, kind="chat", title="Writing a data loader", chat_id="c1"),
        ]
    )


@pytest.fixture
def launcher() -> RecordingLauncher:
    return RecordingLauncher()


@pytest.fixture
def opened_chats() -> list[tuple[str, int | None]]:
    return []


@pytest.fixture
def popup(
    qtbot: QtBot,
    daemon: FakeDaemon,
    runner: TaskRunner,
    launcher: RecordingLauncher,
    opened_chats: list[tuple[str, int | None]],
) -> SearchPopup:
    widget = SearchPopup(
        daemon,
        runner,
        launcher,
        editor=editor,
        open_chat=lambda chat_id, line: opened_chats.append((chat_id, line)),
        debounce_ms=30,
    )
    qtbot.addWidget(widget)
    widget.present()
    qtbot.waitExposed(widget)
    return widget


def type_query(qtbot: QtBot, popup: SearchPopup, text: str, results: int) -> None:
    QTest.keyClicks(popup.query, text)
    qtbot.waitUntil(lambda: popup.results.count() == results, timeout=5000)


def test_typing_queries_the_daemon_once_after_the_pause_and_shows_results(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon
) -> None:
    type_query(qtbot, popup, "loader", 3)
    queries = [request.query for (request,) in daemon.called("search")]
    assert queries == ["loader"]
    assert popup.results.item(0).text().startswith("load_batches")
    assert popup.results.currentRow() == 0
    assert "3 results" in popup.status.text()


def test_a_newer_query_supersedes_an_older_answer(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon, runner: TaskRunner
) -> None:
    release = threading.Event()

    def slow_old(request: SearchRequest) -> None:
        if request.query == "old":
            release.wait(10)

    daemon.search_gate = slow_old
    daemon.answers = {"old": daemon.hits[:1]}
    QTest.keyClicks(popup.query, "old")
    qtbot.waitUntil(lambda: len(daemon.called("search")) == 1)
    popup.query.setText("new")
    popup.session.run_now()
    qtbot.waitUntil(lambda: popup.results.count() == 3)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        release.set()
    qtbot.waitUntil(lambda: runner.busy == 0)
    assert popup.results.count() == 3
    assert [r.query for (r,) in daemon.called("search")] == ["old", "new"]


def test_up_down_move_through_results_and_the_preview_follows(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon
) -> None:
    type_query(qtbot, popup, "load", 3)
    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    assert popup.results.currentRow() == 1
    assert popup.preview.hit is not None and popup.preview.hit.title == "Model"
    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    assert popup.results.currentRow() == 2
    QTest.keyClick(popup.query, Qt.Key.Key_Up)
    QTest.keyClick(popup.query, Qt.Key.Key_Up)
    assert popup.results.currentRow() == 0


def test_preview_shows_the_lines_around_the_hit_highlighted_and_its_chat(
    qtbot: QtBot, popup: SearchPopup
) -> None:
    type_query(qtbot, popup, "load", 3)
    qtbot.waitUntil(lambda: "line_6 = 6" in popup.preview.code.toPlainText())
    text = popup.preview.code.toPlainText()
    assert text.splitlines()[0] == "line_6 = 6" and "line_16 = 16" in text
    assert popup.preview.highlighter.language == "python"
    assert len(popup.preview.code.extraSelections()) == 3
    qtbot.waitUntil(lambda: "Writing a data loader" in popup.preview.provenance.text())
    assert popup.preview.provenance.text().startswith("from chat")


def test_enter_opens_the_file_at_the_line_in_the_editor(
    qtbot: QtBot, popup: SearchPopup, launcher: RecordingLauncher, daemon: FakeDaemon
) -> None:
    type_query(qtbot, popup, "load", 3)
    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert launcher.commands == [["code", "-g", f"{daemon.hits[1].path}:3"]]
    assert not popup.isVisible()


def test_enter_on_a_chat_opens_the_conversation(
    qtbot: QtBot,
    popup: SearchPopup,
    launcher: RecordingLauncher,
    opened_chats: list[tuple[str, int | None]],
) -> None:
    type_query(qtbot, popup, "load", 3)
    popup.results.setCurrentRow(2)
    QTest.keyClick(popup.query, Qt.Key.Key_Enter)
    assert opened_chats == [("c1", 2)]
    assert launcher.commands == []


def test_tab_cycles_the_kind_filter_and_searches_again(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon
) -> None:
    type_query(qtbot, popup, "load", 3)
    QTest.keyClick(popup.query, Qt.Key.Key_Tab)
    assert popup.kind() == "code"
    qtbot.waitUntil(lambda: popup.results.count() == 2)
    assert daemon.called("search")[-1][0].kind == "code"
    QTest.keyClick(popup.query, Qt.Key.Key_Tab)
    qtbot.waitUntil(lambda: popup.results.count() == 1)
    assert popup.kind() == "chat"
    QTest.keyClick(popup.query, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert popup.kind() == "code"
    assert popup.query.hasFocus() or QApplication.focusWidget() in (None, popup.query)


def test_ctrl_c_copies_the_snippet(qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon) -> None:
    type_query(qtbot, popup, "load", 3)
    popup.query.deselect()
    QTest.keyClick(popup.query, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == daemon.hits[0].snippet


def test_escape_hides_and_toggle_brings_it_back(qtbot: QtBot, popup: SearchPopup) -> None:
    QTest.keyClick(popup.query, Qt.Key.Key_Escape)
    assert not popup.isVisible()
    popup.toggle()
    assert popup.isVisible()
    popup.toggle()
    assert not popup.isVisible()


def test_clearing_the_query_clears_the_results(qtbot: QtBot, popup: SearchPopup) -> None:
    type_query(qtbot, popup, "load", 3)
    popup.query.clear()
    assert popup.results.count() == 0
    assert popup.preview.hit is None


def test_errors_show_in_the_status_line(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon
) -> None:
    daemon.online = False
    popup.set_offline("daemon not running")
    QTest.keyClicks(popup.query, "x")
    qtbot.waitUntil(lambda: len(daemon.called("search")) == 1)
    qtbot.waitUntil(lambda: popup.status.text() == "daemon not running")


def test_result_paths_are_shown_from_the_project_folder() -> None:
    hits = [hit("/home/u/src/proj/a/x.py", 1), hit("/home/u/src/proj/b/y.py", 2)]
    assert display_root(hits) == "/home/u/src"
    assert display_root([hit("chat:c1", 1, kind="chat")]) is None
    assert short_path("/home/u/notes/x.py", home="/home/u") == "~/notes/x.py"
    assert short_path("/very/long/" + "d/" * 30 + "x.py", home="/h") == "…/d/d/x.py"


# -- Suggest mode ----------------------------------------------------------------------------

TASK = "resize a folder of photos"


@pytest.fixture
def suggesting(daemon: FakeDaemon, popup: SearchPopup) -> Suggestion:
    """The fake daemon's answer to `TASK`, for a popup switched to Suggest mode."""
    answer = suggestion(TASK, daemon.hits[0].path)
    daemon.suggestions[TASK] = answer
    QTest.keyClick(popup.query, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert popup.suggesting()
    return answer


def type_task(qtbot: QtBot, popup: SearchPopup, text: str, rows: int) -> None:
    QTest.keyClicks(popup.query, text)
    qtbot.waitUntil(lambda: popup.results.count() == rows, timeout=5000)


def test_tab_reaches_suggest_after_the_filters_and_ctrl_s_toggles_it(
    qtbot: QtBot, popup: SearchPopup
) -> None:
    QTest.keyClick(popup.query, Qt.Key.Key_Tab)
    assert popup.kind() == "code"
    for _ in range(3):
        QTest.keyClick(popup.query, Qt.Key.Key_Tab)
    assert popup.suggesting() and popup.kind() is None
    assert popup.session.suggesting
    assert popup.query.placeholderText() == SUGGEST_PLACEHOLDER
    assert popup.results_panel.is_empty
    assert "Describe the task" in popup.results_panel.message.text()
    QTest.keyClick(popup.query, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not popup.suggesting() and popup.kind() == "run", "back to the filter used before"
    assert not popup.results_panel.is_empty
    QTest.keyClick(popup.query, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert popup.suggesting()
    QTest.keyClick(popup.query, Qt.Key.Key_Tab)
    assert popup.kind() is None and not popup.suggesting()
    QTest.keyClick(popup.query, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert popup.suggesting()


def test_typing_a_task_asks_suggest_and_shows_the_preamble_with_its_parts(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon, suggesting: Suggestion
) -> None:
    type_task(qtbot, popup, TASK, 4)
    assert daemon.called("suggest") == [(TASK, 5)]
    assert daemon.called("search") == []
    rows = [popup.results.item(i).text().split("\n")[0] for i in range(4)]
    assert rows == [
        "Preamble for your assistant",
        "lesson · opencv-python",
        "code · loader.py",
        "chat · Resize images",
    ]
    assert popup.results.currentRow() == 0
    assert popup.preview.code.toPlainText() == suggesting.preamble
    assert popup.status.text().startswith("1 lesson · 1 code · 1 chat")
    assert not popup.results_panel.is_empty


def test_enter_and_ctrl_c_copy_the_exact_preamble(
    qtbot: QtBot, popup: SearchPopup, suggesting: Suggestion
) -> None:
    type_task(qtbot, popup, TASK, 4)
    QApplication.clipboard().setText("something else")
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert QApplication.clipboard().text() == suggesting.preamble
    lines = len(suggesting.preamble.splitlines())
    assert popup.status.text().startswith(f"preamble copied ({lines} lines)")
    assert popup.isVisible()
    QApplication.clipboard().setText("something else")
    popup.query.deselect()
    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    part = popup.current_part()
    assert part is not None and part.kind == "lesson"
    QTest.keyClick(popup.query, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == suggesting.preamble, "Ctrl+C: the whole preamble"


def test_each_part_previews_and_code_and_chats_open_like_search_results(
    qtbot: QtBot,
    popup: SearchPopup,
    daemon: FakeDaemon,
    launcher: RecordingLauncher,
    opened_chats: list[tuple[str, int | None]],
    suggesting: Suggestion,
) -> None:
    type_task(qtbot, popup, TASK, 4)
    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    assert popup.preview.location.text() == "lesson · opencv-python"
    lesson_text = popup.preview.code.toPlainText()
    assert "Avoid opencv-python: it failed 2 times." in lesson_text
    assert "use pillow instead" in lesson_text and "chat:c1#m0" in lesson_text
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert QApplication.clipboard().text() == suggesting.preamble
    assert launcher.commands == []

    QTest.keyClick(popup.query, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: "line_6 = 6" in popup.preview.code.toPlainText())
    assert len(popup.preview.code.extraSelections()) == 3
    qtbot.waitUntil(lambda: popup.preview.provenance.text().startswith("from chat"))
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert launcher.commands == [["code", "-g", f"{daemon.hits[0].path}:10"]]
    assert not popup.isVisible()

    popup.present()
    popup.results.setCurrentRow(3)
    assert popup.preview.location.text() == "Resize images"
    assert popup.preview.code.toPlainText() == "use Pillow"
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert opened_chats == [("c1", None)]


def test_a_newer_task_supersedes_an_older_answer(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon, runner: TaskRunner
) -> None:
    release = threading.Event()

    def slow_old(task: str) -> None:
        if task == "old":
            release.wait(10)

    daemon.suggest_gate = slow_old
    daemon.suggestions["new"] = suggestion("new", daemon.hits[0].path)
    popup.set_suggesting(True)
    QTest.keyClicks(popup.query, "old")
    qtbot.waitUntil(lambda: len(daemon.called("suggest")) == 1)
    popup.query.setText("new")
    popup.session.run_now()
    qtbot.waitUntil(lambda: popup.results.count() == 4)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        release.set()
    qtbot.waitUntil(lambda: runner.busy == 0)
    assert popup.suggestion is not None and popup.suggestion.task == "new"
    assert popup.results.count() == 4
    assert [task for task, _limit in daemon.called("suggest")] == ["old", "new"]


def test_a_task_nothing_bears_on_gets_a_deliberate_empty_state(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon
) -> None:
    popup.set_suggesting(True)
    QTest.keyClicks(popup.query, "write a haiku")
    qtbot.waitUntil(lambda: popup.suggestion is not None, timeout=5000)
    assert popup.results_panel.is_empty
    assert "Nothing in your lessons, code or chats" in popup.results_panel.message.text()
    assert popup.status.text() == "nothing relevant to “write a haiku” yet"
    assert popup.preview.code.toPlainText() == "Task: write a haiku\n"
    QTest.keyClick(popup.query, Qt.Key.Key_Return)
    assert QApplication.clipboard().text() == "Task: write a haiku\n"


def test_leaving_suggest_mode_searches_again_and_drops_the_parts(
    qtbot: QtBot, popup: SearchPopup, daemon: FakeDaemon, suggesting: Suggestion
) -> None:
    type_task(qtbot, popup, TASK, 4)
    popup.set_suggesting(False)
    assert popup.suggestion is None and popup.parts == []
    qtbot.waitUntil(lambda: popup.results.count() == 3)
    assert [r.query for (r,) in daemon.called("search")] == [TASK]
    assert popup.query.placeholderText() == SEARCH_PLACEHOLDER
    popup.query.clear()
    popup.set_suggesting(True)
    assert popup.results.count() == 0 and popup.results_panel.is_empty


@pytest.mark.slow
def test_suggest_mode_against_a_real_daemon_copies_its_preamble(
    qtbot: QtBot, lexical_lab: Lab, tmp_path: Path
) -> None:
    chats = [
        c for c in json.loads(LESSON_CHATS.read_text()) if c["title"] == "Resize training images"
    ]
    export = tmp_path / "conversations.json"
    export.write_text(json.dumps(chats))
    lexical_lab.cli("import", str(export))
    client = DaemonClient(lexical_lab.paths)
    qtbot.waitUntil(lambda: bool(client.lessons()), timeout=30_000)
    runner = TaskRunner()
    popup = SearchPopup(client, runner, RecordingLauncher(), debounce_ms=30)
    qtbot.addWidget(popup)
    popup.present()
    popup.set_suggesting(True)
    QTest.keyClicks(popup.query, "resize a folder of photos to 224x224")
    qtbot.waitUntil(lambda: popup.suggestion is not None, timeout=15_000)
    assert popup.suggestion is not None
    assert [p.kind for p in popup.parts][:2] == ["preamble", "lesson"]
    assert "Avoid opencv-python" in popup.preview.code.toPlainText()
    QTest.keyClick(popup.query, Qt.Key.Key_Enter)
    expected = lexical_lab.json("suggest", "resize a folder of photos to 224x224")["preamble"]
    assert QApplication.clipboard().text() == expected == popup.suggestion.preamble
    runner.forget_all()
    runner.wait_idle()
    client.close()
