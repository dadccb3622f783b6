from __future__ import annotations

import json
import shutil
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from labmind.indexers.chats import Export, ExportError, open_export, reader, sniff

from . import builders as b

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chats"
REAL = FIXTURES / "conversations.json"
BRANCHING = FIXTURES / "branching-conversation.json"


def read_all(export: Export) -> list[str]:
    return b.ids(export.conversations())


def export_error(path: Path) -> str:
    with pytest.raises(ExportError) as caught:
        open_export(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def chats(count: int, prefix: str = "c") -> list[b.JSON]:
    return [b.simple_chatgpt(f"{prefix}{index}") for index in range(count)]


# Layouts --------------------------------------------------------------------------------------


def test_the_real_export_as_a_single_file(tmp_path: Path) -> None:
    export = open_export(REAL)
    assert export.kind == "chatgpt"
    assert export.total_bytes == REAL.stat().st_size
    assert read_all(export) == ["966da5c4-5bb7-4e4d-ab6d-a7316b96266e"]
    assert export.problems == []
    assert export.bytes_read == export.total_bytes


def test_a_single_conversation_object_is_an_export(tmp_path: Path) -> None:
    single = json.loads(BRANCHING.read_text())[0]
    path = b.write_json(tmp_path / "data.json", single)
    assert sniff(path) == "chatgpt"
    export = open_export(path)
    conversations = list(export.conversations())
    assert [c.id for c in conversations] == ["conv-123"]
    assert len(conversations[0].messages) == 5


def test_a_zip_export_with_odd_name(tmp_path: Path) -> None:
    path = b.write_zip(
        tmp_path / "download (3).zip",
        {
            "conversations.json": chats(3),
            "chat.html": b"<html></html>",
            "user.json": {"id": "user-1"},
            "file-abc.png": b"\x89PNG" + bytes(100),
        },
    )
    assert sniff(path) == "chatgpt"
    export = open_export(path)
    assert export.files == ("conversations.json",)
    assert export.total_bytes == len(b.encode(chats(3)))
    assert read_all(export) == ["c0", "c1", "c2"]
    assert export.bytes_read == export.total_bytes
    assert export.problems == []


def test_a_zip_with_the_export_one_folder_deep(tmp_path: Path) -> None:
    path = b.write_zip(
        tmp_path / "export.zip",
        {
            "data-2024-05-01/conversations.json": [b.simple_claude("k1")],
            "data-2024-05-01/users.json": [],
        },
    )
    assert sniff(path) == "claude"
    export = open_export(path)
    assert export.kind == "claude"
    conversations = list(export.conversations())
    assert [c.id for c in conversations] == ["k1"]
    assert conversations[0].messages[1].code_blocks[0].language == "javascript"


def test_an_unpacked_folder(tmp_path: Path) -> None:
    root = b.write_folder(tmp_path / "chatgpt", {"conversations.json": chats(2), "user.json": {}})
    assert sniff(root) == "chatgpt"
    assert read_all(open_export(root)) == ["c0", "c1"]
    nested = b.write_folder(
        tmp_path / "outer", {"inner/conversations.json": [b.simple_claude("k")]}
    )
    assert sniff(nested) == "claude"
    assert read_all(open_export(nested)) == ["k"]


@pytest.mark.parametrize(
    "manifest",
    [b.manifest_as_list, b.manifest_as_objects, b.manifest_nested],
    ids=["list", "objects", "nested"],
)
def test_shards_in_manifest_order(
    tmp_path: Path, manifest: Callable[[Sequence[str]], object]
) -> None:
    def reversed_manifest(names: Sequence[str]) -> object:
        return manifest(list(reversed(names)))

    files = b.sharded(chats(5), per_shard=2, manifest=reversed_manifest)
    path = b.write_zip(tmp_path / "export.zip", files)
    export = open_export(path)
    assert export.files == (
        "conversations-002.json",
        "conversations-001.json",
        "conversations-000.json",
    )
    assert read_all(export) == ["c4", "c2", "c3", "c0", "c1"]
    assert export.problems == []
    assert export.total_bytes == sum(len(b.encode(files[name])) for name in export.files)


def test_shards_without_a_manifest_sort_by_number(tmp_path: Path) -> None:
    files = b.sharded(chats(12), per_shard=1, manifest=None, width=1)
    root = b.write_folder(tmp_path / "export", files)
    export = open_export(root)
    assert export.files[:3] == (
        "conversations-0.json",
        "conversations-1.json",
        "conversations-2.json",
    )
    assert export.files[-1] == "conversations-11.json"
    assert read_all(export) == [f"c{index}" for index in range(12)]
    assert export.problems == []


def test_an_unusable_manifest_falls_back_to_the_shards(tmp_path: Path) -> None:
    files = b.sharded(chats(3), per_shard=1, manifest=None)
    files["export_manifest.json"] = b"{not json"
    export = open_export(b.write_zip(tmp_path / "export.zip", files))
    assert read_all(export) == ["c0", "c1", "c2"]
    fallback = "reading conversations-NNN.json in number order"
    assert export.problems == [f"export_manifest.json: not valid JSON, ignored; {fallback}"]
    files["export_manifest.json"] = {"version": 2, "files": ["user.json"]}
    export = open_export(b.write_zip(tmp_path / "export2.zip", files))
    assert read_all(export) == ["c0", "c1", "c2"]
    assert export.problems == [f"export_manifest.json: lists no conversation files; {fallback}"]


def test_a_manifest_that_lists_a_missing_shard(tmp_path: Path) -> None:
    files = b.sharded(
        chats(2), per_shard=1, manifest=lambda names: [*names, "conversations-007.json"]
    )
    export = open_export(b.write_folder(tmp_path / "export", files))
    assert read_all(export) == ["c0", "c1"]
    assert export.problems == [
        "export_manifest.json: lists conversations-007.json, which is not in the export"
    ]


def test_shards_not_in_the_manifest_are_still_read(tmp_path: Path) -> None:
    files = b.sharded(chats(3), per_shard=1, manifest=lambda names: [names[1]])
    export = open_export(b.write_zip(tmp_path / "export.zip", files))
    assert read_all(export) == ["c1", "c0", "c2"]


def test_the_top_folder_wins_over_subfolders(tmp_path: Path) -> None:
    root = b.write_folder(
        tmp_path / "export",
        {"conversations.json": chats(1, "top"), "old/conversations.json": chats(1, "old")},
    )
    assert read_all(open_export(root)) == ["top0"]


# Sniffing and refusing ------------------------------------------------------------------------


def test_sniff_recognises_by_content(tmp_path: Path) -> None:
    assert sniff(REAL) == "chatgpt"
    assert sniff(Path(shutil.copy(REAL, tmp_path / "data.json"))) == "chatgpt"
    assert sniff(b.write_json(tmp_path / "x.txt", [b.simple_claude("k")])) == "claude"
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf \n" + b.encode(chats(1)))
    assert sniff(bom) == "chatgpt"
    assert read_all(open_export(bom)) == ["c0"]


def test_sniff_rejects_what_is_not_an_export(tmp_path: Path) -> None:
    cases = {
        "missing": tmp_path / "missing.zip",
        "empty file": b.write_json(tmp_path / "empty.json", b""),
        "other json": b.write_json(
            tmp_path / "conversations.json", [{"title": "x", "messages": []}]
        ),
        "scalar list": b.write_json(tmp_path / "list.json", [1, 2]),
        "empty list": b.write_json(tmp_path / "none.json", []),
        "garbage": b.write_json(tmp_path / "garbage.json", b"\x00\xff" * 100),
        "other zip": b.write_zip(tmp_path / "code.zip", {"main.py": b"print(1)", "data.json": [1]}),
        "zip of other json": b.write_zip(tmp_path / "x.zip", {"conversations.json": {"a": 1}}),
        "broken zip": b.write_json(tmp_path / "broken.zip", b"PK\x03\x04" + b"\x00" * 50),
        "empty folder": tmp_path / "folder",
        "truncated head": b.write_json(tmp_path / "head.json", b'[{"title": "x", "mapp'),
    }
    (tmp_path / "folder").mkdir()
    for what, path in cases.items():
        assert sniff(path) is None, what


def test_sniff_reads_only_the_start(tmp_path: Path) -> None:
    head = b.encode([b.simple_chatgpt("c0")])[:-1]
    path = b.write_json(tmp_path / "huge.json", head + b"," + b"x" * 2_000_000)
    assert sniff(path) == "chatgpt"


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        (
            "data.json",
            [{"title": "x"}],
            "not a ChatGPT or Claude export: data.json: the first conversation",
        ),
        (
            "data.json",
            b"hello",
            "not a ChatGPT or Claude export: data.json: not a JSON array or object",
        ),
        (
            "data.json",
            [],
            "not a ChatGPT or Claude export: the conversation files hold no conversations",
        ),
        ("data.json", ["text"], "data.json: the first element is not an object"),
        ("data.json", b"[}", "data.json: invalid JSON"),
    ],
)
def test_open_export_refuses_json_that_is_not_an_export(
    tmp_path: Path, name: str, content: object, why: str
) -> None:
    assert why in export_error(b.write_json(tmp_path / name, content))


