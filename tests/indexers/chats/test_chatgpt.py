from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from labmind.indexers.chats import (
    ChatMessage,
    CodeBlock,
    Conversation,
    ConversationError,
    parse_chatgpt,
)

from . import builders as b

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chats"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def parse(obj: object) -> Conversation:
    return parse_chatgpt(obj, origin="test.json: conversation 1")


def only(tree: b.ChatGPTTree) -> ChatMessage:
    """The single message a tree with one added node renders to."""
    messages = parse(tree.build()).messages
    assert len(messages) == 1, messages
    return messages[0]


def nothing_from(content: object, role: str = "assistant", **options: Any) -> bool:
    tree = b.ChatGPTTree()
    tree.add(role, content, **options)
    return parse(tree.build()).messages == ()


# The real export ------------------------------------------------------------------------------


def test_the_real_code_interpreter_export() -> None:
    raw = load("conversations.json")[0]
    conversation = parse(raw)
    assert conversation.id == "966da5c4-5bb7-4e4d-ab6d-a7316b96266e"
    assert conversation.source == "chatgpt"
    assert conversation.title == "Average Distance in U(0,1)"
    assert conversation.created == pytest.approx(1695326273.968528)
    assert conversation.updated == pytest.approx(1695370984.0)
    assert conversation.model is None

    nodes = raw["mapping"]
    system = {
        k for k, n in nodes.items() if n["message"] and n["message"]["author"]["role"] == "system"
    }
    null = {k for k, n in nodes.items() if n["message"] is None}
    coded = [
        k
        for k, n in nodes.items()
        if n["message"] and n["message"]["content"]["content_type"] == "code"
    ]
    assert len(nodes) == 45 and len(system) == 2 and len(null) == 1
    messages = conversation.messages
    assert len(messages) == 42
    assert all(m.on_path for m in messages)
    assert {m.id for m in messages}.isdisjoint(system | null)
    assert [m.created for m in messages] == sorted(m.created or 0 for m in messages)

    code_messages = [m for m in messages if m.id in coded]
    assert len(code_messages) == len(coded) == 11
    for message in code_messages:
        assert message.role == "assistant"
        assert len(message.code_blocks) == 1
        assert message.code_blocks[0].language == "python"
        assert message.text.startswith("```python\n")
        assert "\r" not in message.text
    assert (
        code_messages[0]
        .code_blocks[0]
        .code.startswith("from sympy import symbols, integrate, Abs\n")
    )

    outputs = [m for m in messages if m.role == "tool"]
    assert len(outputs) == 11
    assert outputs[0].text == "```output\n0\n```"
    assert all(m.text.startswith("```output\n") and m.code_blocks == () for m in outputs)
    assert "1/3" in outputs[2].text

    assert messages[0].role == "user"
    assert messages[0].text.startswith("given two random independent variables")
    assert messages[-1].id == raw["current_node"]


def test_the_branching_sample_follows_current_node() -> None:
    raw = load("branching-conversation.json")[0]
    conversation = parse(raw)
    assert conversation.title == "Sample conversation with branch"
    assert [(m.id, m.role, m.on_path) for m in conversation.messages] == [
        ("msg-2", "user", True),
        ("msg-3", "assistant", True),
        ("msg-4", "user", True),
        ("msg-6", "assistant", True),
        ("msg-5", "user", False),
    ]
    assert [m.id for m in conversation.displayed] == ["msg-2", "msg-3", "msg-4", "msg-6"]
    (block,) = conversation.messages[3].code_blocks
    assert block.language == "javascript"
    assert block.code.startswith("function greet(name) {")


def test_selecting_the_other_branch() -> None:
    raw = load("branching-conversation.json")[0]
    raw["current_node"] = "msg-5"
    messages = parse(raw).messages
    assert [(m.id, m.on_path) for m in messages] == [
        ("msg-2", True),
        ("msg-3", True),
        ("msg-5", True),
        ("msg-4", False),
        ("msg-6", False),
    ]


