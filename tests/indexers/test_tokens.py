from __future__ import annotations

import sysconfig
import time
from pathlib import Path

import pytest
import tantivy
from hypothesis import given
from hypothesis import strategies as st

from labmind.indexers.tokens import MAX_TOKEN_CHARS, analyze, code_terms, path_terms, stem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HTTPServer", ["httpserver", "http", "server"]),
        ("read_file", ["read_file", "read", "file"]),
        ("readFile", ["readfile", "read", "file"]),
        ("ReadFile", ["readfile", "read", "file"]),
        ("getHTTPResponse2", ["gethttpresponse2", "get", "http", "response", "2"]),
        ("utf8", ["utf8", "utf", "8"]),
        ("MAX_TOKEN_CHARS", ["max_token_chars", "max", "token", "chars"]),
        ("os.path.join", ["os", "path", "join"]),
        ("__init__", ["init"]),
        ("_private_helper", ["private_helper", "private", "helper"]),
        ("self", ["self"]),
        ("Path", ["path"]),
        ("URL", ["url"]),
        ("x = 3.14 + 42", ["x", "3", "14", "42"]),
        ("0x1F", ["0x1f"]),
        ("foo(bar, 'baz')", ["foo", "bar", "baz"]),
        ("über_cool café", ["über_cool", "über", "cool", "café"]),
        ("", []),
        ("()[]{}:;,.-+*/\"'", []),
        ("_ __", []),
    ],
)
def test_code_terms(text: str, expected: list[str]) -> None:
    assert code_terms(text) == expected


def test_every_occurrence_counts() -> None:
    assert code_terms("read read_file read") == ["read", "read_file", "read", "file", "read"]


def test_long_blobs_are_dropped() -> None:
    blob = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg"
    assert len(blob) > MAX_TOKEN_CHARS
    assert code_terms(f"data = {blob}") == ["data"]
    assert code_terms("f" * MAX_TOKEN_CHARS) == ["f" * MAX_TOKEN_CHARS]


def test_long_snake_case_keeps_its_parts() -> None:
    name = "test_replace_file_is_idempotent_for_the_same_documents"
    assert len(name) > MAX_TOKEN_CHARS
    assert code_terms(name) == [
        "test",
        "replace",
        "file",
        "is",
        "idempotent",
        "for",
        "the",
        "same",
        "documents",
    ]


def test_analyze_joins_stemmed_terms_with_spaces() -> None:
    assert analyze("def read_files(paths): running") == "def read_fil read file path run"
    assert analyze("() __ ;") == ""


def test_stems_agree_with_tantivys_english_stemmer_on_every_term() -> None:
    stemmer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )
    text = "class HTTPServerConnections: def running_queries(self): return über_caches"
    assert analyze(text).split() == stemmer.analyze(" ".join(code_terms(text)))
    assert [stem(t) for t in ("classes", "running", "x")] == ["class", "run", "x"]


@given(st.text())
def test_analyze_finds_the_terms_code_terms_finds_in_any_text(text: str) -> None:
    assert analyze(text).split() == [stem(term) for term in code_terms(text)]


@given(st.text(alphabet=st.sampled_from("aZ_9 .\u00e9\u00a0\u2014\x1c\U0001f600\udcff")))
def test_analyze_cuts_where_code_terms_cuts_around_non_ascii(text: str) -> None:
    assert analyze(text).split() == [stem(term) for term in code_terms(text)]


def test_path_terms_split_folders_and_names_and_keep_the_extension() -> None:
    assert path_terms("src/io_utils/readFile.py") == "src io_util io util readfil read file py"
    assert path_terms("C:\\Users\\me\\train.tar.gz") == "c user me train tar gz"


@pytest.mark.slow
def test_tokenises_the_standard_library_quickly() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    size = 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
        size += len(texts[-1])
        if size > 25_000_000:
            break
    start = time.perf_counter()
    terms = sum(len(code_terms(text)) for text in texts)
    elapsed = time.perf_counter() - start
    assert terms > size / 20
    assert elapsed < 10.0, f"{size / 1e6:.1f} MB took {elapsed:.1f} s"