def test_open_export_refuses_missing_paths_and_foreign_zips(tmp_path: Path) -> None:
    assert export_error(tmp_path / "nope.zip").endswith("no such file or folder")
    foreign = b.write_zip(tmp_path / "code.zip", {"src/main.py": b"print(1)"})
    assert "the zip holds no conversations.json or conversations-NNN.json" in export_error(foreign)
    broken = b.write_json(tmp_path / "broken.zip", b"PK\x05\x06" + b"\x00" * 10)
    assert "not a valid zip file" in export_error(broken)
    (tmp_path / "empty").mkdir()
    assert "the folder holds no conversations.json" in export_error(tmp_path / "empty")


def test_open_export_refuses_a_zip_bomb_by_ratio(tmp_path: Path) -> None:
    zeros = {"conversations.json": b"[" + b" " * 3_000_000 + b"]"}
    path = b.write_zip(tmp_path / "bomb.zip", zeros)
    assert path.stat().st_size < 20_000
    message = export_error(path)
    assert "conversations.json is compressed" in message and "possible zip bomb" in message


def test_open_export_refuses_a_zip_bomb_by_total_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = b.sharded(chats(4), per_shard=1, manifest=None)
    path = b.write_zip(tmp_path / "big.zip", files, compression=zipfile.ZIP_STORED)
    total = sum(len(b.encode(files[f"conversations-{i:03d}.json"])) for i in range(4))
    monkeypatch.setattr(reader, "MAX_TOTAL_BYTES", total - 1)
    assert "would unpack to more than" in export_error(path)
    monkeypatch.setattr(reader, "MAX_TOTAL_BYTES", total)
    assert len(read_all(open_export(path))) == 4


