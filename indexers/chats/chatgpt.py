"""One conversation of a ChatGPT data export, as a ``Conversation``.

A ChatGPT conversation is a tree: ``mapping`` holds nodes (``parent``, ``children``,
``message``) and ``current_node`` names the leaf the chat displays. Editing a prompt or
regenerating an answer starts a new branch; the old one stays in the tree. The
displayed path (leaf up to root, reversed) comes first, then the other branches.

Messages that the chat never showed are dropped: null roots, system prompts, hidden
plumbing, model reasoning (``thoughts``, ``reasoning_recap``), memory and custom
instructions (``*_editable_context``). What the person saw is kept: text, code the model
ran, execution output, quotes and errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .codeblocks import code_blocks, fence, language_id, normalise_newlines
from .fields import as_identifier, as_list, as_mapping, as_text, as_timestamp
from .model import ChatMessage, CodeBlock, Conversation, ConversationError, Role

SKIPPED_CONTENT_TYPES = frozenset(
    {
        "thoughts",
        "reasoning_recap",
        "user_editable_context",
        "model_editable_context",
    }
)
"""Content types that are never shown as chat messages."""

_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "tool": "tool"}


def parse_chatgpt(obj: object, *, origin: str) -> Conversation:
    """The conversation in one element of a ChatGPT ``conversations.json``.

    ``origin`` says where the object came from (``conversations.json: conversation 5``);
    it starts the message of the ``ConversationError`` raised when the object is not a
    conversation: not an object, no usable ``conversation_id``/``id``, no ``mapping``
    object. Any other oddity (wrong field types, unknown content, a broken tree) costs
    at most the message it is in.
    """
    if not isinstance(obj, dict):
        raise ConversationError(f"{origin}: not a JSON object")
    conversation_id = as_identifier(obj.get("conversation_id")) or as_identifier(obj.get("id"))
    if conversation_id is None:
        raise ConversationError(f"{origin}: no conversation id (conversation_id or id)")
    mapping = obj.get("mapping")
    if not isinstance(mapping, dict):
        what = "missing" if mapping is None else "not an object"
        raise ConversationError(f"{origin} (id {conversation_id}): mapping is {what}")
    tree = _Tree(mapping)
    path = tree.displayed_path(obj.get("current_node"))
    on_path = set(path)
    ordered = [(node, True) for node in path]
    ordered += [(node, False) for node in tree.depth_first() if node not in on_path]
    messages = []
    for node_id, shown in ordered:
        message = _message(node_id, tree.message(node_id), on_path=shown)
        if message is not None:
            messages.append(message)
    title = (as_text(obj.get("title")) or "").strip()
    model = as_text(obj.get("default_model_slug"))
    return Conversation(
        id=conversation_id,
        source="chatgpt",
        title=title or "Untitled",
        created=as_timestamp(obj.get("create_time")),
        updated=as_timestamp(obj.get("update_time")),
        model=model or None,
        messages=tuple(messages),
    )


class _Tree:
    """The node graph of ``mapping``, read defensively: ids that point nowhere are ignored."""

    def __init__(self, mapping: Mapping[Any, Any]) -> None:
        self._nodes: dict[str, Mapping[str, Any]] = {
            key: as_mapping(node) for key, node in mapping.items() if isinstance(key, str)
        }
        self._children: dict[str, list[str]] = {key: [] for key in self._nodes}
        self._parent: dict[str, str] = {}
        for key, node in self._nodes.items():
            parent = node.get("parent")
            if isinstance(parent, str) and parent in self._nodes and parent != key:
                self._parent[key] = parent
            for child in as_list(node.get("children")):
                if isinstance(child, str) and child in self._nodes and child != key:
                    self._children[key].append(child)
        for key, parent in self._parent.items():
            if key not in self._children[parent]:
                self._children[parent].append(key)

    def message(self, node_id: str) -> object:
        return self._nodes[node_id].get("message")

    def displayed_path(self, current_node: object) -> list[str]:
        """Node ids from the root down to ``current_node`` (or the newest leaf)."""
        leaf = current_node if isinstance(current_node, str) else None
        if leaf not in self._nodes:
            leaf = self._newest_leaf()
        path: list[str] = []
        seen: set[str] = set()
        while leaf is not None and leaf not in seen:
            seen.add(leaf)
            path.append(leaf)
            leaf = self._parent.get(leaf)
        path.reverse()
        return path

    def depth_first(self) -> Iterator[str]:
        """Every node once: from each root, children in their listed order.

        Nodes that no root reaches (a cycle of parents) follow, in mapping order.
        """
        seen: set[str] = set()
        roots = [key for key in self._nodes if key not in self._parent]
        for start in [*roots, *self._nodes]:
            stack = [start]
            while stack:
                key = stack.pop()
                if key in seen:
                    continue
                seen.add(key)
                yield key
                stack.extend(reversed(self._children[key]))

    def _newest_leaf(self) -> str | None:
        """The leaf created last (ties: the later in mapping order); any node in a cycle."""
        leaves = [key for key, children in self._children.items() if not children]
        if not leaves:
            return next(iter(self._nodes), None)
        order = {key: index for index, key in enumerate(leaves)}

        def newness(key: str) -> tuple[float, int]:
            created = _created(self.message(key))
            return (float("-inf") if created is None else created, order[key])

        return max(leaves, key=newness)


def _created(message: object) -> float | None:
    return as_timestamp(as_mapping(message).get("create_time"))


def _message(node_id: str, message: object, *, on_path: bool) -> ChatMessage | None:
    """The chat message a node shows, or None for an empty or hidden node."""
    if not isinstance(message, dict):
        return None
    author = as_mapping(message.get("author"))
    author_role = as_text(author.get("role"))
    metadata = as_mapping(message.get("metadata"))
    if author_role == "system" or metadata.get("is_visually_hidden_from_conversation") is True:
        return None
    content = as_mapping(message.get("content"))
    content_type = as_text(content.get("content_type")) or "text"
    if content_type in SKIPPED_CONTENT_TYPES:
        return None
    role = _ROLES.get(author_role or "", "tool")
    blocks: tuple[CodeBlock, ...]
    if content_type == "code":
        block = _code(content, message)
        text = fence(block.code, block.language) if block.code.strip() else ""
        blocks = (block,) if text else ()
    elif content_type == "execution_output":
        output = _string(content.get("text")).strip("\n")
        text = fence(output, "output") if output.strip() else ""
        role, blocks = "tool", ()
    else:
        text = _render(content_type, content)
        if content_type == "system_error":
            role = "tool"
        blocks = code_blocks(text)
    attachments = _attachment_lines(metadata)
    if not text.strip() and not attachments:
        return None
    text = "\n\n".join(part for part in (text.strip("\n"), attachments) if part)
    return ChatMessage(
        id=node_id,
        role=role,
        created=as_timestamp(message.get("create_time")),
        text=text,
        on_path=on_path,
        code_blocks=blocks,
    )


def _code(content: Mapping[str, Any], message: Mapping[str, Any]) -> CodeBlock:
    """A ``code`` message: the code the model sent to a tool (``recipient: python``).

    The ``language`` field is often ``unknown``; the recipient then names the language.
    """
    language = language_id(as_text(content.get("language")) or "")
    if language == "text":
        language = language_id(as_text(message.get("recipient")) or "")
    return CodeBlock(language, normalise_newlines(_string(content.get("text"))).rstrip("\n"))


def _render(content_type: str, content: Mapping[str, Any]) -> str:
    """Markdown for the content types that are prose (and unknown ones with text)."""
    if content_type == "tether_quote":
        return _quote(content)
    if content_type == "system_error":
        detail = _join(as_text(content.get("name")), _string(content.get("text")), sep=": ")
        return f"Error: {detail}" if detail else ""
    if content_type == "tether_browsing_display":
        return _join(_string(content.get("result")), _string(content.get("summary")))
    parts = content.get("parts")
    if isinstance(parts, str):
        parts = [parts]
    rendered = [_part(part) for part in as_list(parts)]
    text = "\n\n".join(part for part in rendered if part.strip())
    if not text:
        text = _string(content.get("text"))
    return normalise_newlines(text)


def _part(part: object) -> str:
    """One element of ``parts``: text as it is, a file or image as a short placeholder."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    text = as_text(part.get("text"))
    if text is not None:
        return text
    kind = as_text(part.get("content_type")) or ""
    pointer = as_text(part.get("asset_pointer")) or ""
    name = as_text(part.get("name")) or pointer.rpartition("://")[2]
    if "image" in kind:
        return f"[image: {name}]" if name else "[image]"
    if "audio" in kind or "video" in kind:
        return ""
    return f"[attachment: {name}]" if name else ""


def _quote(content: Mapping[str, Any]) -> str:
    quoted = normalise_newlines(_string(content.get("text"))).strip("\n")
    if not quoted.strip():
        return ""
    title = as_text(content.get("title")) or as_text(content.get("domain")) or ""
    url = as_text(content.get("url")) or ""
    source = f"[{title or url}]({url})" if url else title
    lines = "\n".join(f"> {line}" if line else ">" for line in quoted.split("\n"))
    return f"Quote from {source}:\n\n{lines}" if source else lines


def _attachment_lines(metadata: Mapping[str, Any]) -> str:
    names = [
        as_text(as_mapping(item).get("name")) or as_identifier(as_mapping(item).get("id"))
        for item in as_list(metadata.get("attachments"))
    ]
    return "\n".join(f"[attachment: {name}]" for name in names if name)


def _string(value: object) -> str:
    return as_text(value) or ""


def _join(*pieces: str | None, sep: str = "\n\n") -> str:
    return sep.join(piece for piece in pieces if piece and piece.strip())
