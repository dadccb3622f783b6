"""Which events notify, what they say, how bursts are held back, and what buttons do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from labmind.daemon.backup.credentials import StaticCredentials
from labmind.daemon.backups import BackupService
from labmind.daemon.config import BackupConfig, NotificationsConfig
from labmind.daemon.events import EventBus
from labmind.daemon.notification_rules import log_excerpt
from labmind.daemon.notification_throttle import Throttle
from labmind.daemon.notifications import NotificationService
from labmind.daemon.notifier import MemoryNotifier, Notification
from labmind.daemon.opener import RecordingOpener
from labmind.daemon.redaction import redact
from labmind.daemon.store import Store

from .notification_fakes import SWEEP, SWEEP_NAME, FakeRuns, failed, until

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Rig:
    service: NotificationService
    notifier: MemoryNotifier
    runs: FakeRuns
    opener: RecordingOpener
    clock: Clock

    @property
    def shown(self) -> list[Notification]:
        return self.notifier.notifications

    async def send(self, *events: dict[str, Any]) -> None:
        for event in events:
            await self.service.handle(event)


def rig(**config: Any) -> Rig:
    clock = Clock()
    notifier, runs, opener = MemoryNotifier(), FakeRuns(), RecordingOpener()
    service = NotificationService(
        EventBus(),
        notifier,
        runs,
        opener,
        NotificationsConfig.model_validate({"min_interval_s": 60.0, **config}),
        clock=clock,
    )
    return Rig(service, notifier, runs, opener, clock)


def run(work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await work()

    return asyncio.run(main())


def test_a_failed_run_notifies_with_its_log_tail_and_actions() -> None:
    tail = "\n".join(f"epoch {i}: loss {1 / (i + 1):.3f}" for i in range(500))
    tail += "\nTraceback (most recent call last):\nModuleNotFoundError: No module named 'x'\n"
    r = rig()

    run(lambda: r.send(failed(3, "missing module: x", tail)))

    [shown] = r.shown
    assert shown.title == f"Run {SWEEP}-3 failed"
    assert shown.body.startswith("missing module: x\n\n")
    assert shown.body.endswith(
        "Traceback (most recent call last):\nModuleNotFoundError: No module named 'x'"
    )
    assert "epoch 496" in shown.body and "epoch 495" not in shown.body
    assert len(shown.body) <= 1000
    assert [(a.key, a.label, a.run) for a in shown.actions] == [
        ("open_logs", "Open logs", f"{SWEEP}-3"),
        ("retry", "Retry", f"{SWEEP}-3"),
    ]
    assert shown.urgency == "normal" and shown.group == f"run_failed:{SWEEP}"


def test_retried_waiting_and_finished_runs() -> None:
    r = rig()

    run(
        lambda: r.send(
            {"type": "experiment", "event": "asking", "run": "5eed-1", "summary": "odd"},
            {
                "type": "experiment",
                "event": "retrying",
                "run": "5eed-2",
                "summary": "CUDA out of memory",
                "change": "batch_size 64 → 32",
            },
            {
                "type": "experiment",
                "event": "needs_approval",
                "run": "5eed-1",
                "change": "LLM: lower the learning rate",
            },
            {"type": "experiment", "event": "succeeded", "run": "5eed-4"},
            {"type": "experiment", "event": "running", "run": "5eed-5"},
            {
                "type": "experiment",
                "event": "sweep_finished",
                "sweep": SWEEP,
                "name": SWEEP_NAME,
                "succeeded": 5,
                "failed": 1,
            },
        )
    )

    retried, waiting, finished = r.shown
    assert retried.title == "Run fixed and retried: batch_size 64 → 32"
    assert retried.body == "CUDA out of memory\nRetrying 5eed-2." and retried.urgency == "low"
    assert waiting.title == "Run needs your approval"
    assert waiting.body == "5eed-1: Proposed fix: LLM: lower the learning rate"
    assert [a.key for a in waiting.actions] == ["approve", "open_logs"]
    assert (finished.title, finished.body) == (
        f"Sweep {SWEEP_NAME} finished",
        "5 succeeded, 1 failed.",
    )


def test_succeeded_runs_notify_only_when_asked_and_one_failed_run_is_not_told_twice() -> None:
    quiet, chatty = rig(), rig(run_succeeded=True)
    succeeded = {"type": "experiment", "event": "succeeded", "run": "5eed-4"}
    alone = {
        "type": "experiment",
        "event": "sweep_finished",
        "sweep": "a1",
        "name": "one",
        "succeeded": 0,
        "failed": 1,
    }

    run(lambda: quiet.send(succeeded, alone))
    run(lambda: chatty.send(succeeded))

    assert quiet.shown == []
    assert [n.title for n in chatty.shown] == ["Run 5eed-4 succeeded"]


def outliers(run_id: str, new: int, spikes: int = 0, **reasons: int) -> dict[str, Any]:
    return {
        "type": "outliers",
        "run": run_id,
        "attempt": 1,
        "new": new,
        "reasons": reasons,
        "spikes": spikes,
    }


def test_outliers_and_plain_alerts() -> None:
    r = rig()

    run(
        lambda: r.send(
            outliers("5eed-2", 12, spikes=1, spike=3, label_error=9),
            outliers("other-1", 0, spikes=2),
            outliers("other-2", 0),
            {"type": "alert", "message": "watched folder is gone: /x"},
        )
    )

    flagged, spikes, alert = r.shown
    assert flagged.title == "12 samples flagged in run 5eed-2"
    assert flagged.body == (
        "label error: 9, spike: 3, 1 new loss spike.\nSee `labmind outliers 5eed-2`."
    )
    assert (spikes.title, spikes.body) == (
        "2 loss spikes in run other-1",
        "2 new loss spikes.\nSee `labmind outliers other-1`.",
    )
    assert (alert.title, alert.body) == ("labmind", "watched folder is gone: /x")


def test_flagged_samples_of_a_sweep_add_up_in_the_summary() -> None:
    r = rig(min_interval_s=60)

    run(lambda: r.send(*(outliers(f"5eed-{n}", 4, label_error=4) for n in range(30))))
    r.clock.advance(60)
    run(r.service.flush)

    assert [n.title for n in r.shown] == [
        "4 samples flagged in run 5eed-0",
        f"120 samples flagged in sweep {SWEEP_NAME}",
    ]


def test_backup_alerts_name_the_held_file_and_the_refused_push() -> None:
    r = rig()
    held = {
        "type": "alert",
        "source": "backup",
        "kind": "held_back",
        "path": "/home/me/proj",
        "files": [".env", "keys/id_rsa"],
        "reason": "secret file name (matches .env*)",
        "message": "backup of /home/me/proj holds back .env, keys/id_rsa (secret file name)",
    }
    refused = {
        "type": "alert",
        "source": "backup",
        "kind": "push_refused",
        "path": "/home/me/other",
        "message": "backup of /home/me/other (main) not pushed: rejected (non-fast-forward)",
    }

    run(lambda: r.send(held, refused))

    secret, push = r.shown
    assert secret.title == "Backup held back a secret: .env and 1 more"
    assert secret.urgency == "critical" and secret.body == held["message"]
    assert push.title == "Push rejected" and push.body == refused["message"]


def test_a_sweep_of_failures_shows_the_first_then_one_summary_per_window() -> None:
    r = rig(min_interval_s=60)

    async def scenario() -> None:
        await r.send(failed(0))
        for n in range(1, 10):
            r.clock.advance(2)
            await r.send(failed(n, summary=f"failure {n}"))
        await r.service.flush()
        assert len(r.shown) == 1
        r.clock.advance(60)
        await r.service.flush()
        assert len(r.shown) == 2
        await r.send(failed(10))
        r.clock.advance(30)
        await r.service.flush()
        assert len(r.shown) == 2
        r.clock.advance(30)
        await r.service.flush()
        r.clock.advance(600)
        await r.service.flush()
        await r.send(failed(11))

    run(scenario)

    first, summary, update, fresh = r.shown
    assert first.title == f"Run {SWEEP}-0 failed" and not first.replace
    assert summary.title == f"10 runs failed in sweep {SWEEP_NAME}"
    assert summary.replace and summary.group == first.group and summary.actions == ()
    assert summary.body.splitlines() == [
        "…and 5 earlier",
        *[f"{SWEEP}-{n}: failure {n}" for n in range(5, 10)],
        "See `labmind exp ls`.",
    ]
    assert update.title == f"11 runs failed in sweep {SWEEP_NAME}" and update.replace
    assert fresh.title == f"Run {SWEEP}-11 failed" and not fresh.replace


def test_groups_are_limited_separately() -> None:
    r = rig(min_interval_s=60)

    run(
        lambda: r.send(
            failed(0),
            failed(1),
            failed(0, sweep="other"),
            {"type": "alert", "message": "one"},
            {"type": "alert", "message": "two"},
        )
    )

    assert [n.title for n in r.shown] == ["Run 5eed-0 failed", "Run other-0 failed", "labmind"]
    r.clock.advance(60)
    run(r.service.flush)
    assert [n.title for n in r.shown[3:]] == [
        f"2 runs failed in sweep {SWEEP_NAME}",
        "2 alerts from labmind",
    ]


def test_no_limit_when_the_interval_is_zero() -> None:
    r = rig(min_interval_s=0)

    run(lambda: r.send(*(failed(n) for n in range(5))))

    assert [n.title for n in r.shown] == [f"Run {SWEEP}-{n} failed" for n in range(5)]


def test_do_not_disturb_shows_nothing_and_keeps_nothing_for_later() -> None:
    r = rig(do_not_disturb=True)

    async def scenario() -> None:
        await r.send(failed(0), failed(1), {"type": "alert", "message": "x"})
        r.service.reconfigure(NotificationsConfig(min_interval_s=60))
        r.clock.advance(120)
        await r.service.flush()
        await r.send(failed(2))

    run(scenario)

    assert [n.title for n in r.shown] == [f"Run {SWEEP}-2 failed"]


def test_turning_notifications_off_drops_held_summaries_and_skips_lookups() -> None:
    r = rig(min_interval_s=60)

    async def scenario() -> None:
        await r.send(failed(0), failed(1))
        r.service.reconfigure(NotificationsConfig(enabled=False))
        r.clock.advance(120)
        await r.service.flush()
        await r.send(failed(2))

    run(scenario)

    assert [n.title for n in r.shown] == [f"Run {SWEEP}-0 failed"]
    assert r.runs.looked_up == [f"{SWEEP}-0", f"{SWEEP}-1"]


SECRETS = {
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2",
    "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz12",
    "AKIA" + "IOSFODNN7EXAMPLE",
    "hunter2hunter2",
    "s3cr3t-pa55",
    "wandbkey0123456789abcdef",
}


def test_no_secret_reaches_a_notification() -> None:
    tail = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
            "-----END OPENSSH PRIVATE KEY-----",
            "cloning https://me:" + "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8@github.com/me/x",
            "OPENAI_API_KEY=" + "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2",
            "hub login with token " + "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz12",
            "aws: " + "AKIA" + "IOSFODNN7EXAMPLE",
            "db password: hunter2hunter2",
            "wandb: WANDB_API_KEY='wandbkey0123456789abcdef'",
            "max_tokens=4096 lr=0.001",
            "RuntimeError: connect to postgres://admin:s3cr3t-pa55@db:5432/x failed",
        ]
    )
    r = rig(min_interval_s=0)
    alert = {
        "type": "alert",
        "message": "push to https://x:" + "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8@h/r",
    }

    run(lambda: r.send(failed(1, summary="db password: hunter2hunter2", tail=tail), alert))

    text = "\n".join(f"{n.title}\n{n.body}" for n in r.shown)
    assert not [s for s in SECRETS if s in text]
    assert "RuntimeError: connect to postgres://***@db:5432/x failed" in text
    assert "max_tokens=4096 lr=0.001" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api_key: abcd1234efgh", "api_key: ***"),
        ('{"access_token": "abcd1234efgh"}', '{"access_token": "***"}'),
        ("Authorization: Bearer abc123def456ghi", "Authorization: Bearer ***"),
        ("held back a secret: .env", "held back a secret: .env"),
        ("looks like a secret: Base64 High Entropy String", None),
        ("step 10: loss=0.25 tokens=2048 api_key=None grad_norm: 1.5e+00", None),
        ("the token embeddings are frozen", None),
    ],
)
def test_redact_masks_values_and_keeps_prose(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_log_excerpt_drops_terminal_escapes_and_overwritten_progress() -> None:
    tail = "\x1b[32mok\x1b[0m\n 10%|█ | 1/10\r 50%|█████ | 5/10\r100%|██████████| 10/10\n\n\n"
    assert log_excerpt(tail) == "ok\n100%|██████████| 10/10"


def test_buttons_retry_approve_and_open_the_log(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_text("boom\n")
    r = rig(min_interval_s=0)
    r.runs.logs["5eed-1"] = log
    waiting = {"type": "experiment", "event": "needs_approval", "run": "5eed-2", "change": "x"}

    async def scenario() -> None:
        await r.send(failed(1), waiting)
        r.notifier.press(0, "retry")
        r.notifier.press(0, "open_logs")
        r.notifier.press(1, "approve")
        await r.service.settle()

    run(scenario)

    assert r.runs.retried == ["5eed-1"]
    assert r.runs.approved == ["5eed-2"]
    assert r.opener.opened == [log]
    assert len(r.shown) == 2


def test_a_button_that_cannot_act_says_why() -> None:
    r = rig(min_interval_s=0)
    r.runs.refuse = "run 5eed-1 is running; only finished runs are retried"

    async def scenario() -> None:
        await r.send(failed(1))
        r.notifier.press(0, "retry")
        r.notifier.press(0, "open_logs")
        await r.service.settle()

    run(scenario)

    _, refused, no_log = r.shown
    assert (refused.title, refused.body) == ("Retry failed for run 5eed-1", r.runs.refuse)
    assert (no_log.title, no_log.body) == (
        "Open logs failed for run 5eed-1",
        "run 5eed-1 has no log yet",
    )


def test_throttle_releases_on_its_clock() -> None:
    clock = Clock()
    throttle: Throttle[int] = Throttle(10, clock)

    assert throttle.offer("a", 1) is not None
    assert throttle.offer("a", 2) is None and throttle.offer("a", 3) is None
    assert throttle.next_due() == clock.now + 10
    clock.advance(9.9)
    assert throttle.due() == []
    clock.advance(0.1)
    [release] = throttle.due()
    assert (release.items, release.count) == ((1, 2, 3), 3)
    assert throttle.next_due() is None
    clock.advance(10)
    assert throttle.due() == []
    released = throttle.offer("a", 4)
    assert released is not None and released.single


def test_events_on_the_bus_notify_and_summaries_come_when_their_window_closes() -> None:
    async def scenario() -> list[Notification]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        notifier = MemoryNotifier()
        service = NotificationService(
            bus,
            notifier,
            FakeRuns(),
            RecordingOpener(),
            NotificationsConfig(min_interval_s=0.2),
        )
        service.start()
        for n in range(3):
            bus.publish(failed(n))
        await until(lambda: len(notifier.sent) >= 2)
        await service.stop()
        assert notifier.closed
        return notifier.notifications

    first, summary = run(scenario)

    assert first.title == f"Run {SWEEP}-0 failed"
    assert summary.title == f"3 runs failed in sweep {SWEEP_NAME}"


def test_settings_changed_from_another_thread_apply_on_the_loop() -> None:
    async def scenario() -> list[Notification]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        notifier = MemoryNotifier()
        service = NotificationService(
            bus, notifier, FakeRuns(), RecordingOpener(), NotificationsConfig(min_interval_s=0)
        )
        service.start()
        quiet = NotificationsConfig(min_interval_s=0, do_not_disturb=True)
        await asyncio.to_thread(service.reconfigure, quiet)
        await until(lambda: service.config is quiet)
        bus.publish(failed(1))
        await asyncio.to_thread(service.reconfigure, NotificationsConfig(min_interval_s=0))
        bus.publish(failed(2))
        await until(lambda: bool(notifier.sent))
        await service.stop()
        return notifier.notifications

    assert [n.title for n in run(scenario)] == [f"Run {SWEEP}-2 failed"]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    store = Store(tmp_path / "store.sqlite3")
    yield store
    store.close()


def test_a_secret_held_back_by_a_real_backup_notifies_without_the_secret(
    tmp_path: Path, store: Store
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text("print('hi')\n")
    (folder / ".env").write_text("WANDB_API_KEY=wandbkey0123456789abcdef\n")

    async def scenario() -> list[Notification]:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        notifier = MemoryNotifier()
        service = NotificationService(
            bus, notifier, FakeRuns(), RecordingOpener(), NotificationsConfig()
        )
        service.start()
        backups = BackupService(
            store,
            bus,
            BackupConfig(host="test", push=False),
            tmp_path / "data",
            credentials=StaticCredentials({}),
        )
        try:
            backups.sync_roots([str(folder)])
            await asyncio.to_thread(backups.now, str(folder))
            await until(lambda: bool(notifier.sent))
        finally:
            backups.stop()
            await service.stop()
        return notifier.notifications

    [held] = run(scenario)

    assert held.title == "Backup held back a secret: .env"
    assert str(folder) in held.body and "wandbkey" not in held.body
