"""A researcher imports their ChatGPT export, finds chats, and asks where code came from."""

from __future__ import annotations

import copy
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab, wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chats"
SAMPLE = FIXTURES / "conversations.json"
SAMPLE_ID = "966da5c4-5bb7-4e4d-ab6d-a7316b96266e"
SAMPLE_TITLE = "Average Distance in U(0,1)"
PHRASE = "monte carlo simulation"

pytestmark = pytest.mark.slow


def sample() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(SAMPLE.read_text())
    return data


def code_cells(conversation: dict[str, Any]) -> list[str]:
    """The Python the assistant ran in the sample, in the order of the displayed path."""
    mapping = conversation["mapping"]
    node = conversation["current_node"]
    cells: list[str] = []
    while node is not None:
        message = mapping[node].get("message")
        if message and message["content"]["content_type"] == "code":
            cells.append(message["content"]["text"].replace("\r\n", "\n"))
        node = mapping[node].get("parent")
    return cells[::-1]


def import_json(lab: Lab, path: Path, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(lab.cli("import", str(path), "--json", *extra).stdout)
    return result


def test_imported_chat_is_searchable_readable_and_explains_code(
    lexical_lab: Lab, tmp_path: Path
) -> None:
    job = import_json(lexical_lab, SAMPLE)
    assert job["state"] == "done"
    assert (job["added"], job["updated"], job["unchanged"]) == (1, 0, 0)

    hits = lexical_lab.search(PHRASE, "--kind", "chat")
    assert hits, "a phrase of the chat is not found"
    assert {h["kind"] for h in hits} == {"chat"}
    assert hits[0]["chat_id"] == SAMPLE_ID
    assert SAMPLE_TITLE in hits[0]["title"]

    listed = lexical_lab.json("chats", "ls")
    assert [c["id"] for c in listed] == [SAMPLE_ID]
    detail = lexical_lab.json("chats", "show", SAMPLE_ID[:8])
    roles = {m["role"] for m in detail["messages"]}
    assert roles == {"user", "assistant", "tool"}, "system plumbing must not be shown"
    shown = lexical_lab.cli("chats", "show", SAMPLE_ID[:8]).stdout
    assert SAMPLE_TITLE in shown
    assert "integrate(" in shown

    project = tmp_path / "project"
    project.mkdir()
    cell = code_cells(sample()[0])[0]
    script = project / "average_distance.py"
    script.write_text("# worked out with ChatGPT\n" + cell + "\nprint(integral)\n")
    unrelated = project / "unrelated.py"
    unrelated.write_text("def greet(name):\n    return 'hello ' + name.title()\n")
    lexical_lab.cli("index", str(project), "--wait")

    links = lexical_lab.json("why", str(script))
    assert links, "the file holding a code cell of the chat is not linked to it"
    assert links[0]["chat_id"] == SAMPLE_ID
    assert links[0]["score"] >= 0.5
    assert lexical_lab.json("why", f"{script}:3")[0]["chat_id"] == SAMPLE_ID
    assert lexical_lab.json("why", str(unrelated)) == []
    why_text = lexical_lab.cli("why", str(script)).stdout
    assert SAMPLE_TITLE in why_text

    code_hits = lexical_lab.search("integrate expression", "--kind", "code")
    assert code_hits[0]["path"] == str(script)
    assert code_hits[0]["chat_id"] == SAMPLE_ID

    script.write_text("def greet_twice(name):\n    return ('hi ' + name + ' ') * 2\n")
    lexical_lab.cli("index", str(project), "--wait")
    assert lexical_lab.json("why", str(script)) == [], "a rewritten file loses its link"


def test_reimport_is_idempotent_and_newer_exports_update(lexical_lab: Lab, tmp_path: Path) -> None:
    import_json(lexical_lab, SAMPLE)
    chunks = lexical_lab.json("status")["chunks"]

    again = import_json(lexical_lab, SAMPLE)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 1)
    assert lexical_lab.json("status")["chunks"] == chunks

    newer = copy.deepcopy(sample())
    conversation = newer[0]
    conversation["update_time"] += 3600
    first_user = next(
        n["message"]
        for n in conversation["mapping"].values()
        if n.get("message") and n["message"]["author"]["role"] == "user"
    )
    first_user["content"]["parts"] = ["what is the expected gap between two uniform samples?"]
    export = tmp_path / "newer.json"
    export.write_text(json.dumps(newer))
    job = import_json(lexical_lab, export)
    assert (job["added"], job["updated"]) == (0, 1)
    assert len(lexical_lab.json("chats", "ls")) == 1
    hits = lexical_lab.search("expected gap uniform samples", "--kind", "chat")
    assert hits and hits[0]["chat_id"] == SAMPLE_ID
    old = lexical_lab.search("random independent variables", "--kind", "chat", "--mode", "lexical")
    assert old, "the assistant's answer still speaks of them"
    assert not [h for h in old if h["title"].endswith("— user")], "the old prompt is gone"

    older = copy.deepcopy(sample())
    export.write_text(json.dumps(older))
    stale = import_json(lexical_lab, export)
    assert (stale["updated"], stale["unchanged"]) == (0, 1), "an older export must not win"


