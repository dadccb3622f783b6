"""Snapshot time on a 10,000-file repository, next to `git status` and `git commit`.

A deterministic repository of ``--files`` tracked files (nested packages of Python
modules, docs, configs, small CSV/JSON/notebook files from a few hundred bytes to a few
hundred kilobytes, a ``.gitignore`` and ignored caches, logs and checkpoints) is made and
committed with the git CLI in an isolated environment (no system or user config), then
packed. Three copies with the same index and working tree (``cp -a``, then ``git
update-index --refresh`` so that each index's stat data matches its own files) are
measured, warm cache, ``--repeats`` times each (median and p95):

- ``git status --porcelain --untracked-files=all``, the yardstick;
- `take_snapshot` of an unchanged tree: a clean one (equal to HEAD), and one with a
  light batch of edits already snapshotted (the researcher's usual uncommitted work),
  with the default `Guards` (detect-secrets on changed content) and with the guards off;
- lightly changed: before every repetition the same batch of edits (modify 20 files,
  add 5, delete 2) goes into each copy, then `take_snapshot` (guards on, guards off) or
  ``git add -A && git commit -q`` on the third copy. The snapshot never writes the
  user's index, so its work is measured against HEAD: the files dirty since HEAD grow by
  a batch each repetition, whereas the commit starts from the last commit every time.

The first snapshot in the process, and the first after the edits, are reported once.
Unchanged snapshots are also timed with the repository opened once and passed in (as a
daemon can), which keeps libgit2's parsed index and object cache warm. The parts of an
unchanged snapshot (libgit2 status; reading HEAD's tree into an index and writing it
back, each on a freshly opened repository) are timed on their own to show where the
time goes; ``--profile`` prints a cProfile of unchanged snapshots as well.

    python -m bench.backup [--json out.json] [--files 10000] [--repeats 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pygit2

from labmind.daemon.backup import Guards, open_repository, take_snapshot

from .report import print_table

SEED = 20_240_611
FIXED_MTIME = 1_700_000_000
"""Files get this mtime before the first commit, so no index entry is racily clean."""
LIGHT_EDIT = (20, 5, 2)
"""Files modified, added and deleted by one batch of light edits."""
GITIGNORE = """\
__pycache__/
*.pyc
*.log
checkpoints/
wandb/
outputs/
.ipynb_checkpoints/
"""
_WORDS_TEXT = """
    model layer batch loss train evaluate data feature embed attention optimizer schedule
    metric sample tensor shape config dataset loader checkpoint epoch step grad norm dropout
    head block encoder decoder vocab mask logits softmax entropy variance mean median
    quantile histogram plot figure axis legend sweep trial seed split fold stride kernel
    padding pooling residual warmup resume shuffle augment crop resize scale rotate
    probe cache buffer queue worker reduce gather scatter shard replica device stream
"""
WORDS = tuple(_WORDS_TEXT.split())
TOP_FOLDERS = ("src", "tests", "docs", "configs", "scripts", "notebooks", "experiments")
EXTENSIONS = (
    (".py", 60),
    (".md", 10),
    (".yaml", 8),
    (".txt", 5),
    (".json", 5),
    (".csv", 5),
    (".ipynb", 4),
    (".sh", 3),
)
"""File kinds and their weights."""


def git_env(home: Path) -> dict[str, str]:
    """An environment where git reads no system or user configuration but a tiny one of ours."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Researcher\n\temail = researcher@example.org\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
        "[gc]\n\tauto = 0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(config),
        GIT_TERMINAL_PROMPT="0",
    )
    return env


