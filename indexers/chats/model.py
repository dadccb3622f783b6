"""What a chat export becomes: conversations of messages that hold prose and code blocks.

The parsers (``chatgpt``, ``claude``) build these from one conversation object of an
export; the reader streams them out of a file, folder or zip. Everything is immutable,
so a conversation can be handed to another thread or kept as a cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["chatgpt", "claude"]
"""Which assistant's export a conversation came from."""

Role = Literal["user", "assistant", "tool"]
"""Who wrote a message: the person, the model, or a tool the model ran (code, browsing)."""


def single_line(text: str) -> str:
    """``text`` with its line breaks turned into spaces: error messages stay one line
    even when they quote ids or file names that hold newlines."""
    return " ".join(text.splitlines()) if text else text


class ConversationError(Exception):
    """One conversation of an export is unusable (no id, no messages container).

    The message is one line and names where the conversation came from and what is
    missing; the rest of the export is still readable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(single_line(message))


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A piece of code in a message.

    ``language`` is a labmind language id (``python``, ``javascript``, ``bash``, ``cpp``,
    …, see ``codeblocks.language_id``), ``text`` when the export does not say.
    """

    language: str
    code: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message as the chat showed it.

    ``text`` is readable Markdown: prose, code as fenced blocks tagged with their
    language, execution output as an ``output`` fence, attachments as
    ``[attachment: name]`` lines. ``code_blocks`` holds every code block of the message
    in order. ``on_path`` is False for messages of branches the chat no longer shows
    (an edited prompt, a regenerated answer). ``created`` is in unix seconds.
    """

    id: str
    role: Role
    created: float | None
    text: str
    on_path: bool
    code_blocks: tuple[CodeBlock, ...]


@dataclass(frozen=True, slots=True)
class Conversation:
    """One chat of an export.

    ``messages`` starts with the displayed path, root to leaf, followed by the messages
    of other branches (``on_path`` False) in depth-first order of the tree. ``updated``
    decides re-imports: a conversation replaces a stored one with the same ``id`` when
    it is newer. ``model`` is the default model the export names (ChatGPT only).
    """

    id: str
    source: Source
    title: str
    created: float | None
    updated: float | None
    model: str | None
    messages: tuple[ChatMessage, ...]

    @property
    def displayed(self) -> tuple[ChatMessage, ...]:
        """The messages of the displayed path, in order."""
        return tuple(m for m in self.messages if m.on_path)
