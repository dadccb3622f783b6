from __future__ import annotations

import itertools
import json
import os
import sysconfig
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from labmind.indexers.chunk import Chunk
from labmind.indexers.chunking import MAX_LINES, chunk_text
from labmind.indexers.chunking.lines import MAX_CHUNK_CHARS

STDLIB = Path(os.__file__).parent


def line_of(source: str, prefix: str, start: int = 1) -> int:
    """1-based number of the first line at or after ``start`` that starts with ``prefix``.

    Indentation is ignored unless ``prefix`` starts with a space or is only closing
    brackets (``}`` means a ``}`` in the first column).
    """
    exact = prefix.startswith(" ") or not prefix.strip("});")
    for number, text in enumerate(source.split("\n"), 1):
        if number >= start and (text if exact else text.lstrip()).startswith(prefix):
            return number
    raise AssertionError(f"no line starts with {prefix!r}")


def only(chunks: list[Chunk], symbol: str | None) -> Chunk:
    found = [chunk for chunk in chunks if chunk.symbol == symbol]
    assert len(found) == 1, f"{symbol!r}: {[(c.symbol, c.start_line) for c in chunks]}"
    return found[0]


def first(chunks: list[Chunk], symbol: str) -> Chunk:
    return next(chunk for chunk in chunks if chunk.symbol == symbol)


def assert_lines(chunk: Chunk, source: str, first: str, last: str) -> None:
    start = line_of(source, first)
    assert (chunk.start_line, chunk.end_line) == (start, line_of(source, last, start))


def assert_covers(source: str, chunks: list[Chunk]) -> None:
    """Every non-blank line is in a chunk; each chunk is the text of its lines, within bounds."""
    lines = source.split("\n")
    covered: set[int] = set()
    for chunk in chunks:
        assert chunk.text.strip(), chunk
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines), chunk
        assert chunk.end_line - chunk.start_line < MAX_LINES, chunk
        span = "\n".join(
            line.removesuffix("\r") for line in lines[chunk.start_line - 1 : chunk.end_line]
        )
        piece = chunk.start_line == chunk.end_line and chunk.text in span
        assert chunk.text == span or piece, chunk
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    missing = [n for n, text in enumerate(lines, 1) if text.strip() and n not in covered]
    assert not missing, f"lines not in any chunk: {missing[:10]}"


def filler(template: str, count: int) -> str:
    return "".join(template.format(i=i) for i in range(count))


PYTHON = (
    textwrap.dedent(
        '''\
    import os
    import re

    PATTERN = re.compile(r"\\w+")


    class Tokenizer:
        """Splits text into words."""

        lowercase = True

        def __init__(self, vocab):
            self.vocab = vocab

        # Split on word characters.
        @staticmethod
        def split(self, text):
            words = PATTERN.findall(text)
            return [word.lower() for word in words]
    '''
    )
    + filler("\n    def helper_{i}(self):\n        value = {i}\n        return value\n", 15)
    + textwrap.dedent(
        """\


    def small():
        return os.sep


    class Small:
        def only_method(self):
            return 1


    if __name__ == "__main__":
        print(small())
    """
    )
)


def test_python_methods_of_a_big_class_are_their_own_chunks() -> None:
    chunks = chunk_text(PYTHON, "python")
    split = only(chunks, "Tokenizer.split")
    assert_lines(split, PYTHON, "# Split on word characters.", "return [word.lower()")
    assert split.signature == "class Tokenizer: def split(self, text):"
    assert split.text.startswith("    # Split on word characters.\n    @staticmethod\n")
    init = only(chunks, "Tokenizer.__init__")
    assert_lines(init, PYTHON, "def __init__", "self.vocab = vocab")
    header = [chunk for chunk in chunks if chunk.symbol == "Tokenizer"]
    assert header[0].start_line == line_of(PYTHON, "class Tokenizer:")
    assert "lowercase = True" in header[0].text
    assert header[0].signature == "class Tokenizer:"
    assert_lines(only(chunks, "Tokenizer.helper_14"), PYTHON, "def helper_14", "return value")


def test_python_small_definitions_and_top_level_code() -> None:
    chunks = chunk_text(PYTHON, "python")
    assert_lines(only(chunks, "small"), PYTHON, "def small", "return os.sep")
    small_class = only(chunks, "Small")
    assert_lines(small_class, PYTHON, "class Small:", "return 1")
    assert not [chunk for chunk in chunks if chunk.symbol == "Small.only_method"]
    top = [chunk for chunk in chunks if chunk.symbol is None]
    assert (top[0].start_line, top[0].end_line) == (1, line_of(PYTHON, "PATTERN ="))
    assert top[0].signature is None
    assert top[-1].text.startswith('if __name__ == "__main__":')
    assert_covers(PYTHON, chunks)


