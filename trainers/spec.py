"""Experiment specs: a YAML or TOML file that says what to run, with which parameters,
on what, and how to retry.

``load_spec`` reads and checks a file; every problem becomes a ``SpecError`` whose
message is one line naming the file, the line and the key::

    lr-sweep.yaml line 7: params.grid.lr: expected a list of values, got 0.001

YAML keeps exact positions (the document is composed into nodes first, so each key
path maps to the line it starts on); TOML has no positions in ``tomllib``, so the line
of a key is found by a best-effort scan of the text. Things that are odd but runnable
(a parameter the command never uses, runs that repeat each other) become
``Spec.warnings`` in the same format.

Keys (see DESIGN.md, "Experiments")::

    name: lr-sweep                     # default: the file name
    command: python train.py --lr {lr} --data {dataset}
    workdir: .                         # relative to the spec file
    env: {WANDB_MODE: offline}
    params:
      grid: {lr: [1.0e-3, 3.0e-4]}     # cartesian product, in the order written
      list: [{lr: 0.1, batch_size: 32}]  # explicit points, after the grid
      fixed: {batch_size: 64}          # in every run unless a list entry sets it
      random: {n: 8, seed: 0, space: {lr: {loguniform: [1.0e-5, 1.0e-2]}}}
    datasets: [cifar10, cifar100]      # shorthand for a grid axis named `dataset`
    resources: {gpus: 1, min_gpu_mem_gb: 10, cpus: 1}
    retry: {max_attempts: 3, batch_size_param: batch_size, lr_param: lr,
            grad_accum_param: null, fixer: rules}
    priority: 0
    depends_on: [other-sweep]
    timeout_s: null
    executor: ray                      # default: the daemon's experiments.executor
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from .spec_source import SpecError, _read_toml, _read_yaml, key_text, show
from .sweep import (
    KeyPath,
    ParamValue,
    TemplateError,
    expand_points,
    format_value,
    placeholders,
    render_command,
    run_name,
    sweep_size,
)

__all__ = [
    "MAX_RUNS",
    "Dimension",
    "Params",
    "RandomParams",
    "Resources",
    "RetryPolicy",
    "Spec",
    "SpecError",
    "load_spec",
    "parse_spec",
]

MAX_RUNS = 10_000
"""A spec that expands to more runs than this is refused (a typo in a grid, most often)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUOTED_PLACEHOLDER = re.compile(r"""(["'])\{([A-Za-z_]\w*)(?::[^{}]*)?\}\1""")


def _param_value(value: object) -> ParamValue:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"expected a single value (string, number or true/false), got {show(value)}")


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        raise ValueError("expected a string; quote it ('true', '1')")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return format_value(value)
    raise ValueError(f"expected a string, got {show(value)}")


