"""A project full of planted secrets: no secret byte reaches a snapshot, every one is reported.

The secrets are made at test time from parts (random key bodies and tokens, headers
assembled from pieces), so that this file holds nothing a secret scanner would flag.
The same folder is snapshotted as a git repository (secrets untracked, as a researcher
who forgot to ignore them would have it) and as a plain folder through its shadow
repository; every blob of every tree of every snapshot commit is read, and so is every
object in the database.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import FileMode

from labmind.daemon.backup import (
    Guards,
    SnapshotResult,
    StaticCredentials,
    open_shadow,
    push_snapshot,
    take_snapshot,
)

from .gitrepo import init_repo
from .gitserver import GitDaemon, bare_repo

SEED = 31_337
B64 = string.ascii_letters + string.digits + "+/"
ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Planted:
    """A file to plant and the bytes of it that must never be stored."""

    path: str
    content: str
    secrets: tuple[str, ...]


def _chars(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def _private_key(rng: random.Random, kind: str) -> tuple[str, tuple[str, ...]]:
    """A PEM private key block (``kind`` is ``RSA``, ``OPENSSH`` or ``""``) and two body lines."""
    label = " ".join(part for part in (kind, "PRIVATE", "KEY") if part)
    body = [_chars(rng, B64, 64) for _ in range(12)]
    dashes = "-" * 5
    text = f"{dashes}BEGIN {label}{dashes}\n" + "\n".join(body) + f"\n{dashes}END {label}{dashes}\n"
    return text, (body[0], body[7])


def _service_account(rng: random.Random, project: str) -> tuple[str, tuple[str, ...]]:
    """A GCP service-account key file's JSON."""
    key, lines = _private_key(rng, "")
    key_id = _chars(rng, "0123456789abcdef", 40)
    data = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": key,
        "client_email": f"trainer@{project}.iam.gserviceaccount.com",
        "client_id": str(rng.randrange(10**20, 10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return json.dumps(data, indent=2) + "\n", (key_id, *lines)


def _notebook(cells: list[str]) -> str:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": number + 1,
                "metadata": {},
                "outputs": [],
                "source": source.splitlines(keepends=True),
            }
            for number, source in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1) + "\n"


def planted_secrets(rng: random.Random) -> list[Planted]:
    """Secret files by name, and secrets pasted into ordinary-looking files."""
    openai = "sk-" + _chars(rng, ALNUM, 48)
    db_password = _chars(rng, ALNUM, 20)
    wandb = _chars(rng, "0123456789abcdef", 40)
    rsa, rsa_lines = _private_key(rng, "RSA")
    ed25519, ed_lines = _private_key(rng, "OPENSSH")
    tls, tls_lines = _private_key(rng, "")
    credentials, credential_parts = _service_account(rng, "lab-runs-123456")
    downloaded, downloaded_parts = _service_account(rng, "lab-eval-654321")
    netrc_password = _chars(rng, "0123456789abcdef", 40)
    tf_password = _chars(rng, ALNUM, 24)
    aws_id = "AKIA" + _chars(rng, UPPER, 16)
    aws_secret = _chars(rng, B64, 40)
    github = "gh" + "p_" + _chars(rng, ALNUM, 36)
    pasted, pasted_lines = _private_key(rng, "RSA")
    certificate = "-----BEGIN CERTIFICATE-----\n" + _chars(rng, B64, 64) + "\n"
    certificate += "-----END CERTIFICATE-----\n"
    return [
        Planted(
            ".env",
            f"OPENAI_API_KEY={openai}\nDATABASE_URL=postgres://lab:{db_password}@db/runs\n",
            (openai, db_password),
        ),
        Planted("configs/.env.local", f"WANDB_API_KEY={wandb}\n", (wandb,)),
        Planted("keys/id_rsa", rsa, rsa_lines),
        Planted("keys/id_ed25519", ed25519, ed_lines),
        Planted("certs/server.pem", certificate + tls, tls_lines),
        Planted("credentials.json", credentials, credential_parts),
        Planted("lab-eval-654321-0a1b2c3d4e5f.json", downloaded, downloaded_parts),
        Planted(
            ".netrc",
            f"machine api.wandb.ai\n  login lab\n  password {netrc_password}\n",
            (netrc_password,),
        ),
        Planted(
            "infra/terraform.tfvars",
            f'region = "eu-west-1"\ndb_password = "{tf_password}"\n',
            (tf_password,),
        ),
        Planted(
            "src/upload.py",
            "import boto3\n\n"
            f'AWS_ACCESS_KEY_ID = "{aws_id}"\nAWS_SECRET_ACCESS_KEY = "{aws_secret}"\n\n'
            "def upload(path):\n    return boto3.client('s3').upload_file(path, 'runs', path)\n",
            (aws_id, aws_secret),
        ),
        Planted(
            "scripts/release.py",
            f'import requests\n\nGITHUB_TOKEN = "{github}"\n\n'
            "def release(tag):\n    return requests.post('/releases', json={'tag': tag})\n",
            (github,),
        ),
        Planted(
            "notebooks/explore.ipynb",
            _notebook(["import paramiko\n", f'KEY = """{pasted}"""\n', "connect(KEY)\n"]),
            pasted_lines,
        ),
    ]


