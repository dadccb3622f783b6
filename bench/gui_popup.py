"""The search popup's latency under Xvfb, and the README's screenshots.

Measures, with a real daemon (lexical search over a copy of labmind's own `indexers/`)
and the GUI's windows in this process:

* show: from `present()` on the pre-created, hidden popup until X reports its window
  exposed (the time the user waits after the hotkey reaches the GUI);
* `labmind popup --toggle` end to end: from starting the console script until it exits
  (the GUI answers after showing the popup) and until the popup is exposed;
* for scale: starting the interpreter, and importing the full typer CLI (which the
  `popup` fast path skips).

    python -m bench.gui_popup [--samples 30] [--json out.json] [--screenshots docs/img]

Without DISPLAY it starts Xvfb (falling back to the offscreen platform, where "exposed"
means only "shown").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .report import print_table

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "labmind.daemon"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "labmind"
TRAIN = """import sys, time
from labmind.trainers.track import log

lr = float(sys.argv[1])
loss, acc = 2.3, 0.1
for step in range(40):
    loss = loss * (1 - 4 * lr) + 0.02 if lr < 0.05 else loss * 1.4
    acc = min(0.97, acc + lr * 4 * (1 - acc))
    log(step, loss=loss, acc=acc)
    print(f"step {step} loss {loss:.4f} acc {acc:.3f}", flush=True)
    if loss > 50:
        print("loss is nan: training diverged", flush=True)
        sys.exit(1)
    time.sleep(0.02)
"""
SPEC = """name: lr-sweep
command: {python} train.py {{lr}}
workdir: .
params:
  grid: {{lr: [0.1, 0.03, 0.01, 0.003]}}
resources: {{gpus: 0}}
retry: {{max_attempts: 1}}
"""


@contextmanager
def x_display() -> Iterator[str | None]:
    """A display for Qt's xcb platform: the current one, a fresh Xvfb, or none."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        yield None
        return
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def run(cmd: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "n": float(len(ms)),
        "median_ms": statistics.median(ms),
        "p95_ms": ms[max(0, round(0.95 * len(ms)) - 1)],
        "max_ms": ms[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--screenshots", type=Path, help="Save popup.png and dashboard.png here.")
    args = parser.parse_args()
    with x_display() as display, tempfile.TemporaryDirectory(prefix="lm-gui-") as tmp:
        if display is None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        else:
            os.environ.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABMIND_", "XDG_RUN"))}
        env.update(LABMIND_HOME=str(home), HF_HUB_OFFLINE="1")
        (home / "config").mkdir()
        (home / "config" / "config.toml").write_text(
            "[embedder]\nenabled = false\n[backup]\nenabled = false\n"
            f'[notifications]\nenabled = false\n[chats]\nexport_dir = "{home / "downloads"}"\n'
        )
        project = home / "project"
        shutil.copytree(ROOT / "indexers", project / "indexers")
        try:
            run([*CLI, "index", str(project), "--wait"], env)
            if args.screenshots is not None:
                (project / "train.py").write_text(TRAIN)
                (project / "spec.yaml").write_text(SPEC.format(python=sys.executable))
                run([*CLI, "exp", "submit", str(project / "spec.yaml")], env)
                subprocess.run(
                    [*CLI, "exp", "wait", "--timeout", "120"],
                    env=env,
                    check=False,
                    capture_output=True,
                )
            results = measure(home, env, args.samples, args.screenshots)
        finally:
            subprocess.run([*CLI, "stop"], env=env, capture_output=True, check=False)
    print_table(f"search popup ({results.pop('platform')})", results)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def measure(
    home: Path, env: dict[str, str], samples: int, screenshots: Path | None
) -> dict[str, Any]:
    os.environ.update(LABMIND_HOME=str(home))
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from labmind.daemon.client import DaemonClient, Paths
    from labmind.gui.app import LabmindGui
    from labmind.gui.hotkey import MemoryHotkey
    from labmind.gui.tray_host import ImmediateHost

    app = QApplication([sys.argv[0]])
    paths = Paths.resolve(env)

    class NoLaunch:
        def launch(self, argv: Any) -> None:
            return None

    tick = QTimer()
    tick.start(1)

    def spin(until: Callable[[], bool], timeout: float = 30.0) -> None:
        """Run the event loop until `until()`; it sleeps between events (a 1 ms timer
        wakes it), so the GUI does not compete with the command for the CPU."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the GUI")
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)

    gui = LabmindGui(
        paths,
        lambda: DaemonClient(paths),
        launcher=NoLaunch(),
        host=ImmediateHost(available=False),
        hotkey=MemoryHotkey(),
    )
    gui.start()
    popup = gui.popup
    spin(lambda: gui.link.online)

    def exposed() -> bool:
        handle = popup.windowHandle()
        return popup.isVisible() and handle is not None and handle.isExposed()

    show: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        popup.present()
        spin(exposed)
        show.append(time.perf_counter() - start)
        popup.hide()
        spin(lambda: not popup.isVisible())

    toggle_exit: list[float] = []
    toggle_shown: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        proc = subprocess.Popen([str(CONSOLE_SCRIPT), "popup", "--toggle"], env=env)
        spin(exposed)
        toggle_shown.append(time.perf_counter() - start)
        spin(lambda proc=proc: proc.poll() is not None)  # type: ignore[misc]
        toggle_exit.append(time.perf_counter() - start)
        popup.hide()
        spin(lambda: not popup.isVisible())

    def wall(code: str) -> list[float]:
        times = []
        for _ in range(min(samples, 10)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True)
            times.append(time.perf_counter() - start)
        return times

    interpreter = wall("pass")
    cli_import = wall("import labmind.daemon.cli")

    if screenshots is not None:
        take_screenshots(gui, screenshots, spin)
    gui.stop()
    platform = app.platformName()
    return {
        "platform": platform,
        "popup shown (present → exposed)": summary(show),
        "labmind popup --toggle → popup exposed": summary(toggle_shown),
        "labmind popup --toggle → command exits": summary(toggle_exit),
        "python -c pass (interpreter start-up, for scale)": summary(interpreter),
        "python -c 'import labmind.daemon.cli' (skipped by the fast path)": summary(cli_import),
    }


def take_screenshots(gui: Any, folder: Path, spin: Callable[..., None]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    popup = gui.popup
    popup.present()
    popup.query.setText("split camelCase identifiers into tokens")
    spin(lambda: popup.results.count() > 3)
    popup.results.setCurrentRow(0)
    spin(lambda: popup.preview.code.document().blockCount() > 8)
    popup.grab().save(str(folder / "popup.png"))
    popup.hide()
    dashboard = gui.dashboard
    dashboard.resize(1200, 720)
    dashboard.open_tab("experiments")
    tab = dashboard.experiments
    spin(lambda: tab.detail is not None and len(tab.plot.series) > 0)
    rows = [i for i, r in enumerate(tab.runs) if r.status == "succeeded"]
    if rows:
        tab.table.setCurrentCell(rows[0], 0)
        run_id = tab.runs[rows[0]].id
        spin(lambda: tab.detail is not None and tab.detail.run.id == run_id)
    dashboard.grab().save(str(folder / "dashboard.png"))


if __name__ == "__main__":
    main()