def test_python_long_function_gives_nested_definition_and_windows() -> None:
    source = (
        "def outer(x):\n    total = 0\n"
        + filler("    total += {i}\n", 70)
        + "    def inner(y):\n        return y * 2\n"
        + filler("    total -= {i}\n", 70)
        + "    return inner(total)\n"
    )
    chunks = chunk_text(source, "python")
    inner = only(chunks, "outer.inner")
    assert_lines(inner, source, "def inner", "return y * 2")
    assert inner.signature == "def outer(x): def inner(y):"
    rest = [chunk for chunk in chunks if chunk.symbol == "outer"]
    assert len(rest) >= 3
    assert all(chunk.signature == "def outer(x):" for chunk in rest)
    assert rest[0].start_line == 1
    assert rest[-1].end_line == line_of(source, "return inner(total)")
    assert_covers(source, chunks)


JAVASCRIPT = (
    'import fs from "fs";\n\n/** Loads files. */\nexport class Loader {\n'
    "  constructor(root) {\n    this.root = root;\n  }\n"
    + filler("\n  step{i}() {{\n    return {i};\n  }}\n", 16)
    + textwrap.dedent(
        """
          async load(name) {
            return fs.readFileSync(name);
          }
        }

        export const handler = async (event) => {
          return event.body;
        };

        function helper() {
          return 1;
        }
        """
    )
)


def test_javascript_class_methods_arrow_functions_and_functions() -> None:
    chunks = chunk_text(JAVASCRIPT, "javascript")
    load = only(chunks, "Loader.load")
    assert_lines(load, JAVASCRIPT, "async load(name)", "}")
    assert load.signature == "class Loader async load(name)"
    assert only(chunks, "Loader").start_line == line_of(JAVASCRIPT, "/** Loads files. */")
    assert_lines(only(chunks, "handler"), JAVASCRIPT, "export const handler", "};")
    assert_lines(only(chunks, "helper"), JAVASCRIPT, "function helper", "}")
    assert_covers(JAVASCRIPT, chunks)


TYPESCRIPT = (
    "export interface Options {\n  depth: number;\n}\n\n@Injectable()\nexport class Service {\n"
    + filler("  step{i}(): number {{\n    return {i};\n  }}\n\n", 16)
    + textwrap.dedent(
        """\
          // Fetch one record.
          @Cache()
          public async fetch(id: string): Promise<string> {
            return id;
          }
        }

        export enum Color {
          Red,
          Green,
        }
        """
    )
)


def test_typescript_interfaces_decorated_methods_and_enums() -> None:
    chunks = chunk_text(TYPESCRIPT, "typescript")
    assert_lines(only(chunks, "Options"), TYPESCRIPT, "export interface Options", "}")
    fetch = only(chunks, "Service.fetch")
    assert_lines(fetch, TYPESCRIPT, "// Fetch one record.", "}")
    assert first(chunks, "Service").start_line == 5
    assert_lines(only(chunks, "Color"), TYPESCRIPT, "export enum Color", "}")
    assert_covers(TYPESCRIPT, chunks)


TSX = textwrap.dedent(
    """\
    import React from "react";

    type Props = { name: string };

    export function Greeting({ name }: Props) {
      return <div className="greeting">Hello {name}</div>;
    }

    export const Button = (props: Props) => (
      <button>{props.name}</button>
    );
    """
)


def test_tsx_components() -> None:
    chunks = chunk_text(TSX, "tsx")
    assert_lines(only(chunks, "Greeting"), TSX, "export function Greeting", "}")
    assert_lines(only(chunks, "Button"), TSX, "export const Button", ");")
    assert_covers(TSX, chunks)


GO = textwrap.dedent(
    """\
    package text

    import "strings"

    // Tokenizer splits text.
    type Tokenizer struct {
        lower bool
    }

    // Split splits on white space.
    func (t *Tokenizer) Split(s string) []string {
        return strings.Fields(s)
    }

    func New() *Tokenizer {
        return &Tokenizer{}
    }
    """
)


def test_go_types_and_methods_qualified_by_receiver() -> None:
    chunks = chunk_text(GO, "go")
    assert_lines(only(chunks, "Tokenizer"), GO, "// Tokenizer splits", "}")
    split = only(chunks, "Tokenizer.Split")
    assert_lines(split, GO, "// Split splits", "}")
    assert split.signature == "func (t *Tokenizer) Split(s string) []string"
    assert_lines(only(chunks, "New"), GO, "func New", "}")
    assert_covers(GO, chunks)


