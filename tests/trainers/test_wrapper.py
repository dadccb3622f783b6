"""The run wrapper and the run folder, with real processes: exit codes, signals, timeouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labmind.trainers import run_dir as rd

from .polling import wait_for


def gone(pid: int) -> bool:
    """The process has ended (a zombie that nobody reaps counts as ended)."""
    return rd.process_start_time(pid) is None


def launch(run_dir: Path, record: rd.CommandRecord) -> subprocess.Popen[bytes]:
    run_dir.mkdir(parents=True, exist_ok=True)
    rd.write_command(run_dir, record)
    return start_wrapper(run_dir)


def start_wrapper(run_dir: Path) -> subprocess.Popen[bytes]:
    with (run_dir / rd.WRAPPER_LOG).open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "labmind.trainers.wrapper", str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


def shell(
    run_dir: Path, script: str, timeout_s: float | None = None, kill_grace_s: float = 10.0
) -> rd.CommandRecord:
    return rd.CommandRecord(
        argv=("/bin/sh", "-c", script),
        cwd=str(run_dir),
        timeout_s=timeout_s,
        kill_grace_s=kill_grace_s,
    )


def finish(proc: subprocess.Popen[bytes], run_dir: Path) -> rd.ExitRecord:
    assert proc.wait(timeout=15) == 0, (run_dir / rd.WRAPPER_LOG).read_text()
    record = rd.read_exit(run_dir)
    assert record is not None
    return record


def started(run_dir: Path) -> rd.StartRecord:
    return wait_for(lambda: rd.read_start(run_dir))


def test_exit_code_output_and_environment(tmp_path: Path) -> None:
    run = tmp_path / "run"
    script = 'echo to-stdout; echo to-stderr >&2; printf %s "$LABMIND_RUN_DIR" > seen; exit 3'
    record = finish(launch(run, shell(run, script)), run)
    assert (record.exit_code, record.signal, record.timed_out) == (3, None, False)
    output = (run / rd.OUTPUT_LOG).read_text()
    assert "to-stdout" in output
    assert "to-stderr" in output
    assert (run / "seen").read_text() == str(run)
    start = rd.read_start(run)
    assert start is not None
    assert start.pgid == start.child_pid
    assert start.pgid != start.pid  # the command has a group of its own, the wrapper does not
    assert record.duration_s >= 0


def test_environment_overrides_reach_the_command(tmp_path: Path) -> None:
    run = tmp_path / "run"
    record = rd.CommandRecord(
        argv=(sys.executable, "-c", "import os; print(os.environ['LM_X'], os.getcwd())"),
        cwd=str(tmp_path),
        env={"LM_X": "forty-two"},
    )
    assert finish(launch(run, record), run).exit_code == 0
    assert (run / rd.OUTPUT_LOG).read_text().split() == ["forty-two", str(tmp_path)]


def test_sigkill_from_outside_is_recorded(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = launch(run, rd.CommandRecord(argv=("sleep", "30"), cwd=str(run)))
    start = started(run)
    assert start.child_pid is not None
    os.kill(start.child_pid, signal.SIGKILL)
    record = finish(proc, run)
    assert (record.exit_code, record.signal, record.cancelled) == (None, signal.SIGKILL, False)


def test_sigterm_to_the_wrapper_group_stops_the_command(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = launch(run, shell(run, "sleep 30 & echo $! > gc.pid; wait"))
    start = started(run)
    grandchild = int(wait_for(lambda: _text(run / "gc.pid")))
    os.killpg(os.getpgid(proc.pid), signal.SIGTERM)
    record = finish(proc, run)
    assert (record.exit_code, record.signal, record.cancelled) == (None, signal.SIGTERM, True)
    assert start.child_pid is not None
    assert gone(start.child_pid)
    assert gone(grandchild)


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    run = tmp_path / "run"
    script = "sleep 30 & echo $! > gc.pid; wait"
    record = finish(launch(run, shell(run, script, timeout_s=1.0, kill_grace_s=5.0)), run)
    assert record.timed_out
    assert record.signal == signal.SIGTERM
    assert 1.0 <= record.duration_s < 5.0
    assert gone(int((run / "gc.pid").read_text()))


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    run = tmp_path / "run"
    script = 'trap "" TERM; sleep 30 & echo $! > gc.pid; wait'
    record = finish(launch(run, shell(run, script, timeout_s=0.8, kill_grace_s=0.3)), run)
    assert (record.timed_out, record.signal) == (True, signal.SIGKILL)
    assert gone(int((run / "gc.pid").read_text()))


def test_leftovers_of_a_finished_command_are_stopped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    record = finish(launch(run, shell(run, "sleep 30 & echo $! > gc.pid; exit 0")), run)
    assert (record.exit_code, record.signal) == (0, None)
    assert gone(int((run / "gc.pid").read_text()))


def test_a_command_that_does_not_exist(tmp_path: Path) -> None:
    run = tmp_path / "run"
    argv = ("labmind-no-such-command", "--flag")
    record = finish(launch(run, rd.CommandRecord(argv=argv, cwd=str(run))), run)
    assert record.exit_code == 127
    assert record.error is not None
    assert "labmind-no-such-command" in record.error
    assert "command not found: labmind-no-such-command" in (run / rd.OUTPUT_LOG).read_text()
    start = rd.read_start(run)
    assert start is not None
    assert start.pgid is None


def test_a_shell_command_that_does_not_exist(tmp_path: Path) -> None:
    run = tmp_path / "run"
    record = finish(launch(run, shell(run, "labmind-no-such-command")), run)
    assert record.exit_code == 127
    assert "labmind-no-such-command" in (run / rd.OUTPUT_LOG).read_text()


def test_a_missing_working_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    missing = tmp_path / "nowhere"
    record = finish(launch(run, rd.CommandRecord(argv=("true",), cwd=str(missing))), run)
    assert record.exit_code == 127
    assert f"working directory does not exist: {missing}" in (run / rd.OUTPUT_LOG).read_text()


def test_a_malformed_command_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / rd.COMMAND_FILE).write_text('{"argv": "not a list"')
    record = finish(start_wrapper(run), run)
    assert record.exit_code == 126
    assert "command.json is missing or malformed" in (run / rd.OUTPUT_LOG).read_text()


def test_an_attempt_runs_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = finish(launch(run, shell(run, "echo once")), run)
    again = start_wrapper(run)
    assert again.wait(timeout=15) == 75
    assert rd.read_exit(run) == first
    assert (run / rd.OUTPUT_LOG).read_text() == "once\n"
    assert "was started before" in (run / rd.WRAPPER_LOG).read_text()


def test_records_are_written_whole_and_read_robustly(tmp_path: Path) -> None:
    path = tmp_path / "exit.json"
    rd.write_json_atomic(path, {"exit_code": 0, "signal": None, "ended_at": 1, "duration_s": 2})
    assert rd.read_exit(tmp_path) == rd.ExitRecord(0, None, 1.0, 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["exit.json"]  # no temp file left behind
    path.write_text('{"exit_code": 0, "sig')  # half-written
    assert rd.read_exit(tmp_path) is None
    path.write_text(json.dumps({"exit_code": 0, "signal": 9, "ended_at": 1, "duration_s": 2}))
    assert rd.read_exit(tmp_path) is None  # a code and a signal at once: malformed
    path.write_bytes(b"\xff\xfe")
    assert rd.read_exit(tmp_path) is None
    assert rd.read_start(tmp_path) is None  # missing


def test_process_identity_survives_pid_reuse(tmp_path: Path) -> None:
    me = rd.process_start_time(os.getpid())
    assert me is not None
    assert rd.process_alive(os.getpid(), me)
    assert not rd.process_alive(os.getpid(), me + 1)
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert rd.process_start_time(proc.pid) is None


def test_attempt_folders_refuse_odd_run_ids(tmp_path: Path) -> None:
    assert rd.attempt_dir(tmp_path, "lr-sweep-3", 2) == tmp_path / "lr-sweep-3" / "2"
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError, match="run id"):
            rd.attempt_dir(tmp_path, bad, 1)


def _text(path: Path) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text if text.endswith("\n") else None
