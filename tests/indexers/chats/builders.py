"""Synthetic chat exports for the tests: ChatGPT trees, Claude conversations, and writers
that lay them out as a JSON file, a folder, a zip, or ChatGPT's newer shards."""

from __future__ import annotations

import io
import itertools
import json
import random
import string
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
_SERIAL = itertools.count(1)
T0 = 1_700_000_000.0
"""A creation time (Nov 2023) that the builders count up from."""


# ChatGPT content, one helper per content type -------------------------------------------


def text(*parts: object) -> JSON:
    return {"content_type": "text", "parts": list(parts)}


def multimodal(*parts: object) -> JSON:
    return {"content_type": "multimodal_text", "parts": list(parts)}


def image_part(file_id: str = "file-abc123") -> JSON:
    return {
        "content_type": "image_asset_pointer",
        "asset_pointer": f"file-service://{file_id}",
        "size_bytes": 123456,
        "width": 800,
        "height": 600,
        "metadata": {"dalle": None},
    }


def code(source: object, language: str = "unknown") -> JSON:
    return {"content_type": "code", "language": language, "text": source}


def execution_output(output: str) -> JSON:
    return {"content_type": "execution_output", "text": output}


def browsing_display(result: str = "", summary: str | None = None) -> JSON:
    return {"content_type": "tether_browsing_display", "result": result, "summary": summary}


def quote(quoted: str, *, url: str, title: str) -> JSON:
    return {
        "content_type": "tether_quote",
        "url": url,
        "domain": url.split("/")[2] if "//" in url else url,
        "text": quoted,
        "title": title,
    }


def thoughts(*summaries: str) -> JSON:
    return {
        "content_type": "thoughts",
        "thoughts": [{"summary": s, "content": f"thinking about {s}"} for s in summaries],
        "source_analysis_msg_id": "abc",
    }


def reasoning_recap(content: str = "Thought for 12 seconds") -> JSON:
    return {"content_type": "reasoning_recap", "content": content}


def user_context(profile: str = "I am a researcher.") -> JSON:
    return {
        "content_type": "user_editable_context",
        "user_profile": profile,
        "user_instructions": "Be brief.",
    }


def model_context(memory: str = "User likes PyTorch.") -> JSON:
    return {"content_type": "model_editable_context", "model_set_context": memory}


def system_error(name: str, message: str) -> JSON:
    return {"content_type": "system_error", "name": name, "text": message}


# ChatGPT conversations ------------------------------------------------------------------------

_LAST = object()


class ChatGPTTree:
    """A ChatGPT conversation built node by node, like the ``mapping`` of an export.

    Every tree starts with a root node whose message is null, as real exports do. ``add``
    appends a child to the last node added unless ``parent`` says otherwise, so a linear
    chat is a sequence of ``add`` calls and a branch is an ``add`` with an older parent.
    """

    def __init__(
        self,
        conversation_id: str = "conv-1",
        *,
        title: object = "A chat",
        create_time: object = T0,
        update_time: object = T0 + 3600,
        model: str | None = "gpt-4o",
    ) -> None:
        self.conversation_id = conversation_id
        self.fields: JSON = {
            "title": title,
            "create_time": create_time,
            "update_time": update_time,
            "default_model_slug": model,
        }
        self.mapping: dict[str, JSON] = {
            "root": {"id": "root", "message": None, "parent": None, "children": []}
        }
        self.last = "root"
        self._clock = T0

    def add(
        self,
        role: str,
        content: object,
        *,
        parent: object = _LAST,
        node_id: str | None = None,
        create_time: object = None,
        recipient: str = "all",
        metadata: object = None,
        author_name: str | None = None,
    ) -> str:
        """Add a message node; returns its id."""
        parent_id = self.last if parent is _LAST else parent
        node_id = node_id or f"node-{len(self.mapping)}"
        self._clock += 10
        message = {
            "id": node_id,
            "author": {"role": role, "name": author_name, "metadata": {}},
            "create_time": self._clock if create_time is None else create_time,
            "update_time": None,
            "content": content,
            "status": "finished_successfully",
            "end_turn": True,
            "weight": 1.0,
            "metadata": metadata if metadata is not None else {},
            "recipient": recipient,
            "channel": None,
        }
        self.mapping[node_id] = {
            "id": node_id,
            "message": message,
            "parent": parent_id,
            "children": [],
        }
        if isinstance(parent_id, str) and parent_id in self.mapping:
            self.mapping[parent_id]["children"].append(node_id)
        self.last = node_id
        return node_id

    def say(self, role: str, *parts: object, **options: Any) -> str:
        """Add a plain ``text`` message."""
        return self.add(role, text(*parts), **options)

    def build(self, *, current_node: object = _LAST) -> JSON:
        """The conversation object; ``current_node`` defaults to the last node added."""
        return {
            **self.fields,
            "mapping": self.mapping,
            "current_node": self.last if current_node is _LAST else current_node,
            "conversation_id": self.conversation_id,
            "id": self.conversation_id,
            "is_archived": False,
            "moderation_results": [],
        }


def simple_chatgpt(conversation_id: str, *, turns: int = 2, words: str = "") -> JSON:
    """A linear ChatGPT conversation of ``turns`` user/assistant pairs."""
    tree = ChatGPTTree(conversation_id, title=f"Chat {conversation_id}")
    tree.add("system", text(""), metadata={"is_visually_hidden_from_conversation": True})
    for turn in range(turns):
        tree.say("user", f"question {turn} of {conversation_id} {words}")
        tree.say("assistant", f"answer {turn}\n\n```python\nprint({turn})\n```\n{words}")
    return tree.build()


