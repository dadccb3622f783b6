"""A researcher points labmind at a folder and finds functions by describing them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .conftest import Lab, wait_until

FILES = {
    "text/distance.py": '''
        def levenshtein(a: str, b: str) -> int:
            """Number of single-character edits that turn a into b."""
            prev = list(range(len(b) + 1))
            for i, ca in enumerate(a, 1):
                cur = [i]
                for j, cb in enumerate(b, 1):
                    cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
                prev = cur
            return prev[-1]
        ''',
    "io/tables.py": """
        import csv


        def load_rows(path):
            with open(path, newline="") as handle:
                return list(csv.DictReader(handle))


        def save_rows(path, rows):
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        """,
    "train/schedule.py": """
        import math


        def cosine_warmup(step, warmup, total, base_lr):
            if step < warmup:
                return base_lr * step / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * base_lr * (1 + math.cos(math.pi * progress))
        """,
    "web/fetch.js": """
        async function fetchJsonWithRetry(url, attempts = 3) {
          for (let i = 0; i < attempts; i++) {
            const res = await fetch(url);
            if (res.ok) return res.json();
          }
          throw new Error("gave up on " + url);
        }
        """,
}


def write_project(root: Path) -> None:
    for rel, body in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip())


@pytest.mark.slow
def test_index_wait_then_describe_a_function(lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_project(project)
    lab.cli("index", str(project), "--wait")

    status = lab.json("status")
    assert status["embedded"] == status["embed_total"] > 0
    assert {"pid", "version", "uptime_s"} <= status.keys()

    hits = lab.search("edit distance between two strings")
    assert hits, "no results"
    top = hits[0]
    assert top["path"] == str(project / "text/distance.py")
    assert top["kind"] == "code"
    assert top["start_line"] == 1 and top["end_line"] >= 9
    assert "levenshtein" in top["snippet"]
    assert isinstance(top["score"], float)

    hits = lab.search("learning rate schedule with warmup", "--mode", "semantic")
    assert hits[0]["path"].endswith("train/schedule.py")
    hits = lab.search("write dictionaries to a csv file")
    assert hits[0]["path"].endswith("io/tables.py")
    lines = (project / "io/tables.py").read_text().splitlines()
    assert hits[0]["start_line"] == lines.index("def save_rows(path, rows):") + 1

    js = lab.search("retry fetch json", "--lang", "javascript")
    assert [h["path"] for h in js] == [str(project / "web/fetch.js")]


def test_saved_file_becomes_searchable(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_project(project)
    lexical_lab.cli("index", str(project), "--wait")
    new = project / "fresh.py"
    new.write_text("def quaternion_slerp(q0, q1, t):\n    return q0\n")

    def paths(query: str) -> list[str]:
        return [h["path"] for h in lexical_lab.search(query)]

    assert wait_until(lambda: str(new) in paths("quaternion_slerp"), timeout=20)
    new.write_text("def dual_number_jvp(f, x):\n    return f(x)\n")
    assert wait_until(lambda: str(new) in paths("dual_number_jvp"), timeout=20)
    assert str(new) not in paths("quaternion_slerp")
    new.unlink()
    assert wait_until(lambda: str(new) not in paths("dual_number_jvp"), timeout=20)


def test_filters_and_listing(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_project(project)
    lexical_lab.cli("index", str(project), "--wait")
    roots = lexical_lab.json("watch", "ls")
    assert [r["path"] for r in roots] == [str(project.resolve())]
    assert roots[0]["files"] == len(FILES)
    assert lexical_lab.search("rows", "--path", "io/*")
    assert all(
        h["path"].endswith("tables.py") for h in lexical_lab.search("rows", "--path", "io/*")
    )
    assert lexical_lab.search("rows", "--lang", "go") == []
    lexical_lab.cli("watch", "rm", str(project))
    assert lexical_lab.json("watch", "ls") == []
    assert lexical_lab.search("levenshtein") == []


def test_a_large_folder_is_indexed_by_worker_processes(lexical_lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "big"
    for i in range(120):
        path = project / f"part{i % 7}" / f"step_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = f"    return [x / {i + 1} for x in batch]\n"
        path.write_text(f"def normalise_batch_{i}(batch):\n{body}")
    lexical_lab.cli("index", str(project), "--wait")
    assert lexical_lab.json("status")["files"] == 120
    hits = lexical_lab.search("normalise_batch_77", "--mode", "lexical")
    assert hits[0]["path"] == str(project / "part0" / "step_77.py")
    assert hits[0]["start_line"] == 1


def test_folders_moved_in_and_out_are_indexed_and_forgotten(
    lexical_lab: Lab, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("def entry_point():\n    return 1\n")
    lexical_lab.cli("index", str(project), "--wait")
    outside = tmp_path / "incoming"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "augment.py").write_text(
        "def random_crop_and_flip(image):\n    return image\n"
    )
    moved = project / "vision"
    outside.rename(moved)

    def found() -> list[str]:
        hits = lexical_lab.search("random_crop_and_flip", "--mode", "lexical")
        return [h["path"] for h in hits]

    assert wait_until(lambda: found() == [str(moved / "deep" / "augment.py")])
    moved.rename(tmp_path / "gone")
    assert wait_until(lambda: found() == [])
    assert lexical_lab.search("entry_point")[0]["path"] == str(project / "main.py")
