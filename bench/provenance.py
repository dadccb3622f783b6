"""Provenance: do edited copies of chat code link back to their blocks, and nothing else?

The unique, parseable Python functions of CoSQA dev are split with a fixed seed into
chat code blocks (one function, or an answer of two or three, with the imports they
need), held-out negatives, and filler code. Each block gets derived files with the edits
that code goes through after a chat: consistent renames, reformatting (``ast.unparse``,
re-indenting, quote swaps, wrapping and unwrapping calls, blank lines and comments), both
together, one function extracted from a longer answer into a file with other code, two
answers merged into one function, and half of a function kept with new lines around it.
Negatives are held-out functions: ones that use the same libraries as some block (the
near misses) and the unrelated rest.

Every file is chunked by labmind's chunker and each chunk is matched against all blocks,
as the daemon does; a file links to every block some chunk of it scores at least the
threshold against. Precision and recall count links (a merged file should link to two
blocks).

    python -m bench.provenance [--json out.json] [--sweep]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import random
import sys
import textwrap
import tokenize
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labmind.indexers import fingerprint
from labmind.indexers.chunking import chunk_text
from labmind.indexers.fingerprint import Token, normalized_tokens, winnowed
from labmind.indexers.provenance import DEFAULT_THRESHOLD, MIN_SHARED, best_matches

from .report import print_table

DATA = Path(__file__).parent / "data" / "cosqa" / "cosqa-dev.json"
SEED = 1729
BLOCK_SHARE, NEGATIVE_SHARE = 0.55, 0.33
"""Shares of the functions that become blocks and negatives; the rest is filler code."""
MULTI_SHARE = 0.3
"""Share of the block functions grouped into answers of two or three functions."""
PARTIAL_MIN_LINES = 6
"""Partial copies are made of functions with at least this many lines of body, so that
the half that is kept has three lines or more."""
MERGE_MIN_LINES = 3
"""Merges are made of functions with at least this many lines of body: a one-line body
in another function is too little to tell where it came from."""
THRESHOLDS = [round(0.2 + 0.05 * i, 2) for i in range(15)]
EDITS = ("rename", "reformat", "rename+reformat", "extracted", "merged", "partial")
NEGATIVES = ("same-library", "unrelated")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_IMPORTS = {
    "np": "import numpy as np",
    "pd": "import pandas as pd",
    "plt": "import matplotlib.pyplot as plt",
    "tf": "import tensorflow as tf",
    "Image": "from PIL import Image",
}
_THIRD_PARTY = frozenset({"numpy", "six", "requests", "yaml", "psutil", "scipy", "torch"})
_FRESH = _words(
    """
    value item result payload buf entry node record count idx obj out res tmp elem src dst
    key val arr text items acc total current target source output inputs param opts config
    content handle fname fpath parts chunk batch row col pos offset size length flag mode
    label tokens mapping table seq lst values pairs response message state ctx
    """
)
"""Names a rename gives to parameters and variables."""
_FRESH_FUNCTIONS = _words(
    """
    helper process compute get_value load_data parse_input convert handle_item run_step
    make_result check transform fetch build update_state
    """
)
"""Names a rename gives to functions."""
_COMMENTS = (
    "# handle the edge case first",
    "# convert to the expected type",
    "# from the chat, adapted",
    "# NOTE: keep in sync with the caller",
    "# fast path",
)


@dataclass(frozen=True)
class Function:
    """One CoSQA function, with the modules it uses (``np``, ``os``) and its dotted API names."""

    name: str
    source: str
    modules: frozenset[str]
    apis: frozenset[str]


@dataclass(frozen=True)
class Block:
    """A chat code block: imports and one or more functions."""

    id: int
    functions: tuple[Function, ...]
    text: str


@dataclass(frozen=True)
class Case:
    """A derived file, the edit or negative kind it is, and the blocks it should link to."""

    kind: str
    text: str
    expected: frozenset[int]


# -- corpus ---------------------------------------------------------------------------


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _local_names(tree: ast.AST) -> set[str]:
    """Names a rename may change: functions, parameters and assigned names (not self/cls)."""
    names: set[str] = set()
    declared: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
    return {n for n in names - declared if n not in {"self", "cls", "_"} and not n.startswith("__")}


def _is_module(name: str) -> bool:
    return name in _IMPORTS or name in _THIRD_PARTY or name in sys.stdlib_module_names


def _function(source: str) -> Function | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    local = _local_names(tree)
    apis = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            head = dotted.split(".")[0] if dotted else ""
            if dotted and head not in local and _is_module(head):
                apis.add(dotted)
    modules = frozenset(api.split(".")[0] for api in apis)
    return Function(tree.body[0].name, source, modules, frozenset(apis))


class _Canonical(ast.NodeTransformer):
    """Alpha-renaming to ``v0, v1, …`` in order of appearance, docstrings dropped."""

    def __init__(self, local: set[str]) -> None:
        self.local = local
        self.names: dict[str, str] = {}

    def rename(self, name: str) -> str:
        if name not in self.local:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self.rename(node.name)
        if node.body and _is_docstring(node.body[0]):
            node.body = node.body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self.rename(node.arg)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.rename(node.id)
        return node


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _canonical(source: str) -> str:
    """The function up to renames and docstring: two CoSQA entries equal here are one."""
    tree = ast.parse(source)
    return ast.dump(_Canonical(_local_names(tree)).visit(tree))


def load_functions() -> list[Function]:
    """The unique parseable functions of CoSQA dev, in file order."""
    pairs = json.loads(DATA.read_text())
    seen: set[str] = set()
    functions: list[Function] = []
    for pair in pairs:
        source = textwrap.dedent(pair["code"]).strip("\n") + "\n"
        function = _function(source)
        if function is None:
            continue
        key = _canonical(source)
        if key not in seen:
            seen.add(key)
            functions.append(function)
    return functions


def imports_for(functions: Iterable[Function]) -> str:
    """The import lines that a set of functions needs, sorted like isort would."""
    modules = sorted({m for f in functions for m in f.modules})
    return "".join(_IMPORTS.get(m, f"import {m}") + "\n" for m in modules)


def _with_imports(functions: Sequence[Function], body: str) -> str:
    header = imports_for(functions)
    return f"{header}\n\n{body}" if header else body


# -- edits ----------------------------------------------------------------------------


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def _replace(source: str, edits: Iterable[tuple[int, int, int, str]]) -> str:
    """``source`` with (row, start col, end col, text) replacements on single lines."""
    lines = source.splitlines(keepends=True)
    for row, start, end, text in sorted(edits, reverse=True):
        line = lines[row - 1]
        lines[row - 1] = line[:start] + text + line[end:]
    return "".join(lines)


def rename(source: str, rng: random.Random) -> str:
    """Consistent renames of the function, its parameters and its local variables."""
    tree = ast.parse(source)
    local = sorted(_local_names(tree))
    taken = {t.string for t in _tokens(source) if t.type == tokenize.NAME}
    mapping: dict[str, str] = {}
    for name in local:
        pool = (
            _FRESH_FUNCTIONS
            if any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree))
            else _FRESH
        )
        fresh = rng.choice(pool)
        while fresh in taken:
            fresh = f"{rng.choice(pool)}{rng.randint(2, 99)}"
        taken.add(fresh)
        mapping[name] = fresh
    lines = source.splitlines()
    at: set[tuple[int, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.arg):
            line = lines[node.lineno - 1].encode()
            at.add((node.lineno, len(line[: node.col_offset].decode())))
    edits = []
    previous = ""
    for token in _tokens(source):
        if (
            token.type == tokenize.NAME
            and token.string in mapping
            and (token.start in at or previous == "def")
        ):
            row, col = token.start
            edits.append((row, col, token.end[1], mapping[token.string]))
        if token.type not in {tokenize.NL, tokenize.COMMENT}:
            previous = token.string
    return _replace(source, edits)


def unparse(source: str, rng: random.Random) -> str:
    """What ``ast.unparse`` prints: single quotes, no comments, minimal parentheses."""
    return ast.unparse(ast.parse(source)) + "\n"


def swap_quotes(source: str, rng: random.Random) -> str:
    """Simple string literals with the other quote character."""
    edits = []
    for token in _tokens(source):
        text = token.string
        if token.type != tokenize.STRING or text[0] not in "'\"" or text.startswith(text[0] * 3):
            continue
        other = "'" if text[0] == '"' else '"'
        if other not in text and "\\" not in text:
            edits.append((token.start[0], token.start[1], token.end[1], other + text[1:-1] + other))
    return _replace(source, edits)


def reindent(source: str, rng: random.Random) -> str:
    """Indentation levels re-spaced to 2 or 8 columns (continuation lines follow along)."""
    widths = [len(line) - len(line.lstrip(" ")) for line in source.splitlines() if line.strip()]
    unit = min((w for w in widths if w), default=0)
    if not unit or "\t" in source:
        return source
    width = rng.choice([2, 8] if unit == 4 else [4])
    out = []
    for line in source.splitlines(keepends=True):
        spaces = len(line) - len(line.lstrip(" "))
        out.append(" " * (spaces // unit * width + spaces % unit) + line[spaces:])
    return "".join(out)


def explode_calls(source: str, rng: random.Random) -> str:
    """Calls with two or more arguments spread one argument a line, with a trailing comma."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    by_line: dict[int, ast.Call] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.lineno == node.end_lineno
            and len(node.args) + len(node.keywords) >= 2
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            known = by_line.get(node.lineno)
            if known is None or node.col_offset < known.col_offset:
                by_line[node.lineno] = node
    for row in sorted(by_line, reverse=True):
        call = by_line[row]
        line = lines[row - 1].encode()
        indent = line[: len(line) - len(line.lstrip())].decode()
        func = ast.get_source_segment(source, call.func)
        parts = [ast.get_source_segment(source, a) for a in [*call.args, *call.keywords]]
        if func is None or any(p is None for p in parts):
            continue
        inner = "".join(f"{indent}    {p},\n" for p in parts)
        text = f"{func}(\n{inner}{indent})"
        start, end = call.col_offset, call.end_col_offset or 0
        lines[row - 1] = line[:start].decode() + text + line[end:].decode()
    result = "".join(lines)
    return result if _parses(result) else source


