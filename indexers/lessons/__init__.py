"""Lessons: libraries that failed (in chats, in experiment runs) and what replaced them.

``mine_conversation`` reads the turns of one conversation and ``mine_run`` one failed
attempt; both return ``Episode`` s, and ``aggregate`` folds the episodes about one library
into a ``Lesson``. ``imported_libraries`` reads a source file's imports for pre-flight
warnings; ``relevance.score`` ranks lessons for a task. Rule-based and offline; it needs
only the standard library and ``labmind.indexers.chats``.
"""

from .aggregate import Lesson, aggregate, lesson_id
from .conversations import mine_conversation, turns_of
from .imports import imported_libraries, is_notebook
from .model import Episode, Resolution, ResolutionKind, Turn, TurnRole
from .names import canonical, import_names, is_known
from .relevance import MIN_SCORE, score
from .runs import mine_run

__all__ = [
    "MIN_SCORE",
    "Episode",
    "Lesson",
    "Resolution",
    "ResolutionKind",
    "Turn",
    "TurnRole",
    "aggregate",
    "canonical",
    "import_names",
    "imported_libraries",
    "is_known",
    "is_notebook",
    "lesson_id",
    "mine_conversation",
    "mine_run",
    "score",
    "turns_of",
]
