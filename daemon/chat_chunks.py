"""A parsed conversation as the store and the indexes hold it: messages, chunks, fingerprints.

Each message gives prose chunks (its text without code, cut at paragraphs into windows)
and one chunk per code block, all of kind ``chat``; chat chunks carry the message's
position in the conversation as their line range. Code blocks of assistant messages are
fingerprinted for provenance.
"""

from __future__ import annotations

from labmind.indexers.chats import ChatMessage, Conversation, prose
from labmind.indexers.chunk import EMBED_TEXT_CHARS, content_key

from .chat_store import ConversationUpdate, MessageRow
from .preparing import stable_id
from .provenance import Linker
from .store import ChunkRow, Fingerprint

PROSE_CHUNK_CHARS = 2000
"""Longest prose chunk; longer messages are cut at paragraph breaks (then at spaces)."""

PROSE_LANGUAGE = "markdown"


def chat_path(conversation_id: str) -> str:
    """The path a conversation's chunks carry in the lexical index and in search hits."""
    return f"chat:{conversation_id}"


def conversation_update(conv: Conversation, origin: str, linker: Linker) -> ConversationUpdate:
    """Everything the store needs to replace ``conv`` whole."""
    messages: list[MessageRow] = []
    prints: list[Fingerprint] = []
    for position, message in enumerate(conv.messages, start=1):
        prose_rows, code_rows = _message_chunks(conv, message, position)
        chunks = prose_rows + code_rows
        messages.append(
            MessageRow(
                id=stable_id(conv.id, message.id),
                message_id=message.id,
                position=position,
                role=message.role,
                created=message.created,
                on_path=message.on_path,
                text=message.text,
                chunks=chunks,
            )
        )
        if message.role == "assistant":
            for row in code_rows:
                prints += linker.chunk_fingerprints(row.id, row.text, row.language, 1)
    return ConversationUpdate(
        id=conv.id,
        source=conv.source,
        title=conv.title,
        created=conv.created,
        updated=conv.updated,
        model=conv.model,
        origin=origin,
        messages=messages,
        fingerprints=prints,
    )


def _message_chunks(
    conv: Conversation, message: ChatMessage, position: int
) -> tuple[list[ChunkRow], list[ChunkRow]]:
    """The message's prose chunks and its code-block chunks."""
    header = f"{conv.title} — {message.role}"
    prose_pieces: list[tuple[str, str, str | None]] = [
        (w, PROSE_LANGUAGE, None) for w in prose_windows(prose(message.text))
    ]
    code_pieces: list[tuple[str, str, str | None]] = [
        (block.code, block.language, f"code block {n}")
        for n, block in enumerate(message.code_blocks, start=1)
        if block.code.strip()
    ]
    rows: list[ChunkRow] = []
    for part, (text, language, symbol) in enumerate(prose_pieces + code_pieces):
        key = content_key(f"{header}\n{text}"[:EMBED_TEXT_CHARS])
        rows.append(
            ChunkRow(
                id=stable_id("chat", conv.id, message.id, str(part), str(key)),
                kind="chat",
                language=language,
                symbol=symbol,
                header=header,
                start_line=position,
                end_line=position,
                text=text,
                vec_key=key,
            )
        )
    return rows[: len(prose_pieces)], rows[len(prose_pieces) :]


def prose_windows(text: str, limit: int = PROSE_CHUNK_CHARS) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` characters at paragraph breaks."""
    windows: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        while len(paragraph) > limit:
            cut = paragraph.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                windows.append(current)
                current = ""
            windows.append(paragraph[:cut].rstrip())
            paragraph = paragraph[cut:].lstrip()
        if current and len(current) + 2 + len(paragraph) > limit:
            windows.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        windows.append(current)
    return windows