def join_wrapped(source: str, rng: random.Random) -> str:
    """Lines continued inside brackets joined into one (unless a comment is in the way)."""
    continued: set[int] = set()
    commented: set[int] = set()
    for token in _tokens(source):
        if (
            token.type == tokenize.NL
            and token.line.strip()
            and not token.line.lstrip().startswith("#")
        ):
            continued.add(token.start[0])
        elif token.type == tokenize.COMMENT:
            commented.add(token.start[0])
    lines = source.splitlines()
    out: list[str] = []
    joining = False
    for row, line in enumerate(lines, start=1):
        if joining and out:
            piece = line.strip()
            head = out[-1].rstrip()
            if piece[:1] in ")]}":
                head = head.removesuffix(",")
            glue = "" if head.endswith(("(", "[", "{")) or piece[:1] in ")]}" else " "
            out[-1] = head + glue + piece
        else:
            out.append(line)
        joining = row in continued and row not in commented
    result = "\n".join(out) + "\n"
    return result if _parses(result) else source


def _body_rows(source: str) -> list[tuple[int, int, str]]:
    """(first row, last row, indentation) of every statement in a function body."""
    tree = ast.parse(source)
    lines = source.splitlines()
    rows = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, [])
            for statement in statements if isinstance(statements, list) else []:
                if isinstance(node, ast.Module) or not isinstance(statement, ast.stmt):
                    continue
                line = lines[statement.lineno - 1]
                indent = line[: len(line) - len(line.lstrip())]
                rows.append((statement.lineno, statement.end_lineno or statement.lineno, indent))
    return rows


