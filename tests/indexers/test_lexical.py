from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from labmind.indexers.lexical import (
    META_FILE,
    LexicalDoc,
    LexicalHit,
    LexicalIndex,
    LexicalIndexError,
)

REBUILD = "labmind index --rebuild"


def doc(
    chunk_id: int,
    path: str,
    body: str,
    *,
    symbol: str = "",
    kind: str = "code",
    language: str = "python",
    mtime: int = 0,
) -> LexicalDoc:
    return LexicalDoc(
        chunk_id=chunk_id,
        path=path,
        kind=kind,
        language=language,
        mtime=mtime,
        body=f"{path}\n{body}",
        symbol=symbol,
        path_text=path,
    )


def ids(hits: list[LexicalHit]) -> list[int]:
    return [hit.chunk_id for hit in hits]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[LexicalIndex]:
    lexical = LexicalIndex.create(tmp_path / "lexical")
    yield lexical
    lexical.close()


def test_finds_committed_chunks_only(index: LexicalIndex) -> None:
    index.replace_file("/p/a.py", [doc(1, "/p/a.py", "def tokenize(text): ...")])
    assert index.search("tokenize", 10) == []
    index.commit()
    hits = index.search("tokenize", 10)
    assert ids(hits) == [1]
    assert hits[0].score > 0
    assert index.doc_count() == 1


def test_replace_file_is_idempotent(index: LexicalIndex) -> None:
    docs = [doc(1, "/p/a.py", "alpha"), doc(2, "/p/a.py", "alpha beta")]
    index.replace_file("/p/a.py", docs)
    index.replace_file("/p/a.py", docs)
    index.commit()
    index.replace_file("/p/a.py", docs)
    index.commit()
    assert index.doc_count() == 2
    assert sorted(ids(index.search("alpha", 10))) == [1, 2]


def test_replace_file_drops_chunks_that_are_gone(index: LexicalIndex) -> None:
    index.replace_file("/p/a.py", [doc(1, "/p/a.py", "alpha"), doc(2, "/p/a.py", "beta")])
    index.replace_file("/p/b.py", [doc(3, "/p/b.py", "beta")])
    index.commit()
    index.replace_file("/p/a.py", [doc(4, "/p/a.py", "gamma")])
    index.commit()
    assert ids(index.search("beta", 10)) == [3]
    assert ids(index.search("gamma", 10)) == [4]
    assert index.search("alpha", 10) == []


def test_delete_file(index: LexicalIndex) -> None:
    index.replace_file("/p/a.py", [doc(1, "/p/a.py", "shared")])
    index.replace_file("/p/b.py", [doc(2, "/p/b.py", "shared")])
    index.commit()
    index.delete_file("/p/a.py")
    index.commit()
    assert ids(index.search("shared", 10)) == [2]


def test_delete_prefix_removes_the_folder_and_nothing_beside_it(index: LexicalIndex) -> None:
    paths = {
        1: "/w/proj/a.py",
        2: "/w/proj/sub/b.py",
        3: "/w/projects/c.py",
        4: "/w/proj",
        5: "/w/proj+x (1)/d.py",
        6: "/w/proj+x (1)/e.py",
        7: "/w/proj+xy/f.py",
    }
    for chunk_id, path in paths.items():
        index.replace_file(path, [doc(chunk_id, path, "shared")])
    index.commit()
    index.delete_prefix("/w/proj/")
    index.delete_prefix("/w/proj+x (1)")
    index.commit()
    assert sorted(ids(index.search("shared", 10))) == [3, 4, 7]


def test_filters(index: LexicalIndex) -> None:
    index.replace_file(
        "/p/a.py", [doc(1, "/p/a.py", "loss spike", kind="code", language="python", mtime=100)]
    )
    index.replace_file(
        "/p/b.rs", [doc(2, "/p/b.rs", "loss spike", kind="code", language="rust", mtime=200)]
    )
    index.replace_file("chat:1", [doc(3, "chat:1", "loss spike", kind="chat", mtime=300)])
    index.commit()
    assert sorted(ids(index.search("loss", 10))) == [1, 2, 3]
    assert sorted(ids(index.search("loss", 10, kinds=["code"]))) == [1, 2]
    assert sorted(ids(index.search("loss", 10, kinds=["chat", "run"]))) == [3]
    assert ids(index.search("loss", 10, languages=["rust"])) == [2]
    assert sorted(ids(index.search("loss", 10, since=200))) == [2, 3]
    assert ids(index.search("loss", 10, kinds=["code"], since=150)) == [2]
    assert index.search("loss", 10, kinds=["lesson"]) == []
    assert sorted(ids(index.search("loss", 10, kinds="chat"))) == [3]


