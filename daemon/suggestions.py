"""`labmind suggest`: what to tell a chat assistant before it starts on a task.

The preamble lists the lessons that bear on the task ("Avoid X: failed 3 times with …;
use Y instead (worked in chat "…" on 2024-05-01)"), the user's most relevant code (paths
and short excerpts) and related chats, as plain text to paste above the request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Final

from .lessons import LessonService
from .protocol import (
    LessonInfo,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SuggestedChat,
    SuggestedCode,
    Suggestion,
)

EXCERPT_LINES: Final = 8
EXCERPT_CHARS: Final = 600

Search = Callable[[SearchRequest], SearchResponse]


class Suggester:
    def __init__(
        self,
        lessons: LessonService,
        search: Search,
        chat_title: Callable[[str], str | None],
    ) -> None:
        self.lessons = lessons
        self.search = search
        self.chat_title = chat_title

    def suggest(self, task: str, limit: int = 5) -> Suggestion:
        code = self._hits(SearchRequest(query=task, kind="code", limit=limit))
        chat_hits = self._hits(SearchRequest(query=task, kind="chat", limit=limit * 3))
        chats: list[SuggestedChat] = []
        for hit in chat_hits:
            if hit.chat_id is None or any(c.conversation_id == hit.chat_id for c in chats):
                continue
            chats.append(
                SuggestedChat(
                    conversation_id=hit.chat_id,
                    title=hit.chat_title or hit.title,
                    excerpt=_excerpt(hit.snippet),
                )
            )
            if len(chats) >= limit:
                break
        lessons = self.lessons.relevant(task, limit, boost=[c.conversation_id for c in chats])
        snippets = [
            SuggestedCode(
                path=h.path, lines=f"{h.start_line}-{h.end_line}", excerpt=_excerpt(h.snippet)
            )
            for h in code
        ]
        return Suggestion(
            task=task,
            preamble=self.preamble(task, lessons, snippets, chats),
            lessons=lessons,
            code=snippets,
            chats=chats,
        )

    def _hits(self, req: SearchRequest) -> list[SearchHit]:
        try:
            return self.search(req).hits
        except Exception:  # search unavailable (no index yet): lessons still help
            return []

    def preamble(
        self,
        task: str,
        lessons: Sequence[LessonInfo],
        code: Sequence[SuggestedCode],
        chats: Sequence[SuggestedChat],
    ) -> str:
        parts = [f"Task: {task}"]
        if lessons:
            lines = ["Library lessons from my earlier work (please respect them):"]
            lines += [f"- {self.lesson_sentence(lesson)}" for lesson in lessons]
            parts.append("\n".join(lines))
        if code:
            lines = ["Relevant code I already have:"]
            for c in code:
                lines.append(f"- {c.path} (lines {c.lines}):")
                lines += [f"    {line}" for line in c.excerpt.splitlines()]
            parts.append("\n".join(lines))
        if chats:
            lines = ["Related earlier chats:"]
            lines += [f'- "{c.title}": {" ".join(c.excerpt.split())[:160]}' for c in chats]
            parts.append("\n".join(lines))
        return "\n\n".join(parts) + "\n"

    def lesson_sentence(self, lesson: LessonInfo) -> str:
        times = "once" if lesson.count == 1 else f"{lesson.count} times"
        line = f"Avoid {lesson.library}: it failed {times} with {lesson.symptom}"
        if lesson.resolution:
            where = self._where(lesson)
            line += f"; {lesson.resolution}{where}"
        if lesson.note:
            line += f" (note: {lesson.note})"
        return line + "."

    def _where(self, lesson: LessonInfo) -> str:
        chats = [ref for ref in lesson.evidence if ref.startswith("chat:")]
        if not chats:
            return ""
        conversation = chats[-1].removeprefix("chat:").split("#")[0]
        title = self.chat_title(conversation)
        when = ""
        if lesson.last_seen:
            when = " on " + dt.datetime.fromtimestamp(lesson.last_seen).strftime("%Y-%m-%d")
        return f' (worked in chat "{title}"{when})' if title else ""


def _excerpt(snippet: str) -> str:
    lines = [line.rstrip() for line in snippet.splitlines() if line.strip()]
    return "\n".join(lines[:EXCERPT_LINES])[:EXCERPT_CHARS]
