"""A spec's sweep as runs: parameter points, rendered commands, stable names.

The order is the one a researcher reads in the spec: the grid is the cartesian product
of its axes in the order they are written (the last axis varies fastest), then the
``list`` entries; with a ``random`` section, every sample is crossed with every grid or
list point (samples outermost), like Ray Tune's ``num_samples`` over a grid. ``fixed``
fills whatever a point does not set, and a ``list`` entry may override ``fixed``.

Runs with exactly the same parameters are kept once (the first one wins); the spec
loader warns about the dropped ones. Everything here is deterministic: random samples
come from ``random.Random(seed)``, so the same spec always expands to the same runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
import shlex
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from .spec import Dimension, Params, RandomParams, Spec

ParamValue: TypeAlias = str | int | float | bool
"""One value of a parameter, as YAML or TOML writes it."""

KeyPath: TypeAlias = tuple[str | int, ...]
"""Where something sits in the spec, as keys and list indexes: ``("params", "list", 2)``."""

SAMPLE_DIGITS = 4
"""Random floats keep this many significant digits, so names and commands stay readable."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLAIN_NAME_VALUE = re.compile(r"[\w.@%+:/-]+\Z")


class TemplateError(ValueError):
    """A command template that cannot be rendered; the message names the placeholder."""


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One run of a sweep, before it is queued.

    ``name`` is ``<spec>[k=v,…]`` over the parameters that come from the grid, a list
    entry or a random sample (not ``fixed``), or just ``<spec>`` for a single plain run.
    ``key`` is ``params_hash(params)``: the same parameters always give the same key.
    """

    index: int
    name: str
    params: dict[str, ParamValue]
    command: str
    key: str


@dataclass(frozen=True, slots=True)
class Point:
    """The parameters of one run and where they came from in the spec."""

    params: dict[str, ParamValue]
    varying: tuple[str, ...]
    """The keys that come from the grid, a list entry or a sample, in order."""
    origin: KeyPath
    """``("params", "grid")``, ``("params", "list", i)`` or ``()`` for a plain run."""


@dataclass(frozen=True, slots=True)
class Expansion:
    """The points of a sweep and the points dropped because they repeat an earlier one."""

    points: list[Point]
    duplicates: list[Point]


def format_value(value: ParamValue) -> str:
    """A value as it appears in a command: ``true``/``false``, ``64``, ``0.0003``,
    ``1e-05`` (the shortest text that reads back as the same float), strings as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def placeholders(template: str) -> list[str]:
    """The parameter names a command template uses, in order of first use.

    Raises ``TemplateError`` for a malformed template, a placeholder that is not a
    plain name (``{0}``, ``{a.b}``), or a conversion (``{x!r}``).
    """
    names: list[str] = []
    for _, name, _ in _fields(template):
        if name not in names:
            names.append(name)
    return names


def render_command(template: str, params: Mapping[str, ParamValue]) -> str:
    """The command for ``params``: each ``{name}`` becomes its value, shell-quoted.

    ``{name:spec}`` applies a format spec first (``{lr:.0e}`` → ``1e-03``). Values are
    quoted with ``shlex.quote``, so write ``--data {dataset}``, not ``--data "{dataset}"``.
    """
    out: list[str] = []
    for literal, name, spec in _fields(template, keep_literals=True):
        out.append(literal)
        if not name:
            continue
        if name not in params:
            raise TemplateError(f"no value for {{{name}}}")
        value = params[name]
        if spec:
            try:
                text = format(value, spec)
            except (ValueError, TypeError) as exc:
                raise TemplateError(f"{{{name}:{spec}}}: {exc} (value {value!r})") from None
        else:
            text = format_value(value)
        out.append(shlex.quote(text))
    return "".join(out)


