"""Real git repositories made with the git CLI, and a fingerprint of what their user owns."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


def git_env(home: Path) -> dict[str, str]:
    """An environment where git reads no system or user configuration but a tiny one of ours."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Researcher\n\temail = researcher@example.org\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
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


@dataclass
class GitRepo:
    """A work tree driven through the git CLI."""

    root: Path
    env: dict[str, str]

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def object_bytes(self) -> bytes:
        """Every object in the repository's database, as ``git cat-file --batch`` prints them."""
        return subprocess.run(
            ["git", "cat-file", "--batch-all-objects", "--batch"],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            check=True,
        ).stdout

    def write(self, path: str, text: str, *, mode: int | None = None) -> Path:
        file = self.root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        if mode is not None:
            file.chmod(mode)
        return file

    def commit_all(self, message: str = "work") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def rev(self, spec: str) -> str:
        return self.git("rev-parse", spec).strip()

    def tree_files(self, rev: str) -> dict[str, str]:
        """``path -> mode`` of every entry in ``rev``'s tree (recursively)."""
        out = self.git("ls-tree", "-r", "--full-tree", rev)
        files: dict[str, str] = {}
        for line in out.splitlines():
            meta, path = line.split("\t", 1)
            files[path] = meta.split()[0]
        return files

    def show(self, rev: str, path: str) -> str:
        return self.git("show", f"{rev}:{path}")

    def user_state(self) -> dict[str, object]:
        """Everything a snapshot must leave exactly as it was."""
        git_dir = self.root / ".git"
        index = git_dir / "index"
        refs = {
            str(p.relative_to(git_dir)): p.read_bytes()
            for p in sorted((git_dir / "refs" / "heads").rglob("*"))
            if p.is_file()
        }
        packed = git_dir / "packed-refs"
        return {
            "index": index.read_bytes() if index.exists() else None,
            "index_mtime": index.stat().st_mtime_ns if index.exists() else None,
            "index_lock": (git_dir / "index.lock").exists(),
            "HEAD": (git_dir / "HEAD").read_bytes(),
            "heads": refs,
            "packed": packed.read_bytes() if packed.exists() else None,
            "config": (git_dir / "config").read_bytes(),
            "status": self.git("--no-optional-locks", "status", "--porcelain=v1", "-uall"),
            "worktree": worktree_fingerprint(self.root),
        }


def worktree_fingerprint(root: Path) -> dict[str, tuple[int, str]]:
    """``path -> (mode, content digest or link target)`` for everything outside ``.git``."""
    found: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in [*filenames, *(d for d in dirnames if (Path(dirpath) / d).is_symlink())]:
            path = Path(dirpath) / name
            info = path.lstat()
            if path.is_symlink():
                digest = os.readlink(path)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (info.st_mode, digest)
    return found


def init_repo(root: Path, env: dict[str, str]) -> GitRepo:
    """An empty repository (unborn ``main``) at ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(root, env)
    repo.git("init", "-q")
    return repo
