"""Chat exports (ChatGPT, Claude) as conversations of messages with code blocks.

``open_export`` recognises an export (a JSON file, a folder or a zip) by its content and
``Export.conversations()`` streams its conversations; ``sniff`` tells cheaply whether a
path is an export at all. ``parse_chatgpt`` and ``parse_claude`` turn one conversation
object into a ``Conversation``; ``split_fenced`` and friends read code out of Markdown.
It needs only the standard library, ijson and ``labmind.indexers.languages``.
"""

from .chatgpt import parse_chatgpt
from .claude import parse_claude
from .codeblocks import code_blocks, fence, language_id, prose, split_fenced
from .model import ChatMessage, CodeBlock, Conversation, ConversationError, Role, Source
from .reader import Export, ExportError, ExportKind, open_export, sniff

__all__ = [
    "ChatMessage",
    "CodeBlock",
    "Conversation",
    "ConversationError",
    "Export",
    "ExportError",
    "ExportKind",
    "Role",
    "Source",
    "code_blocks",
    "fence",
    "language_id",
    "open_export",
    "parse_chatgpt",
    "parse_claude",
    "prose",
    "sniff",
    "split_fenced",
]
