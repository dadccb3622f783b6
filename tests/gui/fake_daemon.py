"""An in-memory stand-in for the daemon behind the GUI's `DaemonApi` Protocol: canned
answers, and a record of every call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from labmind.daemon.client import DaemonError, DaemonUnavailable
from labmind.daemon.protocol import (
    Ack,
    BackupOutcome,
    BackupRepoStatus,
    BackupStatus,
    ChatDetail,
    ChatMessage,
    ChatSummary,
    ConfigView,
    Event,
    FlaggedSample,
    HeldBackFile,
    IndexProgress,
    LessonInfo,
    LogChunk,
    RestoreRequest,
    RestoreResult,
    RunDetail,
    RunInfo,
    RunOutliers,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SnapshotEntry,
    StatusInfo,
    SuggestedChat,
    SuggestedCode,
    Suggestion,
    WhyLink,
    WhyResponse,
)


def hit(path: str, line: int, *, kind: str = "code", title: str = "", **extra: Any) -> SearchHit:
    return SearchHit.model_validate(
        {
            "path": path,
            "start_line": line,
            "end_line": line + 2,
            "kind": kind,
            "score": 1.0,
            "title": title or path.rsplit("/", 1)[-1],
            "snippet": f"def found_{line}():\n    return {line}\n",
            "language": "python" if path.endswith(".py") else None,
            **extra,
        }
    )


def run_info(run_id: str, status: str = "running", **extra: Any) -> RunInfo:
    data: dict[str, Any] = {
        "id": run_id,
        "name": f"lr-sweep-{run_id}",
        "status": status,
        "params": {"lr": 0.001, "batch_size": 64},
        "attempt": 1,
        "exit_code": None,
        "sweep": "s1",
        "command": "python train.py",
        "submitted_at": 1000.0 + int(run_id, 16),
        "started_at": None,
        "ended_at": None,
        "failure": None,
        "summary": None,
    }
    data.update(extra)
    return RunInfo.model_validate(data)


def snapshot(commit: str, age_s: float, files: int = 1, pushed: bool = False) -> SnapshotEntry:
    noun = "file" if files == 1 else "files"
    return SnapshotEntry(
        commit=commit,
        time=time.time() - age_s,
        message=f"labmind snapshot of main: {files} {noun} changed",
        pushed=pushed,
    )


DEFAULT_LOG = "epoch 1 loss 0.9\nepoch 2 loss 0.5\n"
LIVE_STATUSES = ("queued", "running")


@dataclass
class FakeDaemon:
    hits: list[SearchHit] = field(default_factory=list)
    runs: list[RunInfo] = field(default_factory=list)
    repos: list[BackupRepoStatus] = field(default_factory=list)
    config_values: dict[str, Any] = field(
        default_factory=lambda: {
            "index": {"debounce_ms": 300, "exclude": []},
            "gui": {"hotkey": "<ctrl>+<alt>+k"},
        }
    )
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    search_gate: Callable[[SearchRequest], None] | None = None
    answers: dict[str, list[SearchHit]] = field(default_factory=dict)
    online: bool = True
    events_feed: list[Event] = field(default_factory=list)
    index_paused: bool = False
    backup_paused: bool = False
    snapshots: dict[str, list[SnapshotEntry]] = field(default_factory=dict)
    not_empty: set[str] = field(default_factory=set)
    """Restore targets the daemon refuses as not empty."""
    logs: dict[str, bytes] = field(default_factory=dict)
    """Run logs by run id (a run without one has `DEFAULT_LOG`)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: threading.Event = field(default_factory=threading.Event)

    def _call(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, args))
        if not self.online:
            raise DaemonUnavailable("no labmind daemon is running")

    def called(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for call, args in self.calls if call == name]

    def status(self) -> StatusInfo:
        self._call("status")
        return StatusInfo(
            pid=1,
            version="0.1.0",
            uptime_s=60,
            home="/tmp/lab",
            socket="/tmp/lab/run/daemon.sock",
            roots=1,
            files=12,
            chunks=40,
            embedded=40,
            embed_total=40,
            pending_files=0,
            skipped=0,
            indexing=False,
            embedder_loaded=False,
            rss_bytes=100 * 2**20,
            model="minilm",
            indexing_paused=self.index_paused,
            held_changes=2 if self.index_paused else 0,
        )

    def progress(self) -> IndexProgress:
        self._call("progress")
        return IndexProgress(
            jobs_submitted=1,
            jobs_done=1,
            scanning=False,
            pending_files=0,
            processed_files=12,
            files=12,
            chunks=40,
            embedded=40,
            embed_total=40,
            embedder_enabled=True,
            paused=self.index_paused,
            held_changes=2 if self.index_paused else 0,
        )

    def index_pause(self, paused: bool) -> Ack:
        self._call("index_pause", paused)
        self.index_paused = paused
        return Ack()

    def search(self, request: SearchRequest) -> SearchResponse:
        self._call("search", request)
        if self.search_gate is not None:
            self.search_gate(request)
        found = self.answers.get(request.query, self.hits)
        hits = [h for h in found if request.kind is None or h.kind == request.kind]
        return SearchResponse(hits=hits, mode="hybrid", embedded=1, embed_total=1, took_ms=3.0)

    def why(self, path: str, line: int | None = None) -> WhyResponse:
        self._call("why", path, line)
        link = WhyLink(
            chat_id="c1",
            title="Writing a data loader",
            message_id="m1",
            position=3,
            role="assistant",
            created=None,
            score=0.9,
            shared=12,
            start_line=1,
            end_line=3,
        )
        return WhyResponse(path=path, line=line, indexed=True, links=[link])

    def chat(self, chat_id: str) -> ChatDetail:
        self._call("chat", chat_id)
        summary = ChatSummary(
            id=chat_id,
            source="chatgpt",
            title="Writing a data loader",
            created=None,
            updated=None,
            origin="export.zip",
            messages=2,
        )
        messages = [
            ChatMessage(id="m0", position=0, role="user", created=None, on_path=True, text="hi"),
            ChatMessage(
                id="m1", position=1, role="assistant", created=None, on_path=True, text="code"
            ),
        ]
        return ChatDetail(chat=summary, messages=messages)

    def backup_status(self) -> BackupStatus:
        self._call("backup_status")
        return BackupStatus(
            enabled=True, paused=self.backup_paused, push=False, repos=list(self.repos)
        )

    def backup_now(self, path: str | None = None) -> list[BackupOutcome]:
        self._call("backup_now", path)
        return [
            BackupOutcome(
                path=path or "/src",
                branch="main",
                snapshot="abc",
                created=True,
                files_changed=1,
                held_back=[],
                pushes=[],
                error=None,
            )
        ]

    def backup_log(
        self, path: str, branch: str | None = None, limit: int = 50
    ) -> list[SnapshotEntry]:
        self._call("backup_log", path, branch, limit)
        if path not in self.snapshots:
            raise DaemonError(f"{path} is not backed up; see `labmind backup status`")
        return self.snapshots[path][:limit]

    def backup_restore(self, request: RestoreRequest) -> RestoreResult:
        self._call("backup_restore", request)
        if request.to in self.not_empty:
            raise DaemonError(
                f"{request.to} is not empty; restore writes only into a new folder",
                status_code=400,
            )
        found = [s for s in self.snapshots.get(request.path, []) if s.commit == request.at]
        commit, when = (found[0].commit, found[0].time) if found else ("abcdef1234", time.time())
        return RestoreResult(commit=commit, time=when, target=request.to, files=3)

    def backup_pause(self, paused: bool) -> Ack:
        self._call("backup_pause", paused)
        self.backup_paused = paused
        return Ack()

    def exp_runs(self, sweep: str | None = None) -> list[RunInfo]:
        self._call("exp_runs", sweep)
        return list(self.runs)

    def exp_run(self, run_id: str) -> RunDetail:
        self._call("exp_run", run_id)
        run = next(r for r in self.runs if r.id == run_id)
        return RunDetail(
            run=run,
            code_commit=None,
            attempts=[],
            run_dir=None,
            log_tail="epoch 1 loss 0.9\nepoch 2 loss 0.5\n",
            metrics={"loss": [0.9, 0.7, 0.5], "acc": [0.2, 0.5, 0.8]},
            proposal=None,
        )

    def append_log(self, run_id: str, text: str) -> None:
        """The run writes more output."""
        with self._lock:
            self.logs[run_id] = self.logs.get(run_id, DEFAULT_LOG.encode()) + text.encode()

    def set_status(self, run_id: str, status: str) -> None:
        self.runs = [
            r.model_copy(update={"status": status}) if r.id == run_id else r for r in self.runs
        ]

    def exp_log(self, run_id: str, offset: int = 0, tail: int | None = None) -> LogChunk:
        self._call("exp_log", run_id, offset, tail)
        with self._lock:
            data = self.logs.get(run_id, DEFAULT_LOG.encode())
        start = max(0, len(data) - tail) if tail is not None else offset
        part = data[start:]
        text = part.decode("utf-8", "replace")
        if tail is not None and start > 0 and "\n" in text:
            text = text[text.index("\n") + 1 :]
        run = next((r for r in self.runs if r.id == run_id), None)
        finished = run is None or run.status not in LIVE_STATUSES
        return LogChunk(text=text, offset=start + len(part), finished=finished)

    def exp_action(self, run_id: str, action: str) -> RunInfo:
        self._call("exp_action", run_id, action)
        new = {"approve": "queued", "retry": "queued", "cancel": "cancelled"}[action]
        self.runs = [
            r.model_copy(update={"status": new}) if r.id == run_id else r for r in self.runs
        ]
        return next(r for r in self.runs if r.id == run_id)

    def exp_outliers(
        self, run_id: str, limit: int | None = None, reason: str | None = None
    ) -> RunOutliers:
        self._call("exp_outliers", run_id, limit, reason)
        sample = FlaggedSample(
            sample=7,
            score=3.5,
            reasons=["label_error"],
            label=1,
            predicted=2,
            step=10,
            epoch=0,
            time=0.0,
            detail={},
        )
        return RunOutliers(
            run=run_id,
            attempt=1,
            run_dir=None,
            flagged=1,
            reasons={"label_error": 1},
            samples=[sample],
            spike_count=0,
            spikes=[],
        )

    def exp_pause(self, paused: bool) -> Ack:
        self._call("exp_pause", paused)
        return Ack()

    def config(self) -> ConfigView:
        self._call("config")
        return ConfigView(file="/tmp/lab/config/config.toml", values=self.config_values)

    def config_set(self, key: str, value: str) -> ConfigView:
        self._call("config_set", key, value)
        if key == "index.debounce_ms" and not value.isdigit():
            raise DaemonError(f"{key}: expected an integer, got {value!r}", status_code=400)
        section, name = key.split(".")
        self.config_values[section][name] = int(value) if value.isdigit() else value
        return self.config()

    def events(self) -> Generator[Event, None, None]:
        self._call("events")
        yield from self.events_feed
        self._closed.wait(30)

    def close(self) -> None:
        self._closed.set()

    suggestions: dict[str, Suggestion] = field(default_factory=dict)
    """Canned answers to `suggest` by task; any other task gets a preamble with nothing."""
    suggest_gate: Callable[[str], None] | None = None

    def suggest(self, task: str, limit: int = 5) -> Suggestion:
        self._call("suggest", task, limit)
        if self.suggest_gate is not None:
            self.suggest_gate(task)
        found = self.suggestions.get(task)
        if found is not None:
            return found
        return Suggestion(task=task, preamble=f"Task: {task}\n", lessons=[], code=[], chats=[])