@pytest.mark.parametrize("current", [None, "no-such-node", 17, ["msg-5"]])
def test_without_a_usable_current_node_the_newest_leaf_is_displayed(current: object) -> None:
    raw = load("branching-conversation.json")[0]
    raw["current_node"] = current
    assert [m.id for m in parse(raw).displayed] == ["msg-2", "msg-3", "msg-4", "msg-6"]
    raw["mapping"]["msg-5"]["message"]["create_time"] = 1704067600
    assert [m.id for m in parse(raw).displayed] == ["msg-2", "msg-3", "msg-5"]


# Trees ----------------------------------------------------------------------------------------


def test_other_branches_come_depth_first_in_children_order() -> None:
    tree = b.ChatGPTTree()
    q = tree.say("user", "q")
    a1 = tree.say("assistant", "first answer")
    tree.say("user", "follow-up on first")
    a2 = tree.say("assistant", "second answer", parent=q)
    a3 = tree.say("assistant", "third answer", parent=q)
    tree.say("user", "follow-up on third")
    conversation = parse(tree.build(current_node=a2))
    texts = [(m.text, m.on_path) for m in conversation.messages]
    assert texts == [
        ("q", True),
        ("second answer", True),
        ("first answer", False),
        ("follow-up on first", False),
        ("third answer", False),
        ("follow-up on third", False),
    ]
    assert a1 != a3


def test_a_cycle_of_parents_does_not_hang() -> None:
    tree = b.ChatGPTTree()
    first = tree.say("user", "one")
    second = tree.say("assistant", "two")
    tree.mapping[first]["parent"] = second
    tree.mapping[second]["children"].append(first)
    conversation = parse(tree.build(current_node=second))
    assert sorted(m.text for m in conversation.messages) == ["one", "two"]
    assert len(conversation.messages) == 2


def test_children_and_parents_that_point_nowhere_are_ignored() -> None:
    tree = b.ChatGPTTree()
    tree.say("user", "hello")
    tree.mapping["root"]["children"] += ["ghost", 42, None]
    node = tree.say("assistant", "hi")
    tree.mapping[node]["parent"] = "ghost"
    conversation = parse(tree.build())
    assert [m.text for m in conversation.displayed] == ["hi"]
    assert [m.text for m in conversation.messages] == ["hi", "hello"]


def test_a_very_deep_conversation_is_not_a_recursion_problem() -> None:
    tree = b.ChatGPTTree()
    for index in range(5000):
        tree.say("user" if index % 2 == 0 else "assistant", f"message {index}")
    conversation = parse(tree.build())
    assert len(conversation.messages) == 5000
    assert conversation.messages[-1].text == "message 4999"


# Content types --------------------------------------------------------------------------------


def test_text_parts_are_joined() -> None:
    tree = b.ChatGPTTree()
    tree.say("user", "first part", "", "second part")
    assert only(tree).text == "first part\n\nsecond part"


