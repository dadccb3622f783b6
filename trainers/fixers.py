"""Rule fixers: what to change before the next attempt of a failed run.

=====================  ==============================================================
failure                fix
=====================  ==============================================================
``cuda_oom``           halve the batch size (and double gradient accumulation when the
                       spec declares it, so the effective batch stays the same); when
                       the batch size cannot go lower or is not declared, move to a GPU
                       with more memory (once)
``host_oom``           halve the batch size (and double gradient accumulation)
``nan_loss``           halve the learning rate
transient failures     retry as is, once per kind (NCCL timeouts and errors, CUDA
                       errors other than asserts, a SIGKILL with no OOM message)
everything else        nothing: a person has to look (missing module, import error,
                       file not found, timeout, unknown)
=====================  ==============================================================

The parameters to change are the ones the spec's ``retry`` section names. No fix is
proposed once the failed attempt is the last one ``retry.max_attempts`` allows. Each
applied fix is recorded as a ``Change``, so a run's lineage reads attempt by attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .failures import Failure, FailureKind
from .spec import RetryPolicy
from .sweep import ParamValue, format_value


@dataclass(frozen=True, slots=True)
class Fix:
    """What the next attempt changes: new parameter values, or the same ones on another
    GPU (``move_gpu``: one with more memory) or as they were (``retry_same``)."""

    changes: dict[str, ParamValue]
    reason: str
    move_gpu: bool = False
    retry_same: bool = False

    def apply(self, params: Mapping[str, ParamValue]) -> dict[str, ParamValue]:
        """``params`` with the changes made (a new dict)."""
        return {**params, **self.changes}


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a run's lineage: attempt ``attempt`` failed with ``cause``, and the
    next attempt ran with ``changes`` (and on another GPU when ``move_gpu``)."""

    attempt: int
    cause: FailureKind
    changes: dict[str, ParamValue] = field(default_factory=dict)
    reason: str = ""
    move_gpu: bool = False
    retry_same: bool = False

    @classmethod
    def record(cls, fix: Fix, *, attempt: int, cause: FailureKind) -> Change:
        """The lineage entry for ``fix`` applied after attempt ``attempt`` failed."""
        return cls(
            attempt=attempt,
            cause=cause,
            changes=dict(fix.changes),
            reason=fix.reason,
            move_gpu=fix.move_gpu,
            retry_same=fix.retry_same,
        )


def propose_fix(
    failure: Failure,
    params: Mapping[str, ParamValue],
    retry: RetryPolicy,
    *,
    attempt: int,
    history: Sequence[Change],
) -> Fix | None:
    """The fix for the next attempt after attempt ``attempt`` (counted from 1) failed
    with ``failure`` while running with ``params``; ``None`` when there is none or no
    attempt is left. ``history`` is the run's lineage so far.

    ``retry.fixer == "none"`` proposes no changes (transient failures are still retried
    once); ``"llm"`` gets the same rules first, the LLM fixer is asked only when they
    return ``None``.
    """
    if attempt >= retry.max_attempts:
        return None
    kind = failure.kind
    if failure.transient:
        if any(change.cause is kind for change in history):
            return None
        return Fix({}, f"{failure.summary}; likely transient, retrying as is", retry_same=True)
    if retry.fixer == "none":
        return None
    if kind is FailureKind.CUDA_OOM:
        smaller = _smaller_batch(failure, params, retry)
        if smaller is not None:
            return smaller
        if any(change.move_gpu for change in history):
            return None
        why = _batch_stuck(params, retry)
        return Fix({}, f"{failure.summary}; {why}: moving to a GPU with more memory", move_gpu=True)
    if kind is FailureKind.HOST_OOM:
        return _smaller_batch(failure, params, retry)
    if kind is FailureKind.NAN_LOSS:
        return _lower_lr(failure, params, retry)
    return None


def _smaller_batch(
    failure: Failure, params: Mapping[str, ParamValue], retry: RetryPolicy
) -> Fix | None:
    name = retry.batch_size_param
    batch = _count(params, name)
    if name is None or batch is None or batch <= 1:
        return None
    smaller = batch // 2
    changes: dict[str, ParamValue] = {name: smaller}
    reason = f"{failure.summary}; {name} {batch} → {smaller}"
    accum_name = retry.grad_accum_param
    accum = _count(params, accum_name)
    if accum_name is not None and accum is not None:
        changes[accum_name] = accum * 2
        reason += (
            f", {accum_name} {accum} → {accum * 2}"
            f" (effective batch {batch * accum} → {smaller * accum * 2})"
        )
    return Fix(changes, reason)


def _batch_stuck(params: Mapping[str, ParamValue], retry: RetryPolicy) -> str:
    name = retry.batch_size_param
    if name is None:
        return "no batch size parameter declared (retry.batch_size_param)"
    if _count(params, name) is None:
        return f"{name} is not a whole-number parameter of this run"
    return f"{name} is already {format_value(params[name])}"


def _lower_lr(failure: Failure, params: Mapping[str, ParamValue], retry: RetryPolicy) -> Fix | None:
    name = retry.lr_param
    if name is None:
        return None
    rate = params.get(name)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        return None
    lower = rate / 2
    return Fix({name: lower}, f"{failure.summary}; {name} {format_value(rate)} → {lower!r}")


def _count(params: Mapping[str, ParamValue], name: str | None) -> int | None:
    """The whole-number value of ``name`` (≥ 1), or None."""
    value = params.get(name) if name is not None else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value
