"""Sweeps: a spec expands to exactly these runs, commands and names."""

from __future__ import annotations

import math
import shlex
import string
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labmind.trainers.spec import Spec, parse_spec
from labmind.trainers.sweep import (
    ParamValue,
    RunPlan,
    TemplateError,
    expand,
    format_value,
    params_hash,
    placeholders,
    render_command,
    run_name,
)


def spec_from(text: str, folder: Path | None = None) -> Spec:
    where = folder if folder is not None else Path(tempfile.gettempdir())
    return parse_spec(textwrap.dedent(text), source=where / "sweep.yaml")


def commands(runs: list[RunPlan]) -> list[str]:
    return [run.command for run in runs]


def test_the_design_example_expands_to_these_runs() -> None:
    runs = expand(
        spec_from(
            """\
            name: lr-sweep
            command: python train.py --lr {lr} --batch-size {batch_size} --data {dataset}
            params:
              grid: {lr: [1.0e-3, 3.0e-4], dataset: [cifar10, cifar100]}
              fixed: {batch_size: 64}
            """
        )
    )
    assert commands(runs) == [
        "python train.py --lr 0.001 --batch-size 64 --data cifar10",
        "python train.py --lr 0.001 --batch-size 64 --data cifar100",
        "python train.py --lr 0.0003 --batch-size 64 --data cifar10",
        "python train.py --lr 0.0003 --batch-size 64 --data cifar100",
    ]
    assert [run.name for run in runs] == [
        "lr-sweep[lr=0.001,dataset=cifar10]",
        "lr-sweep[lr=0.001,dataset=cifar100]",
        "lr-sweep[lr=0.0003,dataset=cifar10]",
        "lr-sweep[lr=0.0003,dataset=cifar100]",
    ]
    assert [run.index for run in runs] == [0, 1, 2, 3]
    assert runs[0].params == {"lr": 0.001, "dataset": "cifar10", "batch_size": 64}
    assert runs[0].key == params_hash(runs[0].params)


def test_datasets_are_the_last_grid_axis() -> None:
    runs = expand(
        spec_from(
            """\
            name: ds
            command: python t.py --lr {lr} --data {dataset}
            params: {grid: {lr: [0.1, 0.2]}}
            datasets: [mnist, svhn]
            """
        )
    )
    assert [run.name for run in runs] == [
        "ds[lr=0.1,dataset=mnist]",
        "ds[lr=0.1,dataset=svhn]",
        "ds[lr=0.2,dataset=mnist]",
        "ds[lr=0.2,dataset=svhn]",
    ]


def test_list_entries_follow_the_grid_and_override_fixed() -> None:
    runs = expand(
        spec_from(
            """\
            name: mix
            command: python t.py --lr {lr} --bs {batch_size}
            params:
              grid: {lr: [0.01]}
              list:
                - {lr: 0.1, batch_size: 32}
                - {lr: 0.5}
              fixed: {batch_size: 64}
            """
        )
    )
    assert commands(runs) == [
        "python t.py --lr 0.01 --bs 64",
        "python t.py --lr 0.1 --bs 32",
        "python t.py --lr 0.5 --bs 64",
    ]
    assert [run.name for run in runs] == [
        "mix[lr=0.01]",
        "mix[lr=0.1,batch_size=32]",
        "mix[lr=0.5]",
    ]


def test_a_plain_run_is_named_after_the_spec() -> None:
    runs = expand(
        spec_from("name: once\ncommand: python t.py --epochs {e}\nparams: {fixed: {e: 3}}\n")
    )
    assert [(run.name, run.command) for run in runs] == [("once", "python t.py --epochs 3")]


RANDOM_SPEC = """\
name: search
command: python t.py --lr {lr} --wd {wd} --opt {opt} --layers {layers}
params:
  random:
    n: 8
    seed: %d
    space:
      lr: {loguniform: [1.0e-5, 1.0e-2]}
      wd: {uniform: [0, 0.1]}
      opt: {choice: [adam, sgd]}
      layers: {randint: [2, 8]}
"""


def test_random_search_is_deterministic_and_within_bounds() -> None:
    first = expand(spec_from(RANDOM_SPEC % 0))
    again = expand(spec_from(RANDOM_SPEC % 0))
    other = expand(spec_from(RANDOM_SPEC % 1))
    assert commands(first) == commands(again)
    assert commands(first) != commands(other)
    assert len(first) == 8
    for run in first:
        lr, wd, opt, layers = (run.params[k] for k in ("lr", "wd", "opt", "layers"))
        assert isinstance(lr, float) and 1e-5 <= lr <= 1e-2
        assert isinstance(wd, float) and 0 <= wd <= 0.1
        assert opt in ("adam", "sgd")
        assert isinstance(layers, int) and not isinstance(layers, bool) and 2 <= layers <= 8
        assert float(f"{lr:.4g}") == lr  # four significant digits
        assert run.name.startswith("search[lr=")


