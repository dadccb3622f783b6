"""Reading spec text (YAML or TOML) together with the line each key is written on.

The line map (``key path -> line``) lets every error name where to look: PyYAML's
composed nodes carry positions; for TOML, which `tomllib` reads without any, the
lines are found by a best-effort scan of the text (tables, dotted keys, inline tables).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from .sweep import KeyPath, format_value


class SpecError(ValueError):
    """A spec that cannot be run. The message is one line: ``<file> line <n>: <key>: <what>``.

    ``line`` and ``key`` are also attributes (``None`` when they do not apply).
    """

    def __init__(
        self, message: str, *, source: Path, line: int | None = None, key: str | None = None
    ) -> None:
        super().__init__(" ".join(message.splitlines()))
        self.source = source
        self.line = line
        self.key = key


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML has it (a 500-value grid reads in 12 ms instead of 60 ms);
its nodes carry the same line marks."""


class _YamlLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _read_yaml(text: str, source: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[tuple[str, ...], int] = {(): node.start_mark.line + 1}
        _check_duplicate_keys(node, (), source)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = source.name if mark is None else f"{source.name} line {mark.line + 1}"
        problem = exc.problem or "unreadable"
        detail = f"{problem} ({exc.context})" if exc.context else problem
        raise SpecError(
            f"{where}: invalid YAML: {detail}",
            source=source,
            line=None if mark is None else mark.line + 1,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source.name}: invalid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()
    _yaml_lines(node, (), lines, depth=0)
    return data, lines


def _check_duplicate_keys(node: yaml.Node, path: KeyPath, source: Path) -> None:
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, i), source)
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise SpecError(
                    f"{source.name} line {line}: {key_text((*path, key))}: duplicate key",
                    source=source,
                    line=line,
                    key=key_text((*path, key)),
                )
            seen.add(key)
            _check_duplicate_keys(value_node, (*path, key), source)


def _yaml_lines(
    node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int], *, depth: int
) -> None:
    if depth > 50:
        return
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                lines.setdefault(child, key_node.start_mark.line + 1)
                if key_node.tag != "tag:yaml.org,2002:str":
                    # `no:` is the key False: findable as the error names it too
                    lines.setdefault(
                        (*path, _yaml_key_value(key_node)), key_node.start_mark.line + 1
                    )
                _yaml_lines(value_node, child, lines, depth=depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines.setdefault(child, item.start_mark.line + 1)
            _yaml_lines(item, child, lines, depth=depth + 1)


def _yaml_key_value(node: yaml.ScalarNode) -> str:
    try:
        return show(yaml.load(node.value, Loader=_YamlLoader))  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError:
        return str(node.value)


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")
_TOML_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')"""
_TOML_HEADER = re.compile(
    rf"^\s*(\[\[?)\s*({_TOML_KEY_PART}(?:\s*\.\s*{_TOML_KEY_PART})*)\s*\]\]?\s*(?:#.*)?$"
)
_TOML_KEY = re.compile(rf"^\s*({_TOML_KEY_PART}(?:\s*\.\s*{_TOML_KEY_PART})*)\s*=")
_TOML_INLINE_KEY = re.compile(rf"[{{,]\s*({_TOML_KEY_PART})\s*=")


def _read_toml(text: str, source: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match is None:
            raise SpecError(f"{source.name}: invalid TOML: {message}", source=source) from None
        line = int(match.group(1) or max(1, len(text.splitlines())))
        raise SpecError(
            f"{source.name} line {line}: invalid TOML: {message[: match.start()]}",
            source=source,
            line=line,
        ) from None
    return data, _toml_lines(text)


def _toml_lines(text: str) -> dict[tuple[str, ...], int]:
    """Best effort: the line of each key path, from table headers, dotted keys, one level
    of inline tables and the ``{…}`` entries of multi-line arrays."""
    lines: dict[tuple[str, ...], int] = {(): 1}
    table: tuple[str, ...] = ()
    tables_seen: dict[tuple[str, ...], int] = {}
    open_array: tuple[str, ...] | None = None
    array_items = 0
    depth = 0
    multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if multiline is not None:
            if line.count(multiline) % 2 == 1:
                multiline = None
            continue
        code = line.split("#", 1)[0]
        if open_array is not None:
            for brace in re.finditer(r"\{", code) if depth == 1 else ():
                item = (*open_array, str(array_items))
                lines.setdefault(item, number)
                _inline_keys(code[brace.start() :], item, number, lines)
                array_items += 1
            depth += code.count("[") - code.count("]")
            if depth <= 0:
                open_array = None
            continue
        header = _TOML_HEADER.match(line)
        if header is not None:
            path = _split_dotted(header.group(2))
            if header.group(1) == "[[":
                index = tables_seen.get(path, 0)
                tables_seen[path] = index + 1
                lines.setdefault(path, number)
                path = (*path, str(index))
            for end in range(1, len(path) + 1):
                lines.setdefault(path[:end], number)
            table = path
            continue
        key = _TOML_KEY.match(line)
        if key is None:
            continue
        full = (*table, *_split_dotted(key.group(1)))
        for end in range(len(table) + 1, len(full) + 1):
            lines.setdefault(full[:end], number)
        rest = line[key.end() :]
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2 == 1:
                multiline = quote
        value = rest.split("#", 1)[0].strip()
        if value.startswith("[") and value.count("[") > value.count("]"):
            open_array, depth = full, value.count("[") - value.count("]")
            braces = list(re.finditer(r"\{", value))
            for i, brace in enumerate(braces):
                lines.setdefault((*full, str(i)), number)
                _inline_keys(value[brace.start() :], (*full, str(i)), number, lines)
            array_items = len(braces)
        else:
            _inline_keys(rest, full, number, lines)
    return lines


def _inline_keys(
    text: str, path: tuple[str, ...], number: int, lines: dict[tuple[str, ...], int]
) -> None:
    for match in _TOML_INLINE_KEY.finditer(text):
        lines.setdefault((*path, *_split_dotted(match.group(1))), number)


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.\s]+)\s*(?:\.|$)""", text)
    return tuple(part[1:-1] if part[:1] in "\"'" else part for part in parts)


def key_text(path: KeyPath) -> str:
    """A key path as a spec author writes it: ``params.grid.lr``, ``params.list[2]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def show(value: object) -> str:
    """A value as an error message names it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return format_value(value)
    return f"a {type(value).__name__}"
