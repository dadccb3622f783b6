"""A real labmind daemon, started through its CLI in a throwaway LABMIND_HOME.

Measures in one run:
* save -> searchable latency (lexical) for a new file and for a modified one: the time from
  writing a file with a unique identifier until `POST /search` returns a hit in that file;
* warm query latency through the local API (client side and the daemon's own `took_ms`)
  for lexical and hybrid search;
* the idle daemon: CPU (percent of one core) and RSS of a second daemon whose embedder
  worker has been unloaded after a short idle timeout.

    python -m bench.daemon_latency [--json out.json] [--samples 30] [--idle-s 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from labmind.daemon.client import DaemonClient
from labmind.daemon.paths import Paths
from labmind.daemon.protocol import Mode, SearchRequest

from .report import print_table

CLI = [sys.executable, "-m", "labmind.daemon"]
STDLIB = Path(os.__file__).parent
# About 40 modules of the standard library, as a small project folder.
PROJECT_FILES = [
    *(f"json/{name}.py" for name in ("__init__", "decoder", "encoder", "scanner", "tool")),
    *(f"http/{name}.py" for name in ("__init__", "client", "cookiejar", "cookies", "server")),
    *(
        f"email/{name}.py"
        for name in (
            "__init__",
            "_encoded_words",
            "_header_value_parser",
            "_parseaddr",
            "_policybase",
            "base64mime",
            "charset",
            "contentmanager",
            "encoders",
            "errors",
            "feedparser",
            "generator",
            "header",
            "headerregistry",
            "iterators",
            "message",
            "parser",
            "policy",
            "quoprimime",
            "utils",
        )
    ),
    *(
        f"{name}.py"
        for name in (
            "textwrap",
            "shlex",
            "csv",
            "fnmatch",
            "glob",
            "base64",
            "string",
            "heapq",
            "bisect",
            "calendar",
        )
    ),
]
PHRASES = [
    "parse a json document from a string",
    "serialize python objects to json",
    "escape non ascii characters in json output",
    "http request with headers and body",
    "read the status line of an http response",
    "parse cookies from a header",
    "cookie expiry and domain matching",
    "serve files from the current directory",
    "handle a GET request",
    "encode an email header with a charset",
    "parse an email address list",
    "decode base64 encoded body",
    "quoted printable encoding",
    "build a multipart message",
    "format a date for an email header",
    "wrap text to a given width",
    "split a shell command line into tokens",
    "read rows from a csv file",
    "match file names against a shell pattern",
    "find files with wildcard patterns recursively",
    "encode bytes as base32",
    "template string substitution",
    "merge sorted inputs with a heap",
    "smallest n items of a list",
    "content manager for message payloads",
]
POLL_S = 0.01
FOUND_TIMEOUT_S = 30.0


@dataclass
class Daemon:
    """One labmind home with a daemon started through the CLI."""

    home: Path
    env: dict[str, str]
    pid: int = 0

    @classmethod
    def create(cls, config: str | None = None, parent: Path = Path("/tmp")) -> Daemon:
        home = Path(tempfile.mkdtemp(prefix="lmb-", dir=parent))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LABMIND_", "XDG_RUNTIME"))}
        env.update(LABMIND_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        daemon = cls(home, env)
        if config is not None:
            daemon.paths.config_dir.mkdir(parents=True, exist_ok=True)
            daemon.paths.config_file.write_text(config)
        return daemon

    @property
    def paths(self) -> Paths:
        return Paths.resolve(self.env)

    def cli(self, *args: str, timeout: float = 900) -> str:
        proc = subprocess.run(
            [*CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"labmind {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc.stdout

    def client(self) -> DaemonClient:
        return DaemonClient(self.paths, timeout=120)

    def start(self) -> None:
        self.cli("start", timeout=120)
        with self.client() as client:
            self.pid = client.status().pid

    def index(self, folder: Path) -> float:
        started = time.perf_counter()
        self.cli("index", str(folder), "--wait")
        return time.perf_counter() - started

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.cli("stop", timeout=60)

    def kill(self) -> None:
        """Kill the daemon and its children if a stop left them running; remove the home."""
        pids = {self.pid} if self.pid else set()
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(self.paths.pid_file.read_text().strip()))
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                for child in process.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.send_signal(signal.SIGKILL)
                process.send_signal(signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def latency_row(values_ms: list[float], missed: int = 0) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "missed": missed,
        "p50_ms": percentile(values_ms, 0.5),
        "p95_ms": percentile(values_ms, 0.95),
        "max_ms": max(values_ms, default=0.0),
    }


def make_project(folder: Path) -> list[Path]:
    files = []
    for relative in PROJECT_FILES:
        source = STDLIB / relative
        if not source.is_file():
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        files.append(target)
    return files


def wait_until_found(client: DaemonClient, identifier: str, path: Path) -> float | None:
    """perf_counter time at which a lexical search for `identifier` first hits `path`."""
    wanted = os.path.realpath(path)
    request = SearchRequest(query=identifier, mode="lexical", limit=5)
    deadline = time.perf_counter() + FOUND_TIMEOUT_S
    while True:
        hits = client.search(request).hits
        now = time.perf_counter()
        if any(os.path.realpath(hit.path) == wanted for hit in hits):
            return now
        if now > deadline:
            return None
        time.sleep(POLL_S)


def measure_saves(
    client: DaemonClient, samples: int, write: Callable[[int, str], Path]
) -> tuple[list[float], int]:
    """Latencies (ms) of `samples` writes by `write(i, identifier)`, and how many never showed."""
    latencies: list[float] = []
    missed = 0
    for i in range(samples):
        identifier = f"probe_{secrets.token_hex(6)}_fn"
        path, written = write(i, identifier), time.perf_counter()
        found = wait_until_found(client, identifier, path)
        if found is None:
            missed += 1
        else:
            latencies.append((found - written) * 1000)
        time.sleep(0.2)
    return latencies, missed


def save_latency(
    daemon: Daemon, project: Path, files: list[Path], samples: int
) -> dict[str, dict[str, float]]:
    probes = project / "probes"
    probes.mkdir()

    def new_file(i: int, identifier: str) -> Path:
        path = probes / f"probe_{i:03d}.py"
        path.write_text(f'def {identifier}():\n    """Probe {i}."""\n    return {i}\n')
        return path

    def modify_file(i: int, identifier: str) -> Path:
        path = files[i % len(files)]
        with path.open("a") as out:
            out.write(f"\n\ndef {identifier}():\n    return {i}\n")
        return path

    rows: dict[str, dict[str, float]] = {}
    with daemon.client() as client:
        rows["new file"] = latency_row(*measure_saves(client, samples, new_file))
        rows["modified file"] = latency_row(*measure_saves(client, samples, modify_file))
    return rows


def queries(files: list[Path], count: int) -> list[str]:
    """The fixed phrases, then function names of the project, up to `count` queries."""
    names: list[str] = []
    for path in files:
        for name in re.findall(r"^def ([a-z][a-z0-9_]{5,})\(", path.read_text(), re.MULTILINE):
            if name not in names and not name.startswith("probe_"):
                names.append(name)
    step = max(1, len(names) // max(1, count - len(PHRASES)))
    return [*PHRASES, *names[::step]][:count]


def wait_embedded(client: DaemonClient, timeout_s: float = 900) -> float:
    """Seconds until every chunk has its vector (the probes and edits leave a backlog)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        info = client.status()
        if not info.indexing and info.pending_files == 0 and info.embedded >= info.embed_total:
            break
        time.sleep(0.5)
    return time.perf_counter() - started


