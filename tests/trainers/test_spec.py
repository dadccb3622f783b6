"""Experiment specs: what a researcher writes, what labmind reads, and errors that point
at the line and the key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from labmind.trainers.spec import Spec, SpecError, load_spec
from labmind.trainers.sweep import expand

EXAMPLE_YAML = """\
name: lr-sweep
command: python train.py --lr {lr} --batch-size {batch_size} --data {dataset}
workdir: .                 # relative to the spec file
env: {WANDB_MODE: offline, OMP_NUM_THREADS: 4}
params:
  grid:
    lr: [1.0e-3, 3.0e-4]
  fixed: {batch_size: 64}
datasets: [cifar10, cifar100]
resources: {gpus: 1, min_gpu_mem_gb: 10}
retry: {max_attempts: 3, batch_size_param: batch_size, lr_param: lr, grad_accum_param: null}
priority: 5
depends_on: [prepare-data]
timeout_s: 3600
"""

EXAMPLE_TOML = """\
name = "lr-sweep"
command = "python train.py --lr {lr} --batch-size {batch_size} --data {dataset}"
workdir = "."
datasets = ["cifar10", "cifar100"]
priority = 5
depends_on = ["prepare-data"]
timeout_s = 3600

[env]
WANDB_MODE = "offline"
OMP_NUM_THREADS = 4

[params.grid]
lr = [1.0e-3, 3.0e-4]

[params.fixed]
batch_size = 64

[resources]
gpus = 1
min_gpu_mem_gb = 10

[retry]
max_attempts = 3
batch_size_param = "batch_size"
lr_param = "lr"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def spec_error(tmp_path: Path, text: str, name: str = "spec.yaml") -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, name, text))
    message = str(caught.value)
    assert "\n" not in message
    return caught.value


# --- what loads ----------------------------------------------------------------------------


def test_the_design_example_loads_with_typed_fields(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "lr-sweep.yaml", EXAMPLE_YAML))
    assert spec.name == "lr-sweep"
    assert spec.workdir == tmp_path.resolve()
    assert spec.env == {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "4"}
    assert spec.params.grid == {"lr": [0.001, 0.0003], "dataset": ["cifar10", "cifar100"]}
    assert spec.params.fixed == {"batch_size": 64}
    assert spec.datasets == ("cifar10", "cifar100")
    assert (spec.resources.gpus, spec.resources.min_gpu_mem_gb, spec.resources.cpus) == (1, 10, 1)
    assert spec.retry.max_attempts == 3
    assert spec.retry.batch_size_param == "batch_size"
    assert spec.retry.lr_param == "lr"
    assert spec.retry.grad_accum_param is None
    assert spec.retry.fixer == "rules"
    assert (spec.priority, spec.depends_on, spec.timeout_s) == (5, ("prepare-data",), 3600)
    assert spec.placeholders == ("lr", "batch_size", "dataset")
    assert spec.warnings == ()
    assert spec.source == (tmp_path / "lr-sweep.yaml").resolve()
    assert spec.text.startswith("name: lr-sweep")


def test_toml_and_yaml_give_the_same_runs(tmp_path: Path) -> None:
    from_yaml = load_spec(write(tmp_path, "a.yaml", EXAMPLE_YAML))
    from_toml = load_spec(write(tmp_path, "a.toml", EXAMPLE_TOML))
    assert [run.command for run in expand(from_yaml)] == [run.command for run in expand(from_toml)]
    assert from_toml.env == from_yaml.env
    assert from_toml.retry == from_yaml.retry


def test_defaults_for_a_single_plain_run(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "baseline run.yml", "command: python train.py\n"))
    assert spec.name == "baseline-run"  # from the file name
    assert spec.resources.gpus == 0
    assert spec.retry.max_attempts == 3
    assert spec.priority == 0
    assert spec.depends_on == ()
    assert [run.command for run in expand(spec)] == ["python train.py"]


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path: Path) -> None:
    spec = load_spec(
        write(tmp_path, "s.yaml", "command: run {lr}\nparams: {grid: {lr: [1e-3, 5E-4, 2e5]}}\n")
    )
    assert spec.params.grid["lr"] == [0.001, 0.0005, 200000.0]