def git(root: Path, env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run git in ``root``; its stdout."""
    proc = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# --- a deterministic repository -------------------------------------------------------


def _name(rng: random.Random) -> str:
    return "_".join(rng.sample(WORDS, rng.choice((1, 2, 2, 3))))


def _folders(rng: random.Random, count: int) -> list[str]:
    """``count`` nested folders, at most five deep, under a few top-level ones."""
    folders = list(TOP_FOLDERS)
    while len(folders) < count:
        parent = rng.choice(folders)
        if parent.count("/") < 4:
            folders.append(f"{parent}/{_name(rng)}")
    return sorted(set(folders))


def _size(rng: random.Random) -> int:
    """Bytes of one file: mostly small, some medium, a few large (log-uniform bands)."""
    roll = rng.random()
    low, high = (
        (200, 4_000) if roll < 0.6 else (4_000, 20_000) if roll < 0.92 else (20_000, 300_000)
    )
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _function(rng: random.Random) -> str:
    name, arg, other = _name(rng), rng.choice(WORDS), rng.choice(WORDS)
    body = [
        f"def {name}({arg}, {other}=None):",
        f'    """Compute the {rng.choice(WORDS)} of a {rng.choice(WORDS)}."""',
        f"    {other} = {other} or {rng.randint(1, 512)}",
    ]
    for _ in range(rng.randint(2, 9)):
        target = rng.choice(WORDS)
        body.append(
            f"    {target} = {arg}.{rng.choice(WORDS)}({other}) * {rng.random():.4f}"
            f" + {rng.randint(0, 99)}"
        )
    body.append(f"    return {rng.choice(WORDS)}\n")
    return "\n".join(body) + "\n"


def _prose(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 20))]
    return " ".join(words).capitalize() + ".\n"


def _text(rng: random.Random, kind: str, path: str, size: int) -> str:
    """A file of kind ``kind`` of about ``size`` bytes, unique to ``path``."""
    parts: list[str] = []
    length = 0
    header = {
        ".py": f'"""Module {path}."""\n\nimport math\n\nORIGIN = "{path}"\n\n',
        ".md": f"# {path}\n\n",
        ".yaml": f"# {path}\nname: {_name(rng)}\n",
        ".txt": f"{path}\n",
        ".csv": f"# {path}\nstep,loss,accuracy,lr\n",
        ".sh": f"#!/bin/sh\n# {path}\nset -e\n",
        ".json": "",
        ".ipynb": "",
    }[kind]
    if kind in (".json", ".ipynb"):
        return _json_text(rng, kind, path, size)
    line: Callable[[], str] = {
        ".py": lambda: _function(rng) + "\n",
        ".md": lambda: _prose(rng) + ("\n" if rng.random() < 0.3 else ""),
        ".yaml": lambda: f"{_name(rng)}: {rng.randint(0, 10_000)}\n",
        ".txt": lambda: _prose(rng),
        ".csv": lambda: (
            f"{rng.randint(0, 10**6)},{rng.random():.5f},{rng.random():.4f},{rng.random():.6f}\n"
        ),
        ".sh": lambda: f"python -m {_name(rng)} --{rng.choice(WORDS)} {rng.randint(1, 99)}\n",
    }[kind]
    parts.append(header)
    length = len(header)
    while length < size:
        piece = line()
        parts.append(piece)
        length += len(piece)
    return "".join(parts)


def _json_text(rng: random.Random, kind: str, path: str, size: int) -> str:
    if kind == ".json":
        count = max(1, size // 40)
        data: dict[str, object] = {"origin": path}
        data.update({f"{_name(rng)}_{i}": rng.randint(0, 10**6) for i in range(count)})
        return json.dumps(data, indent=2) + "\n"
    cells: list[dict[str, object]] = []
    length = 0
    while length < size:
        source = _function(rng)
        length += len(source) + 200
        cells.append(
            {
                "cell_type": "code",
                "execution_count": len(cells) + 1,
                "metadata": {},
                "outputs": [],
                "source": source.splitlines(keepends=True),
            }
        )
    notebook = {"cells": cells, "metadata": {"origin": path}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook, indent=1) + "\n"


def _kind(rng: random.Random) -> str:
    kinds = [kind for kind, _ in EXTENSIONS]
    return rng.choices(kinds, weights=[weight for _, weight in EXTENSIONS])[0]


def plan_files(files: int, seed: int = SEED) -> dict[str, str]:
    """``path -> text`` of ``files`` tracked files in nested folders (deterministic)."""
    rng = random.Random(seed)
    folders = _folders(rng, max(len(TOP_FOLDERS), files // 16))
    planned: dict[str, str] = {".gitignore": GITIGNORE}
    serial = 0
    while len(planned) < files:
        folder, kind = rng.choice(folders), _kind(rng)
        serial += 1
        path = f"{folder}/{_name(rng)}_{serial}{kind}"
        planned[path] = _text(rng, kind, path, _size(rng))
    return planned


def plan_ignored(tracked: Sequence[str], seed: int = SEED) -> dict[str, bytes]:
    """Ignored files (caches, logs, checkpoints): about one per twenty tracked files."""
    rng = random.Random(seed + 1)
    ignored: dict[str, bytes] = {}
    modules = [p for p in tracked if p.endswith(".py")]
    for path in rng.sample(modules, max(1, len(modules) // 25)):
        folder, name = path.rsplit("/", 1)
        pyc = f"{folder}/__pycache__/{name[:-3]}.cpython-311.pyc"
        ignored[pyc] = b"\xa7\r\r\n" + rng.randbytes(rng.randint(200, 4000))
    for run in range(max(1, len(tracked) // 400)):
        ignored[f"wandb/run-{run:04d}/output.log"] = b"loss 0.5\n" * rng.randint(10, 400)
        ignored[f"checkpoints/run-{run:04d}/model.pt"] = rng.randbytes(rng.randint(1000, 20000))
        ignored[f"outputs/run-{run:04d}.log"] = b"epoch 1 done\n" * rng.randint(5, 50)
    return ignored


def write_files(root: Path, files: dict[str, str] | dict[str, bytes]) -> None:
    """Write ``files`` under ``root`` with the fixed mtime."""
    for path, content in files.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            file.write_text(content, encoding="utf-8")
        else:
            file.write_bytes(content)
        os.utime(file, (FIXED_MTIME, FIXED_MTIME))


def make_repository(root: Path, env: dict[str, str], files: int, seed: int = SEED) -> list[str]:
    """A committed, packed repository of ``files`` tracked files at ``root``; their paths."""
    planned = plan_files(files, seed)
    root.mkdir(parents=True)
    write_files(root, planned)
    write_files(root, plan_ignored(list(planned), seed))
    git(root, env, "init", "-q")
    git(root, env, "add", "-A")
    git(root, env, "commit", "-q", "-m", "initial")
    git(root, env, "gc", "-q")
    return sorted(planned)


def copy_repository(source: Path, target: Path, env: dict[str, str]) -> Path:
    """A copy with the same index and work tree, its index stat data refreshed for its files."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    git(target, env, "update-index", "-q", "--refresh", check=False)
    return target


# --- light edits ---------------------------------------------------------------------

Batch = list[tuple[str, bytes | None]]
"""``(path, new content)`` writes and ``(path, None)`` deletions."""


@dataclass
class Editor:
    """Makes batches of light edits (modify, add, delete) that apply identically to copies."""

    root: Path
    tracked: list[str]
    rng: random.Random
    serial: int = 0

    def batch(self, counts: tuple[int, int, int] = LIGHT_EDIT) -> Batch:
        modified, added, deleted = counts
        candidates = [p for p in self.tracked if p.endswith((".py", ".md", ".txt", ".yaml"))]
        chosen = self.rng.sample(candidates, modified + deleted)
        batch: Batch = [(path, self._modified(path)) for path in chosen[:modified]]
        batch += [(path, None) for path in chosen[modified:]]
        for path in chosen[modified:]:
            self.tracked.remove(path)
        for _ in range(added):
            self.serial += 1
            folder = self.rng.choice(chosen[:modified]).rsplit("/", 1)[0]
            path = f"{folder}/new_{_name(self.rng)}_{self.serial}.py"
            batch.append((path, _text(self.rng, ".py", path, _size(self.rng)).encode()))
            self.tracked.append(path)
        return batch

    def _modified(self, path: str) -> bytes:
        lines = (self.root / path).read_text(encoding="utf-8").splitlines(keepends=True)
        at = self.rng.randrange(len(lines))
        lines[at] = f"# edited: {_prose(self.rng)}"
        lines.append("\n" + _function(self.rng))
        return "".join(lines).encode()


def apply_batch(root: Path, batch: Batch) -> None:
    for path, content in batch:
        file = root / path
        if content is None:
            file.unlink()
        else:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)


