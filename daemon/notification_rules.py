"""Which daemon events become desktop notifications, and what they say.

`notice_for` turns one event into a `Notice` (or nothing); `summarise` turns a burst of
notices of one group into the single notification that stands for them all. Every title
and body goes through `redact`, and log tails are cut to their last few lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .notifier import Action, Notification, Urgency
from .redaction import redact

TAIL_LINES: Final = 6
LINE_CHARS: Final = 120
BODY_CHARS: Final = 1000
SUMMARY_LINES: Final = 5

OPEN_LOGS: Final = "open_logs"
RETRY: Final = "retry"
APPROVE: Final = "approve"

_URGENCY_ORDER: Final[list[Urgency]] = ["low", "normal", "critical"]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class RunRef:
    """What a notification says about a run besides its id."""

    run: str
    sweep: str
    sweep_name: str


@dataclass(frozen=True)
class Notice:
    """One notification-to-be, with what a summary of its group needs."""

    kind: str
    """run_failed, run_retried, run_waiting, run_succeeded, sweep_finished, outliers,
    backup, lesson or alert."""
    group: str
    scope: str
    """What the group is about, for a summary's title: a sweep's name, a folder."""
    line: str
    """This notice in one line, for a summary's body."""
    notification: Notification
    amount: int = 1


def notice_for(
    event: Mapping[str, Any], run: RunRef | None, *, run_succeeded: bool = False
) -> Notice | None:
    """The notification for ``event``, if it deserves one; ``run`` describes the
    event's run (``None`` when it has none or it is unknown)."""
    kind = event.get("type")
    if kind == "experiment":
        return _experiment(event, run, run_succeeded=run_succeeded)
    if kind == "outliers":
        return _outliers(event, run)
    if kind == "alert":
        return _alert(event)
    if kind == "lesson":
        return _lesson(event)
    return None


def summarise(notices: Sequence[Notice], count: int, total: int) -> Notification:
    """One notification for a burst of ``count`` notices of one group (``notices`` are the
    newest of them; ``total`` is the burst's `Notice.amount`s added up)."""
    last = notices[-1]
    kind, scope = last.kind, last.scope
    titles = {
        "run_failed": f"{count} runs failed in sweep {scope}",
        "run_retried": f"{count} runs fixed and retried in sweep {scope}",
        "run_waiting": f"{count} runs need your approval in sweep {scope}",
        "run_succeeded": f"{count} runs succeeded in sweep {scope}",
        "outliers": _outliers_title(total, scope),
        "backup": f"{count} backup alerts for {scope}",
        "alert": f"{count} alerts from labmind",
        "lesson": f"{count} files import libraries that failed before",
    }
    title = titles.get(kind, f"{count} notifications from labmind")
    lines = [n.line for n in notices[-SUMMARY_LINES:]]
    hidden = count - len(lines)
    if hidden > 0:
        lines.insert(0, f"…and {hidden} earlier")
    hints = {
        "run_failed": "See `labmind exp ls`.",
        "run_waiting": "Approve each with `labmind exp approve RUN`.",
        "backup": "See `labmind backup status`.",
        "lesson": "See `labmind lessons`.",
    }
    if kind in hints:
        lines.append(hints[kind])
    urgency: Urgency = max((n.notification.urgency for n in notices), key=_URGENCY_ORDER.index)
    return Notification(
        title=_clean(title, LINE_CHARS),
        body=_clean("\n".join(lines), BODY_CHARS),
        urgency=urgency,
        group=last.group,
        replace=True,
    )


def _outliers_title(samples: int, scope: str) -> str:
    if samples:
        return f"{samples} {_plural(samples, 'sample')} flagged in {scope}"
    return f"Loss spikes in {scope}"