def held(path: str) -> HeldBackFile:
    return HeldBackFile(path=path, reason="secret", since=0.0)


def repo(path: str, **extra: Any) -> BackupRepoStatus:
    data: dict[str, Any] = {
        "path": path,
        "root": path,
        "shadow": False,
        "branch": "main",
        "last_snapshot": "abc",
        "last_snapshot_at": time.time() - 300,
        "files_changed": 0,
        "checked_at": None,
        "next_check_at": None,
        "remote": None,
        "unpushed": 0,
        "pushes": [],
        "held_back": [],
        "error": None,
    }
    data.update(extra)
    return BackupRepoStatus.model_validate(data)


class RecordingLauncher:
    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def launch(self, argv: Any) -> None:
        self.commands.append(list(argv))


def lesson(library: str, resolution: str | None, **extra: Any) -> LessonInfo:
    data: dict[str, Any] = {
        "id": f"{library[:4]}0001",
        "library": library,
        "symptom": f"ImportError: {library} would not load",
        "resolution": resolution,
        "evidence": ["chat:c1#m0"],
        "first_seen": 1000.0,
        "last_seen": 2000.0,
        "count": 2,
        "confidence": 0.8,
        "status": "active",
    }
    data.update(extra)
    return LessonInfo.model_validate(data)


def suggestion(task: str, code_path: str) -> Suggestion:
    """A suggestion with one lesson, one piece of code and one chat, and its preamble."""
    lessons = [lesson("opencv-python", "use pillow instead", replacement="pillow")]
    code = [SuggestedCode(path=code_path, lines="10-12", excerpt="def found_10():\n    return 10")]
    chats = [SuggestedChat(conversation_id="c1", title="Resize images", excerpt="use Pillow")]
    preamble = (
        f"Task: {task}\n\n"
        "Library lessons from my earlier work (please respect them):\n"
        "- Avoid opencv-python: it failed 2 times with ImportError; use pillow instead.\n\n"
        f"Relevant code I already have:\n- {code_path} (lines 10-12):\n    def found_10():\n\n"
        'Related earlier chats:\n- "Resize images": use Pillow\n'
    )
    return Suggestion(task=task, preamble=preamble, lessons=lessons, code=code, chats=chats)