def blank_lines(source: str, rng: random.Random) -> str:
    """Blank lines inside the function removed, or a few added between statements."""
    lines = source.splitlines()
    if any(not line.strip() for line in lines) and rng.random() < 0.5:
        return "\n".join(line for line in lines if line.strip()) + "\n"
    rows = _body_rows(source)
    after = {last for _, last, _ in rng.sample(rows, min(2, len(rows)))}
    out = []
    for row, line in enumerate(lines, start=1):
        out.append(line)
        if row in after and row != len(lines):
            out.append("")
    result = "\n".join(out) + "\n"
    return result if _parses(result) else source


def comments(source: str, rng: random.Random) -> str:
    """Comments removed, or comment lines added above a few statements."""
    found = [t for t in _tokens(source) if t.type == tokenize.COMMENT]
    if found and rng.random() < 0.5:
        edits = [(t.start[0], t.start[1], t.end[1], "") for t in found]
        stripped = _replace(source, edits).splitlines()
        kept = [
            line.rstrip()
            for line, original in zip(stripped, source.splitlines(), strict=True)
            if line.strip() or not original.strip()
        ]
        result = "\n".join(kept) + "\n"
        return result if _parses(result) else source
    rows = _body_rows(source)
    chosen = {first: indent for first, _, indent in rng.sample(rows, min(2, len(rows)))}
    out = []
    for row, line in enumerate(source.splitlines(), start=1):
        if row in chosen:
            out.append(chosen[row] + rng.choice(_COMMENTS))
        out.append(line)
    result = "\n".join(out) + "\n"
    return result if _parses(result) else source