def test_workdir_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "specs").mkdir()
    spec = load_spec(write(tmp_path / "specs", "s.yaml", "command: x\nworkdir: ../code\n"))
    assert spec.workdir == (tmp_path / "code").resolve()
    assert spec.workdir.is_absolute()


def test_unknown_extension_is_read_as_yaml(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "exp.spec", "command: echo {x}\nparams: {fixed: {x: 1}}\n"))
    assert expand(spec)[0].command == "echo 1"


def test_random_space_and_list_load(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            "r.yaml",
            """\
            command: python t.py --lr {lr} --wd {wd} --opt {opt} --layers {layers}
            params:
              random:
                n: 4
                seed: 7
                space:
                  lr: {loguniform: [1.0e-5, 1.0e-2]}
                  wd: {uniform: [0, 0.1]}
                  opt: {choice: [adam, sgd]}
                  layers: {randint: [2, 8]}
            """,
        )
    )
    assert spec.params.random is not None
    assert spec.params.random.n == 4
    assert list(spec.params.random.space) == ["lr", "wd", "opt", "layers"]
    assert len(expand(spec)) == 4


# --- errors that point at the line and the key ---------------------------------------------


def test_a_scalar_where_a_grid_wants_a_list(tmp_path: Path) -> None:
    error = spec_error(
        tmp_path,
        """\
        name: lr-sweep
        command: python train.py --lr {lr} --batch-size {batch_size}
        workdir: .
        env: {WANDB_MODE: offline}
        params:
          grid:
            lr: 0.001
          fixed: {batch_size: 64}
        """,
        name="lr-sweep.yaml",
    )
    assert str(error).startswith("lr-sweep.yaml line 7: params.grid.lr: expected a list of values")
    assert (error.line, error.key) == (7, "params.grid.lr")


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        pytest.param(
            "command: x {lr}\nparams:\n  fixed: {lr: 1}\nretry:\n  max_attempt: 3\n",
            5,
            "retry.max_attempt",
            "did you mean 'max_attempts'?",
            id="typo-in-a-key",
        ),
        pytest.param(
            "name: s\ncommand: python t.py --lr {lr} --seed {seed}\n"
            "params:\n  grid: {lr: [1, 2]}\n",
            2,
            "command",
            "{seed} is not a parameter (parameters: lr)",
            id="unknown-placeholder",
        ),
        pytest.param(
            "command: x {lr}\nparams:\n  list: []\n  fixed: {lr: 1}\n",
            3,
            "params.list",
            "no runs",
            id="empty-sweep",
        ),
        pytest.param(
            "command: x {lr}\nparams:\n  grid:\n    lr: []\n",
            4,
            "params.grid.lr",
            "at least 1 value",
            id="empty-grid-axis",
        ),
        pytest.param(
            "command: x\nworkdir: ./not-there\n",
            2,
            "workdir",
            "does not exist",
            id="missing-workdir",
        ),
        pytest.param(
            "command: x\nresources:\n  gpus: -1\n",
            3,
            "resources.gpus",
            "expected a value ≥ 0, got -1",
            id="negative-gpus",
        ),
        pytest.param(
            "command: x\nretry: {fixer: gpt}\n",
            2,
            "retry.fixer",
            "expected 'rules', 'llm' or 'none'",
            id="unknown-fixer",
        ),
        pytest.param(
            "command: x {bs}\nparams:\n  fixed: {bs: 64}\nretry:\n  batch_size_param: batch\n",
            5,
            "retry.batch_size_param",
            "'batch' is not a parameter (parameters: bs)",
            id="retry-names-a-missing-parameter",
        ),
        pytest.param(
            "command: x {bs}\nparams:\n  grid:\n    bs: [64, big]\nretry: {batch_size_param: bs}\n",
            4,
            "params.grid.bs[1]",
            "must be a whole number ≥ 1, got 'big'",
            id="batch-size-not-a-number",
        ),
        pytest.param(
            "command: x {lr}\nparams:\n  grid: {lr: [1, 2]}\n  fixed:\n    lr: 3\n",
            5,
            "params.fixed.lr",
            "also a grid axis",
            id="fixed-and-grid-overlap",
        ),
        pytest.param(
            "command: x {dataset}\nparams:\n  grid: {dataset: [a]}\ndatasets: [b, c]\n",
            4,
            "datasets",
            "already has a `dataset` axis",
            id="datasets-twice",
        ),
        pytest.param(
            "command: x {lr}\nparams:\n  random:\n    n: 2\n    space:\n"
            "      lr: {normal: [0, 1]}\n",
            6,
            "params.random.space.lr.normal",
            "did you mean 'uniform'?",
            id="unknown-distribution",
        ),
        pytest.param(
            "command: x {lr}\nparams:\n  random:\n    n: 2\n    space:\n"
            "      lr: {loguniform: [0, 1.0e-2]}\n",
            6,
            "params.random.space.lr",
            "loguniform: bounds must be above 0",
            id="loguniform-at-zero",
        ),
        pytest.param(
            "command: x {lr}\nparams:\n  random:\n    n: 0\n    space: {lr: {uniform: [0, 1]}}\n",
            4,
            "params.random.n",
            "expected a value ≥ 1",
            id="no-samples",
        ),
        pytest.param(
            "command: x {a}\nparams:\n  grid:\n    a: [1, [2, 3]]\n",
            4,
            "params.grid.a[1]",
            "expected a single value (string, number or true/false), got a list",
            id="nested-list",
        ),
        pytest.param(
            "command: x {a}\nparams:\n  list:\n    - {a: 1}\n    - {b: 2}\n",
            5,
            "params.list[1]",
            "no value for {a}",
            id="list-entry-missing-a-placeholder",
        ),
        pytest.param(
            "command: x\nenv:\n  WANDB_SILENT: true\n",
            3,
            "env.WANDB_SILENT",
            "quote it",
            id="env-boolean",
        ),
        pytest.param(
            "name: a\ncommand: x\ndepends_on: [b, a]\n",
            3,
            "depends_on[1]",
            "cannot depend on itself",
            id="self-dependency",
        ),
        pytest.param(
            "name: my sweep\ncommand: x\n",
            1,
            "name",
            "expected letters, digits",
            id="bad-name",
        ),
        pytest.param(
            "command: x\ncommand: y\n",
            2,
            "command",
            "duplicate key",
            id="duplicate-key",
        ),
        pytest.param(
            "command: python t.py --lr {lr:d}\nparams:\n  fixed: {lr: 0.1}\n",
            1,
            "command",
            "{lr:d}",
            id="format-spec-that-does-not-fit",
        ),
        pytest.param(
            "command: echo ${HOME} {x}\nparams:\n  fixed: {x: 1}\n",
            1,
            "command",
            "{HOME} is not a parameter",
            id="shell-braces",
        ),
        pytest.param(
            "command: x {a}\nparams:\n  grid:\n    a: [1]\n    no: [2]\n",
            5,
            "params.grid.false",
            "expected a text key, got false",
            id="yaml-boolean-key",
        ),
        pytest.param(
            "params:\n  fixed: {x: 1}\n",
            1,
            "command",
            "required key is missing",
            id="no-command",
        ),
    ],
)
def test_errors_name_the_line_and_the_key(
    tmp_path: Path, text: str, line: int, key: str, fragment: str
) -> None:
    error = spec_error(tmp_path, text)
    assert error.line == line
    assert error.key == key
    assert str(error).startswith(f"spec.yaml line {line}: {key}: ")
    assert fragment in str(error)


