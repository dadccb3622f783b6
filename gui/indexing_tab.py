"""Dashboard tab: what the daemon has indexed and what it is doing now; pause and resume
indexing."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from labmind.daemon.protocol import Ack, IndexProgress, StatusInfo

from .daemon_api import DaemonApi
from .tasks import TaskRunner

FIELDS = (
    ("state", "State"),
    ("roots", "Watched folders"),
    ("files", "Files"),
    ("chunks", "Chunks"),
    ("conversations", "Conversations"),
    ("vectors", "Vectors"),
    ("pending", "Files to index"),
    ("skipped", "Skipped files"),
    ("links", "Provenance links pending"),
    ("error", "Last error"),
    ("daemon", "Daemon"),
)
EMPTY_HINT = "Nothing indexed yet — labmind watch add PATH, or labmind import EXPORT.zip"
PAUSE = "Pause indexing"
RESUME = "Resume indexing"


class IndexingTab(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.values: dict[str, QLabel] = {}
        self.paused: bool | None = None
        form = QFormLayout()
        for key, label in FIELDS:
            value = QLabel("—", self)
            value.setWordWrap(True)
            self.values[key] = value
            form.addRow(label, value)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.hint = QLabel("", self)
        self.hint.setStyleSheet("color: #6b7280; font-size: 14px;")
        self.pause_button = QPushButton(PAUSE, self)
        self.pause_button.setEnabled(False)
        self.pause_button.clicked.connect(self.toggle_pause)
        top = QHBoxLayout()
        top.addWidget(self.hint, 1)
        top.addWidget(self.pause_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addStretch(1)

    def refresh(self) -> None:
        self._runner.submit(self._api.status, self._status, self._failed)
        self._runner.submit(self._api.progress, self._progress, self._failed)

    def text(self, key: str) -> str:
        return self.values[key].text()

    def toggle_pause(self) -> None:
        """Pause indexing, or resume it (what changed meanwhile is indexed then)."""
        if self.paused is None:
            return
        paused = not self.paused
        self.pause_button.setEnabled(False)
        self._runner.submit(
            lambda: self._api.index_pause(paused), self._paused_changed, self._pause_failed
        )

    def _paused_changed(self, _ack: Ack) -> None:
        self.refresh()

    def _pause_failed(self, error: Exception) -> None:
        self._failed(error)
        self.refresh()

    def _failed(self, error: Exception) -> None:
        self.values["error"].setText(str(error))

    def _status(self, status: StatusInfo) -> None:
        v = self.values
        v["roots"].setText(str(status.roots))
        v["files"].setText(str(status.files))
        v["chunks"].setText(str(status.chunks))
        v["conversations"].setText(str(status.conversations))
        v["vectors"].setText(f"{status.embedded} / {status.embed_total} ({status.model})")
        v["skipped"].setText(str(status.skipped))
        v["daemon"].setText(
            f"pid {status.pid} · v{status.version} · up {status.uptime_s / 60:.0f} min"
            f" · {status.rss_bytes / 2**20:.0f} MiB"
        )
        empty = status.files == 0 and status.conversations == 0
        self.hint.setText(EMPTY_HINT if empty else "")

    def _progress(self, progress: IndexProgress) -> None:
        v = self.values
        busy = progress.scanning or progress.pending_files > 0
        embedding = progress.embedder_enabled and progress.embedded < progress.embed_total
        if progress.paused:
            v["state"].setText(f"paused — {progress.held_changes} change(s) wait for resume")
        else:
            v["state"].setText("indexing" if busy else "embedding" if embedding else "idle")
        self.paused = progress.paused
        self.pause_button.setText(RESUME if progress.paused else PAUSE)
        self.pause_button.setEnabled(True)
        v["pending"].setText(str(progress.pending_files))
        v["links"].setText(str(progress.links_pending))
        v["error"].setText(progress.last_error or "—")
        total = progress.processed_files + progress.pending_files
        if busy and total:
            self.bar.setValue(int(1000 * progress.processed_files / total))
        elif progress.embed_total:
            self.bar.setValue(int(1000 * progress.embedded / progress.embed_total))
        else:
            self.bar.setValue(1000)
