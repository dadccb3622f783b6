from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from labmind.daemon.cli import app, parse_since
from labmind.daemon.paths import Paths
from labmind.daemon.protocol import (
    Ack,
    IndexJob,
    IndexProgress,
    IndexRequest,
    SearchHit,
    SearchRequest,
    SearchResponse,
    StatusInfo,
    WatchRoot,
)
from labmind.daemon.transport import bind_unix_socket, serve

TIMEOUT_S = 20

HITS = [
    SearchHit(
        path="/data/proj/train.py",
        start_line=10,
        end_line=12,
        kind="code",
        score=0.75,
        title="train_epoch",
        snippet="def train_epoch(model):\n    loss = model()\n    return loss\n",
        language="python",
        symbol="train_epoch",
    ),
    SearchHit(
        path="chats/ChatGPT/lr schedule.md",
        start_line=1,
        end_line=4,
        kind="chat",
        score=0.5,
        title="Cosine schedule",
        snippet="Use a cosine schedule with warmup.",
        chat_id="c-123",
    ),
]


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(dir="/tmp", prefix="lm-"))
    monkeypatch.setenv("LABMIND_HOME", str(base))
    monkeypatch.setenv("LABMIND_NO_AUTOSTART", "1")
    yield base
    shutil.rmtree(base)


