"""Shadow repositories: git storage in labmind's data folder for folders that are not repositories.

A shadow is a git dir at ``<data>/shadows/<hash of the folder's path>.git`` whose
``core.worktree`` is the user's folder, so `take_snapshot` works on it like on any
repository while no ``.git`` is ever created inside the folder. Its HEAD stays the
unborn branch ``main``, so every snapshot lands on ``refs/labmind/snapshots/main``.
Build output, virtualenvs, caches and training artefacts (checkpoints, arrays,
experiment-tracker folders) are excluded through the shadow's own ``info/exclude``;
the folder's ``.gitignore`` files are honoured as well.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pygit2
from pygit2.enums import RepositoryOpenFlag

from .snapshot import SnapshotError, open_repository

SHADOW_BRANCH = "main"

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git/",
    "node_modules/",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    "build/",
    "dist/",
    "*.egg-info/",
    ".DS_Store",
    ".cache/",
    # training artefacts: large, regenerable, and not what a code backup is for
    "wandb/",
    "mlruns/",
    "lightning_logs/",
    "checkpoints/",
    "*.ckpt",
    "*.pt",
    "*.pth",
    "*.safetensors",
    "*.onnx",
    "*.h5",
    "*.hdf5",
    "*.npy",
    "*.npz",
    "*.parquet",
    "*.arrow",
    "*.tfrecord",
)
"""Gitignore lines written to every shadow's ``info/exclude``."""


def shadow_dir(data_dir: Path, folder: Path) -> Path:
    """Where the shadow repository of ``folder`` lives under ``data_dir``."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
    return data_dir / "shadows" / f"{digest}.git"


def open_shadow(
    data_dir: Path, folder: Path, *, excludes: tuple[str, ...] = DEFAULT_EXCLUDES
) -> pygit2.Repository:
    """Open the shadow repository of ``folder``, creating it on first use.

    Refuses a folder that is itself a repository (snapshot that one directly).
    """
    folder = folder.resolve()
    if not folder.is_dir():
        raise SnapshotError(f"{folder} is not a folder")
    if (folder / ".git").exists():
        raise SnapshotError(f"{folder} is a git repository; it needs no shadow")
    git_dir = shadow_dir(data_dir, folder)
    if not (git_dir / "HEAD").exists():
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        pygit2.init_repository(str(git_dir), bare=True, initial_head=SHADOW_BRANCH)
    raw = pygit2.Repository(str(git_dir), RepositoryOpenFlag.NO_SEARCH)
    if "core.worktree" not in raw.config:
        # Set up here rather than by init_repository(workdir_path=...), which would
        # write a ``.git`` link file into the user's folder.
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "exclude").write_text("\n".join(excludes) + "\n", encoding="utf-8")
        raw.config["core.logAllRefUpdates"] = False
        raw.config["core.bare"] = False
        raw.config["core.worktree"] = str(folder)
    repo = open_repository(git_dir)
    if repo.workdir is None or Path(repo.workdir).resolve() != folder:
        raise SnapshotError(f"{git_dir} is the shadow of another folder ({repo.workdir})")
    return repo
