"""The local API's request and response models, shared by the daemon, the CLI and the GUI.

Routes (HTTP+JSON over the daemon's Unix socket):

==========  ==================  ====================  ==========================
method      path                body / query          answer
==========  ==================  ====================  ==========================
GET         /status                                   StatusInfo
POST        /shutdown                                 Ack
GET         /watch                                    list[WatchRoot]
POST        /watch              WatchRequest          WatchRoot
DELETE      /watch              ?path=                Ack
POST        /index              IndexRequest          IndexJob
GET         /index/progress                           IndexProgress
POST        /index/pause                              Ack
POST        /index/resume                             Ack
POST        /search             SearchRequest         SearchResponse
GET         /skipped            ?root=                list[SkippedFile]
POST        /chats/import       ImportRequest         ImportStatus
GET         /chats/import/{id}                        ImportStatus
GET         /chats              ?limit=&offset=       list[ChatSummary]
GET         /chats/{id}                               ChatDetail (id or unique prefix)
GET         /why                ?path=&line=          WhyResponse
GET         /backup             ?path=                BackupStatus
POST        /backup/now         BackupNowRequest      list[BackupOutcome]
GET         /backup/log         ?path=&branch=&limit= list[SnapshotEntry]
POST        /backup/restore     RestoreRequest        RestoreResult
POST        /backup/pause                             Ack
POST        /backup/resume                            Ack
POST        /exp/submit         SubmitRequest         SubmitResult
GET         /exp/runs           ?sweep=               list[RunInfo]
GET         /exp/runs/{id}                            RunDetail (id or unique prefix)
GET         /exp/runs/{id}/log  ?offset= or ?tail=    LogChunk
POST        /exp/runs/{id}/cancel                     RunInfo
POST        /exp/runs/{id}/retry                      RunInfo
POST        /exp/runs/{id}/approve                    RunInfo
GET         /exp/runs/{id}/outliers ?limit=&reason=   RunOutliers
POST        /exp/pause                                Ack
POST        /exp/resume                               Ack
POST        /config/reload                            Ack
GET         /config                                   ConfigView
POST        /config             ConfigSetRequest      ConfigView
GET         /lessons            ?all=                 list[LessonInfo]
PATCH       /lessons/{id}       LessonUpdate          LessonInfo (id or unique prefix)
POST        /suggest            SuggestRequest        Suggestion
GET         /events                                   server-sent events (Event)
==========  ==================  ====================  ==========================

Errors answer 4xx/5xx with ``{"detail": "one line that says what to do"}``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Kind = Literal["code", "chat", "run", "lesson"]
Mode = Literal["hybrid", "lexical", "semantic"]


class Ack(BaseModel):
    ok: bool = True
    message: str = ""


class StatusInfo(BaseModel):
    pid: int
    version: str
    uptime_s: float
    home: str
    socket: str
    roots: int
    files: int
    chunks: int
    conversations: int = 0
    embedded: int
    embed_total: int
    pending_files: int
    skipped: int
    indexing: bool
    embedder_loaded: bool
    rss_bytes: int
    model: str
    indexing_paused: bool = False
    held_changes: int = 0
    """Changes seen while indexing is paused, indexed when it resumes."""


class WatchRequest(BaseModel):
    path: str


class WatchRoot(BaseModel):
    path: str
    added_at: float
    files: int
    skipped: int
    error: str | None = None


class IndexRequest(BaseModel):
    paths: list[str] = Field(default_factory=list)
    rebuild: bool = False


class IndexJob(BaseModel):
    job_id: int
    roots: list[str]


class IndexProgress(BaseModel):
    jobs_submitted: int
    jobs_done: int
    scanning: bool
    pending_files: int
    processed_files: int
    files: int
    chunks: int
    embedded: int
    embed_total: int
    embedder_enabled: bool
    links_pending: int = 0
    last_error: str | None = None
    paused: bool = False
    held_changes: int = 0


class SearchRequest(BaseModel):
    query: str
    kind: Kind | None = None
    mode: Mode | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    path_glob: str | None = None
    language: str | None = None
    since: float | None = None


class SearchHit(BaseModel):
    """One result. Chat hits have path ``chat:<id>`` and the message's position as lines;
    code hits carry the conversation that most likely produced them, if any."""

    path: str
    start_line: int
    end_line: int
    kind: Kind
    score: float
    title: str
    snippet: str
    snippet_line: int | None = None
    language: str | None = None
    symbol: str | None = None
    chat_id: str | None = None
    chat_title: str | None = None
    chat_score: float | None = None
    run_id: str | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    mode: Mode
    embedded: int
    embed_total: int
    took_ms: float


class SkippedFile(BaseModel):
    path: str
    reason: str
    at: float


class Event(BaseModel):
    """One server-sent event; ``type`` is e.g. progress, indexed, skipped, alert, dropped."""

    type: str
    seq: int = 0
    time: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)


class ConfigView(BaseModel):
    """The whole configuration, defaults included, and the file it lives in."""

    file: str
    values: dict[str, Any]


class ConfigSetRequest(BaseModel):
    key: str
    """Dotted: ``index.debounce_ms``."""
    value: str
    """As typed after ``labmind config set KEY``: ``300``, ``true``, ``["*.bak"]``."""


class ImportRequest(BaseModel):
    path: str


class ImportStatus(BaseModel):
    job_id: int
    path: str
    state: Literal["queued", "running", "done", "failed"]
    kind: str | None = None
    bytes_read: int = 0
    total_bytes: int = 0
    seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[str] = Field(default_factory=list)
    problem_count: int = 0
    error: str | None = None


class ChatSummary(BaseModel):
    id: str
    source: str
    title: str
    created: float | None
    updated: float | None
    model: str | None = None
    origin: str
    messages: int


class ChatMessage(BaseModel):
    id: str
    position: int
    role: str
    created: float | None
    on_path: bool
    text: str


class ChatDetail(BaseModel):
    chat: ChatSummary
    messages: list[ChatMessage]


class WhyLink(BaseModel):
    """A conversation behind a piece of code: the message with the matching code block."""

    chat_id: str
    title: str
    message_id: str
    position: int
    role: str
    created: float | None
    score: float
    shared: int
    start_line: int
    end_line: int


class WhyResponse(BaseModel):
    path: str
    line: int | None
    indexed: bool
    links: list[WhyLink]


class HeldBackFile(BaseModel):
    """A file the guards keep out of snapshots (a secret, or over the size cap)."""

    path: str
    reason: str
    since: float


class PushState(BaseModel):
    """The last push of one snapshot branch (or, opted in, one of the user's branches)."""

    branch: str
    remote_ref: str
    status: str
    """pushed, up_to_date, non_fast_forward, rejected, auth_failed, unreachable, error"""
    message: str
    at: float
    pushed_commit: str | None
    retry_at: float | None = None


class BackupRepoStatus(BaseModel):
    path: str
    root: str
    shadow: bool
    """True for a plain folder backed up through a shadow repository in the data folder."""
    branch: str | None
    last_snapshot: str | None
    last_snapshot_at: float | None
    files_changed: int
    checked_at: float | None
    next_check_at: float | None
    remote: str | None
    unpushed: int
    """Snapshots on the current branch not yet on the remote."""
    pushes: list[PushState]
    held_back: list[HeldBackFile]
    error: str | None


class BackupStatus(BaseModel):
    enabled: bool
    paused: bool
    push: bool
    repos: list[BackupRepoStatus]


class BackupNowRequest(BaseModel):
    path: str | None = None
    """A backed-up folder or anything inside one; none: every folder."""


class BackupOutcome(BaseModel):
    path: str
    branch: str | None
    snapshot: str | None
    created: bool
    files_changed: int
    held_back: list[HeldBackFile]
    pushes: list[PushState]
    error: str | None


class SnapshotEntry(BaseModel):
    commit: str
    time: float
    message: str
    pushed: bool


class RestoreRequest(BaseModel):
    path: str
    at: str
    """A snapshot commit (or unique prefix), a ref, or a time: ISO date/time or ``2h``/``3d``."""
    to: str
    branch: str | None = None
    """Whose snapshots; default: the branch checked out now."""


class RestoreResult(BaseModel):
    commit: str
    time: float
    target: str
    files: int


RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "needs_approval"]