# --- timing ----------------------------------------------------------------------------


def summary(samples: Sequence[float], paths: float) -> dict[str, float]:
    """Runs, median and p95 (nearest rank) in milliseconds, and the paths the work covered."""
    ordered = sorted(samples)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "runs": float(len(ordered)),
        "median ms": statistics.median(ordered),
        "p95 ms": p95,
        "paths": paths,
    }


def git_status(root: Path, env: dict[str, str]) -> int:
    """Run ``git status --porcelain --untracked-files=all``; the number of paths it lists."""
    return len(git(root, env, "status", "--porcelain", "--untracked-files=all").splitlines())


def git_commit_all(root: Path, env: dict[str, str], paths: int) -> int:
    """Run ``git add -A && git commit -q`` in one shell; returns ``paths`` (what it covered)."""
    subprocess.run(
        ["sh", "-c", "git add -A && git commit -q -m snapshot"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    return paths


def status_only(root: Path) -> int:
    """libgit2's status as a snapshot asks for it; the number of paths."""
    return len(open_repository(root).status(untracked_files="all", ignored=False))


def tree_round_trip(root: Path) -> int:
    """Read HEAD's tree into a fresh in-memory index and write it back, as a snapshot does."""
    repo = open_repository(root)
    index = pygit2.Index()
    index.read_tree(repo.head.peel(pygit2.Commit).tree)
    index.write_tree(repo)
    return len(index)


def measured(count: int, action: Callable[[], int]) -> dict[str, float]:
    """``action`` run ``count`` times: the timing summary, paths from the last run."""
    samples: list[float] = []
    paths = 0
    for _ in range(count):
        started = time.perf_counter()
        paths = action()
        samples.append((time.perf_counter() - started) * 1000)
    return summary(samples, paths)


# --- the measurement -----------------------------------------------------------------

GUARDS_ON = Guards()
GUARDS_OFF = Guards(allow=("*",))
"""Everything allowed: no name, size or content check runs."""


@dataclass
class Copies:
    """The three copies of the repository and the git environment."""

    on: Path
    off: Path
    commit: Path
    env: dict[str, str]
    held_back: set[str] = field(default_factory=set)
    """Paths any snapshot held back (none are expected in this repository)."""

    def snapshot(self, root: Path | pygit2.Repository, guards: Guards) -> int:
        """Snapshot ``root``; the number of files that differ from the previous snapshot."""
        result = take_snapshot(root, guards=guards)
        self.held_back.update(held.path for held in result.held_back)
        return result.files_changed

    def apply(self, batch: Batch) -> None:
        for root in (self.on, self.off, self.commit):
            apply_batch(root, batch)


def measure_clean(copies: Copies, repeats: int) -> dict[str, dict[str, float]]:
    """A clean tree (equal to HEAD): git status, the first snapshot, unchanged snapshots."""
    on, off, env = copies.on, copies.off, copies.env
    rows = {"git status (clean tree)": measured(repeats, lambda: git_status(on, env))}
    rows["snapshot: first call in the process (clean)"] = measured(
        1, lambda: copies.snapshot(on, GUARDS_ON)
    )
    rows["snapshot unchanged, clean, guards on"] = measured(
        repeats, lambda: copies.snapshot(on, GUARDS_ON)
    )
    copies.snapshot(off, GUARDS_OFF)
    rows["snapshot unchanged, clean, guards off"] = measured(
        repeats, lambda: copies.snapshot(off, GUARDS_OFF)
    )
    kept = open_repository(on)
    rows["snapshot unchanged, clean, guards on, repository kept open"] = measured(
        repeats, lambda: copies.snapshot(kept, GUARDS_ON)
    )
    rows["  part: libgit2 status alone"] = measured(repeats, lambda: status_only(on))
    rows["  part: read HEAD tree + write_tree"] = measured(repeats, lambda: tree_round_trip(on))
    return rows


def measure_dirty(copies: Copies, editor: Editor, repeats: int) -> dict[str, dict[str, float]]:
    """One batch of edits, snapshotted (and committed in the git copy) once; then no change."""
    on, off, env = copies.on, copies.off, copies.env
    batch = editor.batch()
    copies.apply(batch)
    rows = {
        "snapshot: first after one batch, guards on": measured(
            1, lambda: copies.snapshot(on, GUARDS_ON)
        ),
        "snapshot: first after one batch, guards off": measured(
            1, lambda: copies.snapshot(off, GUARDS_OFF)
        ),
    }
    commit = measured(1, lambda: git_commit_all(copies.commit, env, len(batch)))
    rows["git add -A && git commit -q: first batch"] = commit
    dirty = f"{len(batch)} files dirty"
    rows[f"git status ({dirty})"] = measured(repeats, lambda: git_status(on, env))
    rows[f"snapshot unchanged, {dirty}, guards on"] = measured(
        repeats, lambda: copies.snapshot(on, GUARDS_ON)
    )
    rows[f"snapshot unchanged, {dirty}, guards off"] = measured(
        repeats, lambda: copies.snapshot(off, GUARDS_OFF)
    )
    kept = open_repository(off)
    rows[f"snapshot unchanged, {dirty}, guards off, repository kept open"] = measured(
        repeats, lambda: copies.snapshot(kept, GUARDS_OFF)
    )
    rows[f"  part: libgit2 status alone ({dirty})"] = measured(repeats, lambda: status_only(on))
    return rows


def measure_light(copies: Copies, editor: Editor, repeats: int) -> dict[str, dict[str, float]]:
    """A fresh batch of edits before every repetition, in all three copies."""
    modified, added, deleted = LIGHT_EDIT
    edit = f"~{modified} +{added} -{deleted}"
    names = (
        f"snapshot lightly changed ({edit}), guards on",
        f"snapshot lightly changed ({edit}), guards off",
        f"git add -A && git commit -q ({edit})",
    )
    timings: dict[str, list[float]] = {name: [] for name in names}
    paths: dict[str, list[int]] = {name: [] for name in names}
    for _ in range(repeats):
        batch = editor.batch()
        copies.apply(batch)
        actions: list[Callable[[], int]] = [
            partial(copies.snapshot, copies.on, GUARDS_ON),
            partial(copies.snapshot, copies.off, GUARDS_OFF),
            partial(git_commit_all, copies.commit, copies.env, len(batch)),
        ]
        for name, action in zip(names, actions, strict=True):
            started = time.perf_counter()
            paths[name].append(action())
            timings[name].append((time.perf_counter() - started) * 1000)
    return {name: summary(timings[name], statistics.median(paths[name])) for name in names}


def profile_unchanged(copies: Copies, runs: int = 3) -> str:
    """The top of a cProfile of ``runs`` unchanged snapshots with guards on."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        copies.snapshot(copies.on, GUARDS_ON)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(20)
    return out.getvalue()


def with_ratios(rows: dict[str, dict[str, float]], yardstick: float) -> None:
    for row in rows.values():
        row["x git status"] = row["median ms"] / yardstick


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile unchanged snapshots")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="lmb-backup-", dir="/tmp"))
    try:
        env = git_env(workdir / "home")
        started = time.perf_counter()
        tracked = make_repository(workdir / "template", env, args.files)
        made_s = time.perf_counter() - started
        on, off, commit = (
            copy_repository(workdir / "template", workdir / name, env)
            for name in ("on", "off", "git")
        )
        copies = Copies(on, off, commit, env)
        editor = Editor(copies.on, list(tracked), random.Random(SEED + 2))
        rows = measure_clean(copies, args.repeats)
        rows.update(measure_dirty(copies, editor, args.repeats))
        profile = profile_unchanged(copies) if args.profile else None
        rows.update(measure_light(copies, editor, args.repeats))
        with_ratios(rows, rows["git status (clean tree)"]["median ms"])
        title = (
            f"Snapshot vs git on a {len(tracked)}-file repository "
            f"(made in {made_s:.0f} s; {args.repeats} repeats, warm cache; git {_git_version()}; "
            f"{len(copies.held_back)} files held back)"
        )
        print_table(title, rows)
        if profile is not None:
            print(profile)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            results = {"title": title, "rows": rows, "held_back": sorted(copies.held_back)}
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _git_version() -> str:
    return subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]


if __name__ == "__main__":
    main()
