"""Pausing indexing through the real CLI and daemon: a saved file is noted but not indexed,
the pause survives a restart, and resuming indexes what changed meanwhile (offline too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Lab, wait_until

pytestmark = pytest.mark.slow


def found(lab: Lab, query: str) -> list[str]:
    return [hit["path"] for hit in lab.search(query, "--mode", "lexical")]


def held(lab: Lab) -> int:
    count: int = lab.json("status")["held_changes"]
    return count


def test_paused_indexing_holds_saves_across_a_restart_until_resumed(
    lexical_lab: Lab, tmp_path: Path
) -> None:
    lab = lexical_lab
    project = tmp_path / "project"
    project.mkdir()
    (project / "old.py").write_text("def already_indexed_helper():\n    return 0\n")
    lab.cli("index", str(project), "--wait")
    assert found(lab, "already_indexed_helper") == [str(project / "old.py")]

    paused = lab.cli("pause", "--indexing")
    assert "indexing paused" in paused.stdout and "backup" not in paused.stdout
    assert lab.json("status")["indexing_paused"] is True
    saved = project / "fresh.py"
    saved.write_text("def quaternion_slerp(q0, q1, t):\n    return q0\n")
    assert wait_until(lambda: held(lab) >= 1, timeout=20)
    assert found(lab, "quaternion_slerp") == []

    refused = lab.cli("index", str(project), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "labmind: indexing is paused; `labmind resume --indexing` starts it again"
    ]

    lab.cli("stop")
    offline = project / "offline.py"
    offline.write_text("def dual_number_jvp(f, x):\n    return f(x)\n")
    lab.cli("start")
    status = lab.json("status")
    assert status["indexing_paused"] is True
    assert "indexing paused" in lab.cli("status").stdout
    assert wait_until(lambda: held(lab) >= 1, timeout=20)
    assert found(lab, "quaternion_slerp") == [] and found(lab, "dual_number_jvp") == []

    resumed = lab.cli("resume")
    assert "indexing resumed" in resumed.stdout and "backups resumed" in resumed.stdout
    assert wait_until(lambda: found(lab, "quaternion_slerp") == [str(saved)], timeout=20)
    assert wait_until(lambda: found(lab, "dual_number_jvp") == [str(offline)], timeout=20)
    after = lab.json("status")
    assert after["indexing_paused"] is False and after["held_changes"] == 0
