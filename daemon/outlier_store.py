"""What the daemon has read of each attempt's ``outliers.jsonl`` and ``spikes.jsonl``.

Per attempt folder: the byte offsets read so far, the flagged samples (one row per sample:
its latest report and the union of the reasons it was ever given) and the loss spikes (one
row per step). Records and the offsets they were read up to are written in one transaction,
so after a crash or a restart nothing is read, or announced, twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labmind.trainers.outliers_file import OutlierRecord, SpikeRecord

from .protocol import FlaggedSample, LossSpike
from .store import Store

_BATCH = 500
"""Samples (or steps) per ``IN (…)`` lookup: well under SQLite's variable limit."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a run whose folder may hold a tracker's files."""

    run_id: str
    attempt: int
    run_dir: str


@dataclass(slots=True)
class Added:
    """What one write brought that the store did not have."""

    samples: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    """New samples per reason."""
    spikes: int = 0

    def __bool__(self) -> bool:
        return bool(self.samples or self.spikes)

    def merge(self, other: Added) -> None:
        self.samples += other.samples
        self.reasons.update(other.reasons)
        self.spikes += other.spikes


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _lookup(tx: sqlite3.Connection, sql: str, run_dir: str, keys: Sequence[int]) -> list[Any]:
    rows: list[Any] = []
    for start in range(0, len(keys), _BATCH):
        chunk = keys[start : start + _BATCH]
        marks = ",".join("?" * len(chunk))
        rows += tx.execute(sql.format(marks=marks), (run_dir, *chunk)).fetchall()
    return rows


class OutlierStore:
    """Flagged samples, spikes and read offsets on the daemon's `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def offsets(self, run_dir: str) -> tuple[int, int]:
        """How far ``outliers.jsonl`` and ``spikes.jsonl`` of ``run_dir`` have been read."""
        row = (
            self.store.reader()
            .execute(
                "SELECT outliers_offset, spikes_offset FROM outlier_files WHERE run_dir=?",
                (run_dir,),
            )
            .fetchone()
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def add(
        self,
        attempt: Attempt,
        outliers: Sequence[OutlierRecord],
        outliers_offset: int,
        spikes: Sequence[SpikeRecord],
        spikes_offset: int,
    ) -> Added:
        """Merge records read from the attempt's files and move its offsets past them."""
        latest: dict[int, OutlierRecord] = {}
        given: dict[int, dict[str, None]] = {}
        for record in outliers:
            latest[record.sample] = record
            given.setdefault(record.sample, {}).update(dict.fromkeys(record.reasons))
        by_step = {spike.step: spike for spike in spikes}
        added = Added()
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO outlier_files(run_dir, run_id, attempt, outliers_offset, "
                "spikes_offset) VALUES (?, ?, ?, ?, ?) ON CONFLICT(run_dir) DO UPDATE SET "
                "outliers_offset=excluded.outliers_offset, spikes_offset=excluded.spikes_offset",
                (attempt.run_dir, attempt.run_id, attempt.attempt, outliers_offset, spikes_offset),
            )
            known = dict(
                _lookup(
                    tx,
                    "SELECT sample, reasons FROM outlier_samples "
                    "WHERE run_dir=? AND sample IN ({marks})",
                    attempt.run_dir,
                    list(latest),
                )
            )
            rows = []
            for sample, record in latest.items():
                before = known.get(sample)
                reasons = list(dict.fromkeys([*json.loads(before or "[]"), *given[sample]]))
                if before is None:
                    added.samples += 1
                    added.reasons.update(reasons)
                detail = {k: _finite(v) for k, v in record.detail.items()}
                rows.append(
                    (
                        attempt.run_dir,
                        sample,
                        record.score,  # NaN is stored as NULL, which sorts first
                        json.dumps(reasons),
                        record.label,
                        record.predicted,
                        record.step,
                        record.epoch,
                        record.time,
                        json.dumps(detail),
                    )
                )
            tx.executemany(
                "INSERT OR REPLACE INTO outlier_samples(run_dir, sample, score, reasons, label, "
                "predicted, step, epoch, time, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            steps = _lookup(
                tx,
                "SELECT step FROM outlier_spikes WHERE run_dir=? AND step IN ({marks})",
                attempt.run_dir,
                list(by_step),
            )
            added.spikes = len(by_step) - len(steps)
            tx.executemany(
                "INSERT OR REPLACE INTO outlier_spikes(run_dir, step, time, loss, baseline, z, "
                "samples) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        attempt.run_dir,
                        s.step,
                        s.time,
                        _finite(s.loss),
                        _finite(s.baseline),
                        _finite(s.z),
                        json.dumps(list(s.samples)),
                    )
                    for s in by_step.values()
                ],
            )
        return added

    def samples(
        self, run_dir: str, *, reason: str | None = None, limit: int | None = None
    ) -> list[FlaggedSample]:
        """Flagged samples, highest score first (a score that is not a number first of all)."""
        rows = self.store.reader().execute(
            "SELECT sample, score, reasons, label, predicted, step, epoch, time, detail "
            "FROM outlier_samples WHERE run_dir=? "
            "AND (? IS NULL OR EXISTS (SELECT 1 FROM json_each(reasons) WHERE value=?)) "
            "ORDER BY score IS NULL DESC, score DESC, sample LIMIT ?",
            (run_dir, reason, reason, -1 if limit is None else limit),
        )
        return [
            FlaggedSample(
                sample=sample,
                score=_finite(score),
                reasons=json.loads(reasons),
                label=label,
                predicted=predicted,
                step=step,
                epoch=epoch,
                time=at,
                detail=json.loads(detail),
            )
            for sample, score, reasons, label, predicted, step, epoch, at, detail in rows
        ]

    def counts(self, run_dir: str) -> tuple[int, dict[str, int]]:
        """Flagged samples in all, and per reason."""
        reader = self.store.reader()
        total = reader.execute(
            "SELECT count(*) FROM outlier_samples WHERE run_dir=?", (run_dir,)
        ).fetchone()[0]
        rows = reader.execute(
            "SELECT j.value, count(*) FROM outlier_samples s, json_each(s.reasons) j "
            "WHERE s.run_dir=? GROUP BY j.value ORDER BY count(*) DESC, j.value",
            (run_dir,),
        )
        return int(total), {str(name): int(count) for name, count in rows}

    def spikes(self, run_dir: str, *, limit: int | None = None) -> tuple[list[LossSpike], int]:
        """The latest ``limit`` spikes in step order, and how many there are in all."""
        reader = self.store.reader()
        total = reader.execute(
            "SELECT count(*) FROM outlier_spikes WHERE run_dir=?", (run_dir,)
        ).fetchone()[0]
        rows = reader.execute(
            "SELECT step, time, loss, baseline, z, samples FROM outlier_spikes "
            "WHERE run_dir=? ORDER BY step DESC LIMIT ?",
            (run_dir, -1 if limit is None else limit),
        ).fetchall()
        spikes = [
            LossSpike(step=step, time=at, loss=loss, baseline=base, z=z, samples=json.loads(ids))
            for step, at, loss, base, z, ids in reversed(rows)
        ]
        return spikes, int(total)
