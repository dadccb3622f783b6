"""Properties that hold for any input: parsers never fail but with ConversationError,
damaged files cost only what comes after the damage, odd files are refused with
ExportError and nothing else."""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labmind.indexers.chats import (
    Conversation,
    ConversationError,
    ExportError,
    fence,
    open_export,
    parse_chatgpt,
    parse_claude,
    split_fenced,
)
from labmind.indexers.chats.codeblocks import normalise_newlines

from . import builders as b

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chats"
REAL = FIXTURES / "conversations.json"
BRANCHING = FIXTURES / "branching-conversation.json"

STABLE = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

plain_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
scalars = plain_scalars | st.floats() | st.decimals(allow_nan=True, allow_infinity=True)
"""What ijson or json may hand a parser: also NaN, infinities and Decimals."""


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=12,
    )


json_values = nested(scalars)
json_documents = nested(plain_scalars)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the right shape, sometimes any JSON value at all."""
    return st.one_of(strategy, strategy, json_values)


_MISSING = object()


def record(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object whose fields are mostly right, sometimes of any type, sometimes missing."""

    def field(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(strategy, strategy, strategy, strategy, json_values, st.just(_MISSING))

    return st.fixed_dictionaries({key: field(value) for key, value in fields.items()}).map(
        lambda chosen: {key: value for key, value in chosen.items() if value is not _MISSING}
    )


identifiers = st.sampled_from(["c-1", "abc", "0"]) | st.text(max_size=8)
words = st.text(max_size=30) | st.sampled_from(["```python\nx = 1\n```", "```js\nunclosed", "hi"])
times = st.floats(min_value=0, max_value=2e9) | st.sampled_from(
    ["2024-05-01T10:00:00Z", "1700000000", "soon"]
)

chatgpt_part = words | record(
    content_type=st.sampled_from(["image_asset_pointer", "x"]), asset_pointer=words
)
chatgpt_content = record(
    content_type=st.sampled_from(
        [
            "text",
            "multimodal_text",
            "code",
            "execution_output",
            "tether_browsing_display",
            "tether_quote",
            "thoughts",
            "reasoning_recap",
            "user_editable_context",
            "model_editable_context",
            "system_error",
            "something_new",
        ]
    ),
    parts=st.lists(maybe(chatgpt_part), max_size=3),
    text=words,
    language=st.sampled_from(["python", "unknown", "c++", ""]),
    result=words,
    summary=words,
    url=words,
    title=words,
    name=words,
)
chatgpt_message = record(
    id=identifiers,
    author=record(role=st.sampled_from(["user", "assistant", "tool", "system", "critic"])),
    content=chatgpt_content,
    metadata=record(
        is_visually_hidden_from_conversation=st.booleans(),
        attachments=st.lists(maybe(record(name=words, id=words)), max_size=2),
    ),
    create_time=times,
    recipient=st.sampled_from(["all", "python", "browser"]),
)
node_ids = st.sampled_from(["n1", "n2", "n3", "n4", "n5"])
chatgpt_node = record(
    parent=node_ids, children=st.lists(maybe(node_ids), max_size=3), message=chatgpt_message
)
chatgpt_conversation = record(
    id=identifiers,
    conversation_id=identifiers,
    title=words,
    create_time=times,
    update_time=times,
    default_model_slug=words,
    current_node=node_ids,
    mapping=st.dictionaries(node_ids, maybe(chatgpt_node), max_size=5),
)

claude_block = record(
    type=st.sampled_from(["text", "thinking", "tool_use", "tool_result", "image"]),
    text=words,
    thinking=words,
    input=record(code=words, language=st.sampled_from(["python", "javascript"])),
)
claude_message = record(
    uuid=identifiers,
    sender=st.sampled_from(["human", "assistant", "system", "user"]),
    created_at=times,
    text=words,
    content=st.lists(maybe(claude_block), max_size=4),
    attachments=st.lists(maybe(record(file_name=words, extracted_content=words)), max_size=2),
    files=st.lists(maybe(record(file_name=words)), max_size=2),
)
claude_conversation = record(
    uuid=identifiers,
    name=words,
    created_at=times,
    updated_at=times,
    chat_messages=st.lists(maybe(claude_message), max_size=5),
)


def _every_content_type() -> b.JSON:
    tree = b.ChatGPTTree("rich")
    question = tree.say("user", "q", metadata={"attachments": [{"name": "a.py"}]})
    tree.add("user", b.multimodal(b.image_part(), "look"))
    tree.add("assistant", b.thoughts("plan"))
    tree.add("assistant", b.reasoning_recap())
    tree.add("assistant", b.code("print(1)"), recipient="python")
    tree.add("tool", b.execution_output("1"))
    tree.add("tool", b.browsing_display("result"))
    tree.add("tool", b.quote("quoted", url="https://x.org/a", title="X"))
    tree.add("assistant", b.system_error("Err", "bad"))
    tree.add("user", b.user_context())
    tree.say("assistant", "```py\nx\n```")
    tree.say("assistant", "other branch", parent=question)
    return tree.build()


def _every_block_type() -> b.JSON:
    return b.claude_conversation(
        "rich",
        b.claude_message("human", b.text_block("q"), attachments=[{"file_name": "a.py"}]),
        b.claude_message(
            "assistant",
            b.thinking_block("hmm"),
            b.text_block("```py\nx\n```"),
            b.tool_use_block("repl", {"code": "1 + 1", "language": "javascript"}),
            b.tool_result_block("repl", "2"),
        ),
        b.claude_message("human", text="old style", with_content=False),
    )


CHATGPT_BASES = [
    _every_content_type(),
    json.loads(REAL.read_text())[0],
    json.loads(BRANCHING.read_text())[0],
]
CLAUDE_BASES = [_every_block_type(), b.simple_claude("k")]


def _paths(document: object) -> list[tuple[Any, ...]]:
    """Every place below the top of a JSON document, as the keys and indexes that lead there."""
    found: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], object]] = [((), document)]
    while stack:
        path, item = stack.pop()
        children = (
            item.items()
            if isinstance(item, dict)
            else enumerate(item)
            if isinstance(item, list)
            else ()
        )
        for key, child in children:
            found.append((*path, key))
            stack.append(((*path, key), child))
    return found