def test_several_problems_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "command: x\nresources: {gpus: -1}\npriority: high\n")
    assert str(error) == (
        "spec.yaml line 2: resources.gpus: expected a value ≥ 0, got -1 (and 1 more problem)"
    )


def test_malformed_yaml_gives_the_parser_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, "command: x\nparams:\n  grid: {lr: [1, 2}\n")
    assert re.match(r"spec\.yaml line 3: invalid YAML: ", str(error))
    assert error.line == 3


def test_malformed_toml_gives_the_parser_line(tmp_path: Path) -> None:
    error = spec_error(tmp_path, 'command = "x"\n[params]\nfixed = {a = }\n', name="s.toml")
    assert str(error).startswith("s.toml line 3: invalid TOML: ")


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        pytest.param(
            'command = "x {lr}"\n\n[params.grid]\nlr = 0.001\n', 4, "params.grid.lr", id="table"
        ),
        pytest.param(
            'command = "x {lr}"\n[params]\ngrid = {lr = 0.001}\n', 3, "params.grid.lr", id="inline"
        ),
        pytest.param(
            'command = "x {lr}"\nparams.grid.lr = 0.001\n', 2, "params.grid.lr", id="dotted"
        ),
        pytest.param(
            'command = "x {lr}"\n[params]\nfixed = {lr = 1}\n\n[[params.list]]\nlr = 1\n\n'
            '[[params.list]]\nlr = "a"\nbs = [1]\n',
            10,
            "params.list[1].bs",
            id="array-of-tables",
        ),
        pytest.param(
            'command = "x {lr}"\n[params]\nlist = [\n  {lr = 1},\n  {lr = [2]},\n]\n',
            5,
            "params.list[1].lr",
            id="multi-line-array",
        ),
        pytest.param(
            'command = "x"\n[retry]\nmax_attempts = 3\nfixr = "rules"\n',
            4,
            "retry.fixr",
            id="extra",
        ),
    ],
)
def test_toml_errors_find_the_line_of_the_key(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    error = spec_error(tmp_path, text, name="s.toml")
    assert (error.line, error.key) == (line, key)
    assert str(error).startswith(f"s.toml line {line}: {key}: ")


def test_files_that_are_not_specs(tmp_path: Path) -> None:
    assert str(spec_error(tmp_path, "")) == "spec.yaml: empty spec; it needs at least `command:`"
    assert str(spec_error(tmp_path, "- a\n- b\n")).startswith(
        "spec.yaml line 1: expected a mapping of keys"
    )
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00command")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(tmp_path / "binary.yaml")


# --- warnings ------------------------------------------------------------------------------


def test_a_parameter_the_command_never_uses_is_a_warning(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            "w.yaml",
            """\
            command: python t.py --lr {lr}
            params:
              grid:
                lr: [0.1, 0.01]
              fixed:
                seed: 0
            """,
        )
    )
    assert spec.warnings == ("w.yaml line 6: params.fixed.seed: seed is not used in the command",)
    assert len(expand(spec)) == 2


