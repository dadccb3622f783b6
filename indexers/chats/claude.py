"""One conversation of a Claude (claude.ai) data export, as a ``Conversation``.

A Claude conversation is a list, ``chat_messages``, of messages with typed ``content``
blocks. Only ``text`` blocks are what the person read as the answer: the top-level
``text`` of a message mixes in the model's thinking, so it is used only when a message
has no ``content`` list at all. ``thinking`` and ``tool_result`` blocks are dropped; a
``tool_use`` block whose ``input`` carries ``code`` (the analysis tool) becomes a code
block. Attached files appear as ``[attachment: name]`` lines, never their contents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .codeblocks import code_blocks, fence, language_id, normalise_newlines
from .fields import as_identifier, as_list, as_mapping, as_text, as_timestamp
from .model import ChatMessage, Conversation, ConversationError, Role

_ROLES: dict[str, Role] = {"human": "user", "user": "user", "assistant": "assistant"}
_ATTACHMENT_LISTS = ("attachments", "files", "files_v2")


def parse_claude(obj: object, *, origin: str) -> Conversation:
    """The conversation in one element of a Claude ``conversations.json``.

    ``origin`` says where the object came from (``conversations.json: conversation 5``);
    it starts the message of the ``ConversationError`` raised when the object is not a
    conversation: not an object, no usable ``uuid``, no ``chat_messages`` list. Any
    other oddity costs at most the message it is in.
    """
    if not isinstance(obj, dict):
        raise ConversationError(f"{origin}: not a JSON object")
    conversation_id = as_identifier(obj.get("uuid")) or as_identifier(obj.get("id"))
    if conversation_id is None:
        raise ConversationError(f"{origin}: no conversation id (uuid)")
    chat_messages = obj.get("chat_messages")
    if not isinstance(chat_messages, list):
        what = "missing" if chat_messages is None else "not a list"
        raise ConversationError(f"{origin} (id {conversation_id}): chat_messages is {what}")
    messages = []
    for index, item in enumerate(chat_messages):
        message = _message(item, fallback_id=f"{conversation_id}#{index}")
        if message is not None:
            messages.append(message)
    title = (as_text(obj.get("name")) or "").strip()
    return Conversation(
        id=conversation_id,
        source="claude",
        title=title or "Untitled",
        created=as_timestamp(obj.get("created_at")),
        updated=as_timestamp(obj.get("updated_at")),
        model=None,
        messages=tuple(messages),
    )


def _message(item: object, *, fallback_id: str) -> ChatMessage | None:
    """The chat message of one ``chat_messages`` element, or None when it shows nothing."""
    if not isinstance(item, dict):
        return None
    sender = as_text(item.get("sender")) or ""
    if sender == "system":
        return None
    content = item.get("content")
    if isinstance(content, list):
        body = "\n\n".join(piece for piece in map(_block, content) if piece.strip())
    else:
        body = normalise_newlines(as_text(item.get("text")) or "").strip("\n")
    attachments = _attachment_lines(item)
    if not body.strip() and not attachments:
        return None
    return ChatMessage(
        id=as_identifier(item.get("uuid")) or fallback_id,
        role=_ROLES.get(sender, "tool"),
        created=as_timestamp(item.get("created_at")),
        text="\n\n".join(part for part in (body, attachments) if part),
        on_path=True,
        code_blocks=code_blocks(body),
    )


def _block(block: object) -> str:
    """Markdown for one content block: its text, a tool's code, or nothing."""
    fields = as_mapping(block)
    kind = as_text(fields.get("type"))
    if kind == "text":
        return normalise_newlines(as_text(fields.get("text")) or "").strip("\n")
    if kind == "tool_use":
        tool_input = as_mapping(fields.get("input"))
        code = as_text(tool_input.get("code")) or as_text(tool_input.get("content"))
        if code and code.strip():
            language = as_text(tool_input.get("language")) or _ARTIFACT_TYPES.get(
                as_text(tool_input.get("type")) or "", ""
            )
            title = as_text(tool_input.get("title"))
            heading = f"**{title.strip()}**\n\n" if title and title.strip() else ""
            return heading + fence(code, language_id(language))
    return ""


_ARTIFACT_TYPES = {
    "application/vnd.ant.react": "tsx",
    "text/html": "html",
    "image/svg+xml": "xml",
    "application/vnd.ant.mermaid": "mermaid",
    "text/markdown": "markdown",
}
"""Languages of Claude artifacts (``tool_use`` of the artifacts tool) by their type."""


def _attachment_lines(item: Mapping[str, Any]) -> str:
    names: list[str] = []
    for field in _ATTACHMENT_LISTS:
        for attachment in as_list(item.get(field)):
            name = as_text(as_mapping(attachment).get("file_name"))
            if name and name.strip() and name not in names:
                names.append(name)
    return "\n".join(f"[attachment: {name}]" for name in names)