@st.composite
def mutated(draw: st.DrawFn, bases: list[b.JSON]) -> object:
    """A real or realistic conversation with one to three fields replaced or deleted."""
    document: Any = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = sorted(_paths(document), key=len, reverse=True)  # the simplest draw: a leaf
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(json_values)
        else:
            del parent[path[-1]]
    return document


def check_conversation(conversation: Conversation) -> None:
    assert conversation.id and conversation.title
    assert conversation.title.strip() == conversation.title
    flags = [message.on_path for message in conversation.messages]
    assert flags == sorted(flags, reverse=True)
    assert len({message.id for message in conversation.messages}) == len(conversation.messages)
    for message in conversation.messages:
        assert message.role in ("user", "assistant", "tool")
        assert message.text.strip()
        assert message.created is None or isinstance(message.created, float)


def parses_or_refuses(parse: Callable[..., Conversation], obj: object) -> None:
    try:
        conversation = parse(obj, origin="prop.json: conversation 1")
    except ConversationError as error:
        assert str(error).startswith("prop.json: conversation 1")
        assert len(str(error).splitlines()) == 1
        return
    check_conversation(conversation)


@STABLE
@given(st.one_of(mutated(CHATGPT_BASES), mutated(CHATGPT_BASES), maybe(chatgpt_conversation)))
def test_parse_chatgpt_only_raises_conversation_error(obj: object) -> None:
    parses_or_refuses(parse_chatgpt, obj)