def test_random_samples_cross_the_datasets() -> None:
    runs = expand(
        spec_from(
            """\
            name: rs
            command: python t.py --lr {lr} --data {dataset}
            params:
              random: {n: 3, seed: 0, space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}}
            datasets: [a, b]
            """
        )
    )
    assert len(runs) == 6
    # every sample is tried on every dataset, sample by sample
    assert [run.params["dataset"] for run in runs] == ["a", "b"] * 3
    assert runs[0].params["lr"] == runs[1].params["lr"]


def test_values_are_shell_quoted_and_numbers_stay_short() -> None:
    params: dict[str, ParamValue] = {
        "name": "my run; rm -rf ~",
        "lr": 0.0003,
        "eps": 1e-05,
        "big": 1e16,
        "steps": 100000,
        "amp": True,
        "empty": "",
    }
    command = render_command(
        "train --name {name} --lr {lr} --eps {eps} --big {big} --steps {steps}"
        " --amp {amp} --e {empty}",
        params,
    )
    assert command == (
        "train --name 'my run; rm -rf ~' --lr 0.0003 --eps 1e-05 --big 1e+16 --steps 100000"
        " --amp true --e ''"
    )


def test_format_specs_apply_before_quoting() -> None:
    assert (
        render_command("t --lr {lr:.0e} --n {n:04d}", {"lr": 0.001, "n": 7})
        == "t --lr 1e-03 --n 0007"
    )


def test_rendering_refuses_what_it_cannot_fill() -> None:
    with pytest.raises(TemplateError, match=r"no value for \{lr\}"):
        render_command("t --lr {lr}", {})
    with pytest.raises(TemplateError, match="literal braces"):
        render_command("t --lr {lr", {"lr": 1})
    with pytest.raises(TemplateError, match="not a parameter name"):
        placeholders("t {0}")
    with pytest.raises(TemplateError, match="conversions"):
        placeholders("t {x!r}")
    assert render_command("echo {{x}} {x}", {"x": 1}) == "echo {x} 1"


def test_params_hash_ignores_order_but_not_types() -> None:
    assert params_hash({"a": 1, "b": "x"}) == params_hash({"b": "x", "a": 1})
    hashes = {params_hash({"a": value}) for value in (1, 1.0, "1", True)}
    assert len(hashes) == 4


def test_names_quote_strings_that_look_like_other_values() -> None:
    names = {run_name("s", {"x": value}, ["x"]) for value in (1, "1", 1.0, True, "true", "a,b")}
    assert len(names) == 6
    assert run_name("s", {"x": "a,b"}, ["x"]) == 's[x="a,b"]'


# --- properties ----------------------------------------------------------------------------

axis_names = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6).map("p_".__add__)
scalar = st.one_of(
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet=string.ascii_letters + string.digits + " -_.,=/", max_size=8),
    st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        axis_names,
        st.lists(scalar, min_size=1, max_size=3, unique_by=lambda v: params_hash({"v": v})),
        min_size=1,
        max_size=3,
    )
)
def test_a_grid_expands_to_the_product_of_its_axes(grid: dict[str, list[ParamValue]]) -> None:
    flags = " ".join(f"--{key} {{{key}}}" for key in grid)
    lines = ["name: g", f"command: run {flags}", "params:", "  grid:"]
    for key, values in grid.items():
        rendered = ", ".join(_yaml_scalar(v) for v in values)
        lines.append(f"    {key}: [{rendered}]")
    runs = expand(spec_from("\n".join(lines) + "\n"))
    assert len(runs) == math.prod(len(values) for values in grid.values())
    assert len({run.name for run in runs}) == len(runs)
    assert len({run.key for run in runs}) == len(runs)
    for run in runs:
        argv = shlex.split(run.command)
        assert argv[0] == "run"
        assert argv[2::2] == [format_value(run.params[key]) for key in grid]


def _yaml_scalar(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + value.replace("'", "''") + "'"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_any_string_value_round_trips_through_the_shell(value: str) -> None:
    command = render_command("prog --value {v} --n {n}", {"v": value, "n": 3})
    assert shlex.split(command) == ["prog", "--value", value, "--n", "3"]


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_render_as_the_shortest_text_that_reads_back(value: float) -> None:
    text = render_command("{x}", {"x": value})
    assert float(text) == value
    assert text == repr(value)
