"""Lessons in the daemon: mining as chats arrive and runs fail, the lesson routes, search
with ``--kind lesson``, and pre-flight warnings when code starts importing a library that
failed before.

Mining runs on one thread. It wakes at start-up, when a chat import finishes and when a
run fails, and mines what changed since: conversations whose ``update_time`` differs
from the version mined (``lesson_sources``), attempts not mined yet. Files the watcher
reports and the scripts of submitted sweeps are checked on the same thread; each
(file, lesson) pair is warned about once, ever (``lesson_warnings``).
"""

from __future__ import annotations

import logging
import queue
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from labmind.indexers.lessons import (
    Episode,
    Lesson,
    Turn,
    aggregate,
    imported_libraries,
    is_notebook,
    mine_conversation,
    mine_run,
    score,
)
from labmind.trainers.run_dir import OUTPUT_LOG, attempt_dir, read_log_tail

from .chat_store import ChatStore
from .events import EventBus
from .lesson_store import AmbiguousLessonId, LessonStore, PendingAttempt, UserSide
from .protocol import LessonInfo, LessonUpdate, SearchHit, SearchRequest, SearchResponse
from .server import ApiError
from .store import Store

log = logging.getLogger("labmind.lessons")

MAX_SOURCE_BYTES: Final = 1_000_000
LOG_TAIL_BYTES: Final = 16_000
_SOURCE_SUFFIXES: Final = (".py", ".ipynb", ".pyw")
_FAILED_EVENTS: Final = frozenset({"failed", "retrying", "asking", "needs_approval"})

Refiner = Callable[[str, list[Episode], list[Turn]], list[Episode]]
"""An optional second opinion on what a conversation's mining found (the LLM pass); one
is asked for per mining pass, so it may remember within a pass that its endpoint failed."""


class Publisher(Protocol):
    def publish(self, event: Mapping[str, Any]) -> None: ...