def test_small_members_are_not_held_to_the_ratio(tmp_path: Path) -> None:
    conversation = b.simple_chatgpt("c0", words="same words " * 5000)
    path = b.write_zip(tmp_path / "export.zip", {"conversations.json": [conversation] * 3})
    assert read_all(open_export(path)) == ["c0", "c0", "c0"]


def declare_smaller(zipped: bytes, declared: int) -> bytes:
    """A one-member stored zip whose headers claim ``declared`` uncompressed bytes."""
    data = bytearray(zipped)
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # central directory entry
    struct.pack_into("<I", data, 22, declared)  # local header
    return bytes(data)


def test_a_member_that_holds_more_than_it_declares_is_cut_off(tmp_path: Path) -> None:
    content = b.encode([b.simple_chatgpt(f"c{i}", words="w" * 100_000) for i in range(6)])
    declared = 2 * len(content) // 3
    zipped = b.zip_bytes({"conversations.json": content}, compression=zipfile.ZIP_STORED)
    path = tmp_path / "liar.zip"
    path.write_bytes(declare_smaller(zipped, declared))
    export = open_export(path)
    assert export.total_bytes == declared
    found = read_all(export)
    assert 0 < len(found) < 4
    assert found == [f"c{i}" for i in range(len(found))]
    (problem,) = export.problems
    assert problem.startswith(f"conversations.json: unreadable after {len(found)} conversations: ")
    assert export.bytes_read <= declared


def test_a_small_member_that_lies_about_its_size_is_refused(tmp_path: Path) -> None:
    zipped = b.zip_bytes({"conversations.json": chats(2)}, compression=zipfile.ZIP_STORED)
    path = tmp_path / "liar.zip"
    path.write_bytes(declare_smaller(zipped, 100))
    assert "Bad CRC-32 for file 'conversations.json'" in export_error(path)


