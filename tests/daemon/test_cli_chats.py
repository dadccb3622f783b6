"""How `labmind why` reads its argument and how chats and links are shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from labmind.daemon.cli_chats import print_chat, print_why, split_target
from labmind.daemon.cli_session import CliError
from labmind.daemon.protocol import ChatDetail, ChatMessage, ChatSummary, WhyLink, WhyResponse


def test_path_and_line_are_split_unless_the_colon_is_part_of_a_real_file(tmp_path: Path) -> None:
    assert split_target("train.py:42") == ("train.py", 42)
    assert split_target("train.py") == ("train.py", None)
    odd = tmp_path / "run:3"
    odd.write_text("x = 1\n")
    assert split_target(str(odd)) == (str(odd), None)
    with pytest.raises(CliError, match="lines start at 1"):
        split_target("train.py:0")


def render(fn: Callable[..., None], *args: object, **kwargs: object) -> str:
    console = Console(record=True, width=120, color_system=None)
    fn(console, *args, **kwargs)
    return console.export_text()


def detail() -> ChatDetail:
    summary = ChatSummary(
        id="c1",
        source="chatgpt",
        title="Warmup schedules",
        created=1_700_000_000.0,
        updated=1_700_000_100.0,
        origin="export.zip",
        messages=3,
    )
    messages = [
        ChatMessage(id="m1", position=1, role="user", created=None, on_path=True, text="How?"),
        ChatMessage(
            id="m2",
            position=2,
            role="assistant",
            created=None,
            on_path=True,
            text="Like this:\n\n```python\ndef warmup(step):\n    return step / 100\n```",
        ),
        ChatMessage(
            id="m3", position=3, role="user", created=None, on_path=False, text="Edited away"
        ),
    ]
    return ChatDetail(chat=summary, messages=messages)


def test_a_chat_shows_its_displayed_branch_and_says_what_is_hidden() -> None:
    text = render(print_chat, detail(), branches=False)
    assert "Warmup schedules" in text and "def warmup(step):" in text
    assert "Edited away" not in text
    assert "1 messages on other branches" in text
    shown = render(print_chat, detail(), branches=True)
    assert "Edited away" in shown and "other branch" in shown


def test_why_lists_conversations_or_says_there_are_none() -> None:
    link = WhyLink(
        chat_id="c1-long-identifier",
        title="Warmup schedules",
        message_id="m2",
        position=2,
        role="assistant",
        created=1_700_000_000.0,
        score=0.91,
        shared=12,
        start_line=4,
        end_line=9,
    )
    found = render(print_why, WhyResponse(path="/src/s.py", line=5, indexed=True, links=[link]))
    assert "/src/s.py:5" in found and "0.91" in found and "Warmup schedules" in found
    none = render(print_why, WhyResponse(path="/src/s.py", line=None, indexed=True, links=[]))
    assert "no conversation found" in none