Edit = Callable[[str, random.Random], str]
_STYLE: tuple[Edit, ...] = (
    swap_quotes,
    reindent,
    explode_calls,
    join_wrapped,
    blank_lines,
    comments,
)


def reformat(source: str, rng: random.Random) -> str:
    """A formatter's or an editor's pass: ``ast.unparse`` or several of the style edits."""
    edits: list[Edit] = [unparse] if rng.random() < 0.3 else []
    edits += [edit for edit in _STYLE if rng.random() < 0.5]
    if not edits:
        edits = [rng.choice(_STYLE)]
    for edit in edits:
        edited = edit(source, rng)
        source = edited if _parses(edited) else source
    return source


def _body(function: ast.FunctionDef) -> list[ast.stmt]:
    """The statements of a function after its docstring."""
    body = function.body
    return body[1:] if body and _is_docstring(body[0]) and len(body) > 1 else body


def _body_lines(function: Function) -> int:
    """Lines of a function's body after its docstring."""
    tree = ast.parse(function.source).body[0]
    assert isinstance(tree, ast.FunctionDef)
    body = _body(tree)
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def merge(first: Function, second: Function) -> str | None:
    """One function doing both: the first's body (its last ``return`` kept as a variable),
    then the second's body, under the first's signature and the second's extra parameters."""
    one = ast.parse(first.source).body[0]
    two = ast.parse(second.source).body[0]
    assert isinstance(one, ast.FunctionDef) and isinstance(two, ast.FunctionDef)
    lines = first.source.splitlines()
    body = _body(one)
    last = body[-1]
    line = lines[last.lineno - 1]
    indent = line[: len(line) - len(line.lstrip())]
    if isinstance(last, ast.Return):
        lines[last.lineno - 1] = (
            line.replace("return ", "first_result = ", 1) if last.value else f"{indent}pass"
        )
    second_lines = second.source.splitlines()
    rest = _body(two)
    tail = textwrap.dedent("\n".join(second_lines[rest[0].lineno - 1 : rest[-1].end_lineno]))
    extra = [a.arg for a in two.args.args if a.arg not in {b.arg for b in one.args.args}]
    close = lines[0].rfind(")")
    if extra and close > 0 and "*" not in lines[0]:
        comma = ", " if one.args.args else ""
        default = "=None" if one.args.defaults else ""
        added = ", ".join(f"{name}{default}" for name in extra)
        lines[0] = f"{lines[0][:close]}{comma}{added}{lines[0][close:]}"
    merged = "\n".join(lines) + "\n" + textwrap.indent(tail, indent) + "\n"
    return merged if _parses(merged) else None


