"""Source code chunked by definitions with tree-sitter.

Each function, method, class, struct, impl, interface or enum becomes a chunk, with
the comments, decorators and attributes directly above it. A definition longer than
:data:`~.lines.MAX_LINES` is opened up: its nested definitions become their own
chunks and what remains (a class header and fields, a long body) is cut into windows
that keep the definition's symbol and signature. Code between definitions is grouped
into runs of consecutive lines. Every non-blank line lands in some chunk.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tree_sitter import Node, Parser
from tree_sitter_language_pack import SupportedLanguage, get_parser

from ..chunk import Chunk
from .lines import Lines, line_windows

SIGNATURE_CHARS = 200
"""Longest signature kept for one definition."""

_CLOSING = re.compile(r"[\s\])};,]*|\s*(?:end|fi|esac|done)\s*;?\s*")

NameFn = Callable[[Node], "str | None"]


def _text(node: Node | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.decode("utf-8", "replace")


def _field_name(node: Node) -> str | None:
    return _text(node.child_by_field_name("name"))


def _type_name(node: Node | None) -> str | None:
    """``*pkg.Foo[T]`` or ``Foo<T>`` as ``pkg.Foo`` / ``Foo``."""
    text = _text(node)
    if text is None:
        return None
    return re.split(r"[<\[(\s]", text.lstrip("*&").strip(), maxsplit=1)[0] or None


def _declarator_name(node: Node) -> str | None:
    """The name inside a C/C++ declarator chain (pointers, references, function declarators)."""
    current: Node | None = node.child_by_field_name("declarator")
    while current is not None:
        if current.type in {
            "identifier",
            "field_identifier",
            "qualified_identifier",
            "destructor_name",
            "operator_name",
            "type_identifier",
            "template_function",
            "operator_cast",
        }:
            return _text(current)
        inner = current.child_by_field_name("declarator")
        if inner is None:
            named = [child for child in current.named_children if child.type != "parameter_list"]
            inner = named[0] if named else None
        current = inner
    return None


def _c_name(node: Node) -> str | None:
    if node.type in {"function_definition", "type_definition"}:
        return _declarator_name(node)
    return _field_name(node)


def _go_name(node: Node) -> str | None:
    if node.type == "method_declaration":
        receiver = node.child_by_field_name("receiver")
        owner = None
        if receiver is not None:
            for parameter in receiver.named_children:
                owner = _type_name(parameter.child_by_field_name("type"))
        name = _field_name(node)
        return f"{owner}.{name}" if owner and name else name
    if node.type == "type_declaration":
        specs = [
            child for child in node.named_children if child.type in {"type_spec", "type_alias"}
        ]
        return _field_name(specs[0]) if len(specs) == 1 else None
    return _field_name(node)


def _rust_name(node: Node) -> str | None:
    if node.type == "impl_item":
        return _type_name(node.child_by_field_name("type"))
    return _field_name(node)


def _js_name(node: Node) -> str | None:
    if node.type in {"lexical_declaration", "variable_declaration"}:
        declarator = _single_declarator(node)
        return _field_name(declarator) if declarator is not None else None
    return _field_name(node)


_JS_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function", "class"}
)


def _single_declarator(node: Node) -> Node | None:
    """The ``name = <function or class>`` of a ``const``/``let``/``var`` declaring just that."""
    declarators = [child for child in node.named_children if child.type == "variable_declarator"]
    if len(declarators) != 1:
        return None
    value = declarators[0].child_by_field_name("value")
    if value is None or value.type not in _JS_FUNCTION_VALUES:
        return None
    return declarators[0]


@dataclass(frozen=True)
class LanguageSpec:
    """What counts as a definition in one tree-sitter grammar."""

    definitions: frozenset[str]
    """Node types that make a chunk."""
    wrappers: frozenset[str] = frozenset()
    """Node types around one definition (decorators, ``export``, ``template``)."""
    transparent: frozenset[str] = frozenset({"ERROR"})
    """Node types searched through for definitions (preprocessor blocks, broken syntax)."""
    leading: frozenset[str] = frozenset({"comment"})
    """Node types that belong to the definition right below them (doc comments, attributes)."""
    name: NameFn = _field_name
    needs_body: frozenset[str] = frozenset()
    """Definition types that count only with a body (``struct S;`` is not a definition)."""


_C_PREPROC = frozenset(
    {"ERROR", "preproc_if", "preproc_ifdef", "preproc_else", "preproc_elif", "preproc_elifdef"}
)
_JS_DEFS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "class",
        "method_definition",
        "lexical_declaration",
        "variable_declaration",
    }
)
_TS_DEFS = _JS_DEFS | {
    "abstract_class_declaration",
    "interface_declaration",
    "enum_declaration",
    "internal_module",
    "module",
}
_JS_LEADING = frozenset({"comment", "decorator"})
_TS_WRAPPERS = frozenset({"export_statement", "ambient_declaration", "expression_statement"})

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        definitions=frozenset({"function_definition", "class_definition"}),
        wrappers=frozenset({"decorated_definition"}),
    ),
    "javascript": LanguageSpec(
        definitions=_JS_DEFS,
        wrappers=frozenset({"export_statement"}),
        leading=_JS_LEADING,
        name=_js_name,
    ),
    "typescript": LanguageSpec(
        definitions=_TS_DEFS, wrappers=_TS_WRAPPERS, leading=_JS_LEADING, name=_js_name
    ),
    "tsx": LanguageSpec(
        definitions=_TS_DEFS, wrappers=_TS_WRAPPERS, leading=_JS_LEADING, name=_js_name
    ),
    "go": LanguageSpec(
        definitions=frozenset({"function_declaration", "method_declaration", "type_declaration"}),
        name=_go_name,
    ),
    "rust": LanguageSpec(
        definitions=frozenset(
            {
                "function_item",
                "struct_item",
                "enum_item",
                "union_item",
                "trait_item",
                "impl_item",
                "mod_item",
                "macro_definition",
            }
        ),
        leading=frozenset({"line_comment", "block_comment", "attribute_item"}),
        name=_rust_name,
        needs_body=frozenset({"mod_item"}),
    ),
    "c": LanguageSpec(
        definitions=frozenset(
            {
                "function_definition",
                "struct_specifier",
                "union_specifier",
                "enum_specifier",
                "type_definition",
            }
        ),
        transparent=_C_PREPROC,
        name=_c_name,
        needs_body=frozenset({"struct_specifier", "union_specifier", "enum_specifier"}),
    ),
    "cpp": LanguageSpec(
        definitions=frozenset(
            {
                "function_definition",
                "class_specifier",
                "struct_specifier",
                "union_specifier",
                "enum_specifier",
                "namespace_definition",
                "type_definition",
            }
        ),
        wrappers=frozenset({"template_declaration"}),
        transparent=_C_PREPROC | {"linkage_specification", "declaration_list"},
        name=_c_name,
        needs_body=frozenset(
            {"class_specifier", "struct_specifier", "union_specifier", "enum_specifier"}
        ),
    ),
    "java": LanguageSpec(
        definitions=frozenset(
            {
                "class_declaration",
                "interface_declaration",
                "enum_declaration",
                "record_declaration",
                "annotation_type_declaration",
                "method_declaration",
                "constructor_declaration",
                "compact_constructor_declaration",
            }
        ),
        transparent=frozenset({"ERROR", "enum_body_declarations"}),
        leading=frozenset({"line_comment", "block_comment"}),
    ),
    "bash": LanguageSpec(definitions=frozenset({"function_definition"})),
}

_GRAMMARS: dict[str, SupportedLanguage] = {
    "python": "python",
    "javascript": "javascript",
    "typescript": "typescript",
    "tsx": "tsx",
    "go": "go",
    "rust": "rust",
    "c": "c",
    "cpp": "cpp",
    "java": "java",
    "bash": "bash",
}

CODE_LANGUAGES = frozenset(SPECS)


@dataclass
class _Span:
    first: int
    last: int
    symbol: str | None
    signature: str | None


@dataclass
class _Definition:
    node: Node
    first: int
    last: int
    symbol: str | None
    signature: str


def _last_row(node: Node) -> int:
    """The last row holding part of ``node`` (a node ending at column 0 ends on the row before)."""
    end = node.end_point
    if end.column == 0 and end.row > node.start_point.row:
        return end.row - 1
    return end.row


def _join(parent: str | None, part: str | None, separator: str) -> str | None:
    if parent and part:
        return f"{parent}{separator}{part}"
    return part or parent


@dataclass
class _Chunker:
    spec: LanguageSpec
    language: str
    source: bytes
    lines: Lines
    spans: list[_Span] = field(default_factory=list)

    def body(self, node: Node) -> Node | None:
        if node.type in {"lexical_declaration", "variable_declaration"}:
            declarator = _single_declarator(node)
            value = declarator.child_by_field_name("value") if declarator is not None else None
            return value.child_by_field_name("body") if value is not None else None
        return node.child_by_field_name("body")

    def definition(self, node: Node) -> Node | None:
        """``node`` itself if it is a definition, or the definition it wraps."""
        spec = self.spec
        if node.type in spec.definitions:
            if node.type in spec.needs_body and node.child_by_field_name("body") is None:
                return None
            if node.type in {"lexical_declaration", "variable_declaration"}:
                return node if _single_declarator(node) is not None else None
            return node
        if node.type in spec.wrappers:
            for child in node.named_children:
                found = self.definition(child)
                if found is not None:
                    return found
        return None

    def signature(self, node: Node) -> str:
        """The head of a definition, up to its body: ``def split(self, text):``."""
        body = self.body(node)
        start = node.start_byte
        if body is not None and body.start_byte > start:
            end = body.start_byte
        else:
            newline = self.source.find(b"\n", start)
            end = newline if newline != -1 else len(self.source)
        head = self.source[start : min(end, start + 4 * SIGNATURE_CHARS)]
        text = " ".join(head.decode("utf-8", "replace").split())
        return text[:SIGNATURE_CHARS].removesuffix("{").rstrip()

    def collect(
        self, nodes: Sequence[Node], symbol: str | None, signature: str | None
    ) -> list[_Definition]:
        """Definitions among ``nodes`` (searching through transparent nodes), in order."""
        found: list[_Definition] = []
        for index, node in enumerate(nodes):
            if node.type in self.spec.transparent:
                found.extend(self.collect(node.named_children, symbol, signature))
                continue
            inner = self.definition(node)
            if inner is None:
                continue
            name = self.spec.name(inner)
            own = self.signature(inner)
            first = self.leading_row(nodes, index)
            found.append(
                _Definition(
                    node=inner,
                    first=first,
                    last=_last_row(node),
                    symbol=_join(symbol, name, "."),
                    signature=_join(signature, own, " ") or own,
                )
            )
        found.sort(key=lambda definition: definition.first)
        return found

    def leading_row(self, nodes: Sequence[Node], index: int) -> int:
        """First row of ``nodes[index]`` with the comments and attributes right above it."""
        first = nodes[index].start_point.row
        position = index - 1
        while position >= 0:
            above = nodes[position]
            if above.type not in self.spec.leading or _last_row(above) < first - 1:
                break
            row = above.start_point.row
            if position > 0 and _last_row(nodes[position - 1]) >= row:
                break
            if row == 0 and self.lines.rows[0].startswith("#!"):
                break
            first = row
            position -= 1
        return first

    def scope(
        self,
        nodes: Sequence[Node],
        first: int,
        last: int,
        symbol: str | None,
        signature: str | None,
    ) -> None:
        """Chunks for rows ``first..last``: definitions among ``nodes`` and the code around them."""
        cursor = first
        for definition in self.collect(nodes, symbol, signature):
            if definition.last < cursor:
                continue
            if definition.first > cursor:
                self.gap(cursor, definition.first - 1, symbol, signature)
            self.define(definition, max(cursor, definition.first))
            cursor = definition.last + 1
        if cursor <= last:
            self.gap(cursor, last, symbol, signature)

    def define(self, definition: _Definition, first: int) -> None:
        last = definition.last
        body = self.body(definition.node)
        if self.lines.fits(first, last) or body is None:
            self.spans.append(_Span(first, last, definition.symbol, definition.signature))
        else:
            self.scope(body.named_children, first, last, definition.symbol, definition.signature)

    def gap(self, first: int, last: int, symbol: str | None, signature: str | None) -> None:
        trimmed = self.lines.trim(first, last)
        if trimmed is None:
            return
        first, last = trimmed
        if self.spans and self.spans[-1].last < first and self.closing_only(first, last):
            previous = self.spans[-1]
            if self.lines.trim(previous.last + 1, first - 1) is None:
                previous.last = last
                return
        self.spans.append(_Span(first, last, symbol, signature))

    def closing_only(self, first: int, last: int) -> bool:
        """Whether the rows hold only closing brackets (``}``, ``};``, ``end``)."""
        return last - first < 3 and all(
            _CLOSING.fullmatch(row) for row in self.lines.rows[first : last + 1]
        )

    def chunks(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        for span in self.spans:
            chunks.extend(
                self.lines.chunks(span.first, span.last, self.language, span.symbol, span.signature)
            )
        return chunks


_parsers = threading.local()


def _parser(language: str) -> Parser:
    """This thread's parser for ``language`` (parsers are not thread-safe)."""
    cache: dict[str, Parser] | None = getattr(_parsers, "cache", None)
    if cache is None:
        cache = {}
        _parsers.cache = cache
    parser = cache.get(language)
    if parser is None:
        parser = get_parser(_GRAMMARS[language])
        cache[language] = parser
    return parser


def chunk_code(text: str, language: str) -> list[Chunk]:
    """Chunks of a source file in one of :data:`CODE_LANGUAGES`, by definitions."""
    lines = Lines(text)
    if not lines:
        return []
    source = text.encode("utf-8", "surrogatepass")
    try:
        tree = _parser(language).parse(source)
        chunker = _Chunker(SPECS[language], language, source, lines)
        chunker.scope(tree.root_node.named_children, 0, len(lines) - 1, None, None)
    except (ValueError, RecursionError):
        return line_windows(text, language)
    return chunker.chunks()
