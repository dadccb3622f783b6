"""What the tray shows, from the daemon's status and event stream (no Qt here)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from labmind.daemon.protocol import Event, StatusInfo

MAX_ALERTS = 20


class TrayMode(Enum):
    OFFLINE = "offline"
    IDLE = "idle"
    INDEXING = "indexing"
    ALERT = "alert"
    PAUSED = "paused"


@dataclass(frozen=True)
class Alert:
    time: float
    text: str
    run: str | None = None


def alert_from(event: Event) -> Alert | None:
    """The alert an event raises, if any: daemon alerts and runs that need the user."""
    data: dict[str, Any] = event.data
    when = event.time or time.time()
    if event.type == "alert":
        message = data.get("message") or data.get("text") or "labmind alert"
        return Alert(when, str(message))
    if event.type == "experiment" and data.get("event") in ("failed", "needs_approval", "asking"):
        run = str(data.get("run", ""))
        what = "failed" if data.get("event") == "failed" else "needs approval"
        summary = data.get("summary")
        return Alert(when, f"run {run} {what}" + (f": {summary}" if summary else ""), run or None)
    return None


@dataclass
class TrayState:
    online: bool = False
    reason: str = "daemon not running"
    indexing: bool = False
    processed: int = 0
    pending: int = 0
    embedded: int = 0
    embed_total: int = 0
    backup_paused: bool = False
    index_paused: bool = False
    unseen: int = 0
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=MAX_ALERTS))

    @property
    def mode(self) -> TrayMode:
        if not self.online:
            return TrayMode.OFFLINE
        if self.unseen:
            return TrayMode.ALERT
        if self.paused:
            return TrayMode.PAUSED
        if self.indexing or self.embedding:
            return TrayMode.INDEXING
        return TrayMode.IDLE

    @property
    def paused(self) -> bool:
        """Indexing or backups (or both) are paused: the tray offers to resume both."""
        return self.backup_paused or self.index_paused

    @property
    def embedding(self) -> bool:
        return self.embed_total > 0 and self.embedded < self.embed_total

    @property
    def progress(self) -> float | None:
        """Indexing progress 0…1: files first, then vectors; none when idle."""
        if self.indexing and self.processed + self.pending > 0:
            return self.processed / (self.processed + self.pending)
        if self.embedding:
            return self.embedded / self.embed_total
        return None

    def tooltip(self) -> str:
        mode = self.mode
        if mode is TrayMode.OFFLINE:
            return f"labmind: {self.reason}"
        lines = ["labmind"]
        if mode is TrayMode.ALERT and self.alerts:
            lines.append(f"{self.unseen} new alert(s): {self.alerts[-1].text}")
        if self.index_paused:
            lines.append("indexing paused")
        if self.backup_paused:
            lines.append("backups paused")
        progress = self.progress
        if self.indexing:
            lines.append(f"indexing: {self.processed} done, {self.pending} to go")
        elif progress is not None:
            lines.append(f"embedding: {self.embedded}/{self.embed_total}")
        if len(lines) == 1:
            lines.append("idle")
        return "\n".join(lines)

    def go_offline(self, reason: str) -> None:
        self.online = False
        self.reason = reason
        self.indexing = False

    def apply_status(self, status: StatusInfo) -> None:
        self.online = True
        self.indexing = status.indexing
        self.pending = status.pending_files
        self.embedded = status.embedded
        self.embed_total = status.embed_total
        self.index_paused = status.indexing_paused

    def apply_event(self, event: Event) -> bool:
        """Take an event in; whether the tray needs repainting."""
        data = event.data
        if event.type == "progress":
            self.pending = int(data.get("pending_files", 0))
            self.processed = int(data.get("processed_files", 0))
            self.indexing = bool(data.get("scanning")) or self.pending > 0
            return True
        if event.type == "embedded":
            self.embedded = int(data.get("embedded", 0))
            self.embed_total = int(data.get("total", 0))
            return True
        if event.type == "backup_paused":
            self.backup_paused = bool(data.get("paused"))
            return True
        if event.type == "index_paused":
            self.index_paused = bool(data.get("paused"))
            return True
        alert = alert_from(event)
        if alert is not None:
            self.alerts.append(alert)
            self.unseen += 1
            return True
        return False

    def mark_seen(self) -> None:
        self.unseen = 0