def partial(function: Function, rng: random.Random) -> str:
    """A contiguous half of the function's body under a new head or with a new tail."""
    tree = ast.parse(function.source).body[0]
    assert isinstance(tree, ast.FunctionDef)
    lines = function.source.splitlines()
    body = _body(tree)
    first, last = body[0].lineno, body[-1].end_lineno or body[-1].lineno
    indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
    middle = first + (last - first + 1) // 2
    cuts = [s.lineno for s in body if s.lineno > first]
    cut = min(cuts, key=lambda row: abs(row - middle)) if cuts else middle
    params = [a.arg for a in tree.args.args if a.arg != "self"] or ["data"]
    new = [
        f"{indent}logger.debug('%s: %r', {params[0]!r}, {params[0]})",
        f"{indent}if {params[0]} is None:",
        f"{indent}    raise ValueError('missing input')",
        f"{indent}started = time.perf_counter()",
    ]
    extra = rng.sample([new[0], "\n".join(new[1:3]), new[3]], rng.randint(1, 3))
    if rng.random() < 0.5:
        head = lines[: cut - 1]
        text = "\n".join([*head, *extra, f"{indent}return None"])
    else:
        text = "\n".join(
            [f"def finish_{tree.name}({', '.join(params)}):", *extra, *lines[cut - 1 : last]]
        )
    return text + "\n"


# -- cases ----------------------------------------------------------------------------


def build(functions: Sequence[Function], rng: random.Random) -> tuple[list[Block], list[Case]]:
    """Blocks and the derived files (positives and negatives) to match against them."""
    shuffled = list(functions)
    rng.shuffle(shuffled)
    n_blocks = int(len(shuffled) * BLOCK_SHARE)
    n_negatives = int(len(shuffled) * NEGATIVE_SHARE)
    blocks = _blocks(shuffled[:n_blocks], rng)
    negatives = shuffled[n_blocks : n_blocks + n_negatives]
    filler = shuffled[n_blocks + n_negatives :]
    cases = [case for block in blocks for case in _derived(block, filler, rng)]
    cases += _merged(blocks, rng)
    near = _near_misses(blocks, negatives, rng)
    for function in negatives:
        kind = "same-library" if function in near else "unrelated"
        cases.append(Case(kind, _file([function], [function.source]), frozenset()))
    return blocks, cases


def _blocks(chosen: Sequence[Function], rng: random.Random) -> list[Block]:
    """Chat code blocks: single functions, and answers of two or three; most with imports."""
    groups: list[tuple[Function, ...]] = []
    split = int(len(chosen) * MULTI_SHARE)
    multi = list(chosen[:split])
    while multi:
        size = 3 if len(multi) == 3 or (len(multi) > 4 and rng.random() < 0.4) else 2
        groups.append(tuple(multi[:size]))
        multi = multi[size:]
    groups += [(f,) for f in chosen[split:]]
    blocks = []
    for index, group in enumerate(groups):
        body = "\n\n\n".join(f.source.rstrip() for f in group) + "\n"
        text = _with_imports(group, body) if rng.random() < 0.7 else body
        blocks.append(Block(index, group, text))
    return blocks


