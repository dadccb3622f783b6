"""Code fingerprints: normalised token streams winnowed into a few stable hashes.

A snippet of code becomes a stream of :class:`Token` that a rename or a formatter
leaves alone. Comments and whitespace go; string literals (docstrings too) become
``S`` and numbers ``N``; identifiers become ``V`` (variables, parameters, functions and
classes: whatever a rename may change) except for these, which stay as themselves:

- keywords, builtins and well-known module names of the language (``self``, ``len``,
  ``np``, ``os``, ``fmt``, ``std``, ``console``);
- names after ``.``, ``::`` or ``->``: attributes, methods and API paths
  (``torch.nn.Linear`` keeps ``nn`` and ``Linear``);
- names in import statements (``from sklearn.metrics import f1_score``), there only: in
  files the imports are a chunk of their own, so a function must read the same with or
  without them;
- Python keyword-argument names in calls (``sum(axis=0)``).

Operators and brackets stay, less what formatters add or take away (see
:func:`normalized_tokens`). Every run of :data:`K` tokens is hashed, and winnowing
(Schleimer, Wilkerson and Aiken, SIGMOD 2003) keeps the smallest hash of each :data:`W`
consecutive ones, so any run of ``K + W - 1`` tokens that two snippets share gives them
a common fingerprint, whatever surrounds it. Hashes are positive 63-bit integers, the
same in every process, so SQLite can store and compare them.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

K = 6
"""Tokens per hashed k-gram. Shorter k-grams are boilerplate that unrelated code shares
(``def V ( V ) :``); longer ones miss short copies and lose more at every edit. Chosen
with ``python -m bench.provenance --sweep``, which tries 4 to 10."""

W = 5
"""Winnowing window, in k-grams: about 2 / (W + 1) of the k-grams are kept, and every
shared run of ``K + W - 1`` tokens (about a line and a half of code) gives a shared
fingerprint. With :data:`K` it gave the best recall at a precision above 0.95 in the
benchmark; a five-line function still has ten or so fingerprints."""

VARIABLE = "V"
"""What a renameable identifier becomes."""
STRING = "S"
"""What a string literal (docstrings and f-strings included) becomes."""
NUMBER = "N"
"""What a numeric literal becomes."""

_HASH_MASK = (1 << 63) - 1
_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class Token:
    """One normalised token and the 1-based line of the snippet it starts on."""

    text: str
    line: int


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class _Syntax:
    """How one language family is lexed and which of its names are not renameable."""

    comments: str
    """Regex alternatives for comments (line and block)."""
    strings: str
    """Regex alternatives for string and character literals."""
    keep: frozenset[str]
    """Keywords, builtins and well-known module names, kept as themselves."""
    imports: frozenset[str] = frozenset()
    """Keywords that start an import statement (at the start of a line)."""
    dollar_in_names: bool = False
    """JavaScript: ``$`` is a letter (``$el``, ``jQuery$``)."""
    plain_words_kept: bool = False
    """Shell: bare words are commands, so only ``$variables`` and assignments become V."""
    python: bool = False
    """Python only: grouping parentheses dropped, keyword-argument names kept."""


_C_COMMENTS = r"//[^\n]*|/\*.*?(?:\*/|\Z)"
_HASH_COMMENT = r"\#[^\n]*"
_DQ = r'"(?:\\.|[^"\\\n])*"?'
_SQ = r"'(?:\\.|[^'\\\n])*'?"
_CHAR = r"'(?:\\.|[^'\\\n])'"
_BACKTICK = r"`(?:\\.|[^`\\])*`?"

_PY_KEEP = _words(
    """
    and as assert async await break class continue def del elif else except finally for
    from global if import in is lambda nonlocal not or pass raise return try while with
    yield True False None self cls super print len range enumerate zip map filter sorted
    reversed sum min max abs all any isinstance issubclass hasattr getattr setattr delattr
    callable iter next open repr str int float bool bytes bytearray list dict set frozenset
    tuple type object round divmod pow hash id ord chr hex oct bin format input vars dir
    slice property staticmethod classmethod NotImplemented Ellipsis __name__ __main__
    __init__ __file__ Exception BaseException ValueError TypeError KeyError IndexError
    AttributeError RuntimeError NotImplementedError StopIteration OSError IOError
    FileNotFoundError ImportError ZeroDivisionError AssertionError KeyboardInterrupt
    os sys re json math random time datetime collections itertools functools subprocess
    pathlib shutil logging argparse typing io csv pickle copy glob hashlib struct socket
    threading multiprocessing asyncio tempfile uuid base64 string textwrap unittest
    np numpy pd pandas torch nn F tf tensorflow plt matplotlib scipy sklearn requests yaml
    cv2 jax jnp
    """
)
_JS_KEEP = _words(
    """
    break case catch class const continue debugger default delete do else export extends
    finally for function if import in instanceof let new of return static super switch
    this throw try typeof var void while with yield async await from as true false null
    undefined NaN Infinity console Math JSON Object Array String Number Boolean Promise
    Date Error Map Set RegExp Symbol parseInt parseFloat isNaN setTimeout setInterval
    clearTimeout fetch document window require module exports process Buffer globalThis
    interface type enum implements private protected public readonly declare namespace
    abstract keyof any unknown never string number boolean object React useState
    useEffect
    """
)
_GO_KEEP = _words(
    """
    break case chan const continue default defer else fallthrough for func go goto if
    import interface map package range return select struct switch type var true false
    nil iota append cap clear close complex copy delete imag len make max min new panic
    print println real recover any bool byte complex64 complex128 error float32 float64
    int int8 int16 int32 int64 rune string uint uint8 uint16 uint32 uint64 uintptr fmt os
    strings strconv errors time io bufio sync http json bytes math sort context filepath
    log regexp reflect unicode atomic rand ioutil exec flag path url
    """
)
_RUST_KEEP = _words(
    """
    as async await break const continue crate dyn else enum extern false fn for if impl in
    let loop match mod move mut pub ref return self Self static struct super trait true
    type unsafe use where while Vec String Option Some None Result Ok Err Box Rc Arc
    RefCell Cell HashMap HashSet BTreeMap BTreeSet VecDeque println print eprintln format
    vec panic assert assert_eq assert_ne write writeln todo unimplemented unreachable i8
    i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str std Default
    Clone Copy Debug Iterator From Into
    """
)
_C_KEEP = _words(
    """
    auto break case char const continue default do double else enum extern float for goto
    if inline int long register restrict return short signed sizeof static struct switch
    typedef union unsigned void volatile while bool true false NULL nullptr include define
    ifdef ifndef endif pragma printf fprintf sprintf snprintf scanf malloc calloc realloc
    free memcpy memset strlen strcmp strcpy size_t ssize_t uint8_t uint16_t uint32_t
    uint64_t int8_t int16_t int32_t int64_t FILE stdin stdout stderr fopen fclose exit
    class namespace template typename public private protected virtual override new delete
    this using operator try catch throw noexcept constexpr static_cast dynamic_cast
    reinterpret_cast const_cast std cout cin cerr endl vector string map unordered_map set
    pair make_pair unique_ptr shared_ptr make_unique make_shared move size_t
    """
)
_JAVA_KEEP = _words(
    """
    abstract assert boolean break byte case catch char class const continue default do
    double else enum extends final finally float for goto if implements import instanceof
    int interface long native new package private protected public return short static
    super switch synchronized this throw throws transient try void volatile while var
    record true false null String System Integer Long Double Float Boolean Character
    Object Math List ArrayList Map HashMap Set HashSet Arrays Collections Exception
    RuntimeException IllegalArgumentException IllegalStateException Override
    StringBuilder Optional Stream Collectors Thread
    """
)
_SH_KEEP = _words("if then else elif fi case esac for while until do done in function select")
_GENERIC_KEEP = _words(
    """
    if else elif elsif for foreach while do return function def fn func class end let var
    const import from require use in and or not true false null nil None True False self
    this new print
    """
)

_PYTHON = _Syntax(
    comments=_HASH_COMMENT,
    strings=(
        r"(?i:[rbuf]{0,2})(?:'''.*?(?:'''|\Z)|\"\"\".*?(?:\"\"\"|\Z)|" + _DQ + "|" + _SQ + ")"
    ),
    keep=_PY_KEEP,
    imports=frozenset({"import", "from"}),
    python=True,
)
_JS = _Syntax(
    comments=_C_COMMENTS,
    strings=f"{_DQ}|{_SQ}|{_BACKTICK}",
    keep=_JS_KEEP,
    imports=frozenset({"import"}),
    dollar_in_names=True,
)
_GO = _Syntax(
    comments=_C_COMMENTS, strings=f"{_DQ}|{_CHAR}|{_BACKTICK}", keep=_GO_KEEP, imports=frozenset()
)
_RUST = _Syntax(
    comments=_C_COMMENTS,
    strings=r'b?r(?P<hashes>\#*)".*?"(?P=hashes)|b?' + _DQ + r"|b?" + _CHAR,
    keep=_RUST_KEEP,
    imports=frozenset({"use"}),
)
_C = _Syntax(
    comments=_C_COMMENTS,
    strings=f"{_DQ}|{_CHAR}",
    keep=_C_KEEP,
    imports=frozenset({"include", "using"}),
)
_JAVA = _Syntax(
    comments=_C_COMMENTS,
    strings=f"{_DQ}|{_CHAR}",
    keep=_JAVA_KEEP,
    imports=frozenset({"import", "package"}),
)
_SHELL = _Syntax(
    comments=r"(?<![\w$])\#[^\n]*",
    strings=f"{_DQ}|{_SQ}",
    keep=_SH_KEEP,
    plain_words_kept=True,
)
_GENERIC = _Syntax(
    comments=f"{_C_COMMENTS}|{_HASH_COMMENT}",
    strings=f"{_DQ}|{_SQ}|{_BACKTICK}",
    keep=_GENERIC_KEEP,
)
_DASH_COMMENTED = _Syntax(
    comments=f"--[^\\n]*|{_C_COMMENTS}",
    strings=f"{_DQ}|{_SQ}",
    keep=_GENERIC_KEEP,
)

_SYNTAX: dict[str, _Syntax] = {
    "python": _PYTHON,
    "javascript": _JS,
    "typescript": _JS,
    "tsx": _JS,
    "go": _GO,
    "rust": _RUST,
    "c": _C,
    "cpp": _C,
    "java": _JAVA,
    "bash": _SHELL,
    "sql": _DASH_COMMENTED,
    "lua": _DASH_COMMENTED,
    "haskell": _DASH_COMMENTED,
}

LANGUAGE_ALIASES: dict[str, str] = {
    "py": "python",
    "python3": "python",
    "py3": "python",
    "ipython": "python",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "mjs": "javascript",
    "ts": "typescript",
    "golang": "go",
    "rs": "rust",
    "h": "c",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "cuda": "cpp",
    "cu": "cpp",
    "sh": "bash",
    "shell": "bash",
    "zsh": "bash",
    "console": "bash",
}
"""Code-fence language names of chat messages, as the language ids of the file indexer."""

_NUMBER = (
    r"0[xX][0-9a-fA-F_]+[a-zA-Z0-9]*|0[bBoO][0-7_]+[a-zA-Z0-9]*"
    r"|(?:\d[\d_]*(?:\.(?!\.)[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?[a-zA-Z0-9]*"
)
_OPERATORS = sorted(
    _words(
        ">>>= ... === !== <<= >>= **= //= >>> -> => :: := == != <= >= && || ++ -- += -= *= /="
        " %= &= |= ^= << >> ** // ?. ?? <-"
    ),
    key=len,
    reverse=True,
)
"""Operators of more than one character, longest first so the lexer prefers them."""
_OPERATOR = "|".join(re.escape(op) for op in _OPERATORS) + r"|\S"
_NAME_AFTER = frozenset({".", "::", "->", "?."})
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = frozenset(_OPENERS.values())
_DROPPED = frozenset({";", "\\"})


def _lexer(syntax: _Syntax) -> re.Pattern[str]:
    variable = r"|(?P<variable>\$\{?[#!]?[A-Za-z_]\w*\}?)" if syntax.plain_words_kept else ""
    name = r"[^\W\d][\w$]*" if syntax.dollar_in_names else r"[^\W\d]\w*"
    return re.compile(
        rf"(?P<space>\s+)|(?P<comment>{syntax.comments})|(?P<string>{syntax.strings})"
        rf"{variable}|(?P<number>{_NUMBER})|(?P<name>{name})|(?P<op>{_OPERATOR})",
        re.DOTALL,
    )


_LEXERS = {syntax: _lexer(syntax) for syntax in {*_SYNTAX.values(), _GENERIC}}


@dataclass(slots=True)
class _Raw:
    kind: str
    text: str
    line: int
    first_on_line: bool


def _lex(code: str, syntax: _Syntax) -> list[_Raw]:
    newlines = [match.start() for match in re.finditer("\n", code)]
    raw: list[_Raw] = []
    last_line = 0
    for match in _LEXERS[syntax].finditer(code):
        kind = match.lastgroup or "op"
        if kind in {"space", "comment"}:
            continue
        line = bisect_right(newlines, match.start()) + 1
        raw.append(_Raw(kind, match.group(), line, line != last_line))
        last_line = line
    return raw


def _import_spans(raw: Sequence[_Raw], syntax: _Syntax) -> set[int]:
    """Indexes of tokens inside import statements (``import``, ``from … import``, ``use``)."""
    inside: set[int] = set()
    index = 0
    while index < len(raw):
        token = raw[index]
        directive = index > 0 and raw[index - 1].text == "#" and raw[index - 1].first_on_line
        starts = token.text in syntax.imports and (token.first_on_line or directive)
        if token.kind != "name" or not starts:
            index += 1
            continue
        depth = 0
        line = token.line
        while index < len(raw):
            current = raw[index]
            if depth == 0 and current.line != line:
                break
            inside.add(index)
            if current.text in _OPENERS:
                depth += 1
            elif current.text in _CLOSERS:
                depth = max(0, depth - 1)
            line = current.line
            index += 1
            if current.text == ";":
                break
    return inside


def _kwarg_names(raw: Sequence[_Raw]) -> set[int]:
    """Python: indexes of keyword-argument names in calls (``f(axis=0)``), not parameters."""
    found: set[int] = set()
    stack: list[bool] = []
    after_def = False
    for index, token in enumerate(raw):
        if token.text in {"def", "class"}:
            after_def = True
        if token.text == "(":
            stack.append(not after_def)
            after_def = False
        elif token.text in _CLOSERS:
            if stack:
                stack.pop()
        elif token.text in {"[", "{"}:
            stack.append(False)
        elif (
            token.kind == "name"
            and stack
            and stack[-1]
            and index + 1 < len(raw)
            and raw[index + 1].text == "="
        ):
            found.add(index)
    return found


def _shell_variables(raw: Sequence[_Raw]) -> set[int]:
    """Shell: indexes of names that are assigned, declared, looped over or defined."""
    found: set[int] = set()
    for index, token in enumerate(raw):
        if token.kind != "name" or token.text in _SH_KEEP:
            continue
        before = raw[index - 1].text if index > 0 else ""
        after = raw[index + 1] if index + 1 < len(raw) else None
        assigned = after is not None and after.text in {"=", "+="} and after.line == token.line
        declared = before in {"local", "export", "declare", "readonly", "for", "function"}
        defined = after is not None and after.text == "(" and token.first_on_line
        if assigned or declared or defined:
            found.add(index)
    return found


def _classify(raw: Sequence[_Raw], syntax: _Syntax) -> list[Token]:
    """Raw tokens as normalised text: ``S``, ``N``, ``V`` or themselves."""
    imports = _import_spans(raw, syntax)
    kwargs = _kwarg_names(raw) if syntax.python else set()
    variables = _shell_variables(raw) if syntax.plain_words_kept else set()
    tokens: list[Token] = []
    for index, token in enumerate(raw):
        text = token.text
        if token.kind == "string":
            text = STRING
        elif token.kind == "number":
            text = NUMBER
        elif token.kind == "variable":
            text = VARIABLE
        elif token.kind == "name":
            kept = (
                text in syntax.keep
                or index in imports
                or index in kwargs
                or (index > 0 and raw[index - 1].text in _NAME_AFTER)
            )
            if syntax.plain_words_kept:
                kept = index not in variables
            text = text if kept else VARIABLE
        tokens.append(Token(text, token.line))
    return tokens


_PY_GROUPING_AFTER = _words(
    "and or not in is if elif while return yield assert else await for from import except "
    "with del raise"
)
"""Python keywords after which ``(`` groups an expression rather than calling something."""


def _drop_formatting(tokens: list[Token], python: bool) -> list[Token]:
    """Without what formatters add or take away.

    Semicolons and line continuations go (optional in JS, Go and Python); a comma right
    before a closing bracket goes (the "magic trailing comma" of black, prettier and
    rustfmt). In Python, grouping and tuple parentheses go too (``return (a, b)`` is
    ``return a, b``; black wraps long expressions in them), while the parentheses of
    calls, definitions and empty tuples stay.
    """
    kept = [t for t in tokens if t.text not in _DROPPED]
    kept = [
        t
        for i, t in enumerate(kept)
        if not (t.text == "," and i + 1 < len(kept) and kept[i + 1].text in _CLOSERS)
    ]
    if not python:
        return kept
    dropped: set[int] = set()
    stack: list[int | None] = []
    for index, token in enumerate(kept):
        if token.text in _OPENERS:
            previous = kept[index - 1].text if index > 0 else ""
            grouping = (
                token.text == "("
                and previous not in _CLOSERS
                and (not previous.isidentifier() or previous in _PY_GROUPING_AFTER)
                and index + 1 < len(kept)
                and kept[index + 1].text != ")"
            )
            stack.append(index if grouping else None)
        elif token.text in _CLOSERS and stack:
            opener = stack.pop()
            if opener is not None:
                dropped.update((opener, index))
    return [t for i, t in enumerate(kept) if i not in dropped]


def _syntax(language: str) -> _Syntax:
    name = language.strip().lower()
    return _SYNTAX.get(LANGUAGE_ALIASES.get(name, name), _GENERIC)


def normalized_tokens(code: str, language: str) -> list[Token]:
    """The token stream that fingerprints are taken over (see the module doc).

    ``language`` is a language id of the file indexer (``python``, ``typescript``, …) or a
    code-fence name (``py``, ``sh``, ``golang``); others get a generic lexer with ``#``,
    ``//`` and ``/* */`` comments. Shell is read the other way round: bare words are
    commands and stay, ``$variables`` and assigned names become ``V``. Semicolons, line
    continuations, trailing commas and (in Python) grouping parentheses are dropped, as
    formatters add and remove them freely.
    """
    syntax = _syntax(language)
    return _drop_formatting(_classify(_lex(code, syntax), syntax), syntax.python)


def kgram_hash(texts: Sequence[str]) -> int:
    """A stable, positive 63-bit hash of a run of token texts."""
    data = _SEPARATOR.join(texts).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8, person=b"labmind-fp").digest()
    return int.from_bytes(digest, "big") & _HASH_MASK or 1


def winnow(hashes: Sequence[int], window: int = W) -> list[int]:
    """Positions chosen by winnowing: the minimum of each window, rightmost on ties.

    A position is recorded once even when several consecutive windows choose it; a
    sequence shorter than one window gives its single (rightmost) minimum.
    """
    if not hashes:
        return []
    width = min(window, len(hashes))
    chosen: list[int] = []
    for start in range(len(hashes) - width + 1):
        best = start
        for position in range(start + 1, start + width):
            if hashes[position] <= hashes[best]:
                best = position
        if not chosen or chosen[-1] != best:
            chosen.append(best)
    return chosen


def fingerprints(code: str, language: str) -> dict[int, int]:
    """Winnowed fingerprints of ``code``: hash -> first line (1-based) of its first k-gram.

    Snippets shorter than :data:`K` normalised tokens (``import os``) have none.
    """
    return winnowed(normalized_tokens(code, language))


def winnowed(tokens: Sequence[Token], *, k: int = K, window: int = W) -> dict[int, int]:
    """Fingerprints of a normalised token stream, with k-gram length and window given."""
    texts = [token.text for token in tokens]
    hashes = [kgram_hash(texts[i : i + k]) for i in range(len(texts) - k + 1)]
    found: dict[int, int] = {}
    for position in winnow(hashes, window):
        found.setdefault(hashes[position], tokens[position].line)
    return found