class RunInfo(BaseModel):
    id: str
    name: str
    status: RunStatus
    params: dict[str, Any]
    attempt: int
    exit_code: int | None
    parent: str | None = None
    sweep: str
    command: str
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    failure: str | None
    """The failure class of the last attempt (cuda_oom, nan_loss, missing_module, …)."""
    summary: str | None


class AttemptInfo(BaseModel):
    attempt: int
    params: dict[str, Any]
    command: str
    change: str | None
    """What was changed to make this attempt (none for the first)."""
    gpus: list[str]
    """UUIDs of the GPUs this attempt ran on (none: a CPU run)."""
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    failure: str | None
    summary: str | None


class RunDetail(BaseModel):
    run: RunInfo
    code_commit: str | None
    """A commit with the code as it was at submit (a backup snapshot of the working tree,
    or HEAD when it was clean); none outside a git repository."""
    attempts: list[AttemptInfo]
    run_dir: str | None
    log_tail: str
    metrics: dict[str, list[float]]
    """Each logged metric's values, oldest first (the last points only)."""
    proposal: dict[str, Any] | None


class SubmitRequest(BaseModel):
    spec: str


class SubmitResult(BaseModel):
    sweep: str
    runs: list[RunInfo]
    warnings: list[str]


class LogChunk(BaseModel):
    text: str
    offset: int
    finished: bool