def test_filters_do_not_change_scores(index: LexicalIndex) -> None:
    index.replace_file("/p/a.py", [doc(1, "/p/a.py", "loss spike loss")])
    index.replace_file("/p/b.py", [doc(2, "/p/b.py", "loss")])
    index.commit()
    plain = index.search("loss spike", 10)
    filtered = index.search("loss spike", 10, kinds=["code"], languages=["python"], since=0)
    assert plain == filtered


def test_limit(index: LexicalIndex) -> None:
    index.replace_file("/p/a.py", [doc(i, "/p/a.py", "common") for i in range(20)])
    index.commit()
    assert len(index.search("common", 5)) == 5
    assert index.search("common", 0) == []


def test_symbol_named_in_the_query_ranks_first(index: LexicalIndex) -> None:
    callers = "\n".join("    data = read_file(path)" for _ in range(8))
    index.replace_file(
        "/p/io.py",
        [
            doc(1, "/p/io.py", f"def load_all(paths):\n{callers}", symbol="load_all"),
            doc(
                2,
                "/p/io.py",
                "def read_file(path):\n    return open(path).read()",
                symbol="read_file",
            ),
            doc(3, "/p/io.py", "def file_reader(): ...", symbol="file_reader"),
        ],
    )
    index.commit()
    for query in ("read_file", "readFile", "def read_file("):
        assert ids(index.search(query, 10))[0] == 2, query


def test_identifier_parts_and_stems_match(index: LexicalIndex) -> None:
    index.replace_file(
        "/p/server.py",
        [doc(1, "/p/server.py", "class HTTPServer:\n    pass", symbol="HTTPServer")],
    )
    index.replace_file(
        "/p/io.py", [doc(2, "/p/io.py", "def read_file(path): ...", symbol="read_file")]
    )
    index.commit()
    assert ids(index.search("http server", 10)) == [1]
    assert ids(index.search("httpserver", 10)) == [1]
    assert ids(index.search("how to read files", 10)) == [2]
    assert ids(index.search("reading", 10)) == [2]


def test_path_matches(index: LexicalIndex) -> None:
    index.replace_file("/p/tokenizers/bpe.py", [doc(1, "/p/tokenizers/bpe.py", "x = 1")])
    index.replace_file("/p/other.py", [doc(2, "/p/other.py", "y = 2")])
    index.commit()
    assert ids(index.search("tokenizer", 10)) == [1]
    assert ids(index.search("bpe", 10)) == [1]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "foo(",
        '"',
        '"unterminated phrase',
        "AND",
        "a AND OR NOT b",
        "a:b",
        "body:foo",
        "*",
        "foo*",
        "()[]{}^~!@#$%&*",
        "+-",
        "\\",
        "~2",
        "title:[a TO z]",
        "x" * 5000,
        " ".join(f"w{i}" for i in range(500)),
        "\x00\n\t",
        "🙂 ünïcödé",
    ],
)
def test_odd_queries_never_raise(index: LexicalIndex, query: str) -> None:
    index.replace_file("/p/a.py", [doc(1, "/p/a.py", "def foo(a, b): return a and b")])
    index.commit()
    hits = index.search(query, 10)
    assert all(isinstance(hit, LexicalHit) for hit in hits)


def test_queries_with_code_syntax_find_the_code(index: LexicalIndex) -> None:
    index.replace_file("/p/a.py", [doc(1, "/p/a.py", "def foo(a, b): return a and b")])
    index.commit()
    assert ids(index.search("foo(", 10)) == [1]
    assert ids(index.search("a:b", 10)) == [1]
    assert index.search("()[]{}", 10) == []