def test_repeated_runs_are_a_warning_and_run_once(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            "d.yaml",
            """\
            command: python t.py --lr {lr}
            params:
              grid: {lr: [0.1, 0.01]}
              list:
                - {lr: 0.1}
            """,
        )
    )
    assert spec.warnings == (
        "d.yaml line 5: params.list[0]: 1 run repeats an earlier one and will run once",
    )
    assert [run.params["lr"] for run in expand(spec)] == [0.1, 0.01]


def test_quotes_around_a_placeholder_are_a_warning(tmp_path: Path) -> None:
    spec = load_spec(
        write(
            tmp_path,
            "q.yaml",
            'command: python t.py --name "{name}"\nparams: {fixed: {name: my run}}\n',
        )
    )
    assert len(spec.warnings) == 1
    assert 'q.yaml line 1: command: "{name}": values are shell-quoted already' in spec.warnings[0]


def test_spec_is_frozen(tmp_path: Path) -> None:
    spec: Spec = load_spec(write(tmp_path, "f.yaml", "command: x\n"))
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


def test_a_sweep_too_large_to_be_meant_is_refused(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(200))
    error = spec_error(
        tmp_path,
        f"command: x {{a}} {{b}}\nparams:\n  grid:\n    a: [{values}]\n    b: [{values}]\n",
    )
    assert str(error) == (
        "spec.yaml line 2: params: the sweep has 40000 runs; a spec may have at most 10000"
    )