def query_latency(daemon: Daemon, files: list[Path]) -> tuple[dict[str, dict[str, float]], float]:
    texts = queries(files, 50)
    rows: dict[str, dict[str, float]] = {}
    with daemon.client() as client:
        backlog_s = wait_embedded(client)
        started = time.perf_counter()
        client.search(SearchRequest(query="warm up the embedder", mode="hybrid", limit=10))
        warmup_ms = (time.perf_counter() - started) * 1000
        modes: tuple[Mode, ...] = ("lexical", "hybrid")
        for mode in modes:
            client_ms: list[float] = []
            server_ms: list[float] = []
            for text in texts:
                started = time.perf_counter()
                response = client.search(SearchRequest(query=text, mode=mode, limit=10))
                client_ms.append((time.perf_counter() - started) * 1000)
                server_ms.append(response.took_ms)
            rows[mode] = {
                "n": len(texts),
                "p50_ms": percentile(client_ms, 0.5),
                "p95_ms": percentile(client_ms, 0.95),
                "max_ms": max(client_ms),
                "daemon_p50_ms": percentile(server_ms, 0.5),
                "daemon_p95_ms": percentile(server_ms, 0.95),
            }
    rows["hybrid warm-up (first query)"] = {
        "n": 1,
        "p50_ms": warmup_ms,
        "p95_ms": warmup_ms,
        "max_ms": warmup_ms,
        "daemon_p50_ms": 0.0,
        "daemon_p95_ms": 0.0,
    }
    return rows, backlog_s


