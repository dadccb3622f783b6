"""How relevant a lesson is to a task someone is about to start."""

from __future__ import annotations

import re
from typing import Final

from .aggregate import Lesson
from .names import canonical, domains, domains_of_text, fold, import_names

_WORD: Final = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*")
_STOP: Final = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "from",
        "by",
        "at",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "how",
        "what",
        "why",
        "when",
        "which",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "want",
        "need",
        "using",
        "use",
        "used",
        "make",
        "get",
        "some",
        "any",
        "all",
        "into",
        "out",
        "up",
        "about",
        "python",
        "code",
        "script",
        "file",
        "files",
        "new",
        "write",
        "help",
        "please",
        "like",
        "just",
        "also",
        "then",
        "than",
        "so",
    ]
)

MIN_SCORE: Final = 1.0
"""Below this a lesson is not worth a line in a suggestion."""


def words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 1}


def score(lesson: Lesson, task: str) -> float:
    """0 for unrelated; 3 and up when the task names the library; 2 when it speaks of the
    library's domain (images for OpenCV); plus what it shares with the lesson's chats."""
    task_words = words(task)
    folded = {fold(w) for w in task_words}
    names = {fold(lesson.library), *(fold(n) for n in import_names(lesson.library))}
    if lesson.replacement:
        names |= {fold(lesson.replacement), *(fold(n) for n in import_names(lesson.replacement))}
    total = 0.0
    libraries_named = {canonical(w) for w in task_words}
    if folded & names or lesson.library in libraries_named:
        total += 3.0
    libraries = [lesson.library] + ([lesson.replacement] if lesson.replacement else [])
    lesson_domains = {d for lib in libraries for d in domains(lib)}
    if lesson_domains & domains_of_text(task_words):
        total += 2.0
    shared = task_words & words(lesson.context)
    total += min(2.0, 0.5 * len(shared))
    return total