class LessonService:
    def __init__(
        self,
        store: Store,
        events: Publisher,
        runs_dir: Path,
        *,
        sweep_spec: Callable[[str], dict[str, Any] | None] = lambda _: None,
        refiner: Callable[[], Refiner | None] = lambda: None,
        preflight: Callable[[], bool] = lambda: True,
    ) -> None:
        self.records = LessonStore(store)
        self.chats = ChatStore(store)
        self.events = events
        self.runs_dir = runs_dir
        self.sweep_spec = sweep_spec
        self.refiner = refiner
        self.preflight_enabled = preflight
        self.last_error: str | None = None
        self._files: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="labmind-lessons", daemon=True)
        self._thread.start()
        self.kick()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._thread = None

    def kick(self) -> None:
        with self._idle:
            self._busy = True
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is left to mine or check (for tests and benchmarks)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    async def follow(self, bus: EventBus) -> None:
        """Kick on finished imports and failed runs; check the code of submitted sweeps."""
        async for event in bus.subscribe():
            kind, what = event.get("type"), event.get("event")
            finished = kind == "import" and event.get("state") == "done"
            if finished or (kind == "experiment" and what in _FAILED_EVENTS):
                self.kick()
            elif kind == "experiment" and what == "submitted":
                self.sweep_submitted(str(event.get("sweep", "")))

    def files_changed(self, paths: Iterable[Path]) -> None:
        """Files the watcher saw change: check the Python ones against active lessons."""
        queued = False
        for path in paths:
            if str(path).endswith(_SOURCE_SUFFIXES):
                self._files.put(str(path))
                queued = True
        if queued:
            self.kick()

    def sweep_submitted(self, sweep_id: str) -> None:
        """A sweep was submitted: check the scripts its command runs."""
        spec = self.sweep_spec(sweep_id) if sweep_id else None
        if not spec:
            return
        workdir = Path(str(spec.get("workdir", ".")))
        scripts = command_scripts(str(spec.get("command", "")), workdir)
        if scripts:
            for script in scripts:
                self._files.put(str(script))
            self.kick()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                self.tick()
            except Exception as exc:
                log.exception("mining lessons failed")
                self.last_error = f"mining lessons failed: {exc}"
            with self._idle:
                if not self._wake.is_set():
                    self._busy = False
                    self._idle.notify_all()

    def tick(self) -> None:
        """Mine what is new, then check the files waiting for a pre-flight look."""
        mined = self.mine_chats() + self.mine_runs()
        if mined:
            self.events.publish({"type": "lesson", "event": "mined", "episodes": mined})
        self.check_files()

    # -- mining ------------------------------------------------------------------------------

    def mine_chats(self) -> int:
        found = 0
        refine = self.refiner()
        while not self._stop.is_set():
            pending = self.records.pending_chats()
            if not pending:
                break
            for chat in pending:
                turns = [
                    Turn(m.message_id, m.role, m.text, m.created)  # type: ignore[arg-type]
                    for m in self.chats.messages(chat.id)
                    if m.on_path and m.role in ("user", "assistant", "tool")
                ]
                episodes = mine_conversation(chat.id, chat.title, turns)
                if refine is not None and episodes:
                    episodes = refine(chat.title, episodes, turns)
                self.records.record(f"chat:{chat.id}", chat.updated, episodes)
                found += len(episodes)
        return found

    def mine_runs(self) -> int:
        found = 0
        for attempt in self.records.pending_attempts():
            episodes = mine_run(
                attempt.run_id,
                failure=attempt.failure,
                summary=attempt.summary,
                log_tail=self._log_tail(attempt),
                command=attempt.command,
                seen=attempt.ended_at,
            )
            self.records.record(attempt.source, None, episodes)
            found += len(episodes)
        return found

    def _log_tail(self, attempt: PendingAttempt) -> str:
        try:
            folder = attempt_dir(self.runs_dir, attempt.run_id, attempt.attempt)
            return read_log_tail(folder / OUTPUT_LOG, LOG_TAIL_BYTES)
        except (OSError, ValueError):
            return ""

    # -- lessons -----------------------------------------------------------------------------

    def current(self, include_dismissed: bool = False) -> list[tuple[Lesson, UserSide | None]]:
        """Lessons with the user's side, most confident first."""
        sides = self.records.user_sides()
        out: list[tuple[Lesson, UserSide | None]] = []
        for library, episodes in self.records.episodes().items():
            side = sides.get(library)
            if side is not None and side.status == "dismissed" and not include_dismissed:
                continue
            out.append((aggregate(library, episodes), side))
        out.sort(key=lambda pair: (-pair[0].confidence, -pair[0].count, pair[0].library))
        return out

    def lessons(self, include_dismissed: bool = False) -> list[LessonInfo]:
        return [lesson_info(lesson, side) for lesson, side in self.current(include_dismissed)]

    def update(self, id_or_prefix: str, req: LessonUpdate) -> LessonInfo:
        try:
            side = self.records.find(id_or_prefix)
        except AmbiguousLessonId as exc:
            raise ApiError(409, str(exc)) from exc
        if side is None:
            raise ApiError(404, f"no lesson '{id_or_prefix}'; see `labmind lessons --all`")
        status = req.status
        if status is None and req.resolution is not None and side.status != "dismissed":
            status = "edited"
        self.records.update(side.id, status=status, resolution=req.resolution, note=req.note)
        for lesson, now in self.current(include_dismissed=True):
            if lesson.id == side.id:
                return lesson_info(lesson, now)
        raise ApiError(404, f"lesson '{id_or_prefix}' has no evidence left")

    def relevant(self, task: str, limit: int, boost: Iterable[str] = ()) -> list[LessonInfo]:
        """Active lessons that bear on ``task``, best first; lessons whose evidence is in
        one of the ``boost`` conversations (related chats) count extra."""
        chats = {f"chat:{c}" for c in boost}
        ranked: list[tuple[float, LessonInfo]] = []
        for lesson, side in self.current():
            value = score(lesson, task)
            if any(ref.split("#")[0] in chats for ref in lesson.evidence):
                value += 1.5
            if value >= 1.0:
                ranked.append((value * (0.5 + lesson.confidence), lesson_info(lesson, side)))
        ranked.sort(key=lambda pair: -pair[0])
        return [info for _, info in ranked[:limit]]

    def search(self, req: SearchRequest) -> SearchResponse:
        """``search --kind lesson``: lessons ranked against the query."""
        started = time.perf_counter()
        terms = _terms(req.query)
        hits: list[SearchHit] = []
        for lesson, side in self.current():
            text = " ".join(
                [lesson.library, lesson.symptom, lesson.resolution or "", lesson.replacement or ""]
            )
            own = len(terms & _terms(text))
            value = score(lesson, req.query) + 1.5 * own
            if value <= 0 or (req.since is not None and (lesson.last_seen or 0) < req.since):
                continue
            info = lesson_info(lesson, side)
            hits.append(
                SearchHit(
                    path=f"lesson:{lesson.id}",
                    start_line=0,
                    end_line=0,
                    kind="lesson",
                    score=round(value, 6),
                    title=f"{lesson.library}: {info.resolution or 'no fix known'}",
                    snippet=lesson_line(info),
                )
            )
        hits.sort(key=lambda h: -h.score)
        return SearchResponse(
            hits=hits[: req.limit],
            mode="lexical",
            embedded=0,
            embed_total=0,
            took_ms=(time.perf_counter() - started) * 1000,
        )

    # -- pre-flight --------------------------------------------------------------------------

    def check_files(self) -> None:
        paths: list[str] = []
        while True:
            try:
                paths.append(self._files.get_nowait())
            except queue.Empty:
                break
        if not paths or not self.preflight_enabled():
            return
        active = {lesson.library: lesson for lesson, _ in self.current()}
        if not active:
            return
        for path in dict.fromkeys(paths):
            self.check_file(path, active)

    def check_file(self, path: str, active: dict[str, Lesson]) -> None:
        try:
            file = Path(path)
            if not file.is_file() or file.stat().st_size > MAX_SOURCE_BYTES:
                return
            source = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        imported = imported_libraries(source, notebook=is_notebook(path))
        for library, module in imported.items():
            lesson = active.get(library)
            if lesson is None or not self.records.first_warning(path, lesson.id):
                continue
            message = preflight_message(Path(path).name, module, lesson)
            log.info("pre-flight: %s", message)
            self.events.publish(
                {
                    "type": "lesson",
                    "event": "preflight",
                    "lesson": lesson.id,
                    "library": library,
                    "path": path,
                    "message": message,
                }
            )