ORDINARY = {
    "README.md": "# Lab project\n\nTrain with `python train.py`.\n",
    "train.py": "import torch\n\n\ndef main():\n    print('training')\n",
    "src/model.py": "class Model:\n    layers = 4\n",
    ".env.example": "OPENAI_API_KEY=\nDATABASE_URL=\n",
    "keys/id_rsa.pub": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ researcher@lab\n",
    "configs/base.yaml": "lr: 0.001\nbatch_size: 32\n",
    "data/sample.csv": "step,loss\n1,0.9\n2,0.7\n",
    "notebooks/plots.ipynb": _notebook(["import matplotlib.pyplot as plt\n", "plt.plot([1, 2])\n"]),
}
COMMITTED = ("README.md", "train.py")
"""Ordinary files in the repository's HEAD; everything else starts untracked."""


def plant(root: Path, planted: list[Planted]) -> None:
    for path, text in [*ORDINARY.items(), *((p.path, p.content) for p in planted)]:
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)


def snapshot_blobs(repo: pygit2.Repository) -> Iterator[tuple[str, bytes]]:
    """``(path, data)`` of every blob in every tree of every commit on labmind's refs."""
    for name in repo.references:
        if not name.startswith("refs/labmind/"):
            continue
        for commit in repo.walk(repo.references[name].target):
            yield from _tree_blobs(repo, commit.tree, "")


def _tree_blobs(
    repo: pygit2.Repository, tree: pygit2.Tree, prefix: str
) -> Iterator[tuple[str, bytes]]:
    for entry in tree:
        path = prefix + (entry.name or "")
        if entry.filemode == FileMode.TREE:
            yield from _tree_blobs(repo, repo[entry.id].peel(pygit2.Tree), path + "/")
        elif entry.filemode != FileMode.COMMIT:
            yield path, repo[entry.id].peel(pygit2.Blob).data


def tree_files(repo: pygit2.Repository, commit: pygit2.Oid | None) -> dict[str, bytes]:
    assert commit is not None
    tree = repo[commit].peel(pygit2.Commit).tree
    return dict(_tree_blobs(repo, tree, ""))


def assert_no_secret_stored(repo: pygit2.Repository, planted: list[Planted]) -> None:
    """No planted secret in any snapshot blob, nor in any object of the database."""
    secrets = [s.encode() for p in planted for s in p.secrets]
    walked = 0
    for path, data in snapshot_blobs(repo):
        walked += 1
        leaked = [s[:8] for s in secrets if s in data]
        assert not leaked, f"{path} holds planted secrets starting {leaked}"
    assert walked > len(ORDINARY)
    for oid in repo.odb:
        _, data = repo.odb.read(oid)
        assert not [s for s in secrets if s in data], f"object {oid} holds a planted secret"


def assert_reported(result: SnapshotResult, planted: list[Planted]) -> None:
    """Every planted file is held back, nothing else is, and no reason quotes a secret."""
    assert sorted(held.path for held in result.held_back) == sorted(p.path for p in planted)
    for held in result.held_back:
        assert "\n" not in str(held)
        assert not [s for p in planted for s in p.secrets if s in str(held)]


def snapshot_twice(
    repo: pygit2.Repository, root: Path, planted: list[Planted], guards: Guards
) -> tuple[SnapshotResult, SnapshotResult]:
    """The planted folder, then one more round: an ordinary edit and a token pasted in."""
    first = take_snapshot(repo, guards=guards)
    (root / "src" / "model.py").write_text("class Model:\n    layers = 8\n")
    token = next(s for p in planted if p.path == "scripts/release.py" for s in p.secrets)
    (root / "train.py").write_text(f"GITHUB_TOKEN = '{token}'\n" + ORDINARY["train.py"])
    second = take_snapshot(repo, guards=guards)
    return first, second


@pytest.fixture
def planted() -> list[Planted]:
    return planted_secrets(random.Random(SEED))