def params_hash(params: Mapping[str, ParamValue]) -> str:
    """A stable short id of a parameter set: key order does not matter, types do
    (``1``, ``1.0``, ``"1"`` and ``true`` differ)."""
    canonical = json.dumps(
        {key: [type(value).__name__, value] for key, value in params.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def run_name(spec_name: str, params: Mapping[str, ParamValue], keys: Sequence[str]) -> str:
    """``lr-sweep[lr=0.001,dataset=cifar10]``; strings that could be mistaken for a
    number, a boolean or a separator are JSON-quoted, so distinct parameters give
    distinct names."""
    if not keys:
        return spec_name
    inner = ",".join(f"{key}={_name_value(params[key])}" for key in keys)
    return f"{spec_name}[{inner}]"


def sweep_size(params: Params) -> int:
    """How many points the sweep has before duplicates are dropped (cheap: no expansion)."""
    base = math.prod(len(values) for values in params.grid.values()) if params.grid else 0
    if params.explicit is not None:
        base += len(params.explicit)
    elif not params.grid:
        base = 1
    samples = params.random.n if params.random is not None else 1
    return base * samples


def expand_points(params: Params) -> Expansion:
    """Every point of the sweep, in order, without repeats (see the module docstring)."""
    base: list[tuple[dict[str, ParamValue], KeyPath]] = []
    if params.grid:
        keys = list(params.grid)
        for combo in itertools.product(*params.grid.values()):
            base.append((dict(zip(keys, combo, strict=True)), ("params", "grid")))
    if params.explicit is not None:
        for i, entry in enumerate(params.explicit):
            base.append((dict(entry), ("params", "list", i)))
    if not params.grid and params.explicit is None:
        base.append(({}, ()))
    samples = sample_space(params.random) if params.random is not None else [{}]

    points: list[Point] = []
    duplicates: list[Point] = []
    seen: set[str] = set()
    for sample in samples:
        for point, origin in base:
            varying = dict(point)
            for key, value in sample.items():
                varying.setdefault(key, value)
            merged = dict(varying)
            for key, value in params.fixed.items():
                merged.setdefault(key, value)
            made = Point(merged, tuple(varying), origin or (("params", "random") if sample else ()))
            digest = params_hash(merged)
            if digest in seen:
                duplicates.append(made)
            else:
                seen.add(digest)
                points.append(made)
    return Expansion(points, duplicates)


def sample_space(random_params: RandomParams) -> list[dict[str, ParamValue]]:
    """``n`` samples of the space, drawn in the order the dimensions are written."""
    rng = random.Random(random_params.seed)
    return [
        {name: draw(dimension, rng) for name, dimension in random_params.space.items()}
        for _ in range(random_params.n)
    ]


def draw(dimension: Dimension, rng: random.Random) -> ParamValue:
    """One value of a random dimension (floats rounded to ``SAMPLE_DIGITS`` digits)."""
    if dimension.choice is not None:
        return rng.choice(dimension.choice)
    if dimension.randint is not None:
        low, high = dimension.randint
        return rng.randint(low, high)
    if dimension.loguniform is not None:
        low_f, high_f = dimension.loguniform
        value = math.exp(rng.uniform(math.log(low_f), math.log(high_f)))
    else:
        assert dimension.uniform is not None
        low_f, high_f = dimension.uniform
        value = rng.uniform(low_f, high_f)
    return min(max(float(f"{value:.{SAMPLE_DIGITS}g}"), low_f), high_f)


def expand(spec: Spec) -> list[RunPlan]:
    """The runs of ``spec``, indexed from 0, each with its rendered command."""
    return [
        RunPlan(
            index=index,
            name=run_name(spec.name, point.params, point.varying),
            params=point.params,
            command=render_command(spec.command, point.params),
            key=params_hash(point.params),
        )
        for index, point in enumerate(expand_points(spec.params).points)
    ]


def _fields(template: str, *, keep_literals: bool = False) -> list[tuple[str, str, str]]:
    """(literal text, placeholder name or "", format spec) for each piece of ``template``."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
    pieces: list[tuple[str, str, str]] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            if keep_literals:
                pieces.append((literal, "", ""))
            continue
        shown = "{" + field + (f"!{conversion}" if conversion else "") + "}"
        if not _IDENTIFIER.match(field):
            raise TemplateError(
                f"{shown} is not a parameter name (write {{{{ and }}}} for literal braces)"
            )
        if conversion:
            raise TemplateError(f"{shown}: conversions (!r, !s, !a) are not supported")
        if spec and "{" in spec:
            raise TemplateError(f"{{{field}:{spec}}}: nested placeholders are not supported")
        pieces.append((literal, field, spec or ""))
    return pieces


def _name_value(value: ParamValue) -> str:
    if not isinstance(value, str):
        return format_value(value)
    if _PLAIN_NAME_VALUE.match(value) and not _looks_typed(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def _looks_typed(text: str) -> bool:
    if text.lower() in {"true", "false"}:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True