Value = Annotated[ParamValue, PlainValidator(_param_value)]
EnvValue = Annotated[str, PlainValidator(_env_value)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Dimension(_Strict):
    """One dimension of a random search: exactly one of the four distributions.

    ``loguniform: [low, high]`` (0 < low ≤ high) and ``uniform: [low, high]`` draw
    floats, ``randint: [low, high]`` draws integers with both ends included, ``choice:
    [a, b, …]`` picks one of the values.
    """

    loguniform: list[float] | None = None
    uniform: list[float] | None = None
    randint: list[int] | None = None
    choice: list[Value] | None = None

    @model_validator(mode="after")
    def _one_distribution(self) -> Dimension:
        given = [name for name in _DISTRIBUTIONS if getattr(self, name) is not None]
        if not given:
            raise ValueError(f"expected one of {', '.join(_DISTRIBUTIONS)}")
        if len(given) > 1:
            raise ValueError(f"expected exactly one distribution, got {' and '.join(given)}")
        kind = given[0]
        values = getattr(self, kind)
        if kind == "choice":
            if not values:
                raise ValueError("choice: expected at least one value")
            return self
        if len(values) != 2:
            raise ValueError(f"{kind}: expected [low, high], got {len(values)} values")
        low, high = values
        if low > high:
            raise ValueError(f"{kind}: low {low} is above high {high}")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform: bounds must be above 0, got {low}")
        return self


_DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice")


class RandomParams(_Strict):
    """``n`` samples of ``space`` from ``random.Random(seed)``: the same spec, the same runs."""

    n: int = Field(ge=1)
    seed: int = 0
    space: dict[str, Dimension] = Field(min_length=1)


class Params(_Strict):
    """The ``params`` section. ``explicit`` is the ``list`` key."""

    grid: dict[str, Annotated[list[Value], Field(min_length=1)]] = Field(default_factory=dict)
    explicit: list[dict[str, Value]] | None = Field(default=None, alias="list")
    fixed: dict[str, Value] = Field(default_factory=dict)
    random: RandomParams | None = None


class Resources(_Strict):
    """What one run needs. ``gpus: 0`` runs on the CPU slots."""

    gpus: int = Field(default=0, ge=0)
    min_gpu_mem_gb: float | None = Field(default=None, gt=0)
    """Only GPUs with at least this much free memory are used."""
    cpus: int = Field(default=1, ge=1)


class RetryPolicy(_Strict):
    """How failed runs are retried: at most ``max_attempts`` attempts in all (the first
    included), with fixes from ``fixer``; the ``*_param`` keys tell the rule fixers which
    parameter is the batch size, the learning rate and the gradient accumulation."""

    max_attempts: int = Field(default=3, ge=1, le=100)
    batch_size_param: str | None = None
    lr_param: str | None = None
    grad_accum_param: str | None = None
    fixer: Literal["rules", "llm", "none"] = "rules"
    """``rules``: the rule fixers; ``llm``: rules first, then the LLM fixer; ``none``: no
    changes (transient failures are still retried once)."""


class _SpecFile(_Strict):
    name: Name | None = None
    command: str = Field(min_length=1)
    workdir: str = Field(default=".", min_length=1)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    params: Params = Field(default_factory=Params)
    datasets: list[Value] | None = Field(default=None, min_length=1)
    resources: Resources = Field(default_factory=Resources)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    priority: int = 0
    depends_on: list[Name] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0)
    executor: Literal["local", "ray"] | None = None


@dataclass(frozen=True)
class Spec:
    """A checked spec. ``params`` has the ``datasets`` shorthand merged into its grid (as
    the last axis, ``dataset``); ``workdir`` is absolute; ``warnings`` are one-line
    messages in the same format as ``SpecError``."""

    name: str
    command: str
    workdir: Path
    env: dict[str, str]
    params: Params
    resources: Resources
    retry: RetryPolicy
    priority: int
    depends_on: tuple[str, ...]
    timeout_s: float | None
    warnings: tuple[str, ...]
    source: Path
    datasets: tuple[ParamValue, ...] = ()
    placeholders: tuple[str, ...] = ()
    text: str = field(default="", repr=False)
    """The spec file as it was read, so a run can record exactly what was submitted."""
    executor: Literal["local", "ray"] | None = None
    """Where the runs go; ``None``: wherever the daemon's configuration says."""


def load_spec(path: Path) -> Spec:
    """Read and check the spec at ``path`` (YAML or TOML by extension)."""
    source = path.expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such file", source=source) from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a folder, not a spec file", source=source) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: not UTF-8 text ({exc.reason})", source=source) from None
    except OSError as exc:
        raise SpecError(f"{source}: cannot read it ({exc.strerror})", source=source) from None
    return parse_spec(text, source=source.resolve())


def parse_spec(text: str, *, source: Path) -> Spec:
    """Check the spec ``text``; ``source`` names it in messages, picks the format
    (``.toml``: TOML, anything else: YAML) and anchors a relative ``workdir``."""
    if source.suffix.lower() == ".toml":
        data, lines = _read_toml(text, source)
    else:
        data, lines = _read_yaml(text, source)
    where = _Locator(source, lines)
    if data is None or data == {}:
        raise SpecError(f"{source.name}: empty spec; it needs at least `command:`", source=source)
    if not isinstance(data, dict):
        raise where.error((), f"expected a mapping of keys (name, command, …), got {show(data)}")
    try:
        model = _SpecFile.model_validate(data)
    except ValidationError as exc:
        problems = [(_error_path(e), _describe(e)) for e in exc.errors()]
        raise where.first(problems) from None
    return _Checker(model, where, text).spec()