@STABLE
@given(st.one_of(mutated(CLAUDE_BASES), mutated(CLAUDE_BASES), maybe(claude_conversation)))
def test_parse_claude_only_raises_conversation_error(obj: object) -> None:
    parses_or_refuses(parse_claude, obj)


def _valid_export(kind: str) -> bytes:
    if kind == "chatgpt":
        tree = b.ChatGPTTree("branchy")
        question = tree.say("user", "q")
        tree.say("assistant", "a1")
        tree.say("assistant", "a2", parent=question)
        conversations = [b.simple_chatgpt(f"c{i}") for i in range(4)] + [tree.build()]
    else:
        conversations = [b.simple_claude(f"k{i}") for i in range(5)]
    return b.encode(conversations) + b"\n"


VALID = {kind: _valid_export(kind) for kind in ("chatgpt", "claude")}


@STABLE
@given(st.sampled_from(sorted(VALID)), st.data())
def test_a_truncated_export_yields_a_prefix_and_at_most_one_problem(
    kind: str, data: st.DataObject
) -> None:
    full = VALID[kind]
    cut = data.draw(st.integers(min_value=0, max_value=len(full)), label="cut")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.json"
        path.write_bytes(full)
        export = open_export(path)
        everything = b.ids(export.conversations())
        path.write_bytes(full[:cut])
        found = b.ids(export.conversations())
    assert found == everything[: len(found)]
    damaged = full[:cut].rstrip() != full.rstrip()
    assert len(export.problems) == (1 if damaged else 0), export.problems
    assert all(
        "\n" not in problem and problem.startswith("conversations.json: ")
        for problem in export.problems
    )


def opens_or_refuses(content: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            export = open_export(path)
        except ExportError as error:
            assert len(str(error).splitlines()) == 1
            return
        for conversation in export.conversations():
            check_conversation(conversation)
        assert all(len(problem.splitlines()) == 1 for problem in export.problems)
        assert export.bytes_read <= export.total_bytes


@STABLE
@given(st.binary(max_size=400) | st.binary(max_size=400).map(lambda tail: b"PK\x03\x04" + tail))
def test_random_bytes_are_refused_with_export_error(content: bytes) -> None:
    opens_or_refuses(content, "download.zip")
    opens_or_refuses(content, "data.json")


member_names = st.sampled_from(
    [
        "conversations.json",
        "conversations-000.json",
        "conversations-001.json",
        "export_manifest.json",
        "deep/conversations.json",
        "user.json",
    ]
)


def valid_prefix(kind: str, cut: int) -> bytes:
    return VALID[kind][:cut]


member_content = (
    st.binary(max_size=200)
    | json_documents.map(b.encode)
    | st.builds(valid_prefix, st.sampled_from(sorted(VALID)), st.integers(0, 4000) | st.just(10**6))
)


@STABLE
@given(st.dictionaries(member_names, member_content, max_size=4))
def test_random_zips_are_read_or_refused_with_export_error(files: dict[str, bytes]) -> None:
    opens_or_refuses(b.zip_bytes(files), "export.zip")


VALID_ZIP = b.zip_bytes(b.sharded([b.simple_chatgpt(f"c{i}") for i in range(4)], per_shard=2))


@STABLE
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID_ZIP) - 1), st.integers(0, 255)), min_size=1, max_size=4
    )
)
def test_corrupted_zips_are_read_or_refused_with_export_error(flips: list[tuple[int, int]]) -> None:
    corrupted = bytearray(VALID_ZIP)
    for offset, value in flips:
        corrupted[offset] = value
    opens_or_refuses(bytes(corrupted), "export.zip")


@STABLE
@given(st.text(max_size=200), st.sampled_from(["python", "text", "bash"]))
def test_fenced_code_reads_back_unchanged(code: str, language: str) -> None:
    prose, blocks = split_fenced(fence(code, language))
    assert prose == ""
    assert [(block.language, block.code) for block in blocks] == [
        (language, normalise_newlines(code).rstrip("\n"))
    ]
