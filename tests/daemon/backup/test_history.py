"""The snapshot history of a branch and what `--at` picks from it."""

from __future__ import annotations

from datetime import datetime

import pygit2
import pytest

from labmind.daemon.backup import Guards, SnapshotError, take_snapshot
from labmind.daemon.backup.history import parse_time, resolve_snapshot, snapshots

from .gitrepo import GitRepo

DAY = 86_400.0
NOON = datetime(2026, 11, 20, 12, 0).timestamp()


def three_snapshots(repo: GitRepo, guards: Guards) -> list[str]:
    made = []
    for n, when in enumerate((NOON, NOON + 3600, NOON + DAY)):
        repo.write("train.py", f"print({n})\n")
        result = take_snapshot(repo.root, guards=guards, now=when)
        made.append(str(result.commit))
    return made


def test_snapshots_are_listed_newest_first_and_stop_at_the_users_commit(
    repo: GitRepo, guards: Guards
) -> None:
    made = three_snapshots(repo, guards)
    listed = list(snapshots(pygit2.Repository(str(repo.root)), "main"))

    assert [str(s.commit) for s in listed] == made[::-1]
    assert [s.time for s in listed] == [NOON + DAY, NOON + 3600, NOON]
    assert all(s.message.startswith("labmind snapshot of main") for s in listed)


def test_at_a_time_picks_the_newest_snapshot_taken_by_then(repo: GitRepo, guards: Guards) -> None:
    made = three_snapshots(repo, guards)
    git = pygit2.Repository(str(repo.root))

    assert str(resolve_snapshot(git, "main", "2026-11-20T13:30").commit) == made[1]
    assert str(resolve_snapshot(git, "main", "2026-11-20T12:00").commit) == made[0]
    assert str(resolve_snapshot(git, "main", made[2][:8]).commit) == made[2]
    with pytest.raises(SnapshotError, match="no snapshot of main at or before"):
        resolve_snapshot(git, "main", "2026-11-19")
    with pytest.raises(SnapshotError, match="neither a snapshot commit nor a time"):
        resolve_snapshot(git, "main", "yesterday-ish")


@pytest.mark.parametrize(
    ("text", "ago"),
    [("90m", 5400.0), ("2h", 7200.0), ("3d ago", 3 * DAY), ("1w", 7 * DAY), ("0s", 0.0)],
)
def test_ages_count_back_from_now(text: str, ago: float) -> None:
    assert parse_time(text, now=NOON) == NOON - ago


def test_dates_are_local_time_unless_they_carry_an_offset() -> None:
    assert parse_time("2026-11-20T12:00") == NOON
    assert (
        parse_time("2026-11-20T12:00+00:00")
        == datetime.fromisoformat("2026-11-20T12:00+00:00").timestamp()
    )
    assert parse_time("abc1234") is None