class _Locator:
    """Turns key paths into ``<file> line <n>: <key>`` messages."""

    def __init__(self, source: Path, lines: Mapping[tuple[str, ...], int]) -> None:
        self.source = source
        self.lines = lines

    def line(self, path: KeyPath) -> int | None:
        parts = tuple(str(part) for part in path)
        for end in range(len(parts), -1, -1):
            if parts[:end] in self.lines:
                return self.lines[parts[:end]]
        return None

    def format(self, path: KeyPath, message: str) -> str:
        line = self.line(path)
        head = self.source.name if line is None else f"{self.source.name} line {line}"
        key = key_text(path)
        return f"{head}: {key}: {message}" if key else f"{head}: {message}"

    def error(self, path: KeyPath, message: str) -> SpecError:
        return SpecError(
            self.format(path, message),
            source=self.source,
            line=self.line(path),
            key=key_text(path) or None,
        )

    def first(self, problems: list[tuple[KeyPath, str]]) -> SpecError:
        """The problem that comes first in the file, saying how many more there are."""
        ordered = sorted(problems, key=lambda p: (self.line(p[0]) or 10**9, key_text(p[0])))
        path, message = ordered[0]
        if len(ordered) > 1:
            more = len(ordered) - 1
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        return self.error(path, message)


class _Checker:
    """The checks that need more than one key at a time, after pydantic has typed the file."""

    def __init__(self, model: _SpecFile, where: _Locator, text: str) -> None:
        self.model = model
        self.where = where
        self.text = text
        self.problems: list[tuple[KeyPath, str]] = []
        self.warnings: list[tuple[KeyPath, str]] = []

    def spec(self) -> Spec:
        model = self.model
        source = self.where.source
        name = model.name or _default_name(source)
        params, grid_paths = self._params()
        workdir = self._workdir()
        for key in model.env:
            if not _IDENTIFIER.match(key):
                self.problems.append((("env", key), "not a valid environment variable name"))
        for i, dependency in enumerate(model.depends_on):
            if dependency == name:
                self.problems.append((("depends_on", i), "a spec cannot depend on itself"))
        used = self._command(params, grid_paths)
        self._retry(params, grid_paths)
        if not self.problems:
            self._expansion(name, params)
        if self.problems:
            raise self.where.first(self.problems)
        return Spec(
            name=name,
            command=model.command,
            workdir=workdir,
            env=dict(model.env),
            params=params,
            resources=model.resources,
            retry=model.retry,
            priority=model.priority,
            depends_on=tuple(model.depends_on),
            timeout_s=model.timeout_s,
            warnings=tuple(self.where.format(path, message) for path, message in self.warnings),
            source=source,
            datasets=tuple(model.datasets or ()),
            placeholders=tuple(used),
            text=self.text,
            executor=model.executor,
        )

    def _params(self) -> tuple[Params, dict[str, KeyPath]]:
        params = self.model.params
        grid_paths: dict[str, KeyPath] = {key: ("params", "grid", key) for key in params.grid}
        if self.model.datasets is not None:
            if "dataset" in params.grid:
                self.problems.append(
                    (("datasets",), "params.grid already has a `dataset` axis; keep one of them")
                )
            else:
                grid = {**params.grid, "dataset": list(self.model.datasets)}
                params = params.model_copy(update={"grid": grid})
                grid_paths["dataset"] = ("datasets",)
        for key, path in self._param_keys(params, grid_paths):
            if not _IDENTIFIER.match(key):
                self.problems.append(
                    (
                        path,
                        "not a parameter name (letters, digits and _, not starting with a digit)",
                    )
                )
        space = params.random.space if params.random is not None else {}
        for key in params.fixed:
            if key in params.grid:
                self.problems.append(
                    (("params", "fixed", key), f"{key} is also a grid axis; keep one of them")
                )
            elif key in space:
                self.problems.append(
                    (("params", "fixed", key), f"{key} is also sampled in params.random.space")
                )
        for key in space:
            if key in params.grid:
                self.problems.append(
                    (
                        ("params", "random", "space", key),
                        f"{key} is also a grid axis; keep one of them",
                    )
                )
        return params, grid_paths

    def _workdir(self) -> Path:
        raw = Path(self.model.workdir).expanduser()
        workdir = (raw if raw.is_absolute() else self.where.source.parent / raw).resolve()
        if not workdir.exists():
            self.problems.append((("workdir",), f"{workdir} does not exist"))
        elif not workdir.is_dir():
            self.problems.append((("workdir",), f"{workdir} is not a folder"))
        return workdir

    def _command(self, params: Params, grid_paths: dict[str, KeyPath]) -> list[str]:
        command = self.model.command
        try:
            used = placeholders(command)
        except TemplateError as exc:
            self.problems.append((("command",), str(exc)))
            return []
        keyed: dict[str, KeyPath] = {}
        for key, path in self._param_keys(params, grid_paths):
            keyed.setdefault(key, path)
        unknown = [name for name in used if name not in keyed]
        if unknown:
            known = ", ".join(sorted(keyed)) if keyed else "none"
            self.problems.append(
                (("command",), f"{{{unknown[0]}}} is not a parameter (parameters: {known})")
            )
            return used
        common = set(params.fixed) | set(params.random.space if params.random else {})
        if params.grid:
            missing = [n for n in used if n not in params.grid and n not in common]
            if missing:
                self.problems.append(
                    (
                        ("params", "grid"),
                        f"grid runs have no value for {{{missing[0]}}}; add it to params.fixed",
                    )
                )
        for i, entry in enumerate(params.explicit or []):
            missing = [n for n in used if n not in entry and n not in common]
            if missing:
                self.problems.append(
                    (
                        ("params", "list", i),
                        f"no value for {{{missing[0]}}}; add it here or to params.fixed",
                    )
                )
        for key, path in keyed.items():
            if key not in used:
                self.warnings.append((path, f"{key} is not used in the command"))
        for match in _QUOTED_PLACEHOLDER.finditer(command):
            self.warnings.append(
                (
                    ("command",),
                    f"{match[0]}: values are shell-quoted already; "
                    "drop the quotes around the placeholder",
                )
            )
        return used

    def _retry(self, params: Params, grid_paths: dict[str, KeyPath]) -> None:
        retry = self.model.retry
        keys = {key for key, _ in self._param_keys(params, grid_paths)}
        checks: list[tuple[str, str | None, str]] = [
            ("batch_size_param", retry.batch_size_param, "count"),
            ("grad_accum_param", retry.grad_accum_param, "count"),
            ("lr_param", retry.lr_param, "rate"),
        ]
        for setting, param, kind in checks:
            if param is None:
                continue
            if param not in keys:
                known = ", ".join(sorted(keys)) if keys else "none"
                self.problems.append(
                    (("retry", setting), f"{param!r} is not a parameter (parameters: {known})")
                )
                continue
            for path, value in _values_of(params, grid_paths, param):
                if not _fits(value, kind):
                    wanted = "a whole number ≥ 1" if kind == "count" else "a number above 0"
                    self.problems.append(
                        (path, f"retry.{setting} is {param}, so it must be {wanted}, got {value!r}")
                    )
                    break

    def _expansion(self, name: str, params: Params) -> None:
        size = sweep_size(params)
        if size == 0:
            self.problems.append(
                (("params", "list"), "the sweep has no runs (the list is empty, no grid)")
            )
            return
        if size > MAX_RUNS:
            self.problems.append(
                (("params",), f"the sweep has {size} runs; a spec may have at most {MAX_RUNS}")
            )
            return
        expansion = expand_points(params)
        repeated: dict[KeyPath, int] = {}
        for point in expansion.duplicates:
            repeated[point.origin] = repeated.get(point.origin, 0) + 1
        for origin, count in repeated.items():
            runs = "run repeats" if count == 1 else "runs repeat"
            self.warnings.append(
                (origin or ("params",), f"{count} {runs} an earlier one and will run once")
            )
        for point in expansion.points:
            try:
                render_command(self.model.command, point.params)
            except TemplateError as exc:
                label = run_name(name, point.params, point.varying)
                self.problems.append((("command",), f"{exc} in run {label}"))
                return

    @staticmethod
    def _param_keys(
        params: Params, grid_paths: dict[str, KeyPath]
    ) -> Iterator[tuple[str, KeyPath]]:
        """Every parameter key with where it is written (a key may come more than once)."""
        yield from grid_paths.items()
        for i, entry in enumerate(params.explicit or []):
            for key in entry:
                yield key, ("params", "list", i, key)
        for key in params.fixed:
            yield key, ("params", "fixed", key)
        if params.random is not None:
            for key in params.random.space:
                yield key, ("params", "random", "space", key)