# Damage ---------------------------------------------------------------------------------------


def test_truncated_shards_keep_what_came_before(tmp_path: Path) -> None:
    files = b.sharded(chats(6), per_shard=3, manifest=None)
    first = b.encode(files["conversations-000.json"])
    cut = first.index(b'"c2"')
    files["conversations-000.json"] = first[:cut]
    export = open_export(b.write_folder(tmp_path / "export", files))
    assert read_all(export) == ["c0", "c1", "c3", "c4", "c5"]
    assert export.problems == ["conversations-000.json: truncated JSON after 2 conversations"]


def test_garbage_after_the_array_is_one_problem(tmp_path: Path) -> None:
    path = b.write_json(tmp_path / "conversations.json", b.encode(chats(2)) + b" trailing")
    export = open_export(path)
    assert read_all(export) == ["c0", "c1"]
    (problem,) = export.problems
    assert problem.startswith("conversations.json: invalid JSON after 2 conversations: ")


def test_a_bad_conversation_is_a_problem_and_the_rest_is_kept(tmp_path: Path) -> None:
    odd = b.ChatGPTTree("odd", title=3.5, create_time="when")
    odd.add("user", {"content_type": "hologram", "beams": 3})
    odd.add("user", None)
    odd.say("assistant", "survivor")
    conversations: list[object] = [*chats(4), odd.build()]
    conversations[1] = {"id": "abc", "mapping": ["not", "an", "object"]}
    conversations[2] = "just a string"
    path = b.write_json(tmp_path / "conversations.json", conversations)
    export = open_export(path)
    found = list(export.conversations())
    assert [c.id for c in found] == ["c0", "c3", "odd"]
    assert export.problems == [
        "conversations.json: conversation 2 (id abc): mapping is not an object",
        "conversations.json: conversation 3: not a JSON object",
    ]
    assert found[-1].title == "3.5"
    assert [m.text for m in found[-1].messages] == ["survivor"]


def test_an_unreadable_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(shutil.copy(REAL, tmp_path / "conversations.json"))
    real_open = Path.open

    def locked(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", locked)
    assert sniff(path) is None
    assert export_error(path).endswith(f"cannot read: [Errno 13] Permission denied: '{path}'")


def test_problems_start_afresh_with_each_reading(tmp_path: Path) -> None:
    path = b.write_json(tmp_path / "conversations.json", b.encode(chats(2))[:-5])
    export = open_export(path)
    assert read_all(export) == ["c0"]
    assert read_all(export) == ["c0"]
    assert export.problems == ["conversations.json: truncated JSON after 1 conversations"]


def test_a_shard_that_disappears_is_a_problem(tmp_path: Path) -> None:
    root = b.write_folder(tmp_path / "export", b.sharded(chats(2), per_shard=1, manifest=None))
    export = open_export(root)
    (root / "conversations-001.json").unlink()
    assert read_all(export) == ["c0"]
    (problem,) = export.problems
    assert problem.startswith(
        "conversations-001.json: unreadable after 0 conversations: FileNotFoundError"
    )


# Streaming ------------------------------------------------------------------------------------


def test_conversations_stream_with_progress(tmp_path: Path) -> None:
    path = tmp_path / "conversations.json"
    count = b.write_large_chatgpt_export(path, target_bytes=3_000_000)
    export = open_export(path)
    stream = export.conversations()
    next(stream)
    early = export.bytes_read
    assert 0 < early < export.total_bytes / 10
    assert sum(1 for _ in stream) == count - 1
    assert export.bytes_read == export.total_bytes


def test_memory_stays_bounded_for_a_large_export(tmp_path: Path) -> None:
    path = tmp_path / "conversations.zip"
    big = tmp_path / "conversations.json"
    count = b.write_large_chatgpt_export(big, target_bytes=30_000_000)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(big, "conversations.json")
    size = big.stat().st_size
    big.unlink()
    tracemalloc.start()
    try:
        export = open_export(path)
        seen = sum(len(c.messages) for c in export.conversations())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 30_000_000
    assert seen == count * 10
    assert export.problems == []
    assert peak < 10_000_000, f"peak {peak} bytes for a {size} byte export"