def test_malformed_exports_give_one_line_and_keep_what_is_valid(
    lexical_lab: Lab, tmp_path: Path
) -> None:
    import_json(lexical_lab, SAMPLE)

    not_export = tmp_path / "photos.zip"
    with zipfile.ZipFile(not_export, "w") as archive:
        archive.writestr("holiday.txt", "not a chat")
    failed = lexical_lab.cli("import", str(not_export), check=False)
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "photos.zip" in lines[0], failed.stderr

    two = sample() * 2
    second = copy.deepcopy(two[1])
    second["id"] = second["conversation_id"] = "second-conversation"
    second["title"] = "Truncated neighbour"
    text = json.dumps([two[0], second, copy.deepcopy(two[0]) | {"id": "third"}])
    truncated = tmp_path / "conversations.json"
    truncated.write_text(text[: len(text) - 200])
    job = import_json(lexical_lab, truncated)
    assert job["state"] == "done"
    assert job["added"] == 1, "the complete conversation before the cut is imported"
    assert job["problem_count"] >= 1
    assert any("conversations.json" in p for p in job["problems"])

    assert {c["id"] for c in lexical_lab.json("chats", "ls")} == {SAMPLE_ID, "second-conversation"}
    assert lexical_lab.search(PHRASE, "--kind", "chat")[0]["chat_id"] in {
        SAMPLE_ID,
        "second-conversation",
    }
    assert lexical_lab.json("status")["conversations"] == 2


def test_export_dropped_in_downloads_is_imported_by_content(lexical_lab: Lab) -> None:
    lexical_lab.cli("start")
    archive = lexical_lab.downloads / "download (3).zip"
    partial = archive.with_name(archive.name + ".crdownload")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(SAMPLE, "conversations.json")
        out.writestr("user.json", json.dumps({"id": "user-1"}))
    os.replace(partial, archive)
    (lexical_lab.downloads / "notes.json").write_text('{"shopping": ["milk"]}')

    assert wait_until(lambda: bool(lexical_lab.json("chats", "ls")), timeout=60)
    assert lexical_lab.json("chats", "ls")[0]["id"] == SAMPLE_ID


def test_chats_survive_a_rebuild_and_a_restart(lexical_lab: Lab) -> None:
    import_json(lexical_lab, SAMPLE)
    lexical_lab.cli("index", "--rebuild", "--wait")
    assert lexical_lab.search(PHRASE, "--kind", "chat")
    lexical_lab.stop()
    assert lexical_lab.search(PHRASE, "--kind", "chat")[0]["chat_id"] == SAMPLE_ID


def test_code_older_than_the_chat_is_not_linked(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "old"
    project.mkdir()
    script = project / "integral.py"
    script.write_text(code_cells(sample()[0])[0])
    before_chat = sample()[0]["create_time"] - 86_400
    os.utime(script, (before_chat, before_chat))
    lexical_lab.cli("index", str(project), "--wait")
    import_json(lexical_lab, SAMPLE)
    assert lexical_lab.json("why", str(script)) == []


def test_chat_and_code_search_with_vectors(lab: Lab, tmp_path: Path) -> None:
    job = import_json(lab, SAMPLE)
    assert job["added"] == 1
    lab.cli("index", "--wait")
    hits = lab.search("estimate the mean gap between two uniform random numbers by sampling")
    assert any(h["kind"] == "chat" and h["chat_id"] == SAMPLE_ID for h in hits[:5])
