from __future__ import annotations

import pytest

from labmind.indexers.chats import CodeBlock, code_blocks, fence, language_id, prose, split_fenced


def test_a_fenced_block_is_found_with_its_language() -> None:
    text = "Try this:\n\n```python\nprint('hi')\n```\n\nThen run it."
    assert code_blocks(text) == (CodeBlock("python", "print('hi')"),)
    assert prose(text) == "Try this:\n\nThen run it."


@pytest.mark.parametrize(
    ("info", "language"),
    [
        ("python", "python"),
        ("py", "python"),
        ("python3", "python"),
        ("ipython", "python"),
        ("js", "javascript"),
        ("node", "javascript"),
        ("jsx", "javascript"),
        ("ts", "typescript"),
        ("TypeScript", "typescript"),
        ("tsx", "tsx"),
        ("sh", "bash"),
        ("shell", "bash"),
        ("zsh", "bash"),
        ("console", "bash"),
        ("bash", "bash"),
        ("c", "c"),
        ("c++", "cpp"),
        ("cxx", "cpp"),
        ("cuda", "cpp"),
        ("go", "go"),
        ("golang", "go"),
        ("rust", "rust"),
        ("rs", "rust"),
        ("java", "java"),
        ("sql", "sql"),
        ("json", "json"),
        ("yaml", "yaml"),
        ("yml", "yaml"),
        ("toml", "toml"),
        ("dockerfile", "dockerfile"),
        ("jl", "julia"),
        ("", "text"),
        ("text", "text"),
        ("plaintext", "text"),
        ("output", "text"),
        ("unknown", "text"),
        ("klingon", "text"),
        ('python title="train.py"', "python"),
        ("py:train.py", "python"),
        ("{.python .numberLines}", "python"),
        ("language-ts", "typescript"),
    ],
)
def test_language_ids_are_normalised(info: str, language: str) -> None:
    assert language_id(info) == language
    assert code_blocks(f"```{info}\nx\n```") == (CodeBlock(language, "x"),)


def test_language_ids_are_fixed_points() -> None:
    for info in ("py", "js", "ts", "c++", "sh", "yml", "rs", "cs", "md", "tex", "whatever"):
        once = language_id(info)
        assert language_id(once) == once


def test_tilde_fences_and_longer_fences() -> None:
    text = "~~~bash\nls ~\n```\nnot a close\n~~~\n````md\n```python\ninner\n```\n````"
    assert code_blocks(text) == (
        CodeBlock("bash", "ls ~\n```\nnot a close"),
        CodeBlock("markdown", "```python\ninner\n```"),
    )


def test_an_unclosed_final_fence_runs_to_the_end() -> None:
    text = "Here:\n```go\nfunc main() {\n}\n"
    assert code_blocks(text) == (CodeBlock("go", "func main() {\n}\n"),)
    assert prose(text) == "Here:"


def test_fences_indented_inside_lists_lose_their_indentation() -> None:
    text = (
        "1. Install:\n\n"
        "   ```bash\n"
        "   pip install torch\n"
        "   ```\n"
        "2. Then:\n"
        "    - nested:\n"
        "        ```py\n"
        "        import torch\n"
        "            x = 1\n"
        "        ```\n"
        "- ```js\n"
        "  let a = 1;\n"
        "  ```\n"
    )
    assert code_blocks(text) == (
        CodeBlock("bash", "pip install torch"),
        CodeBlock("python", "import torch\n    x = 1"),
        CodeBlock("javascript", "let a = 1;"),
    )
    assert prose(text) == "1. Install:\n\n2. Then:\n    - nested:"


def test_inline_triple_backticks_are_not_a_fence() -> None:
    text = "Use ```x = 1``` inline, or\n```python print(1)```\nas one line."
    assert code_blocks(text) == ()
    assert prose(text) == text


def test_a_close_needs_the_same_character_and_enough_of_it() -> None:
    text = "````python\n```\n~~~~\n````\nafter"
    assert split_fenced(text) == ("after", (CodeBlock("python", "```\n~~~~"),))


def test_windows_line_ends_are_normalised() -> None:
    text = "a\r\n```python\r\nx = 1\r\ny = 2\r\n```\r\nb"
    assert split_fenced(text) == ("a\nb", (CodeBlock("python", "x = 1\ny = 2"),))


def test_prose_closes_up_blank_lines_left_by_removed_blocks() -> None:
    text = "one\n\n```\ncode\n```\n\n\ntwo\n\n```sh\nls\n```"
    assert prose(text) == "one\n\ntwo"


def test_several_blocks_keep_their_order() -> None:
    text = "```sql\nSELECT 1;\n```\ntext\n```rust\nfn main() {}\n```\n```\nplain\n```"
    assert [b.language for b in code_blocks(text)] == ["sql", "rust", "text"]


@pytest.mark.parametrize(
    "source",
    [
        "print(1)",
        "print(1)\n\n",
        "x = '```'\n```\nnot the end\n````",
        "    indented\n\tand tabbed",
        "",
        "line\r\nwindows\r\n",
    ],
)
def test_fence_reads_back_as_the_same_code(source: str) -> None:
    block = fence(source, "python")
    expected = source.replace("\r\n", "\n").rstrip("\n")
    assert split_fenced(block) == ("", (CodeBlock("python", expected),))