def test_a_repository_with_planted_secrets_keeps_every_secret_out(
    tmp_path: Path,
    env: dict[str, str],
    planted: list[Planted],
    guards: Guards,
    git_daemon: GitDaemon,
    served: Path,
) -> None:
    work = init_repo(tmp_path / "project", env)
    plant(work.root, planted)
    work.git("add", *COMMITTED)
    work.git("commit", "-q", "-m", "ordinary files")
    repo = pygit2.Repository(str(work.root))

    first, second = snapshot_twice(repo, work.root, planted, guards)

    assert first.created and second.created
    assert_reported(first, planted)
    assert sorted(h.path for h in second.held_back) == sorted(
        [*(p.path for p in planted), "train.py"]
    )
    files = tree_files(repo, first.commit)
    assert {path: files[path].decode() for path in ORDINARY} == ORDINARY
    assert not {p.path for p in planted} & set(files)
    later = tree_files(repo, second.commit)
    assert later["train.py"].decode() == ORDINARY["train.py"]
    assert later["src/model.py"] == b"class Model:\n    layers = 8\n"
    assert_no_secret_stored(repo, planted)

    bare = bare_repo(served, "backup.git", env)
    pushed = push_snapshot(
        repo, "main", git_daemon.url("backup.git"), host_name="box", credentials=StaticCredentials()
    )
    assert pushed.status == "pushed"
    remote = pygit2.Repository(str(bare))
    assert str(remote.references["refs/heads/labmind/box/main"].target) == str(second.commit)
    secrets = [s.encode() for p in planted for s in p.secrets]
    objects = [remote.odb.read(oid)[1] for oid in remote.odb]
    assert len(objects) > len(ORDINARY)
    assert not [s[:8] for s in secrets for data in objects if s in data]


def test_a_plain_folder_with_planted_secrets_keeps_every_secret_out_of_its_shadow(
    tmp_path: Path, planted: list[Planted], guards: Guards
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    plant(folder, planted)
    shadow = open_shadow(tmp_path / "data", folder)

    first, second = snapshot_twice(shadow, folder, planted, guards)

    assert first.created and second.created
    assert_reported(first, planted)
    assert "train.py" in {h.path for h in second.held_back}
    files = tree_files(shadow, first.commit)
    assert {path: data.decode() for path, data in files.items()} == ORDINARY
    assert tree_files(shadow, second.commit)["src/model.py"] == b"class Model:\n    layers = 8\n"
    assert not (folder / ".git").exists()
    assert_no_secret_stored(shadow, planted)


def test_a_file_that_turns_secret_keeps_its_last_snapshotted_version_in_a_shadow(
    tmp_path: Path, guards: Guards
) -> None:
    folder = tmp_path / "project"
    plant(folder, [])
    shadow = open_shadow(tmp_path / "data", folder)
    take_snapshot(shadow, guards=guards)
    token = "gh" + "p_" + _chars(random.Random(SEED), ALNUM, 36)
    (folder / "train.py").write_text(f"GITHUB_TOKEN = '{token}'\n")

    result = take_snapshot(shadow, guards=guards)

    assert [held.path for held in result.held_back] == ["train.py"]
    assert tree_files(shadow, result.commit)["train.py"].decode() == ORDINARY["train.py"]


def _plot_output(rng: random.Random, size: int) -> dict[str, object]:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)).decode()
    return {"output_type": "display_data", "data": {"image/png": png}, "metadata": {}}


def _notebook_with_outputs(source: str, outputs: list[dict[str, object]]) -> str:
    notebook = json.loads(_notebook([source]))
    notebook["cells"][0]["outputs"] = outputs
    return json.dumps(notebook, indent=1) + "\n"


def test_a_key_pasted_into_a_notebook_larger_than_the_scan_cap_is_held_back(
    tmp_path: Path, env: dict[str, str], guards: Guards
) -> None:
    rng = random.Random(SEED)
    key, lines = _private_key(rng, "RSA")
    work = init_repo(tmp_path / "project", env)
    outputs = [_plot_output(rng, 800_000) for _ in range(3)]
    work.write("notebooks/big.ipynb", _notebook_with_outputs(f'KEY = """{key}"""\n', outputs))
    assert (work.root / "notebooks" / "big.ipynb").stat().st_size > guards.max_scan_bytes

    result = take_snapshot(work.root, guards=guards)

    assert [held.path for held in result.held_back] == ["notebooks/big.ipynb"]
    assert lines[0].encode() not in work.object_bytes()


def test_a_notebook_with_a_plot_and_no_secret_goes_in(
    tmp_path: Path, env: dict[str, str], guards: Guards
) -> None:
    work = init_repo(tmp_path / "project", env)
    outputs = [_plot_output(random.Random(SEED), 20_000)]
    work.write("plots.ipynb", _notebook_with_outputs("plt.plot([1, 2])\n", outputs))

    result = take_snapshot(work.root, guards=guards)

    assert result.held_back == []
    assert "plots.ipynb" in work.tree_files("refs/labmind/snapshots/main")