RUST = (
    "use std::fmt;\n\n/// A thing.\n#[derive(Debug)]\npub struct Foo {\n    a: i32,\n}\n\n"
    "impl Foo {\n"
    + filler("    fn step{i}(&self) -> i32 {{\n        {i}\n    }}\n\n", 16)
    + textwrap.dedent(
        """\
            /// Adds one.
            #[inline]
            pub fn bar(&self) -> i32 {
                self.a + 1
            }
        }

        #[cfg(test)]
        mod tests {
            #[test]
            fn works() {
                assert_eq!(2 + 2, 4);
            }
        }
        """
    )
)


def test_rust_impl_methods_are_type_qualified_with_doc_and_attributes() -> None:
    chunks = chunk_text(RUST, "rust")
    struct = first(chunks, "Foo")
    assert_lines(struct, RUST, "/// A thing.", "}")
    bar = only(chunks, "Foo.bar")
    assert_lines(bar, RUST, "/// Adds one.", "}")
    assert bar.signature == "impl Foo pub fn bar(&self) -> i32"
    assert_lines(only(chunks, "tests"), RUST, "#[cfg(test)]", "}")
    assert_covers(RUST, chunks)


C = textwrap.dedent(
    """\
    #include <stdio.h>

    #ifndef GUARD
    #define GUARD

    /* A point. */
    struct point {
        int x;
        int y;
    };

    static int *add(int a, int b) {
        return NULL;
    }

    #endif
    """
)


def test_c_definitions_inside_preprocessor_blocks() -> None:
    chunks = chunk_text(C, "c")
    assert_lines(only(chunks, "point"), C, "/* A point. */", "};")
    assert_lines(only(chunks, "add"), C, "static int *add", "}")
    assert_covers(C, chunks)


CPP = (
    "#include <string>\n\nnamespace text {\n\nclass Tokenizer {\n public:\n"
    + filler("  int step{i}() const {{\n    return {i};\n  }}\n", 20)
    + textwrap.dedent(
        """\
          // Split a string.
          std::string split(const std::string& s) const {
            return s;
          }
          int count() const;
        };

        }  // namespace text

        int text::Tokenizer::count() const {
          return 0;
        }
        """
    )
)


def test_cpp_namespaces_classes_and_out_of_line_methods() -> None:
    chunks = chunk_text(CPP, "cpp")
    split = only(chunks, "text.Tokenizer.split")
    assert_lines(split, CPP, "// Split a string.", "  }")
    assert split.signature is not None
    assert split.signature.startswith("namespace text class Tokenizer std::string split(")
    assert_lines(only(chunks, "text::Tokenizer::count"), CPP, "int text::Tokenizer::count", "}")
    assert_covers(CPP, chunks)


JAVA = (
    "package p;\n\nimport java.util.List;\n\n/** Parses input. */\npublic class Parser {\n"
    "    private int depth = 0;\n\n"
    + filler("    int step{i}() {{\n        return {i};\n    }}\n\n", 16)
    + textwrap.dedent(
        """\
            /**
             * Parses one line.
             */
            @Override
            public List<String> parse(String line) {
                return List.of(line);
            }
        }
        """
    )
)


def test_java_methods_keep_javadoc_and_annotations() -> None:
    chunks = chunk_text(JAVA, "java")
    parse = only(chunks, "Parser.parse")
    assert_lines(parse, JAVA, "    /**", "}")
    header = first(chunks, "Parser")
    assert_lines(header, JAVA, "/** Parses input. */", "private int depth")
    assert_covers(JAVA, chunks)