OutlierReason = Literal["label_error", "corrupted_input", "spike", "forgotten"]


class FlaggedSample(BaseModel):
    """A sample a run's ``SampleTracker`` flagged: its latest report, with every reason given."""

    sample: int
    """The sample's index in the training set (what ``IndexedDataset`` hands out)."""
    score: float | None
    """Suspicion, higher is worse; none when it was not a finite number (a NaN loss)."""
    reasons: list[str]
    """label_error, corrupted_input, spike, forgotten."""
    label: int | None
    predicted: int | None
    step: int
    epoch: int | None
    time: float
    detail: dict[str, float | None]
    """The signals behind the score, by name."""


class LossSpike(BaseModel):
    step: int
    time: float
    loss: float | None
    baseline: float | None
    z: float | None
    samples: list[int]
    """The samples of the batch that drove the spike, most to blame first."""


class RunOutliers(BaseModel):
    """What the tracker of a run's latest attempt reported (outliers.jsonl, spikes.jsonl)."""

    run: str
    attempt: int
    run_dir: str | None
    flagged: int
    """Samples flagged in all (before ``limit`` and ``reason``)."""
    reasons: dict[str, int]
    """Flagged samples per reason."""
    samples: list[FlaggedSample]
    """Highest score first (non-finite scores before all)."""
    spike_count: int
    spikes: list[LossSpike]
    """The latest spikes, in step order."""


LessonStatus = Literal["active", "dismissed", "edited"]


class LessonInfo(BaseModel):
    """A library that caused trouble, and what replaced it (mined from chats and failed runs)."""

    id: str
    library: str
    """The normalised (pip) name of the library that failed."""
    symptom: str
    """The error signature: ``ModuleNotFoundError: No module named 'cv2'``, "won't install", …"""
    resolution: str | None
    """What worked instead: ``use scikit-image``, ``pin numpy==1.26.4``, a workaround; or none."""
    replacement: str | None = None
    """The normalised name of the library that replaced it, when there is one."""
    evidence: list[str]
    """Where it was seen: ``chat:<conversation id>#<message id>`` and ``run:<run id>``."""
    first_seen: float | None
    last_seen: float | None
    count: int
    """How many episodes (conversations and failed runs) back it."""
    confidence: float
    status: LessonStatus
    note: str | None = None
    """The user's own note."""


class LessonUpdate(BaseModel):
    status: LessonStatus | None = None
    resolution: str | None = None
    note: str | None = None


class SuggestRequest(BaseModel):
    task: str
    limit: int = Field(default=5, ge=1, le=50)


class SuggestedCode(BaseModel):
    path: str
    lines: str
    """``start-end``."""
    excerpt: str


class SuggestedChat(BaseModel):
    conversation_id: str
    title: str
    excerpt: str
    updated: float | None = None


class Suggestion(BaseModel):
    """What to tell a chat assistant before it starts on ``task``."""

    task: str
    preamble: str
    """Paste-ready text: the lessons, the user's relevant code and related chats."""
    lessons: list[LessonInfo]
    code: list[SuggestedCode]
    chats: list[SuggestedChat]