def _derived(block: Block, filler: Sequence[Function], rng: random.Random) -> list[Case]:
    """Renamed, reformatted, extracted and partial copies of one block."""
    fns = block.functions
    expected = frozenset({block.id})
    renamed = [rename(f.source, rng) for f in fns]
    both = [reformat(r, rng) for r in renamed]
    cases = [
        Case("rename", _file(fns, renamed), expected),
        Case("reformat", _file(fns, [reformat(f.source, rng) for f in fns]), expected),
        Case("rename+reformat", _file(fns, both), expected),
    ]
    for function in fns if len(fns) > 1 else ():
        other = rng.choice(filler)
        main = f'if __name__ == "__main__":\n    print({function.name})\n'
        text = _file([function, other], [other.source, function.source, main])
        cases.append(Case("extracted", text, expected))
    for function in fns:
        if _body_lines(function) >= PARTIAL_MIN_LINES:
            half = partial(function, rng)
            needs = ["import logging", "import time", "", "logger = logging.getLogger(__name__)"]
            cases.append(Case("partial", _file([function], [half], extra=needs), expected))
    return cases


def _merged(blocks: Sequence[Block], rng: random.Random) -> list[Case]:
    """Pairs of single-function blocks merged into one function each."""
    singles = [
        b
        for b in blocks
        if len(b.functions) == 1 and _body_lines(b.functions[0]) >= MERGE_MIN_LINES
    ]
    rng.shuffle(singles)
    cases = []
    for one, two in zip(singles[::2], singles[1::2], strict=False):
        merged = merge(one.functions[0], two.functions[0])
        if merged is not None:
            fns = (one.functions[0], two.functions[0])
            cases.append(Case("merged", _file(fns, [merged]), frozenset({one.id, two.id})))
    return cases


def _file(functions: Sequence[Function], parts: Sequence[str], extra: Sequence[str] = ()) -> str:
    """A module: imports, then the parts two blank lines apart."""
    header = imports_for(functions) + "".join(f"{line}\n" for line in extra)
    body = "\n\n".join(p.rstrip() + "\n" for p in parts)
    return f"{header}\n\n{body}" if header else body


def _near_misses(
    blocks: Sequence[Block], negatives: Sequence[Function], rng: random.Random
) -> set[Function]:
    """For each block function using a library, the negative sharing most of its API."""
    near: set[Function] = set()
    for block in blocks:
        for function in block.functions:
            if not function.modules:
                continue
            same = [n for n in negatives if n.modules & function.modules]
            if same:
                rng.shuffle(same)
                near.add(max(same, key=lambda n: len(n.apis & function.apis)))
    return near


# -- matching and scoring -------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """Normalised token streams of every block and every chunk of every case."""

    blocks: dict[int, list[Token]]
    chunks: list[list[list[Token]]]


def tokenize_corpus(blocks: Sequence[Block], cases: Sequence[Case]) -> Corpus:
    return Corpus(
        {b.id: normalized_tokens(b.text, "python") for b in blocks},
        [
            [normalized_tokens(c.text, "python") for c in chunk_text(case.text, "python")]
            for case in cases
        ],
    )


def scores(corpus: Corpus, k: int, window: int, min_shared: int) -> list[dict[int, float]]:
    """For each case, block id -> best chunk score (above the lowest threshold)."""
    block_fps = {bid: winnowed(tokens, k=k, window=window) for bid, tokens in corpus.blocks.items()}
    index: dict[int, list[int]] = defaultdict(list)
    for bid, fps in block_fps.items():
        for h in fps:
            index[h].append(bid)
    found: list[dict[int, float]] = []
    for chunks in corpus.chunks:
        best: dict[int, float] = {}
        for tokens in chunks:
            fps = winnowed(tokens, k=k, window=window)
            candidates = {bid: block_fps[bid] for h in fps for bid in index.get(h, ())}
            for match in best_matches(
                fps, candidates, threshold=THRESHOLDS[0], min_shared=min_shared
            ):
                best[match.block_id] = max(best.get(match.block_id, 0.0), match.score)
        found.append(best)
    return found