class FakeDaemon:
    """A few of the daemon's routes, answering with canned protocol models."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.progress_calls = 0
        self.app = FastAPI()
        self.app.post("/search")(self.search)
        self.app.get("/status")(self.status)
        self.app.get("/watch")(self.watches)
        self.app.post("/index")(self.index)
        self.app.get("/index/progress")(self.progress)
        self.app.post("/config/reload")(self.reload_config)
        self.index_paused = False
        for what in ("index", "backup"):
            for action in ("pause", "resume"):
                self.app.post(f"/{what}/{action}")(self._pauser(what, action))

    def _pauser(self, what: str, action: str) -> Any:
        def route() -> Ack:
            self.requests.append(f"{what} {action}")
            if what == "index":
                self.index_paused = action == "pause"
            return Ack(message=f"{what} {action}d")

        return route

    def search(self, request: SearchRequest) -> SearchResponse:
        self.requests.append(request)
        return SearchResponse(hits=HITS, mode="hybrid", embedded=12, embed_total=40, took_ms=3.0)

    def reload_config(self) -> Ack:
        self.requests.append("reload")
        return Ack()

    def status(self) -> StatusInfo:
        return StatusInfo(
            pid=99,
            version="0.1.0",
            uptime_s=61.0,
            home="/h",
            socket="/h/run/daemon.sock",
            roots=1,
            files=2,
            chunks=3,
            embedded=3,
            embed_total=3,
            pending_files=0,
            skipped=0,
            indexing=False,
            embedder_loaded=False,
            rss_bytes=1 << 20,
            model="m",
            indexing_paused=self.index_paused,
            held_changes=3 if self.index_paused else 0,
        )

    def watches(self) -> list[WatchRoot]:
        return [WatchRoot(path="/data/proj", added_at=0.0, files=2, skipped=0)]

    def index(self, request: IndexRequest) -> IndexJob:
        self.requests.append(request)
        return IndexJob(job_id=1, roots=request.paths)

    def progress(self) -> IndexProgress:
        self.progress_calls += 1
        step = min(self.progress_calls, 3)
        return IndexProgress(
            jobs_submitted=1,
            jobs_done=0 if step == 1 else 1,
            scanning=step == 1,
            pending_files=2 if step == 1 else 0,
            processed_files=0 if step == 1 else 2,
            files=2,
            chunks=6,
            embedded=6 if step == 3 else 2,
            embed_total=6,
            embedder_enabled=True,
            paused=self.index_paused,
        )


@contextlib.contextmanager
def serving(fake: FakeDaemon) -> Iterator[FakeDaemon]:
    paths = Paths.resolve()
    paths.ensure_dirs()
    sock = bind_unix_socket(paths.socket_path)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            serve(fake.app, sock, log_level="warning", on_started=started.set, should_exit=stop)
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(TIMEOUT_S)
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(TIMEOUT_S)
        loop.close()


@pytest.fixture
def daemon(home: Path) -> Iterator[FakeDaemon]:
    with serving(FakeDaemon()) as fake:
        yield fake


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("labmind: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_config_show_get_set(home: Path) -> None:
    shown = invoke("config", "show", "--json")
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["index"]["debounce_ms"] == 300

    changed = invoke("config", "set", "index.debounce_ms", "500")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.strip() == "index.debounce_ms = 500"
    assert "debounce_ms = 500" in (home / "config" / "config.toml").read_text()

    assert invoke("config", "get", "index.debounce_ms").stdout == "500\n"
    assert invoke("config", "get", "search.default_mode").stdout == "hybrid\n"
    assert json.loads(invoke("config", "get", "index").stdout)["debounce_ms"] == 500
    assert "[index]\n" in invoke("config", "show").stdout


def test_config_errors_are_one_line(home: Path) -> None:
    bad_key = invoke("config", "set", "index.nope", "1")
    assert bad_key.exit_code == 1
    assert one_error_line(bad_key).startswith("labmind: unknown key 'index.nope'; known keys:")

    bad_value = invoke("config", "set", "index.debounce_ms", "soon")
    assert bad_value.exit_code == 1
    assert one_error_line(bad_value) == (
        "labmind: index.debounce_ms: expected a whole number, got 'soon'"
    )
    assert not (home / "config" / "config.toml").exists()

    assert invoke("config", "get", "nope").exit_code == 1


def test_without_a_daemon_and_without_autostart(home: Path) -> None:
    message = f"labmind: no labmind daemon is running for {home}; start it with `labmind start`"
    for args in (["--no-autostart", "search", "x"], ["watch", "ls"], ["status"]):
        result = invoke(*args)
        assert result.exit_code == 1
        assert one_error_line(result) == message
        assert result.stdout == ""

    as_json = invoke("status", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"running": False}


def test_usage_errors_exit_2_with_one_line(home: Path) -> None:
    missing = invoke("search")
    assert missing.exit_code == 2
    assert "Missing argument" in one_error_line(missing)

    bad_kind = invoke("search", "x", "--kind", "song")
    assert bad_kind.exit_code == 2
    one_error_line(bad_kind)

    bad_since = invoke("search", "x", "--since", "soon")
    assert bad_since.exit_code == 2
    assert "--since" in one_error_line(bad_since)


def test_missing_folder_is_a_clear_error(home: Path) -> None:
    result = invoke("watch", "add", str(home / "no-such-dir"))
    assert result.exit_code == 1
    assert one_error_line(result) == f"labmind: {home / 'no-such-dir'}: no such folder"


def test_search_json_is_the_list_of_hits(daemon: FakeDaemon) -> None:
    result = invoke(
        "search", "train loop", "--json", "--kind", "code", "--mode", "lexical", "--limit", "5"
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    base_keys = {"path", "start_line", "end_line", "kind", "score", "title", "snippet"}
    assert set(hits[0]) == base_keys | {"language", "symbol"}
    assert set(hits[1]) == base_keys | {"chat_id"}
    assert hits[0]["path"] == "/data/proj/train.py"
    assert (hits[0]["start_line"], hits[0]["end_line"]) == (10, 12)
    assert result.stderr == "vectors: 12/40 chunks embedded; results will improve\n"
    request = daemon.requests[0]
    assert (request.query, request.kind, request.mode, request.limit) == (
        "train loop",
        "code",
        "lexical",
        5,
    )


def test_search_filters_and_default_limit(daemon: FakeDaemon) -> None:
    assert invoke("config", "set", "search.default_limit", "7").exit_code == 0
    assert daemon.requests == ["reload"]
    result = invoke("search", "x", "--path", "src/*.py", "--lang", "python", "--since", "2d")
    assert result.exit_code == 0, result.output
    request = daemon.requests[1]
    assert (request.limit, request.path_glob, request.language) == (7, "src/*.py", "python")
    assert request.since is not None


def test_search_human_output(daemon: FakeDaemon) -> None:
    result = invoke("search", "train")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "/data/proj/train.py:10-12  train_epoch  0.750" in out
    assert "10 def train_epoch(model):" in out
    assert "12     return loss" in out
    assert "Cosine schedule" in out


def test_status_and_watch_ls_json(daemon: FakeDaemon) -> None:
    status = json.loads(invoke("status", "--json").stdout)
    assert status["running"] is True
    assert (status["pid"], status["version"], status["uptime_s"]) == (99, "0.1.0", 61.0)
    assert "up 1m 1s" in invoke("status").stdout

    roots = json.loads(invoke("watch", "ls", "--json").stdout)
    assert roots == [
        {"path": "/data/proj", "added_at": 0.0, "files": 2, "skipped": 0, "error": None}
    ]


def test_index_wait_polls_until_vectors_are_done(daemon: FakeDaemon, home: Path) -> None:
    result = invoke("index", str(home), "--wait", "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    assert (final["jobs_done"], final["embedded"], final["embed_total"]) == (1, 6, 6)
    assert daemon.progress_calls == 3
    assert daemon.requests == [IndexRequest(paths=[str(home.resolve())])]

    summary = invoke("index", "--wait")
    assert summary.stdout == "indexed 2 files, 6 chunks; vectors 6/6 embedded\n"


def test_parse_since() -> None:
    assert parse_since("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("2026-01-01") == datetime(2026, 1, 1).timestamp()


@pytest.mark.parametrize(
    ("args", "calls"),
    [
        (("pause",), ["index pause", "backup pause"]),
        (("pause", "--indexing"), ["index pause"]),
        (("pause", "--backup"), ["backup pause"]),
        (("resume",), ["index resume", "backup resume"]),
        (("resume", "--indexing", "--backup"), ["index resume", "backup resume"]),
        (("resume", "--backup"), ["backup resume"]),
    ],
)
def test_pause_and_resume_name_indexing_backups_or_both(
    daemon: FakeDaemon, args: tuple[str, ...], calls: list[str]
) -> None:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert daemon.requests == calls
    assert result.stdout.splitlines() == [f"{call}d" for call in calls]


def test_status_says_when_indexing_is_paused(daemon: FakeDaemon) -> None:
    assert "indexing paused" not in invoke("status").stdout
    invoke("pause", "--indexing")
    out = invoke("status").stdout
    assert "indexing paused, 3 changes waiting" in " ".join(out.split())
    assert json.loads(invoke("status", "--json").stdout)["indexing_paused"] is True


def test_index_wait_stops_with_one_line_when_indexing_is_paused(
    daemon: FakeDaemon, home: Path
) -> None:
    daemon.index_paused = True
    result = invoke("index", "--wait")
    assert result.exit_code == 1
    assert "indexing was paused" in one_error_line(result)
