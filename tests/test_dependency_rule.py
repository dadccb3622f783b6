"""The dependency rule between packages (DESIGN.md, "Layout"), read from the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("daemon", "indexers", "trainers", "gui")


def imports(package: str) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path, node.module))
    return found


@pytest.mark.parametrize("package", ["indexers", "trainers"])
def test_libraries_never_import_daemon_or_gui(package: str) -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p, m in imports(package)
        if m.startswith(("labmind.daemon", "labmind.gui"))
    ]
    assert bad == []


def test_gui_talks_to_the_daemon_only_through_client_and_protocol() -> None:
    allowed = ("labmind.daemon.client", "labmind.daemon.protocol", "labmind.gui")
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p, m in imports("gui")
        if m.startswith("labmind.") and not m.startswith(allowed)
    ]
    assert bad == []


FRAMEWORK_INTEGRATIONS = {"lightning.py": {"lightning"}, "huggingface.py": {"transformers"}}
"""Modules of trainers/track that adapt the tracker to one training framework may import that
framework: only a training script that uses the framework imports them."""


def test_training_client_imports_only_stdlib_numpy_torch() -> None:
    track = ROOT / "trainers" / "track"
    if not track.exists():
        pytest.skip("trainers/track is not built yet")
    import sys

    allowed = {"numpy", "torch", "labmind"}
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for p, m in imports("trainers/track")
        if m.split(".")[0] not in allowed | FRAMEWORK_INTEGRATIONS.get(p.name, set())
        and m.split(".")[0] not in sys.stdlib_module_names
    ]
    assert bad == []


def test_importing_the_training_client_loads_no_framework() -> None:
    import subprocess
    import sys

    frameworks = sorted(set().union(*FRAMEWORK_INTEGRATIONS.values()))
    probe = (
        "import sys, labmind.trainers.track as track; track.SampleTracker; track.IndexedDataset; "
        f"print(sorted(m for m in {frameworks!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_the_daemon_process_never_imports_torch() -> None:
    heavy = ("torch", "sentence_transformers", "transformers", "PySide6")
    worker = {"embedder.py", "embedder_worker.py"}
    bad = [
        f"{p.relative_to(ROOT)}: {m}"
        for package in ("daemon", "indexers")
        for p, m in imports(package)
        if m.split(".")[0] in heavy and p.name not in worker
    ]
    assert bad == []