def test_searches_see_whole_commits_while_the_writer_writes(index: LexicalIndex) -> None:
    def version(n: int) -> list[LexicalDoc]:
        return [doc(n * 10 + i, "/p/hot.py", f"stable generation{n}") for i in range(3)]

    index.replace_file("/p/hot.py", version(0))
    index.commit()
    rounds = 15
    readers = 4
    start = threading.Barrier(readers + 1)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def read() -> None:
        try:
            start.wait()
            searches = 0
            while not done.is_set() or searches == 0:
                hits = index.search("stable", 50)
                assert len(hits) == 3, ids(hits)
                assert len({hit.chunk_id // 10 for hit in hits}) == 1, ids(hits)
                searches += 1
            seen.append(searches)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(readers)]
    for thread in threads:
        thread.start()
    start.wait()
    try:
        for n in range(1, rounds + 1):
            index.replace_file("/p/hot.py", version(n))
            index.replace_file(f"/p/cold{n}.py", [doc(10_000 + n, f"/p/cold{n}.py", "filler")])
            index.commit()
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(seen) == readers
    assert sorted(ids(index.search("stable", 10))) == [
        rounds * 10,
        rounds * 10 + 1,
        rounds * 10 + 2,
    ]
    assert index.doc_count() == 3 + rounds


def test_reopen_after_close_keeps_docs(tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    first = LexicalIndex.create(folder)
    first.replace_file("/p/a.py", [doc(1, "/p/a.py", "persisted")])
    first.commit()
    first.replace_file("/p/b.py", [doc(2, "/p/b.py", "persisted")])
    first.close()
    with LexicalIndex.open(folder) as again:
        assert again.doc_count() == 2
        assert sorted(ids(again.search("persisted", 10))) == [1, 2]
        again.delete_file("/p/a.py")
    with LexicalIndex.open_or_create(folder) as third:
        assert ids(third.search("persisted", 10)) == [2]


def test_closed_index_refuses_writes(index: LexicalIndex) -> None:
    index.close()
    with pytest.raises(LexicalIndexError, match="closed"):
        index.delete_file("/p/a.py")


def test_one_writer_per_folder(tmp_path: Path) -> None:
    with LexicalIndex.create(tmp_path / "lexical") as first:
        first.delete_file("/p/a.py")
        with (
            LexicalIndex.open(tmp_path / "lexical") as second,
            pytest.raises(LexicalIndexError, match="cannot write"),
        ):
            second.delete_file("/p/a.py")


def test_open_or_create_creates_in_missing_or_empty_folders(tmp_path: Path) -> None:
    with LexicalIndex.open_or_create(tmp_path / "missing" / "lexical") as created:
        assert created.doc_count() == 0
    (tmp_path / "empty").mkdir()
    with LexicalIndex.open_or_create(tmp_path / "empty") as created:
        assert created.doc_count() == 0
    assert json.loads((tmp_path / "empty" / META_FILE).read_text()) == {"schema_version": 1}


def test_create_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LexicalIndexError, match="not empty"):
        LexicalIndex.create(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("meta", ['{"schema_version": 999}', '{"schema_version": true}', "{", ""])
def test_other_schema_version_needs_a_rebuild(tmp_path: Path, meta: str) -> None:
    folder = tmp_path / "lexical"
    LexicalIndex.create(folder).close()
    (folder / META_FILE).write_text(meta)
    with pytest.raises(LexicalIndexError, match=REBUILD):
        LexicalIndex.open(folder)
    with pytest.raises(LexicalIndexError, match=REBUILD):
        LexicalIndex.open_or_create(folder)


def test_missing_version_file_needs_a_rebuild(tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    LexicalIndex.create(folder).close()
    (folder / META_FILE).unlink()
    with pytest.raises(LexicalIndexError, match=REBUILD):
        LexicalIndex.open(folder)


def test_garbage_folder_needs_a_rebuild_and_destroy_and_create_recovers(tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    folder.mkdir()
    (folder / "meta.json").write_text("not json at all {")
    (folder / META_FILE).write_text('{"schema_version": 1}')
    (folder / "junk.bin").write_bytes(bytes(range(256)))
    with pytest.raises(LexicalIndexError, match=REBUILD):
        LexicalIndex.open_or_create(folder)
    with LexicalIndex.destroy_and_create(folder) as rebuilt:
        assert rebuilt.doc_count() == 0
        assert not (folder / "junk.bin").exists()
        rebuilt.replace_file("/p/a.py", [doc(1, "/p/a.py", "fresh")])
        rebuilt.commit()
        assert ids(rebuilt.search("fresh", 10)) == [1]
    with LexicalIndex.open(folder) as reopened:
        assert reopened.doc_count() == 1


def test_damaged_segments_need_a_rebuild(tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    with LexicalIndex.create(folder) as lexical:
        lexical.replace_file("/p/a.py", [doc(1, "/p/a.py", "data")])
    for segment_file in folder.glob("*.term"):
        segment_file.write_bytes(b"xx")
    with pytest.raises(LexicalIndexError, match=REBUILD):
        LexicalIndex.open(folder)


def test_foreign_tantivy_index_needs_a_rebuild(tmp_path: Path) -> None:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("title", stored=True)
    foreign = tantivy.Index(builder.build(), path=str(tmp_path))
    foreign.writer().commit()
    with pytest.raises(LexicalIndexError, match=REBUILD):
        LexicalIndex.open_or_create(tmp_path)
    (tmp_path / META_FILE).write_text('{"schema_version": 1}')
    with pytest.raises(LexicalIndexError, match="another schema"):
        LexicalIndex.open(tmp_path)


def test_destroy_and_create_on_a_missing_folder(tmp_path: Path) -> None:
    with LexicalIndex.destroy_and_create(tmp_path / "new") as created:
        assert created.doc_count() == 0