# Claude ---------------------------------------------------------------------------------------


def text_block(body: str) -> JSON:
    return {
        "type": "text",
        "text": body,
        "start_timestamp": "2024-05-01T10:00:00.000000Z",
        "stop_timestamp": "2024-05-01T10:00:01.000000Z",
        "citations": [],
    }


def thinking_block(thought: str) -> JSON:
    return {"type": "thinking", "thinking": thought, "summaries": [{"summary": "Thinking"}]}


def tool_use_block(name: str, tool_input: object) -> JSON:
    return {"type": "tool_use", "name": name, "input": tool_input}


def tool_result_block(name: str, output: str) -> JSON:
    return {
        "type": "tool_result",
        "name": name,
        "content": [{"type": "text", "text": output}],
        "is_error": False,
    }


def claude_message(
    sender: str,
    *blocks: object,
    uuid: str | None = None,
    text: object = None,
    created_at: object = "2024-05-01T10:00:00.000000Z",
    attachments: Sequence[object] = (),
    files: Sequence[object] = (),
    with_content: bool = True,
) -> JSON:
    """A ``chat_messages`` element; top-level ``text`` joins the blocks unless given."""
    joined = "\n\n".join(
        str(b.get("text") or b.get("thinking") or "") for b in blocks if isinstance(b, dict)
    )
    message: JSON = {
        "uuid": uuid or f"msg-{next(_SERIAL)}",
        "text": joined if text is None else text,
        "sender": sender,
        "created_at": created_at,
        "updated_at": created_at,
        "attachments": list(attachments),
        "files": list(files),
    }
    if with_content:
        message["content"] = list(blocks)
    return message


def claude_conversation(
    uuid: str = "claude-1",
    *messages: object,
    name: object = "A Claude chat",
    created_at: object = "2024-05-01T10:00:00.000000Z",
    updated_at: object = "2024-05-01T11:00:00.000000Z",
) -> JSON:
    return {
        "uuid": uuid,
        "name": name,
        "summary": "",
        "created_at": created_at,
        "updated_at": updated_at,
        "account": {"uuid": "account-1"},
        "chat_messages": list(messages),
    }


def simple_claude(uuid: str, *, turns: int = 2) -> JSON:
    messages = []
    for turn in range(turns):
        messages.append(
            claude_message("human", text_block(f"question {turn}"), uuid=f"{uuid}-q{turn}")
        )
        messages.append(
            claude_message(
                "assistant",
                thinking_block("hmm"),
                text_block(f"answer {turn}\n```js\nconsole.log({turn})\n```"),
                uuid=f"{uuid}-a{turn}",
            )
        )
    return claude_conversation(uuid, *messages, name=f"Claude {uuid}")


# Writers --------------------------------------------------------------------------------------


def encode(content: object) -> bytes:
    """Bytes as they are, anything else as indented JSON (as the exports are written)."""
    if isinstance(content, bytes):
        return content
    return json.dumps(content, indent=2).encode()


def write_json(path: Path, content: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(content))
    return path


def write_folder(root: Path, files: Mapping[str, object]) -> Path:
    """A folder of files named relative to ``root`` (``/`` makes subfolders)."""
    for name, content in files.items():
        write_json(root / name, content)
    return root


def zip_bytes(files: Mapping[str, object], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in files.items():
            archive.writestr(name, encode(content))
    return buffer.getvalue()


def write_zip(
    path: Path, files: Mapping[str, object], *, compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zip_bytes(files, compression=compression))
    return path


def manifest_as_list(names: Sequence[str]) -> object:
    return list(names)


def manifest_as_objects(names: Sequence[str]) -> object:
    return {
        "version": 1,
        "export_files": [{"path": name, "size": 0, "kind": "conversations"} for name in names]
        + [{"path": "user_settings.json"}],
    }


def manifest_nested(names: Sequence[str]) -> object:
    return {"conversations": {"shards": [{"name": name, "count": 1} for name in names]}}


def sharded(
    conversations: Sequence[JSON],
    *,
    per_shard: int,
    manifest: Callable[[Sequence[str]], object] | None = manifest_as_objects,
    width: int = 3,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The files of a newer ChatGPT export: shards, a manifest and side files."""
    files: dict[str, object] = {}
    for start in range(0, len(conversations), per_shard):
        files[f"conversations-{start // per_shard:0{width}d}.json"] = list(
            conversations[start : start + per_shard]
        )
    if manifest is not None:
        files["export_manifest.json"] = manifest(list(files))
    files["user_settings.json"] = {"user_id": "user-1", "settings": {}}
    files["conversation_asset_file_names.json"] = {}
    files.update(extra or {})
    return files


def write_large_chatgpt_export(path: Path, *, target_bytes: int) -> int:
    """Write a ChatGPT ``conversations.json`` of about ``target_bytes``, one
    conversation at a time; returns how many conversations it holds."""
    words = random.Random(7)
    vocabulary = [
        "".join(words.choices(string.ascii_lowercase, k=words.randint(2, 9))) for _ in range(2000)
    ]
    count = 0
    with path.open("w") as out:
        out.write("[")
        written = 1
        while written < target_bytes:
            filler = " ".join(words.choices(vocabulary, k=300))
            chunk = json.dumps(simple_chatgpt(f"big-{count}", turns=5, words=filler))
            out.write(("," if count else "") + chunk)
            written += len(chunk) + 1
            count += 1
        out.write("]")
    return count


def ids(conversations: Iterable[Any]) -> list[str]:
    return [c.id for c in conversations]
