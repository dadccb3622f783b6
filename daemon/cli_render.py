"""How the CLI shows things to a person: tables, search hits, index progress."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from .protocol import IndexProgress, SearchHit, SkippedFile, StatusInfo, WatchRoot

# Language ids of `labmind.indexers.languages` that Pygments knows by another name.
_LEXERS = {"notebook": "python", "cfg": "ini", "text": "text"}


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def value(setting: Any) -> str:
    """A config value as `config get` prints it: strings bare, the rest as JSON."""
    if isinstance(setting, str):
        return setting
    return json.dumps(setting, ensure_ascii=False)


@contextlib.contextmanager
def spinner(text: str) -> Iterator[None]:
    """A spinner on stderr while something slow happens, when stderr is a terminal."""
    console = stderr()
    if not console.is_terminal:
        yield
        return
    with console.status(text):
        yield


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def status_table(info: StatusInfo) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("daemon", f"running, pid {info.pid}, up {duration(info.uptime_s)}"),
        ("version", info.version),
        ("home", info.home),
        ("socket", info.socket),
        ("folders", str(info.roots)),
        ("files", f"{info.files} indexed, {info.pending_files} pending, {info.skipped} skipped"),
        ("chunks", str(info.chunks)),
        ("chats", f"{info.conversations} conversations"),
        ("vectors", f"{info.embedded}/{info.embed_total} embedded"),
        ("indexing", _indexing_state(info)),
        ("model", f"{info.model} ({'loaded' if info.embedder_loaded else 'not loaded'})"),
        ("memory", size(info.rss_bytes)),
    ]
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def _indexing_state(info: StatusInfo) -> str:
    if info.indexing_paused:
        return f"indexing paused, {info.held_changes} changes waiting (`labmind resume`)"
    return "yes" if info.indexing else "no"


def watch_table(roots: Iterable[WatchRoot]) -> Table:
    table = Table(box=None, pad_edge=False)
    for name in ("folder", "files", "skipped", "added"):
        table.add_column(name, justify="right" if name in ("files", "skipped") else "left")
    for root in roots:
        path = Text(root.path)
        if root.error:
            path.append(f"  {root.error}", style="red")
        table.add_row(path, str(root.files), str(root.skipped), when(root.added_at))
    return table


def skipped_table(files: Iterable[SkippedFile]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("file")
    table.add_column("reason")
    for item in files:
        table.add_row(Text(item.path), Text(item.reason))
    return table


def print_hits(console: Console, hits: Iterable[SearchHit]) -> None:
    for hit in hits:
        if hit.kind == "chat" and hit.chat_id:
            where = f"chat {hit.chat_id[:12]} message #{hit.start_line}"
        elif hit.kind == "lesson":
            where = hit.path
        else:
            where = f"{hit.path}:{hit.start_line}-{hit.end_line}"
        header = Text.assemble(
            (where, "bold cyan"),
            "  ",
            (hit.title, "bold"),
            "  ",
            (f"{hit.score:.3f}", "dim"),
        )
        console.print(header)
        if hit.kind != "chat" and hit.chat_id:
            similarity = f", similarity {hit.chat_score:.2f}" if hit.chat_score else ""
            console.print(
                Text(f"from chat: {hit.chat_title} ({hit.chat_id[:12]}{similarity})", "dim")
            )
        console.print(_snippet(hit))
        console.print()


def _snippet(hit: SearchHit) -> Syntax:
    code = hit.snippet.rstrip("\n")
    if hit.kind == "chat" and hit.language in (None, "markdown"):
        return Syntax(code, "markdown", background_color="default", word_wrap=True)
    if hit.language:
        lexer = _LEXERS.get(hit.language, hit.language)
    elif hit.kind == "code":
        lexer = Syntax.guess_lexer(hit.path, code)
    else:
        lexer = "markdown"
    return Syntax(
        code,
        lexer,
        line_numbers=True,
        start_line=hit.snippet_line or hit.start_line,
        background_color="default",
        word_wrap=True,
    )


def index_summary(progress: IndexProgress) -> str:
    vectors = (
        f"vectors {progress.embedded}/{progress.embed_total} embedded"
        if progress.embedder_enabled
        else "vectors off"
    )
    return f"indexed {progress.files} files, {progress.chunks} chunks; {vectors}"


class IndexProgressView:
    """Two bars on stderr while an index job runs: files, then embeddings."""

    def __init__(self, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._files: TaskID | None = None
        self._vectors: TaskID | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=stderr(),
                transient=True,
            )

    def __enter__(self) -> IndexProgressView:
        if self._progress is not None:
            self._progress.start()
            self._files = self._progress.add_task("scanning", total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, state: IndexProgress) -> None:
        progress = self._progress
        if progress is None or self._files is None:
            return
        total = state.processed_files + state.pending_files
        progress.update(
            self._files,
            description="scanning" if state.scanning else "files",
            completed=state.processed_files,
            total=None if state.scanning and total == 0 else total,
        )
        if state.embedder_enabled and state.embed_total > 0:
            if self._vectors is None:
                self._vectors = progress.add_task("vectors", total=state.embed_total)
            progress.update(self._vectors, completed=state.embedded, total=state.embed_total)
