from __future__ import annotations

from pathlib import Path

from labmind.indexers.ignore import IgnoreRules


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ignored_files(rules: IgnoreRules, root: Path, *names: str) -> set[str]:
    return {name for name in names if rules.is_ignored(root / name, is_dir=False)}


def test_builtin_excludes(tmp_path: Path) -> None:
    write(tmp_path / "myenv" / "pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path / "conda" / "conda-meta" / "history")
    write(tmp_path / "env" / "settings.py")
    rules = IgnoreRules(tmp_path)
    for folder in [".git", "node_modules", "__pycache__", ".venv", "venv", "build", "dist"]:
        assert rules.is_ignored(tmp_path / folder, is_dir=True), folder
    assert rules.is_ignored(tmp_path / "pkg" / "labmind.egg-info", is_dir=True)
    assert rules.is_ignored(tmp_path / "src" / "node_modules" / "x" / "index.js", is_dir=False)
    assert rules.is_ignored(tmp_path / "myenv", is_dir=True)
    assert rules.is_ignored(tmp_path / "conda", is_dir=True)
    assert rules.is_ignored(tmp_path / "deep" / ".DS_Store", is_dir=False)
    assert not rules.is_ignored(tmp_path / "env", is_dir=True)
    assert not rules.is_ignored(tmp_path / "env" / "settings.py", is_dir=False)
    assert not rules.is_ignored(tmp_path / "src" / "build.py", is_dir=False)
    assert not rules.is_ignored(tmp_path, is_dir=True)


def test_gitignore_patterns_negation_and_dir_only(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.log\n!keep.log\ndata/\n/top.py\n# comment\n")
    rules = IgnoreRules(tmp_path)
    assert ignored_files(rules, tmp_path, "a.log", "sub/b.log", "keep.log", "sub/keep.log") == {
        "a.log",
        "sub/b.log",
    }
    assert rules.is_ignored(tmp_path / "data", is_dir=True)
    assert rules.is_ignored(tmp_path / "sub" / "data" / "x.py", is_dir=False)
    assert not rules.is_ignored(tmp_path / "data", is_dir=False)
    assert rules.is_ignored(tmp_path / "top.py", is_dir=False)
    assert not rules.is_ignored(tmp_path / "sub" / "top.py", is_dir=False)


def test_nested_gitignore_is_relative_to_its_folder(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.csv\n")
    write(tmp_path / "exp" / ".gitignore", "/local.py\n*.tmp\n!results.csv\n")
    rules = IgnoreRules(tmp_path)
    names = [
        "local.py",
        "exp/local.py",
        "exp/deeper/local.py",
        "exp/x.tmp",
        "x.tmp",
        "exp/results.csv",
        "exp/other.csv",
        "results.csv",
    ]
    assert ignored_files(rules, tmp_path, *names) == {
        "exp/local.py",
        "exp/x.tmp",
        "exp/other.csv",
        "results.csv",
    }


def test_nothing_is_re_included_inside_an_ignored_folder(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "data/\n!data/keep.py\n")
    write(tmp_path / "data" / ".gitignore", "!*.py\n")
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored(tmp_path / "data" / "keep.py", is_dir=False)


def test_negation_re_includes_a_builtin_but_never_vcs_folders(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "!build/\n!.git/\n")
    rules = IgnoreRules(tmp_path)
    assert not rules.is_ignored(tmp_path / "build", is_dir=True)
    assert not rules.is_ignored(tmp_path / "build" / "gen.py", is_dir=False)
    assert rules.is_ignored(tmp_path / ".git", is_dir=True)
    assert rules.is_ignored(tmp_path / ".git" / "config", is_dir=False)


def test_git_info_exclude_and_extra_patterns(tmp_path: Path) -> None:
    write(tmp_path / ".git" / "info" / "exclude", "scratch/\n")
    write(tmp_path / ".gitignore", "!*.ckpt\n")
    rules = IgnoreRules(tmp_path, extra_patterns=["*.ckpt", "wandb/", "!important.py"])
    assert rules.is_ignored(tmp_path / "scratch", is_dir=True)
    assert rules.is_ignored(tmp_path / "runs" / "model.ckpt", is_dir=False)
    assert rules.is_ignored(tmp_path / "wandb", is_dir=True)
    assert not rules.is_ignored(tmp_path / "wandb", is_dir=False)
    assert not rules.is_ignored(tmp_path / "train.py", is_dir=False)


def test_reload_picks_up_changed_ignore_files(tmp_path: Path) -> None:
    gitignore = write(tmp_path / "sub" / ".gitignore", "")
    rules = IgnoreRules(tmp_path)
    target = tmp_path / "sub" / "notes.txt"
    assert not rules.is_ignored(target, is_dir=False)
    gitignore.write_text("notes.txt\n")
    assert not rules.is_ignored(target, is_dir=False)
    rules.reload()
    assert rules.is_ignored(target, is_dir=False)
    exclude = write(tmp_path / ".git" / "info" / "exclude", "sub/\n")
    rules.reload()
    assert rules.is_ignored(tmp_path / "sub", is_dir=True)
    exclude.write_text("")
    rules.reload()
    assert not rules.is_ignored(tmp_path / "sub", is_dir=True)


def test_is_ignore_file_and_paths_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    rules = IgnoreRules(root)
    assert rules.is_ignore_file(root / ".gitignore")
    assert rules.is_ignore_file(root / "a" / "b" / ".gitignore")
    assert rules.is_ignore_file(root / ".git" / "info" / "exclude")
    assert not rules.is_ignore_file(root / "gitignore.py")
    assert not rules.is_ignore_file(tmp_path / "elsewhere" / ".gitignore")
    assert rules.is_ignored(tmp_path / "elsewhere" / "x.py", is_dir=False)