def idle_daemon(
    daemon: Daemon, project: Path, idle_s: float
) -> tuple[dict[str, dict[str, float]], list[str]]:
    index_s = daemon.index(project)
    with daemon.client() as client:
        waited = time.perf_counter()
        deadline = waited + 60
        while client.status().embedder_loaded and time.perf_counter() < deadline:
            time.sleep(0.5)
        unload_wait_s = time.perf_counter() - waited
    process = psutil.Process(daemon.pid)
    before, started = process.cpu_times(), time.perf_counter()
    time.sleep(idle_s)
    after, elapsed = process.cpu_times(), time.perf_counter() - started
    cpu_s = (after.user + after.system) - (before.user + before.system)
    rss = process.memory_info().rss
    children = process.children(recursive=True)
    children_rss = 0
    commands: list[str] = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            children_rss += child.memory_info().rss
            commands.append(" ".join(child.cmdline()))
    with daemon.client() as client:
        info = client.status()
    return {
        "idle daemon": {
            "idle_s": elapsed,
            "idle_cpu_percent": 100 * cpu_s / elapsed,
            "rss_mb": rss / 2**20,
            "children": len(children),
            "children_rss_mb": children_rss / 2**20,
            "embedder_loaded": int(info.embedder_loaded),
            "unload_wait_s": unload_wait_s,
            "index_wait_s": index_s,
            "files": info.files,
            "chunks": info.chunks,
        }
    }, commands


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--idle-s", type=float, default=60.0)
    args = parser.parse_args()
    results: dict[str, object] = {}
    workdir = Path(tempfile.mkdtemp(prefix="lmb-project-", dir="/tmp"))
    daemons: list[Daemon] = []
    try:
        project = workdir / "project"
        files = make_project(project)
        first = Daemon.create()
        daemons.append(first)
        first.start()
        index_s = first.index(project)
        with first.client() as client:
            info = client.status()
        indexed = {
            "project": {
                "files": info.files,
                "chunks": info.chunks,
                "embedded": info.embedded,
                "index_wait_s": index_s,
            }
        }
        results["index"] = indexed
        print_table("Initial index (CLI `index --wait`, embeddings on)", indexed)
        saves = save_latency(first, project, files, args.samples)
        results["save_to_searchable"] = saves
        print_table(
            "Save -> searchable latency (lexical, polled every 10 ms through the API)", saves
        )
        searches, backlog_s = query_latency(first, files)
        results["query_latency"] = searches
        results["embedding_backlog_wait_s"] = backlog_s
        print(f"\n(waited {backlog_s:.1f} s for the embedding backlog before measuring queries)")
        print_table("Warm query latency through the API (limit 10)", searches)
        first.stop()

        second = Daemon.create("[embedder]\nidle_timeout_s = 5.0\n")
        daemons.append(second)
        second.start()
        idle, children = idle_daemon(second, project, args.idle_s)
        results["idle"] = idle
        results["idle_children"] = children
        print_table(f"Idle daemon over {args.idle_s:g} s (embedder idle timeout 5 s)", idle)
        for command in children:
            print(f"idle daemon child: {command[:160]}")
        second.stop()
    finally:
        for daemon in daemons:
            daemon.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
