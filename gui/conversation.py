"""A conversation from an imported chat export, opened from a chat search result."""

from __future__ import annotations

import html
from datetime import datetime

from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from labmind.daemon.protocol import ChatDetail

from .daemon_api import DaemonApi
from .tasks import TaskRunner


def render_chat(detail: ChatDetail, focus: int | None = None) -> str:
    """The displayed path of a conversation as HTML; message `focus` marked."""
    parts: list[str] = []
    for message in detail.messages:
        if not message.on_path:
            continue
        when = (
            datetime.fromtimestamp(message.created).strftime("%Y-%m-%d %H:%M")
            if message.created
            else ""
        )
        style = "background:#fff6c8;" if message.position == focus else ""
        body = html.escape(message.text).replace("\n", "<br>")
        parts.append(
            f'<div id="m{message.position}" style="{style}margin:6px 0;padding:4px">'
            f'<a name="m{message.position}"></a><b>{html.escape(message.role)}</b> '
            f"<small>{when}</small><br>"
            f'<span style="font-family:monospace">{body}</span></div>'
        )
    return "".join(parts) or "<i>This conversation has no messages.</i>"


class ConversationView(QWidget):
    def __init__(self, api: DaemonApi, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._api = api
        self._runner = runner
        self.setWindowTitle("labmind — conversation")
        self.resize(760, 640)
        self.heading = QLabel("", self)
        self.heading.setWordWrap(True)
        self.body = QTextBrowser(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.body, 1)
        self.chat_id: str | None = None

    def open_chat(self, chat_id: str, focus: int | None = None) -> None:
        self.chat_id = chat_id
        self.heading.setText("Loading the conversation…")
        self.body.setHtml("")
        self.show()
        self.raise_()
        self._runner.submit(
            lambda: self._api.chat(chat_id),
            lambda detail: self._loaded(detail, focus),
            lambda error: self.heading.setText(f"Cannot open the conversation: {error}"),
        )

    def _loaded(self, detail: ChatDetail, focus: int | None) -> None:
        chat = detail.chat
        self.heading.setText(
            f"<b>{html.escape(chat.title)}</b> · {chat.source} · {chat.messages} messages"
        )
        self.body.setHtml(render_chat(detail, focus))
        if focus is not None:
            self.body.scrollToAnchor(f"m{focus}")
