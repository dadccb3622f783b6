from __future__ import annotations

import pytest

from labmind.indexers.chats import CodeBlock, Conversation, ConversationError, parse_claude

from . import builders as b


def parse(obj: object) -> Conversation:
    return parse_claude(obj, origin="conversations.json: conversation 3")


def test_a_conversation_with_its_fields() -> None:
    conversation = parse(
        b.claude_conversation(
            "c-1",
            b.claude_message("human", b.text_block("How do I pin CUDA?"), uuid="m-1"),
            b.claude_message("assistant", b.text_block("Use CUDA_VISIBLE_DEVICES."), uuid="m-2"),
            name="CUDA pinning",
            created_at="2024-05-01T10:00:00.000000Z",
            updated_at="2024-05-01T11:00:00.5+00:00",
        )
    )
    assert conversation.id == "c-1"
    assert conversation.source == "claude"
    assert conversation.title == "CUDA pinning"
    assert conversation.created == 1714557600.0
    assert conversation.updated == 1714561200.5
    assert conversation.model is None
    assert [(m.id, m.role, m.on_path, m.text) for m in conversation.messages] == [
        ("m-1", "user", True, "How do I pin CUDA?"),
        ("m-2", "assistant", True, "Use CUDA_VISIBLE_DEVICES."),
    ]
    assert conversation.messages[0].created == 1714557600.0


def test_content_text_blocks_are_used_not_the_top_level_text() -> None:
    message = b.claude_message(
        "assistant",
        b.thinking_block("The user probably wants numpy."),
        b.text_block("Here is the fix:\n\n```python\nimport numpy as np\n```"),
        b.tool_result_block("repl", "42"),
        b.text_block("Done."),
        text="The user probably wants numpy.\n\nHere is the fix: ...",
    )
    (parsed,) = parse(b.claude_conversation("c", message)).messages
    assert parsed.text == "Here is the fix:\n\n```python\nimport numpy as np\n```\n\nDone."
    assert "probably wants" not in parsed.text
    assert "42" not in parsed.text
    assert parsed.code_blocks == (CodeBlock("python", "import numpy as np"),)


def test_top_level_text_is_the_fallback_without_content() -> None:
    message = b.claude_message("human", text="Old export\r\nwithout content", with_content=False)
    (parsed,) = parse(b.claude_conversation("c", message)).messages
    assert parsed.text == "Old export\nwithout content"


def test_an_empty_content_list_does_not_fall_back_to_text() -> None:
    message = b.claude_message("assistant", text="thinking mixed in")
    assert parse(b.claude_conversation("c", message)).messages == ()


def test_tool_use_with_code_becomes_a_code_block() -> None:
    message = b.claude_message(
        "assistant",
        b.text_block("Let me compute it."),
        b.tool_use_block("repl", {"code": "console.log(6 * 7)", "language": "javascript"}),
        b.tool_use_block("web_search", {"query": "ijson streaming"}),
        b.tool_use_block("repl", {"code": "   "}),
    )
    (parsed,) = parse(b.claude_conversation("c", message)).messages
    assert parsed.text == "Let me compute it.\n\n```javascript\nconsole.log(6 * 7)\n```"
    assert parsed.code_blocks == (CodeBlock("javascript", "console.log(6 * 7)"),)


def test_artifacts_are_code_blocks_in_their_language() -> None:
    code = "def shuffle_rows(rows, seed):\n    random.Random(seed).shuffle(rows)\n"
    message = b.claude_message(
        "assistant",
        b.text_block("Here is the helper."),
        b.tool_use_block(
            "artifacts",
            {
                "command": "create",
                "type": "application/vnd.ant.code",
                "language": "python",
                "title": "Row shuffling",
                "content": code,
            },
        ),
        b.tool_use_block(
            "artifacts",
            {"command": "create", "type": "application/vnd.ant.react", "content": "<App />"},
        ),
    )
    (parsed,) = parse(b.claude_conversation("c", message)).messages
    assert parsed.code_blocks == (
        CodeBlock("python", code.rstrip("\n")),
        CodeBlock("tsx", "<App />"),
    )
    assert "**Row shuffling**" in parsed.text


def test_attachments_and_files_are_lines_without_their_content() -> None:
    message = b.claude_message(
        "human",
        b.text_block("Why does this fail?"),
        attachments=[
            {
                "file_name": "train.py",
                "file_size": 100,
                "file_type": "text/x-python",
                "extracted_content": "SECRET BODY",
            },
            {"file_name": ""},
            "junk",
        ],
        files=[{"file_name": "plot.png"}, {"file_name": "train.py"}],
    )
    (parsed,) = parse(b.claude_conversation("c", message)).messages
    assert parsed.text == "Why does this fail?\n\n[attachment: train.py]\n[attachment: plot.png]"
    assert "SECRET BODY" not in parsed.text


def test_a_message_with_only_an_attachment_is_kept() -> None:
    message = b.claude_message("human", attachments=[{"file_name": "log.txt"}])
    (parsed,) = parse(b.claude_conversation("c", message)).messages
    assert parsed.text == "[attachment: log.txt]"


def test_messages_that_show_nothing_are_skipped() -> None:
    conversation = parse(
        b.claude_conversation(
            "c",
            b.claude_message("assistant", b.thinking_block("only thinking")),
            b.claude_message("human", b.text_block("   ")),
            b.claude_message("system", b.text_block("system prompt")),
            "not a message",
            None,
            b.claude_message(
                "assistant", {"type": "image", "source": "x"}, {"type": "token_budget"}
            ),
            b.claude_message("assistant", b.text_block("kept")),
        )
    )
    assert [m.text for m in conversation.messages] == ["kept"]


def test_wrong_field_types_are_coerced_or_skipped() -> None:
    conversation = parse(
        b.claude_conversation(
            "c",
            b.claude_message("human", b.text_block("a"), uuid=None, created_at=12),
            b.claude_message("robot", b.text_block("b"), created_at="garbage"),
            {"sender": "assistant", "content": [{"type": "text", "text": 5}, "junk", None]},
            {"sender": "assistant", "content": "not a list", "text": "fallback"},
            name=1234,
            created_at=None,
            updated_at=["nope"],
        )
    )
    assert conversation.title == "1234"
    assert conversation.created is None and conversation.updated is None
    messages = conversation.messages
    assert [(m.role, m.text, m.created) for m in messages] == [
        ("user", "a", 12.0),
        ("tool", "b", None),
        ("assistant", "5", None),
        ("assistant", "fallback", None),
    ]
    assert messages[2].id == "c#2"


def test_a_missing_name_is_untitled() -> None:
    assert parse(b.claude_conversation("c", name="")).title == "Untitled"
    assert parse(b.claude_conversation("c", name=None)).title == "Untitled"


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("text", "conversations.json: conversation 3: not a JSON object"),
        ({"chat_messages": []}, "conversations.json: conversation 3: no conversation id (uuid)"),
        ({"uuid": "u"}, "conversations.json: conversation 3 (id u): chat_messages is missing"),
        (
            {"uuid": "u", "chat_messages": {}},
            "conversations.json: conversation 3 (id u): chat_messages is not a list",
        ),
    ],
)
def test_unusable_conversations_raise_one_line_errors(obj: object, message: str) -> None:
    with pytest.raises(ConversationError) as caught:
        parse(obj)
    assert str(caught.value) == message
