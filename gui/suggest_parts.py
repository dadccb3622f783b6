"""What the popup's Suggest mode lists: the whole preamble first, then each lesson, piece of
code and chat it was made from. Code and chats become search hits, so they preview and
open exactly as search results do."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from labmind.daemon.protocol import (
    LessonInfo,
    SearchHit,
    SuggestedChat,
    SuggestedCode,
    Suggestion,
)

PartKind = Literal["preamble", "lesson", "code", "chat"]


@dataclass(frozen=True)
class SuggestPart:
    kind: PartKind
    label: str
    """The row in the results list (two lines)."""
    title: str
    """The preview's heading."""
    text: str
    """What the preview shows for a preamble or a lesson."""
    hit: SearchHit | None = None
    """Code and chats: previewed and opened like a search result."""


def suggestion_parts(suggestion: Suggestion) -> list[SuggestPart]:
    counts = part_counts(suggestion)
    parts = [
        SuggestPart(
            "preamble",
            f"Preamble for your assistant\n{counts or 'nothing relevant found'}",
            "Preamble for your assistant — Enter or Ctrl+C copies it",
            suggestion.preamble,
        )
    ]
    parts += [lesson_part(lesson) for lesson in suggestion.lessons]
    parts += [code_part(code) for code in suggestion.code]
    parts += [chat_part(chat) for chat in suggestion.chats]
    return parts


def part_counts(suggestion: Suggestion) -> str:
    """``2 lessons · 3 code · 1 chat``; "" when the suggestion holds nothing."""
    counts = [
        _count(len(suggestion.lessons), "lesson", "lessons"),
        _count(len(suggestion.code), "code", "code"),
        _count(len(suggestion.chats), "chat", "chats"),
    ]
    return " · ".join(c for c in counts if c)


def lesson_part(lesson: LessonInfo) -> SuggestPart:
    times = "once" if lesson.count == 1 else f"{lesson.count} times"
    lines = [
        f"Avoid {lesson.library}: it failed {times}.",
        "",
        f"Symptom:     {lesson.symptom}",
        f"Resolution:  {lesson.resolution or 'none known yet'}",
    ]
    if lesson.replacement:
        lines.append(f"Replacement: {lesson.replacement}")
    if lesson.last_seen:
        lines.append(f"Last seen:   {_day(lesson.last_seen)}")
    lines.append(f"Confidence:  {lesson.confidence:.2f}")
    if lesson.note:
        lines.append(f"Your note:   {lesson.note}")
    if lesson.evidence:
        lines += ["", "Seen in:", *(f"  {ref}" for ref in lesson.evidence)]
    return SuggestPart(
        "lesson",
        f"lesson · {lesson.library}\n{lesson.resolution or lesson.symptom}",
        f"lesson · {lesson.library}",
        "\n".join(lines),
    )


def code_part(code: SuggestedCode) -> SuggestPart:
    start, _, end = code.lines.partition("-")
    first = int(start) if start.isdigit() else 1
    last = int(end) if end.isdigit() else first
    name = PurePath(code.path).name
    hit = SearchHit(
        path=code.path,
        start_line=first,
        end_line=max(first, last),
        kind="code",
        score=0.0,
        title=name,
        snippet=code.excerpt,
    )
    return SuggestPart("code", f"code · {name}\n{code.path}:{code.lines}", code.path, "", hit)


def chat_part(chat: SuggestedChat) -> SuggestPart:
    hit = SearchHit(
        path=f"chat:{chat.conversation_id}",
        start_line=0,
        end_line=0,
        kind="chat",
        score=0.0,
        title=chat.title,
        snippet=chat.excerpt,
        chat_id=chat.conversation_id,
        chat_title=chat.title,
    )
    return SuggestPart("chat", f"chat · {chat.title}\nrelated chat", chat.title, "", hit)


def _count(n: int, one: str, many: str) -> str:
    return "" if n == 0 else f"{n} {one if n == 1 else many}"


def _day(when: float) -> str:
    return dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d")
