"""What the MCP tools answer: compact, bounded views of the daemon's models for a coding agent.

Times are ISO 8601 strings in local time; long texts are cut to a fixed size and say so.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from .protocol import (
    AttemptInfo,
    FlaggedSample,
    Kind,
    LessonInfo,
    LessonStatus,
    LossSpike,
    Mode,
    RunDetail,
    RunInfo,
    RunOutliers,
    RunStatus,
    SearchHit,
    SearchResponse,
    Suggestion,
    WhyLink,
    WhyResponse,
)

SNIPPET_CHARS = 800
LOG_TAIL_CHARS = 4000
PREAMBLE_CHARS = 12_000
EXCERPT_CHARS = 1200
EVIDENCE_SHOWN = 10
METRICS_SHOWN = 40
ATTEMPTS_SHOWN = 20
CUT = " […]"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[: limit - len(CUT)].rstrip() + CUT


def clip_head(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, from a line start where possible."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < len(tail) - 1 else tail


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


# -- search and provenance ----------------------------------------------------------------


class SearchResult(BaseModel):
    path: str = Field(description="A file path, or chat:<conversation id> for a chat message.")
    start_line: int
    end_line: int
    kind: Kind
    score: float
    title: str
    snippet: str
    language: str | None = None
    symbol: str | None = None
    chat_id: str | None = Field(None, description="The conversation that likely produced it.")
    chat_title: str | None = None
    run_id: str | None = None


class SearchResults(BaseModel):
    query: str
    mode: Mode
    results: list[SearchResult]
    embedded: int = Field(description="Chunks with vectors so far (of embed_total).")
    embed_total: int
    note: str | None = None


def search_results(query: str, response: SearchResponse) -> SearchResults:
    note = None
    if response.mode != "lexical" and response.embedded < response.embed_total:
        note = (
            f"only {response.embedded} of {response.embed_total} chunks are embedded yet; "
            "semantic matches will improve"
        )
    return SearchResults(
        query=query,
        mode=response.mode,
        results=[_result(hit) for hit in response.hits],
        embedded=response.embedded,
        embed_total=response.embed_total,
        note=note,
    )


def _result(hit: SearchHit) -> SearchResult:
    return SearchResult(
        path=hit.path,
        start_line=hit.start_line,
        end_line=hit.end_line,
        kind=hit.kind,
        score=round(hit.score, 4),
        title=hit.title,
        snippet=clip(hit.snippet, SNIPPET_CHARS),
        language=hit.language,
        symbol=hit.symbol,
        chat_id=hit.chat_id,
        chat_title=hit.chat_title,
        run_id=hit.run_id,
    )


class ChatLink(BaseModel):
    chat_id: str
    title: str
    message_id: str
    position: int = Field(description="The message's position in the conversation.")
    role: str
    created: str | None
    score: float = Field(description="How much of the code matches the chat's code block, 0-1.")
    start_line: int
    end_line: int


class Provenance(BaseModel):
    path: str
    line: int | None
    chats: list[ChatLink] = Field(description="Best match first; empty when none is known.")


def provenance(answer: WhyResponse) -> Provenance:
    return Provenance(path=answer.path, line=answer.line, chats=[_link(x) for x in answer.links])


def _link(link: WhyLink) -> ChatLink:
    return ChatLink(
        chat_id=link.chat_id,
        title=link.title,
        message_id=link.message_id,
        position=link.position,
        role=link.role,
        created=iso(link.created),
        score=round(link.score, 4),
        start_line=link.start_line,
        end_line=link.end_line,
    )


# -- lessons and suggestions --------------------------------------------------------------


class Lesson(BaseModel):
    id: str
    library: str = Field(description="The library that failed (its pip name).")
    symptom: str
    resolution: str | None = Field(description="What worked instead, when known.")
    replacement: str | None = None
    evidence: list[str] = Field(description="chat:<id>#<message> and run:<id>, newest first.")
    first_seen: str | None
    last_seen: str | None
    count: int = Field(description="Episodes (conversations, failed runs) behind it.")
    confidence: float
    status: LessonStatus
    note: str | None = None


class Lessons(BaseModel):
    lessons: list[Lesson]
    total: int


def lesson(info: LessonInfo) -> Lesson:
    return Lesson(
        id=info.id,
        library=info.library,
        symptom=clip(info.symptom, SNIPPET_CHARS),
        resolution=None if info.resolution is None else clip(info.resolution, SNIPPET_CHARS),
        replacement=info.replacement,
        evidence=info.evidence[:EVIDENCE_SHOWN],
        first_seen=iso(info.first_seen),
        last_seen=iso(info.last_seen),
        count=info.count,
        confidence=round(info.confidence, 3),
        status=info.status,
        note=info.note,
    )


class CodeExcerpt(BaseModel):
    path: str
    lines: str
    excerpt: str


class ChatExcerpt(BaseModel):
    conversation_id: str
    title: str
    excerpt: str
    updated: str | None = None


class TaskAdvice(BaseModel):
    task: str
    preamble: str = Field(description="Paste-ready text to put before the task.")
    lessons: list[Lesson]
    code: list[CodeExcerpt]
    chats: list[ChatExcerpt]


def task_advice(found: Suggestion) -> TaskAdvice:
    return TaskAdvice(
        task=found.task,
        preamble=clip(found.preamble, PREAMBLE_CHARS),
        lessons=[lesson(x) for x in found.lessons],
        code=[
            CodeExcerpt(path=c.path, lines=c.lines, excerpt=clip(c.excerpt, EXCERPT_CHARS))
            for c in found.code
        ],
        chats=[
            ChatExcerpt(
                conversation_id=c.conversation_id,
                title=c.title,
                excerpt=clip(c.excerpt, EXCERPT_CHARS),
                updated=iso(c.updated),
            )
            for c in found.chats
        ],
    )


# -- experiments --------------------------------------------------------------------------


class Run(BaseModel):
    id: str
    name: str
    sweep: str
    status: RunStatus
    attempt: int
    exit_code: int | None
    params: dict[str, Any]
    failure: str | None = Field(description="The last attempt's failure class, e.g. cuda_oom.")
    summary: str | None
    submitted_at: str | None
    started_at: str | None
    ended_at: str | None


class Runs(BaseModel):
    runs: list[Run] = Field(description="Newest first.")
    total: int = Field(description="Runs matching the filter, before the limit.")
    by_status: dict[str, int] = Field(description="Every run the daemon knows, per status.")


def run_view(info: RunInfo) -> Run:
    return Run(
        id=info.id,
        name=info.name,
        sweep=info.sweep,
        status=info.status,
        attempt=info.attempt,
        exit_code=info.exit_code,
        params=info.params,
        failure=info.failure,
        summary=info.summary,
        submitted_at=iso(info.submitted_at),
        started_at=iso(info.started_at),
        ended_at=iso(info.ended_at),
    )


def runs_view(runs: list[RunInfo], status: RunStatus | None, limit: int) -> Runs:
    by_status: dict[str, int] = {}
    for info in runs:
        by_status[info.status] = by_status.get(info.status, 0) + 1
    chosen = [info for info in runs if status is None or info.status == status]
    chosen.sort(key=lambda info: info.submitted_at, reverse=True)
    return Runs(
        runs=[run_view(info) for info in chosen[:limit]], total=len(chosen), by_status=by_status
    )


class Attempt(BaseModel):
    attempt: int
    params: dict[str, Any]
    change: str | None = Field(description="What was changed for this attempt.")
    gpus: list[str]
    started_at: str | None
    ended_at: str | None
    exit_code: int | None
    signal: int | None
    failure: str | None
    summary: str | None


class Metric(BaseModel):
    last: float | None
    min: float | None
    max: float | None
    points: int = Field(description="Logged values seen (the latest ones only).")


class Experiment(BaseModel):
    run: Run
    command: str
    code_commit: str | None
    run_dir: str | None
    attempts: list[Attempt]
    metrics: dict[str, Metric]
    log_tail: str
    proposal: dict[str, Any] | None = Field(
        description="A fix waiting for approval (status needs_approval)."
    )


def experiment_view(detail: RunDetail) -> Experiment:
    names = list(detail.metrics)[:METRICS_SHOWN]
    return Experiment(
        run=run_view(detail.run),
        command=detail.run.command,
        code_commit=detail.code_commit,
        run_dir=detail.run_dir,
        attempts=[_attempt(a) for a in detail.attempts[-ATTEMPTS_SHOWN:]],
        metrics={name: _metric(detail.metrics[name]) for name in names},
        log_tail=clip_head(detail.log_tail, LOG_TAIL_CHARS),
        proposal=detail.proposal,
    )


def _attempt(info: AttemptInfo) -> Attempt:
    return Attempt(
        attempt=info.attempt,
        params=info.params,
        change=info.change,
        gpus=info.gpus,
        started_at=iso(info.started_at),
        ended_at=iso(info.ended_at),
        exit_code=info.exit_code,
        signal=info.signal,
        failure=info.failure,
        summary=info.summary,
    )


def _metric(values: list[float]) -> Metric:
    finite = [v for v in values if math.isfinite(v)]
    last = values[-1] if values and math.isfinite(values[-1]) else None
    return Metric(
        last=last,
        min=min(finite) if finite else None,
        max=max(finite) if finite else None,
        points=len(values),
    )


class ExperimentLog(BaseModel):
    run: str
    text: str
    start: int = Field(description="Byte offset of the text in the log.")
    end: int = Field(description="Byte offset just past the text (the log's size when read).")
    truncated: bool = Field(description="True when earlier output was left out.")
    finished: bool = Field(description="True when the run has finished and the log is complete.")


class Outliers(BaseModel):
    run: str
    attempt: int
    flagged: int = Field(description="Samples flagged in all.")
    reasons: dict[str, int]
    samples: list[FlaggedSample] = Field(description="Most suspicious first.")
    spike_count: int
    spikes: list[LossSpike] = Field(description="The latest loss spikes.")
    note: str | None = None


def outliers_view(found: RunOutliers, spikes_shown: int) -> Outliers:
    note = None
    if found.run_dir is None:
        note = "the run has not started yet; nothing is flagged"
    elif not found.flagged and not found.spike_count:
        note = "nothing flagged; the run may not use labmind.trainers.track.SampleTracker"
    return Outliers(
        run=found.run,
        attempt=found.attempt,
        flagged=found.flagged,
        reasons=found.reasons,
        samples=found.samples,
        spike_count=found.spike_count,
        spikes=found.spikes[-spikes_shown:],
        note=note,
    )