def test_multimodal_text_renders_images_as_placeholders() -> None:
    tree = b.ChatGPTTree()
    tree.add(
        "user",
        b.multimodal(
            b.image_part("file-XYZ"),
            "What does this plot show?",
            {"content_type": "audio_transcription", "text": "spoken words"},
            {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://file_1"},
            {"content_type": "file_pointer", "name": "data.csv"},
            12345,
        ),
    )
    message = only(tree)
    assert message.text == (
        "[image: file-XYZ]\n\nWhat does this plot show?\n\nspoken words\n\n[attachment: data.csv]"
    )


def test_code_uses_its_language_field() -> None:
    tree = b.ChatGPTTree()
    tree.add("assistant", b.code("const x = 1;", language="javascript"), recipient="all")
    message = only(tree)
    assert message.code_blocks == (CodeBlock("javascript", "const x = 1;"),)
    assert message.text == "```javascript\nconst x = 1;\n```"


def test_code_with_an_unknown_language_takes_the_recipient() -> None:
    tree = b.ChatGPTTree()
    tree.add("assistant", b.code("import numpy as np\r\nnp.zeros(3)\r\n"), recipient="python")
    message = only(tree)
    assert message.role == "assistant"
    assert message.code_blocks == (CodeBlock("python", "import numpy as np\nnp.zeros(3)"),)


def test_code_sent_to_a_browser_tool_is_plain_text_code() -> None:
    tree = b.ChatGPTTree()
    tree.add("assistant", b.code('search("pytorch nan loss")'), recipient="browser")
    assert only(tree).code_blocks == (CodeBlock("text", 'search("pytorch nan loss")'),)


def test_execution_output_is_a_tool_output_fence() -> None:
    tree = b.ChatGPTTree()
    tree.add("tool", b.execution_output("Traceback ...\nValueError: bad"), author_name="python")
    message = only(tree)
    assert message.role == "tool"
    assert message.text == "```output\nTraceback ...\nValueError: bad\n```"
    assert message.code_blocks == ()


def test_execution_output_that_holds_backticks_stays_one_fence() -> None:
    tree = b.ChatGPTTree()
    tree.add("tool", b.execution_output("```\nweird\n```"))
    assert only(tree).text == "````output\n```\nweird\n```\n````"


def test_browsing_display_is_kept_only_with_text() -> None:
    assert nothing_from(b.browsing_display(""), role="tool")
    tree = b.ChatGPTTree()
    tree.add("tool", b.browsing_display("Result: PyTorch 2.3 released", "summary here"))
    message = only(tree)
    assert message.role == "tool"
    assert message.text == "Result: PyTorch 2.3 released\n\nsummary here"


def test_tether_quote_keeps_the_text_title_and_url() -> None:
    tree = b.ChatGPTTree()
    tree.add(
        "tool",
        b.quote(
            "Use torch.compile\nfor speed.", url="https://pytorch.org/docs", title="PyTorch docs"
        ),
    )
    message = only(tree)
    assert message.text == (
        "Quote from [PyTorch docs](https://pytorch.org/docs):\n\n> Use torch.compile\n> for speed."
    )


def test_system_error_is_a_tool_message_starting_with_error() -> None:
    tree = b.ChatGPTTree()
    tree.add("assistant", b.system_error("ChatGPTError", "Something went wrong."))
    message = only(tree)
    assert message.role == "tool"
    assert message.text == "Error: ChatGPTError: Something went wrong."


@pytest.mark.parametrize(
    "content",
    [
        b.thoughts("plan", "check"),
        b.reasoning_recap(),
        b.user_context(),
        b.model_context(),
    ],
    ids=["thoughts", "reasoning_recap", "user_editable_context", "model_editable_context"],
)
def test_hidden_content_types_are_skipped(content: object) -> None:
    assert nothing_from(content)
    assert nothing_from(content, role="user")


def test_hidden_plumbing_is_skipped() -> None:
    assert nothing_from(b.text("You are ChatGPT."), role="system")
    assert nothing_from(
        b.text("visible words"), metadata={"is_visually_hidden_from_conversation": True}
    )
    assert nothing_from(b.text(""))
    assert nothing_from(b.text("   \n"))
    assert nothing_from(b.text(), recipient="browser")


def test_null_messages_and_messages_without_content_are_skipped() -> None:
    tree = b.ChatGPTTree()
    node = tree.say("user", "x")
    tree.mapping[node]["message"] = None
    tree.say("assistant", "kept")
    empty = tree.add("assistant", None)
    del tree.mapping[empty]["message"]["content"]
    assert [m.text for m in parse(tree.build()).messages] == ["kept"]


def test_unknown_content_types_keep_their_text_or_are_skipped() -> None:
    tree = b.ChatGPTTree()
    tree.add("assistant", {"content_type": "future_widget", "text": "widget says hi"})
    tree.add("assistant", {"content_type": "future_cards", "parts": ["card text"]})
    tree.add("assistant", {"content_type": "future_blob", "blob": [1, 2, 3]})
    assert [m.text for m in parse(tree.build()).messages] == ["widget says hi", "card text"]


def test_attachments_become_lines_even_without_text() -> None:
    tree = b.ChatGPTTree()
    tree.say(
        "user",
        "Please look at these.",
        metadata={"attachments": [{"id": "file-1", "name": "train.py"}, {"id": "file-2"}, "junk"]},
    )
    tree.say("user", "", metadata={"attachments": [{"name": "data.csv", "size": 10}]})
    messages = parse(tree.build()).messages
    assert (
        messages[0].text == "Please look at these.\n\n[attachment: train.py]\n[attachment: file-2]"
    )
    assert messages[1].text == "[attachment: data.csv]"


def test_fenced_code_in_text_becomes_code_blocks() -> None:
    tree = b.ChatGPTTree()
    tree.say("assistant", "Run:\n```sh\npip install ijson\n```\nand\n```py\nimport ijson\n```")
    assert only(tree).code_blocks == (
        CodeBlock("bash", "pip install ijson"),
        CodeBlock("python", "import ijson"),
    )


def test_unknown_author_roles_are_tool_messages() -> None:
    tree = b.ChatGPTTree()
    tree.say("critic", "looks fine")
    tree.add("assistant", b.text("no author"))
    del tree.mapping[tree.last]["message"]["author"]
    assert [m.role for m in parse(tree.build()).messages] == ["tool", "tool"]


# Conversation fields and wrong types ----------------------------------------------------------


def test_model_slug_and_timestamps() -> None:
    tree = b.ChatGPTTree(
        model="gpt-4o", create_time="1700000000.5", update_time="2024-01-02T03:04:05Z"
    )
    tree.say("user", "hi", create_time="2023-11-14T22:13:20+00:00")
    conversation = parse(tree.build())
    assert conversation.model == "gpt-4o"
    assert conversation.created == 1700000000.5
    assert conversation.updated == 1704164645.0
    assert conversation.messages[0].created == 1700000000.0


@pytest.mark.parametrize(
    ("title", "expected"),
    [(42, "42"), (None, "Untitled"), ("", "Untitled"), ("  ", "Untitled"), ([], "Untitled")],
)
def test_odd_titles(title: object, expected: str) -> None:
    assert parse(b.ChatGPTTree(title=title).build()).title == expected


def test_wrong_field_types_cost_at_most_their_message() -> None:
    tree = b.ChatGPTTree(create_time="yesterday", update_time=True, model=None)
    tree.say("user", "kept 1", create_time="not a time")
    tree.say("user", "odd time 1", create_time=Decimal("sNaN"))
    tree.say("user", "odd time 2", create_time=10**400)
    tree.say("user", "odd time 3", create_time=float("nan"))
    tree.add("assistant", {"content_type": "text", "parts": {"0": "dict parts"}})
    tree.add("assistant", {"content_type": "text", "parts": "a bare string part"})
    tree.add("assistant", "content is a string")
    tree.add("assistant", {"content_type": 7, "parts": ["numeric content type"]})
    tree.add("assistant", b.code(["not", "a", "string"]))
    tree.add("assistant", b.text("kept 2"), metadata=["not", "a", "dict"])
    tree.mapping["broken"] = "not a node"  # type: ignore[assignment]
    tree.mapping[tree.last]["children"] = "nope"
    conversation = parse(tree.build())
    assert conversation.created is None and conversation.updated is None
    assert [m.text for m in conversation.messages] == [
        "kept 1",
        "odd time 1",
        "odd time 2",
        "odd time 3",
        "a bare string part",
        "numeric content type",
        "kept 2",
    ]
    assert [m.created for m in conversation.messages[:4]] == [None] * 4


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "test.json: conversation 1: not a JSON object"),
        ({"mapping": {}}, "test.json: conversation 1: no conversation id (conversation_id or id)"),
        (
            {"id": "", "mapping": {}},
            "test.json: conversation 1: no conversation id (conversation_id or id)",
        ),
        ({"id": "abc"}, "test.json: conversation 1 (id abc): mapping is missing"),
        (
            {"id": "abc", "mapping": []},
            "test.json: conversation 1 (id abc): mapping is not an object",
        ),
    ],
)
def test_unusable_conversations_raise_one_line_errors(obj: object, message: str) -> None:
    with pytest.raises(ConversationError) as caught:
        parse(obj)
    assert str(caught.value) == message


def test_conversation_id_wins_over_id_and_an_integer_id_is_accepted() -> None:
    assert parse({"conversation_id": "c", "id": "i", "mapping": {}}).id == "c"
    assert parse({"id": 12, "mapping": {}}).id == "12"
    assert parse({"id": 12, "mapping": {}}).messages == ()