BASH = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    set -euo pipefail

    # Print a greeting.
    greet() {
      echo "hello $1"
    }

    function main {
      greet "$@"
    }

    main "$@"
    """
)


def test_bash_functions() -> None:
    chunks = chunk_text(BASH, "bash")
    assert_lines(only(chunks, "greet"), BASH, "# Print a greeting.", "}")
    assert_lines(only(chunks, "main"), BASH, "function main", "}")
    top = [chunk for chunk in chunks if chunk.symbol is None]
    assert top[0].text == "#!/usr/bin/env bash\nset -euo pipefail"
    assert_covers(BASH, chunks)


SAMPLES = {
    "python": PYTHON,
    "javascript": JAVASCRIPT,
    "typescript": TYPESCRIPT,
    "tsx": TSX,
    "go": GO,
    "rust": RUST,
    "c": C,
    "cpp": CPP,
    "java": JAVA,
    "bash": BASH,
}

STDLIB_MODULES = [
    "argparse.py",
    "textwrap.py",
    "dataclasses.py",
    "typing.py",
    "inspect.py",
    "pathlib.py",
    "json/decoder.py",
    "asyncio/base_events.py",
    "collections/__init__.py",
    "email/message.py",
    "unittest/case.py",
    "http/client.py",
    "pydoc_data/topics.py",
]
DATA_MODULES = {"pydoc_data/topics.py"}


@pytest.mark.parametrize("name", STDLIB_MODULES)
def test_every_line_of_stdlib_modules_is_covered(name: str) -> None:
    source = (STDLIB / name).read_text(encoding="utf-8")
    chunks = chunk_text(source, "python")
    assert_covers(source, chunks)
    if name not in DATA_MODULES:
        assert sum(chunk.symbol is not None for chunk in chunks) > len(chunks) / 2


def _c_headers() -> list[Path]:
    include = Path(sysconfig.get_paths()["include"])
    return sorted(include.glob("*.h"))[:15]


@pytest.mark.skipif(not _c_headers(), reason="no Python C headers on this machine")
def test_every_line_of_real_c_headers_is_covered() -> None:
    for header in _c_headers():
        source = header.read_text(encoding="utf-8", errors="replace")
        assert_covers(source, chunk_text(source, "c"))
        assert_covers(source, chunk_text(source, "cpp"))


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_every_line_of_generated_samples_is_covered(language: str) -> None:
    assert_covers(SAMPLES[language], chunk_text(SAMPLES[language], language))
    crlf = SAMPLES[language].replace("\n", "\r\n")
    assert_covers(crlf, chunk_text(crlf, language))


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_broken_syntax_still_gives_chunks(language: str) -> None:
    source = SAMPLES[language]
    middle = len(source) // 2
    broken = source[:middle] + "\n(((( }}} ]] @@@ <<<\n" + source[middle:]
    chunks = chunk_text(broken, language)
    assert chunks
    assert_covers(broken, chunks)


def test_broken_python_keeps_the_definitions_after_the_error() -> None:
    source = "def broken(:\n    pass\n\n\ndef fine(a):\n    return a\n"
    chunks = chunk_text(source, "python")
    assert_lines(only(chunks, "fine"), source, "def fine", "return a")
    assert_covers(source, chunks)


def test_empty_and_blank_sources_give_no_chunks() -> None:
    for language in [*SAMPLES, "markdown", "yaml"]:
        assert chunk_text("", language) == []
        assert chunk_text("\n  \n\t\n", language) == []


def test_chunking_from_several_threads_matches_one_thread() -> None:
    jobs = [(source, language) for language, source in SAMPLES.items()] * 8
    expected = [chunk_text(source, language) for source, language in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: chunk_text(*job), jobs))
    assert results == expected


def notebook(cells: list[dict[str, Any]], language: str = "python") -> dict[str, Any]:
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"language": language, "name": language}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def cell(kind: str, source: list[str] | str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        base.update(execution_count=None, outputs=[])
    base.update(extra)
    return base


NOTEBOOK_CELLS = [
    cell("markdown", ["# Setup\n", "Load the data.\n"]),
    cell(
        "code",
        ["import numpy as np\n", "x = np.arange(10)"],
        outputs=[{"name": "stdout", "output_type": "stream", "text": ['"source": leaked\n']}],
    ),
    cell("code", []),
    cell("code", "print(x)"),
    cell("markdown", ["## Plot\n"]),
    cell("code", ["plt.plot(x)\n"]),
]


def test_notebook_cells_point_at_their_source_lines() -> None:
    raw = json.dumps(notebook(NOTEBOOK_CELLS), indent=1) + "\n"
    raw_lines = raw.split("\n")
    chunks = chunk_text(raw, "notebook")
    assert [chunk.symbol for chunk in chunks] == ["cell 1", "cell 2", "cell 4", "cell 5", "cell 6"]
    setup, code, single, _, plot = chunks
    assert setup.language == "markdown"
    assert setup.text == "# Setup\nLoad the data."
    assert code.language == "python"
    assert code.text == "import numpy as np\nx = np.arange(10)"
    assert raw_lines[code.start_line - 1].strip() == '"import numpy as np\\n",'
    assert raw_lines[code.end_line - 1].strip() == '"x = np.arange(10)"'
    assert raw_lines[single.start_line - 1].strip().startswith('"source": "print(x)"')
    assert single.start_line == single.end_line
    assert code.signature == "Setup"
    assert plot.signature == "Plot"
    assert all("leaked" not in chunk.text for chunk in chunks)


def test_notebook_on_one_line_maps_every_cell_to_that_line() -> None:
    raw = json.dumps(notebook(NOTEBOOK_CELLS))
    chunks = chunk_text(raw, "notebook")
    assert len(chunks) == 5
    assert {(chunk.start_line, chunk.end_line) for chunk in chunks} == {(1, 1)}


def test_notebook_kernel_language_is_used_for_code_cells() -> None:
    raw = json.dumps(notebook([cell("code", ["x <- c(1, 2)\n"])], language="R"), indent=1)
    assert [chunk.language for chunk in chunk_text(raw, "notebook")] == ["r"]


def test_notebook_long_cell_is_split_with_exact_lines() -> None:
    source = [f"value_{i} = {i}\n" for i in range(150)]
    raw = json.dumps(notebook([cell("code", source)]), indent=1)
    raw_lines = raw.split("\n")
    chunks = chunk_text(raw, "notebook")
    assert len(chunks) >= 3
    for chunk in chunks:
        rows = chunk.text.split("\n")
        assert chunk.end_line - chunk.start_line + 1 == len(rows) <= MAX_LINES
        assert json.dumps(rows[0] + "\n") in raw_lines[chunk.start_line - 1]
        assert json.dumps(rows[-1] + "\n") in raw_lines[chunk.end_line - 1]
    assert chunks[0].text.startswith("value_0 = 0")
    assert chunks[-1].text.endswith("value_149 = 149")


def test_invalid_notebook_falls_back_to_line_windows() -> None:
    raw = '{"cells": [\n {"cell_type": "code", "source": ["x = 1\\n"\n'
    chunks = chunk_text(raw, "notebook")
    assert_covers(raw, chunks)
    assert chunk_text("not json at all\n", "notebook")[0].text == "not json at all"
    assert chunk_text('{"no": "cells"}', "notebook")[0].text == '{"no": "cells"}'


MARKDOWN = textwrap.dedent(
    """\
    Intro text before any heading.

    # Install

    Run the installer.

    ## From source

    ```bash
    # not a heading
    make install
    ```

    ## Troubleshooting ##

    Check the logs.

    Usage
    =====

    Call it.
    """
)


def test_markdown_sections_by_heading_with_heading_path() -> None:
    chunks = chunk_text(MARKDOWN, "markdown")
    assert [chunk.symbol for chunk in chunks] == [
        None,
        "Install",
        "From source",
        "Troubleshooting",
        "Usage",
    ]
    source_section = only(chunks, "From source")
    assert source_section.signature == "Install > From source"
    assert "# not a heading" in source_section.text
    fence_end = line_of(MARKDOWN, "make install") + 1
    assert (source_section.start_line, source_section.end_line) == (7, fence_end)
    assert only(chunks, "Troubleshooting").signature == "Install > Troubleshooting"
    assert only(chunks, "Usage").signature == "Usage"
    assert all(chunk.language == "markdown" for chunk in chunks)
    assert_covers(MARKDOWN, chunks)


def test_markdown_long_section_is_split_and_keeps_its_heading() -> None:
    source = "# Notes\n\n" + filler("Line {i} of the notes.\n", 150)
    chunks = chunk_text(source, "markdown")
    assert len(chunks) >= 3
    assert {chunk.symbol for chunk in chunks} == {"Notes"}
    assert_covers(source, chunks)


def test_line_windows_overlap_and_pass_the_language_through() -> None:
    source = filler("key_{i}: {i}\n", 200)
    chunks = chunk_text(source, "yaml")
    assert len(chunks) >= 4
    assert {chunk.language for chunk in chunks} == {"yaml"}
    for before, after in itertools.pairwise(chunks):
        assert after.start_line <= before.end_line
    assert chunks[0].start_line == 1
    assert chunks[-1].end_line == 200
    assert_covers(source, chunks)


def test_a_huge_single_line_is_cut_into_pieces() -> None:
    source = "short line\n" + "x" * (3 * MAX_CHUNK_CHARS) + "\nlast line\n"
    chunks = chunk_text(source, "json")
    pieces = [chunk for chunk in chunks if chunk.start_line == chunk.end_line == 2]
    assert len(pieces) == 3
    assert all(len(piece.text) <= MAX_CHUNK_CHARS for piece in pieces)
    assert_covers(source, chunks)