def evaluate(
    cases: Sequence[Case], found: Sequence[Mapping[int, float]], threshold: float
) -> dict[str, dict[str, float]]:
    """Per case kind: files, expected links, links found, wrong links, recall; and overall."""
    rows: dict[str, dict[str, float]] = {}
    for kind in (*EDITS, *NEGATIVES):
        rows[kind] = {"files": 0, "expected": 0, "found": 0, "wrong": 0, "linked files": 0}
    for case, best in zip(cases, found, strict=True):
        linked = {bid for bid, score in best.items() if score >= threshold}
        row = rows[case.kind]
        row["files"] += 1
        row["expected"] += len(case.expected)
        row["found"] += len(linked & case.expected)
        row["wrong"] += len(linked - case.expected)
        row["linked files"] += bool(linked)
    expected = sum(r["expected"] for r in rows.values())
    hits = sum(r["found"] for r in rows.values())
    wrong = sum(r["wrong"] for r in rows.values())
    precision = hits / (hits + wrong) if hits + wrong else 1.0
    recall = hits / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    for row in rows.values():
        row["recall"] = row["found"] / row["expected"] if row["expected"] else 0.0
    rows["all"] = {
        "files": len(cases),
        "expected": expected,
        "found": hits,
        "wrong": wrong,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
    return rows


def sweep(corpus: Corpus, cases: Sequence[Case]) -> dict[str, dict[str, float]]:
    """Best F1 over thresholds, and precision/recall at the default one, for K and W."""
    rows: dict[str, dict[str, float]] = {}
    for k in range(4, 11):
        for window in range(2, 9):
            found = scores(corpus, k, window, MIN_SHARED)
            at = {t: evaluate(cases, found, t)["all"] for t in THRESHOLDS}
            best = max(THRESHOLDS, key=lambda t: at[t]["f1"])
            default = evaluate(cases, found, DEFAULT_THRESHOLD)["all"]
            rows[f"K={k} W={window}"] = {
                "precision": default["precision"],
                "recall": default["recall"],
                "f1": default["f1"],
                "best f1": at[best]["f1"],
                "at threshold": best,
            }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sweep", action="store_true", help="also try K in 4..10, W in 2..8")
    args = parser.parse_args()
    functions = load_functions()
    blocks, cases = build(functions, random.Random(SEED))
    corpus = tokenize_corpus(blocks, cases)
    found = scores(corpus, fingerprint.K, fingerprint.W, MIN_SHARED)
    at_default = evaluate(cases, found, DEFAULT_THRESHOLD)
    settings = (
        f"K={fingerprint.K}, W={fingerprint.W}, min_shared={MIN_SHARED}, "
        f"threshold={DEFAULT_THRESHOLD}"
    )
    summary = {"all": at_default.pop("all")}
    positives = {
        k: {c: at_default[k][c] for c in ("files", "expected", "found", "wrong", "recall")}
        for k in EDITS
    }
    negatives = {
        k: {c: at_default[k][c] for c in ("files", "linked files", "wrong")} for k in NEGATIVES
    }
    curve = {}
    for threshold in THRESHOLDS:
        row = evaluate(cases, found, threshold)["all"]
        curve[f"{threshold:.2f}"] = {c: row[c] for c in ("precision", "recall", "f1", "wrong")}
    title = (
        f"Provenance on CoSQA ({len(functions)} functions, {len(blocks)} blocks, "
        f"{len(cases)} files; {settings})"
    )
    print_table(title, summary)
    print_table("Recall by edit", positives)
    print_table("False links from negatives", negatives)
    print_table("Precision and recall by threshold", curve)
    results: dict[str, object] = {
        "settings": settings,
        "summary": summary,
        "edits": positives,
        "negatives": negatives,
        "curve": curve,
    }
    if args.sweep:
        grid = sweep(corpus, cases)
        print_table("K and W (at the default threshold, and the best threshold)", grid)
        results["sweep"] = grid
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