def _values_of(
    params: Params, grid_paths: dict[str, KeyPath], key: str
) -> Iterator[tuple[KeyPath, ParamValue]]:
    """Every value ``key`` can take, with where it is written."""
    for i, value in enumerate(params.grid.get(key, [])):
        yield (*grid_paths[key], i), value
    for i, entry in enumerate(params.explicit or []):
        if key in entry:
            yield ("params", "list", i, key), entry[key]
    if key in params.fixed:
        yield ("params", "fixed", key), params.fixed[key]
    dimension = params.random.space.get(key) if params.random is not None else None
    if dimension is not None:
        path: KeyPath = ("params", "random", "space", key)
        if dimension.choice is not None:
            for i, value in enumerate(dimension.choice):
                yield (*path, "choice", i), value
        elif dimension.randint is not None:
            yield (*path, "randint"), min(dimension.randint)
        elif dimension.loguniform is not None:
            yield (*path, "loguniform"), min(dimension.loguniform)
        elif dimension.uniform is not None:
            yield (*path, "uniform"), min(dimension.uniform)


def _fits(value: ParamValue, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "count":
        return isinstance(value, int) and value >= 1
    return isinstance(value, int | float) and value > 0


def _default_name(source: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.stem).strip("-._")[:100]
    return stem if stem and _NAME.match(stem) else "experiment"


# Pydantic errors as short messages


def _error_path(error: ErrorDetails) -> KeyPath:
    """The key path of a pydantic error; a bad key is named as YAML spelled its value."""
    loc = error["loc"]
    if loc and loc[-1] == "[key]":
        return (*loc[:-2], show(error.get("input")))
    return tuple(loc)


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    got = f", got {show(error.get('input'))}"
    if kind == "missing":
        return "required key is missing"
    if error["loc"] and error["loc"][-1] == "[key]":
        return (
            f"expected a text key, got {show(error.get('input'))}"
            " (YAML reads yes, no, on, off, true, false and numbers as values: quote the key)"
        )
    if kind == "extra_forbidden":
        path = _error_path(error)
        known = _known_keys(path[:-1])
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {hint}known keys: {', '.join(known)}"
    simple = {
        "list_type": "expected a list of values",
        "dict_type": "expected a mapping (key: value)",
        "model_type": "expected a mapping (key: value)",
        "model_attributes_type": "expected a mapping (key: value)",
        "string_type": "expected a string",
        "int_type": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_type": "expected a number",
        "bool_type": "expected true or false",
        "string_too_short": "expected a non-empty string",
    }
    if kind in simple:
        return simple[kind] + got
    if kind == "too_short":
        what = "entry" if ctx.get("field_type") == "Dictionary" else "value"
        return f"expected at least {ctx.get('min_length', 1)} {what}{got}"
    bounds = {
        "greater_than": ">",
        "greater_than_equal": "≥",
        "less_than": "<",
        "less_than_equal": "≤",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"expected a value {bounds[kind]} {limit}{got}"
    if kind == "string_pattern_mismatch":
        return f"expected letters, digits, '.', '_' or '-', starting with a letter or digit{got}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')}{got}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return str(error["msg"])


def _known_keys(path: KeyPath) -> list[str]:
    annotation: Any = _SpecFile
    for part in path:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model = _model_of(annotation)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    model = _model_of(annotation)
    if model is not None:
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