def log_excerpt(tail: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-blank lines of a log tail, redacted, each cut to `LINE_CHARS`,
    without terminal escapes or the overwritten part of progress-bar lines."""
    kept: list[str] = []
    for raw in reversed(redact(tail).split("\n")):
        line = _ANSI.sub("", raw).rstrip("\r").rsplit("\r", 1)[-1].rstrip()
        if not line.strip():
            continue
        kept.append(_cut(line.expandtabs(4), LINE_CHARS))
        if len(kept) == lines:
            break
    return "\n".join(reversed(kept))


_RUN_EVENTS = frozenset({"failed", "retrying", "needs_approval"})


def wants_run(event: Mapping[str, Any], *, run_succeeded: bool = False) -> bool:
    """Whether `notice_for` would use the run behind ``event`` (so it is worth looking up)."""
    if event.get("type") == "outliers":
        return True
    if event.get("type") != "experiment":
        return False
    what = event.get("event")
    return what in _RUN_EVENTS or (what == "succeeded" and run_succeeded)


def _experiment(
    event: Mapping[str, Any], run: RunRef | None, *, run_succeeded: bool
) -> Notice | None:
    what = event.get("event")
    if what == "sweep_finished":
        return _sweep_finished(event)
    run_id = event.get("run")
    if not isinstance(run_id, str) or not run_id:
        return None
    ref = run or RunRef(run_id, sweep="", sweep_name="")
    scope = ref.sweep_name or ref.sweep or run_id
    summary = _text(event.get("summary"))
    if what == "failed":
        body = _cut(redact(summary), 2 * LINE_CHARS) or "The run failed."
        excerpt = log_excerpt(_text(event.get("log_tail")))
        if excerpt:
            body = f"{body}\n\n{excerpt}"
        return _run_notice(
            "run_failed",
            ref,
            scope,
            title=f"Run {run_id} failed",
            body=body,
            line=f"{run_id}: {summary or 'failed'}",
            actions=(Action(OPEN_LOGS, "Open logs", run_id), Action(RETRY, "Retry", run_id)),
        )
    if what == "retrying":
        change = _text(event.get("change")) or "retried"
        body = f"{summary}\nRetrying {run_id}." if summary else f"Retrying {run_id}."
        return _run_notice(
            "run_retried",
            ref,
            scope,
            title=f"Run fixed and retried: {change}",
            body=body,
            line=f"{run_id}: {change}",
            urgency="low",
        )
    if what == "needs_approval":
        change = _text(event.get("change"))
        body = f"Proposed fix: {change}" if change else "A fix is waiting for your approval."
        return _run_notice(
            "run_waiting",
            ref,
            scope,
            title="Run needs your approval",
            body=f"{run_id}: {body}",
            line=f"{run_id}: {change or 'fix proposed'}",
            actions=(Action(APPROVE, "Approve", run_id), Action(OPEN_LOGS, "Open logs", run_id)),
        )
    if what == "succeeded" and run_succeeded:
        return _run_notice(
            "run_succeeded",
            ref,
            scope,
            title=f"Run {run_id} succeeded",
            body=f"In sweep {scope}." if scope != run_id else "",
            line=run_id,
            urgency="low",
            actions=(Action(OPEN_LOGS, "Open logs", run_id),),
        )
    return None


def _run_notice(
    kind: str,
    ref: RunRef,
    scope: str,
    *,
    title: str,
    body: str,
    line: str,
    actions: tuple[Action, ...] = (),
    urgency: Urgency = "normal",
) -> Notice:
    group = f"{kind}:{ref.sweep or ref.run}"
    return Notice(
        kind=kind,
        group=group,
        scope=scope,
        line=_clean(line, LINE_CHARS),
        notification=Notification(
            title=_clean(title, LINE_CHARS),
            body=_clean(body, BODY_CHARS),
            urgency=urgency,
            actions=actions,
            group=group,
        ),
    )


def _sweep_finished(event: Mapping[str, Any]) -> Notice | None:
    sweep = _text(event.get("sweep"))
    name = _text(event.get("name")) or sweep
    succeeded, failed = _count(event.get("succeeded")), _count(event.get("failed"))
    if succeeded + failed == 1 and failed == 1:
        return None  # a sweep of one run: its failure has been notified already
    counts = f"{succeeded} succeeded, {failed} failed"
    cancelled = _count(event.get("cancelled"))
    if cancelled:
        counts += f", {cancelled} cancelled"
    group = f"sweep_finished:{sweep}"
    return Notice(
        kind="sweep_finished",
        group=group,
        scope=name,
        line=_clean(f"{name}: {counts}", LINE_CHARS),
        notification=Notification(
            title=_clean(f"Sweep {name} finished", LINE_CHARS),
            body=_clean(f"{counts}.", BODY_CHARS),
            urgency="normal" if failed else "low",
            group=group,
        ),
    )


def _outliers(event: Mapping[str, Any], run: RunRef | None) -> Notice | None:
    run_id = event.get("run")
    new, spikes = _count(event.get("new")), _count(event.get("spikes"))
    if not isinstance(run_id, str) or not run_id or (new <= 0 and spikes <= 0):
        return None
    reasons = event.get("reasons")
    parts: list[str] = []
    if isinstance(reasons, Mapping):
        ranked = sorted(reasons.items(), key=lambda kv: -_count(kv[1]))
        parts = [f"{str(k).replace('_', ' ')}: {_count(v)}" for k, v in ranked if _count(v)]
    if spikes:
        parts.append(f"{spikes} new loss {_plural(spikes, 'spike')}")
    detail = ", ".join(parts)
    ref = run or RunRef(run_id, sweep="", sweep_name="")
    scope = f"sweep {ref.sweep_name or ref.sweep}" if ref.sweep else f"run {run_id}"
    group = f"outliers:{ref.sweep or run_id}"
    if new:
        title = f"{new} {_plural(new, 'sample')} flagged in run {run_id}"
    else:
        title = f"{spikes} loss {_plural(spikes, 'spike')} in run {run_id}"
    return Notice(
        kind="outliers",
        group=group,
        scope=scope,
        line=_clean(f"{run_id}: {detail}", LINE_CHARS),
        amount=new,
        notification=Notification(
            title=_clean(title, LINE_CHARS),
            body=_clean(f"{detail}.\nSee `labmind outliers {run_id}`.", BODY_CHARS),
            group=group,
        ),
    )


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def _alert(event: Mapping[str, Any]) -> Notice | None:
    message = _text(event.get("message"))
    if not message:
        return None
    if event.get("source") == "backup":
        return _backup_alert(event, message)
    return Notice(
        kind="alert",
        group="alert",
        scope="labmind",
        line=_clean(message, LINE_CHARS),
        notification=Notification(title="labmind", body=_clean(message, BODY_CHARS), group="alert"),
    )


def _lesson(event: Mapping[str, Any]) -> Notice | None:
    """A pre-flight warning: a file (or a sweep's script) imports a library with a lesson."""
    if event.get("event") != "preflight":
        return None
    library = _text(event.get("library"))
    message = _text(event.get("message"))
    if not library or not message:
        return None
    path = _text(event.get("path"))
    name = path.rsplit("/", 1)[-1] if path else library
    return Notice(
        kind="lesson",
        group="lesson",
        scope=library,
        line=_clean(f"{name}: {library}", LINE_CHARS),
        notification=Notification(
            title=_clean(f"{name} imports {library}, which failed before", LINE_CHARS),
            body=_clean(f"{message}\nSee `labmind lessons`.", BODY_CHARS),
            group="lesson",
        ),
    )


def _backup_alert(event: Mapping[str, Any], message: str) -> Notice:
    path = _text(event.get("path"))
    kind = _text(event.get("kind"))
    files = [str(f) for f in event.get("files") or [] if str(f)]
    reason = _text(event.get("reason"))
    if kind == "held_back" and files:
        what = "a secret" if "secret" in reason else "a file"
        count = max(_count(event.get("count")), len(files))
        more = f" and {count - 1} more" if count > 1 else ""
        title = f"Backup held back {what}: {files[0]}{more}"
    elif kind == "held_back":
        title = "Backup held back files"
    elif kind == "push_refused" and "authentication failed" in message:
        title = "Push failed: authentication"
    elif kind == "push_refused":
        title = "Push rejected"
    elif kind == "failed":
        title = "Backup failed"
    else:
        title = "Backup"
    group = f"backup:{path}"
    return Notice(
        kind="backup",
        group=group,
        scope=path or "backups",
        line=_clean(title, LINE_CHARS),
        notification=Notification(
            title=_clean(title, LINE_CHARS),
            body=_clean(message, BODY_CHARS),
            urgency="critical" if kind == "held_back" and "secret" in reason else "normal",
            group=group,
        ),
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean(text: str, limit: int) -> str:
    """Redacted, without control characters (newlines and tabs stay), at most ``limit``."""
    text = "".join(c for c in redact(text) if c in "\n\t" or c.isprintable())
    return _cut(text.strip(), limit)
