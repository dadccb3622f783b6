"""The tray's status icons, drawn with QPainter: idle, indexing (with a progress arc),
alert, paused, and offline."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPen, QPixmap

from .tray_state import TrayMode

SIZE = 64
_COLORS = {
    TrayMode.IDLE: "#3b82f6",
    TrayMode.INDEXING: "#3b82f6",
    TrayMode.ALERT: "#ef4444",
    TrayMode.PAUSED: "#9ca3af",
    TrayMode.OFFLINE: "#6b7280",
}


def _round_pen(color: QColor, width: float) -> QPen:
    pen = QPen(color, width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    return pen


def status_pixmap(mode: TrayMode, progress: float | None = None, size: int = SIZE) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = QColor(_COLORS[mode])
    margin = size * 0.08
    disc = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
    if mode is TrayMode.OFFLINE:
        painter.setPen(QPen(color, size * 0.08))
        painter.setBrush(Qt.BrushStyle.NoBrush)
    else:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(color))
    painter.drawEllipse(disc)
    white = QColor("white")
    if mode is TrayMode.INDEXING:
        track = disc.adjusted(size * 0.16, size * 0.16, -size * 0.16, -size * 0.16)
        painter.setPen(QPen(QColor(255, 255, 255, 90), size * 0.1))
        painter.drawEllipse(track)
        painter.setPen(_round_pen(white, size * 0.1))
        span = int(-360 * 16 * (progress if progress is not None else 0.25))
        painter.drawArc(track, 90 * 16, span)
    elif mode is TrayMode.PAUSED:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(white))
        bar_w, bar_h = size * 0.12, size * 0.4
        top = (size - bar_h) / 2
        painter.drawRect(QRectF(size * 0.34, top, bar_w, bar_h))
        painter.drawRect(QRectF(size * 0.54, top, bar_w, bar_h))
    elif mode is TrayMode.ALERT:
        painter.setPen(_round_pen(white, size * 0.1))
        painter.drawLine(int(size / 2), int(size * 0.26), int(size / 2), int(size * 0.56))
        painter.drawPoint(int(size / 2), int(size * 0.74))
    else:
        font = painter.font()
        font.setBold(True)
        font.setPixelSize(int(size * 0.5))
        painter.setFont(font)
        painter.setPen(white if mode is TrayMode.IDLE else color)
        painter.drawText(disc, Qt.AlignmentFlag.AlignCenter, "L")
    painter.end()
    return pixmap


def status_icon(mode: TrayMode, progress: float | None = None) -> QIcon:
    return QIcon(status_pixmap(mode, progress))
