"""A small line plot of a run's metrics, painted with QPainter (no plotting library)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

PALETTE = ("#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899")
MAX_SERIES = len(PALETTE)


def finite(values: list[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


class MetricsPlot(QWidget):
    """Each metric on its own vertical scale (min…max), steps along x; a legend on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: dict[str, list[float]] = {}
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_metrics(self, metrics: dict[str, list[float]]) -> None:
        self.series = {name: values for name, values in sorted(metrics.items()) if finite(values)}
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#ffffff"))
        area = QRectF(self.rect()).adjusted(40, 28, -12, -20)
        painter.setPen(QPen(QColor("#d1d5db"), 1))
        painter.drawRect(area)
        if not self.series:
            painter.setPen(QColor("#6b7280"))
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "No metrics logged yet")
            painter.end()
            return
        legend_x = area.left()
        for index, (name, values) in enumerate(list(self.series.items())[:MAX_SERIES]):
            color = QColor(PALETTE[index])
            points = finite(values)
            low, high = min(points), max(points)
            span = (high - low) or 1.0
            step = area.width() / max(1, len(points) - 1)
            line = QPolygonF(
                [
                    QPointF(
                        area.left() + i * step, area.bottom() - (v - low) / span * area.height()
                    )
                    for i, v in enumerate(points)
                ]
            )
            painter.setPen(QPen(color, 2))
            painter.drawPolyline(line)
            label = f"{name} {points[-1]:.4g}"
            painter.drawText(QPointF(legend_x, 18), label)
            legend_x += painter.fontMetrics().horizontalAdvance(label) + 16
        painter.end()
