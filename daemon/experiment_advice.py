"""Asking a language model how to fix a failed run the rules could not fix.

Only for sweeps whose spec says ``retry: {fixer: llm}`` and only when an endpoint is
configured (`experiments.llm_base_url`, `experiments.llm_model`; the key is read from
the keyring for the endpoint's host). The question runs on its own thread, so the queue
never waits for it. The answer becomes a proposal the researcher approves with
``labmind exp approve RUN`` (the run is ``needs_approval`` meanwhile), or, with
`experiments.llm_auto_apply`, the next attempt at once. While the model thinks the run is
``needs_approval`` with no proposal yet; an answer that does not come (an error, a
daemon stopped meanwhile) fails it, and a run retried by hand meanwhile keeps the
researcher's choice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from labmind.trainers.failures import Failure
from labmind.trainers.llm_fixer import LlmEndpoint, LlmFixerError, propose

from .backup.credentials import CredentialError, CredentialSource
from .config import ExperimentsConfig
from .events import EventBus
from .experiment_store import ExperimentStore, NextAttempt, RunRow

log = logging.getLogger("labmind.experiments")


def endpoint_for(config: ExperimentsConfig, credentials: CredentialSource) -> LlmEndpoint:
    """The configured endpoint with its key from the keyring (none when the keyring fails)."""
    try:
        key = credentials.token(urlsplit(config.llm_base_url).netloc)
    except CredentialError as exc:
        log.warning("no key for the LLM fixer: %s", exc)
        key = None
    return LlmEndpoint(config.llm_base_url, config.llm_model, key)


class LlmAdvisor:
    """Asks the model on a thread; files the answer as a proposal or as the next attempt."""

    def __init__(
        self,
        records: ExperimentStore,
        events: EventBus,
        *,
        config: Callable[[], ExperimentsConfig],
        credentials: CredentialSource,
        command_for: Callable[[RunRow, dict[str, object]], str],
        wake: Callable[[], None],
    ) -> None:
        self.records = records
        self.events = events
        self.config = config
        self.credentials = credentials
        self.command_for = command_for
        self.wake = wake
        self._threads: list[threading.Thread] = []

    def available(self) -> bool:
        """Whether an endpoint is configured (the keyring is read only when asking)."""
        config = self.config()
        return bool(config.llm_base_url and config.llm_model)

    def consider(self, run: RunRow, failure: Failure, log_tail: str) -> bool:
        """Ask about ``run``'s failed attempt (the run waits in ``needs_approval``)."""
        if not self.available():
            self.records.give_up_waiting(run.id, failure.summary)
            return False
        endpoint = endpoint_for(self.config(), self.credentials)
        history = [
            f"attempt {a.attempt}: {a.params} → {a.failure or 'ok'}"
            + (f" (then: {a.change})" if a.change else "")
            for a in self.records.attempts(run.id)
        ]
        thread = threading.Thread(
            target=self._ask,
            args=(endpoint, run, failure, log_tail, history),
            name=f"labmind-llm-{run.id}",
            daemon=True,
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return True

    def join(self, timeout_s: float) -> None:
        for thread in list(self._threads):
            thread.join(timeout_s)

    def _ask(
        self,
        endpoint: LlmEndpoint,
        run: RunRow,
        failure: Failure,
        log_tail: str,
        history: list[str],
    ) -> None:
        try:
            proposal = propose(
                endpoint,
                command=run.command,
                params=run.params,
                failure=failure,
                log_tail=log_tail,
                history=history,
            )
        except LlmFixerError as exc:
            summary = f"{failure.summary}; the LLM fixer could not help: {exc}"
            if self.records.give_up_waiting(run.id, summary):
                self._publish(run.id, "failed", summary=summary, log_tail=log_tail[-2000:])
            return
        reason = f"LLM: {proposal.rationale}"
        if self.config().llm_auto_apply:
            params = {**run.params, **proposal.changes}
            command = proposal.command or self.command_for(run, params)
            if self.records.retry_if_waiting(
                run.id, NextAttempt(params, command, reason), attempt=run.attempt + 1
            ):
                self._publish(run.id, "retrying", change=reason)
                self.wake()
            return
        if self.records.propose_if_waiting(
            run.id, json.loads(proposal.to_json()), attempt=run.attempt
        ):
            self._publish(run.id, "needs_approval", change=reason)

    def _publish(self, run_id: str, event: str, **extra: object) -> None:
        self.events.publish({"type": "experiment", "event": event, "run": run_id, **extra})