def lesson_info(lesson: Lesson, side: UserSide | None) -> LessonInfo:
    status = "active" if side is None else side.status
    resolution = lesson.resolution
    if side is not None and side.resolution:
        resolution = side.resolution
    return LessonInfo(
        id=lesson.id,
        library=lesson.library,
        symptom=lesson.symptom,
        resolution=resolution,
        replacement=lesson.replacement,
        evidence=list(lesson.evidence),
        first_seen=lesson.first_seen,
        last_seen=lesson.last_seen,
        count=lesson.count,
        confidence=lesson.confidence,
        status=status,  # type: ignore[arg-type]
        note=None if side is None else side.note,
    )


def lesson_line(lesson: LessonInfo) -> str:
    """``avoid X: failed 3 times with …; use Y instead`` in one line."""
    times = "once" if lesson.count == 1 else f"{lesson.count} times"
    line = f"avoid {lesson.library}: failed {times} with {lesson.symptom}"
    if lesson.resolution:
        line += f"; {lesson.resolution}"
    return line


def preflight_message(name: str, module: str, lesson: Lesson) -> str:
    times = "once" if lesson.count == 1 else f"{lesson.count} times"
    what = f"{name} imports {module}, which failed {times} before ({lesson.symptom})"
    return f"{what}; {lesson.resolution}" if lesson.resolution else what


_SCRIPT: Final = re.compile(r"\.(?:py|pyw)$")


def command_scripts(command: str, workdir: Path) -> list[Path]:
    """The Python files a sweep's command runs: ``python x.py`` and ``python -m pkg.mod``."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    found: list[Path] = []
    for i, word in enumerate(words):
        candidate: Path | None = None
        if _SCRIPT.search(word):
            candidate = Path(word)
        elif word == "-m" and i + 1 < len(words):
            candidate = Path(*words[i + 1].split(".")).with_suffix(".py")
        if candidate is not None:
            path = candidate if candidate.is_absolute() else workdir / candidate
            if path.is_file():
                found.append(path.resolve())
    return found


def _terms(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z0-9][\w\-]*", text) if len(w) > 1}
