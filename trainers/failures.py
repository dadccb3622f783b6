"""Why an attempt failed, read from its exit status and the tail of its log.

``classify`` looks for the messages PyTorch, NCCL, CUDA, Python and the shell really
print (``torch.OutOfMemoryError: CUDA out of memory. Tried to allocate …``, ``[Rank 0]
Watchdog caught collective operation timeout: …``, ``ModuleNotFoundError: No module
named 'timm'``, ``/bin/sh: 1: pyhton: not found``). What decides, in order:

1. ``timed_out``: the attempt ran past its limit and was stopped → ``timeout``.
2. Killed by a signal (``signal``, a negative exit code, or a shell's 128+N): SIGKILL
   with out-of-memory evidence → ``host_oom``; SIGKILL without → ``killed`` (worth one
   retry); SIGTERM, SIGINT, SIGHUP → ``killed`` (someone stopped it); other signals
   (SIGABRT from an NCCL watchdog, SIGSEGV) → what the log says, else ``killed``.
3. The log: the last Python exception (launcher wrappers such as torchrun's
   ``ChildFailedError`` skipped) decides when it matches; in a chain of exceptions
   ("During handling of the above exception…") the first one that matches wins, since it
   is the cause. When the last exception matches nothing, the failure is ``unknown``:
   an earlier OOM message the script survived is not why it died. Without any exception,
   the matching line nearest the end wins.
4. Exit status 127/126 (the shell could not find or run the command) → ``file_not_found``.
"""

from __future__ import annotations

import re
import signal as signals
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    CUDA_OOM = "cuda_oom"
    HOST_OOM = "host_oom"
    NAN_LOSS = "nan_loss"
    NCCL_TIMEOUT = "nccl_timeout"
    """NCCL collective timeouts and NCCL errors: usually a peer or link, not the code."""
    CUDA_ERROR = "cuda_error"
    MISSING_MODULE = "missing_module"
    IMPORT_ERROR = "import_error"
    KILLED = "killed"
    TIMEOUT = "timeout"
    FILE_NOT_FOUND = "file_not_found"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one attempt.

    ``summary`` is one line for a person (a notification, ``exp show``); ``evidence`` is
    the log line it rests on ("" when the exit status alone decided). ``module`` is the
    module a ``missing_module``/``import_error`` names; ``signal`` the signal that ended
    the attempt. ``transient`` says the same attempt may well succeed elsewhere or later
    (NCCL timeouts, most CUDA errors, an unexplained SIGKILL).
    """

    kind: FailureKind
    summary: str
    evidence: str = ""
    module: str | None = None
    signal: int | None = None

    @property
    def transient(self) -> bool:
        """NCCL failures, CUDA errors other than asserts and missing kernels, and a
        SIGKILL with no out-of-memory message: the same attempt may well succeed again."""
        if self.kind is FailureKind.NCCL_TIMEOUT:
            return True
        if self.kind is FailureKind.CUDA_ERROR:
            return _NON_TRANSIENT_CUDA.search(f"{self.summary} {self.evidence}") is None
        return self.kind is FailureKind.KILLED and self.signal == signals.SIGKILL


MAX_EVIDENCE = 1000
"""Characters of the evidence line kept (some lines are a whole progress bar)."""

_SUMMARY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: FailureKind
    pattern: re.Pattern[str]
    summary: Callable[[re.Match[str], str], str]
    weak: bool = False
    """Only used when nothing else in the log matches (launcher summaries, generic text)."""


@dataclass(frozen=True, slots=True)
class _Hit:
    index: int
    rule: _Rule
    match: re.Match[str]
    line: str


def _fixed(text: str) -> Callable[[re.Match[str], str], str]:
    return lambda _match, _line: text


def _group(template: str) -> Callable[[re.Match[str], str], str]:
    """``template`` with ``{}`` replaced by the first non-empty group of the match."""

    def summary(match: re.Match[str], _line: str) -> str:
        found = next((g for g in match.groups() if g), "")
        return template.format(found.strip())

    return summary


def _quoted(prefix: str) -> Callable[[re.Match[str], str], str]:
    """``prefix`` followed by the rest of the line from the match on."""

    def summary(match: re.Match[str], line: str) -> str:
        return prefix + line[match.start() :].strip()

    return summary


_NEW_OOM = re.compile(
    r"Tried to allocate (?P<want>[\d.]+ [KMGT]?i?B)\. GPU (?P<gpu>\d+) has a total "
    r"capac\w* of (?P<total>[\d.]+ [KMGT]?i?B) of which (?P<free>[\d.]+ [KMGT]?i?B|0 bytes) is free"
)
_OLD_OOM = re.compile(
    r"Tried to allocate (?P<want>[\d.]+ [KMGT]?i?B) \(GPU (?P<gpu>\d+); (?P<total>[\d.]+ "
    r"[KMGT]?i?B) total capacity;[^;]*; (?P<free>[\d.]+ [KMGT]?i?B|0 bytes) free"
)


def _cuda_oom_summary(_match: re.Match[str], line: str) -> str:
    for pattern in (_NEW_OOM, _OLD_OOM):
        found = pattern.search(line)
        if found is not None:
            return (
                f"CUDA out of memory on GPU {found['gpu']}: tried to allocate {found['want']} "
                f"with {found['free']} free of {found['total']}"
            )
    return "GPU out of memory"


_WATCHDOG = re.compile(r"OpType=(\w+).*?Timeout\(ms\)=(\d+)")


def _nccl_summary(match: re.Match[str], line: str) -> str:
    found = _WATCHDOG.search(line)
    if found is not None:
        return f"NCCL collective timed out ({found[1]} after {int(found[2]) // 1000} s)"
    if "watchdog" in line.lower() and "timeout" in line.lower():
        return "NCCL collective timed out"
    return "NCCL error: " + line[match.start() :].strip()


def _nan_summary(match: re.Match[str], line: str) -> str:
    return "NaN or inf loss: " + line.strip()


_NON_TRANSIENT_CUDA = re.compile(
    r"device-side assert|no kernel image is available|driver version is insufficient|"
    r"unspecified launch failure in a kernel that asserted",
    re.IGNORECASE,
)


def _cuda_summary(match: re.Match[str], line: str) -> str:
    return line[match.start() :].strip()


# Order matters within a line: the first rule that matches a line claims it.
_RULES: tuple[_Rule, ...] = (
    _Rule(
        FailureKind.CUDA_OOM,
        re.compile(
            r"OutOfMemoryError: CUDA out of memory|CUDA out of memory\. Tried to allocate|"
            r"CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|"
            r"HIP out of memory\. Tried to allocate|MPS backend out of memory|"
            r"RESOURCE_EXHAUSTED: Out of memory|OOM when allocating tensor|"
            r"cudaErrorMemoryAllocation"
        ),
        _cuda_oom_summary,
    ),
    _Rule(
        FailureKind.HOST_OOM,
        re.compile(
            r"DataLoader worker \(pids?\(?s?\)? [\d, ]+\) is killed by signal: Killed|"
            r"DefaultCPUAllocator: (?:can't allocate memory|not enough memory)|"
            r"\[Errno 12\] Cannot allocate memory|Out of memory: Killed process|"
            r"_ArrayMemoryError|Unable to allocate [\d.]+ [KMGTP]?i?B for an array|"
            r"Memory cgroup out of memory|\boom-kill\b|\boom_reaper\b"
        ),
        _quoted("host out of memory: "),
    ),
    _Rule(
        FailureKind.HOST_OOM,
        re.compile(r"^(?:\[rank\s*\d+\]:\s*)?MemoryError\b"),
        _quoted("host out of memory: "),
    ),
    _Rule(
        FailureKind.NAN_LOSS,
        re.compile(
            r"returned nan values in its \d+\w* output|"
            r"The loss returned in `training_step` is|"
            r"(?i:\b[\w/.-]*loss\s*(?:is|was|became|has become|=|:)?\s*(?:tensor\(\s*)?"
            r"[-+]?(?:nan|inf(?:inity)?)\b)|"
            r"(?i:\b(?:nan|inf|non-finite|infinite)\s+loss\b)|"
            r"(?i:\bloss\s+(?:is|was|became)\s+(?:not finite|non-finite|infinite)\b)|"
            r"FloatingPointError: Minimum loss scale reached|"
            r"Invalid loss, terminating training"
        ),
        _nan_summary,
    ),
    _Rule(
        FailureKind.NCCL_TIMEOUT,
        re.compile(
            r"Watchdog caught collective operation timeout|NCCL communicator was aborted|"
            r"\bNCCL (?:error|Error|WARN)\b|\bnccl(?:SystemError|InternalError|"
            r"UnhandledCudaError|RemoteError|InvalidUsage)\b|DistBackendError|"
            r"Some NCCL operations have failed or timed out"
        ),
        _nccl_summary,
    ),
    _Rule(
        FailureKind.CUDA_ERROR,
        re.compile(
            r"CUDA error: [^\n]+|device-side assert triggered|CUBLAS_STATUS_\w+|"
            r"cuDNN error: \w+|CUDNN_STATUS_\w+|an illegal memory access was encountered|"
            r"CUDA driver (?:initialization failed|version is insufficient)|"
            r"No CUDA GPUs are available|CUDA-capable device\(s\) is/are busy or unavailable"
        ),
        _cuda_summary,
    ),
    _Rule(
        FailureKind.MISSING_MODULE,
        re.compile(r"ModuleNotFoundError: No module named '([^']+)'"),
        _group("missing Python module '{}'"),
    ),
    _Rule(
        FailureKind.IMPORT_ERROR,
        re.compile(r"ImportError: (.+)|OSError: (\S+\.so[.\d]*: cannot open shared object file.*)"),
        _group("import failed: {}"),
    ),
    _Rule(
        FailureKind.FILE_NOT_FOUND,
        re.compile(
            r"command not found: (\S+)|([^\s:]+): command not found|"
            r"\bsh: \d+: ([^\s:]+): not found"
        ),
        _group("command not found: {}"),
    ),
    _Rule(
        FailureKind.FILE_NOT_FOUND,
        re.compile(
            r"can't open file '([^']+)': \[Errno 2\]|"
            r"FileNotFoundError: (?:\[Errno 2\] No such file or directory: )?(.+)|"
            r"\[Errno 2\] No such file or directory: (.+)"
        ),
        _group("file not found: {}"),
    ),
    _Rule(
        FailureKind.KILLED,
        re.compile(r"Signal (\d+) \((SIG\w+)\) received by PID|failed \(exitcode: -(\d+)\)"),
        _fixed("a worker was killed by a signal"),
        weak=True,
    ),
    _Rule(
        FailureKind.FILE_NOT_FOUND,
        re.compile(r": No such file or directory\s*$"),
        _quoted("file not found: "),
        weak=True,
    ),
)

_KILLED_LINE = re.compile(r"^\s*Killed\s*$|\b\d+ Killed\b")
"""What a shell prints when its child got SIGKILL (most often from the OOM killer)."""

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_RANK_PREFIX = re.compile(r"^\[rank\s*\d+\]:\s*")
_EXCEPTION = re.compile(
    r"^(?:\[rank\s*\d+\]:\s*)?((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit))"
    r"(?::(?:\s.*)?)?$"
)
_NATIVE_FRAME = re.compile(r"^\s*(?:frame #\d+:|Exception raised from )")
"""C++ stack frames under a c10 error: they name functions, not what went wrong."""
_WRAPPERS = ("ChildFailedError", "CalledProcessError")
_CHAINED = re.compile(
    r"^During handling of the above exception, another exception occurred:|"
    r"^The above exception was the direct cause of the following exception:"
)
_STOP_SIGNALS = {signals.SIGTERM, signals.SIGINT, signals.SIGHUP}


def classify(
    exit_code: int | None, signal: int | None, log_tail: str, *, timed_out: bool = False
) -> Failure:
    """Why the attempt that ended with ``exit_code``/``signal`` failed, from ``log_tail``
    (the last few hundred lines of its output; see the module docstring for the order)."""
    lines = [_ANSI.sub("", line).rstrip() for line in log_tail.splitlines()]
    sig = _signal_of(exit_code, signal)
    if timed_out:
        return Failure(
            FailureKind.TIMEOUT,
            "timed out: stopped at its time limit",
            evidence=_last_line(lines),
            signal=sig,
        )
    if sig is not None:
        return _by_signal(sig, lines)
    hit = _decisive(lines)
    if hit is not None:
        return _failure(hit)
    if exit_code in (126, 127):
        what = "command not found" if exit_code == 127 else "command could not be run"
        return Failure(
            FailureKind.FILE_NOT_FOUND,
            f"{what} (exit status {exit_code})",
            evidence=_last_line(lines),
        )
    final = _final_exception(lines)
    evidence = lines[final].strip() if final is not None else _last_line(lines)
    summary = f"exited with status {exit_code}"
    if evidence:
        summary += ": " + _RANK_PREFIX.sub("", evidence)
    return Failure(FailureKind.UNKNOWN, _one_line(summary), evidence=evidence[:MAX_EVIDENCE])


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 42`` for numbers without a name."""
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _signal_of(exit_code: int | None, signal: int | None) -> int | None:
    """The signal that ended the command: given, a negative exit code (Python's
    ``returncode``), or 128+N as reported by a shell that ran the command."""
    if signal is not None:
        return signal
    if exit_code is not None and exit_code < 0:
        return -exit_code
    if exit_code is not None and 128 < exit_code <= 128 + 64:
        return exit_code - 128
    return None


def _by_signal(sig: int, lines: Sequence[str]) -> Failure:
    name = signal_name(sig)
    if sig == signals.SIGKILL:
        for index in range(len(lines) - 1, -1, -1):
            line = lines[index]
            if _KILLED_LINE.search(line):
                return Failure(
                    FailureKind.HOST_OOM,
                    "host out of memory: killed by SIGKILL (the kernel's OOM killer, most likely)",
                    evidence=line.strip()[:MAX_EVIDENCE],
                    signal=sig,
                )
            for rule in _RULES:
                match = rule.pattern.search(line)
                if match is not None and rule.kind is FailureKind.HOST_OOM:
                    return Failure(
                        FailureKind.HOST_OOM,
                        _one_line(rule.summary(match, line)),
                        evidence=line.strip()[:MAX_EVIDENCE],
                        signal=sig,
                    )
        return Failure(
            FailureKind.KILLED,
            "killed by SIGKILL (no out-of-memory message in the log)",
            evidence=_last_line(lines),
            signal=sig,
        )
    if sig in _STOP_SIGNALS:
        return Failure(
            FailureKind.KILLED, f"killed by {name}", evidence=_last_line(lines), signal=sig
        )
    hit = _decisive(lines)
    if hit is not None and not hit.rule.weak:
        found = _failure(hit)
        return Failure(
            found.kind,
            _one_line(f"{found.summary}, then {name}"),
            evidence=found.evidence,
            module=found.module,
            signal=sig,
        )
    return Failure(FailureKind.KILLED, f"killed by {name}", evidence=_last_line(lines), signal=sig)


def _decisive(lines: Sequence[str]) -> _Hit | None:
    """The hit that explains the failure (see the module docstring), or None."""
    hits = [hit for index, line in enumerate(lines) if (hit := _match(index, line)) is not None]
    final = _final_exception(lines)
    if final is not None:
        for index in _chain(lines, final):
            for at in _with_continuation(lines, index):
                hit = next((h for h in hits if h.index == at and not h.rule.weak), None)
                if hit is not None:
                    return hit
        return None
    strong = [hit for hit in hits if not hit.rule.weak]
    if strong:
        return strong[-1]
    return hits[-1] if hits else None


def _match(index: int, line: str) -> _Hit | None:
    if _NATIVE_FRAME.match(line):
        return None
    for rule in _RULES:
        match = rule.pattern.search(line)
        if match is not None:
            return _Hit(index, rule, match, line)
    return None


def _final_exception(lines: Sequence[str]) -> int | None:
    for index in range(len(lines) - 1, -1, -1):
        found = _EXCEPTION.match(lines[index])
        if found is not None and not found[1].endswith(_WRAPPERS):
            return index
    return None


def _chain(lines: Sequence[str], final: int) -> list[int]:
    """The exception lines of the chain that ends at ``final``, the cause first."""
    chain = [final]
    current = final
    while True:
        traceback = _previous(
            lines, current, lambda line: "Traceback (most recent call last)" in line
        )
        if traceback is None:
            break
        before = _previous(lines, traceback, lambda line: bool(line.strip()))
        if before is None or not _CHAINED.match(_RANK_PREFIX.sub("", lines[before]).strip()):
            break
        cause = _previous(lines, before, lambda line: _EXCEPTION.match(line) is not None)
        if cause is None:
            break
        chain.insert(0, cause)
        current = cause
    return chain


def _previous(lines: Sequence[str], start: int, wanted: Callable[[str], bool]) -> int | None:
    for index in range(start - 1, -1, -1):
        if wanted(lines[index]):
            return index
    return None


def _with_continuation(lines: Sequence[str], index: int) -> list[int]:
    """The exception line and up to two lines that continue its message."""
    found = [index]
    for after in range(index + 1, min(index + 3, len(lines))):
        text = lines[after].strip()
        if not text or "Traceback" in text or _EXCEPTION.match(lines[after]):
            break
        found.append(after)
    return found


def _failure(hit: _Hit) -> Failure:
    rule = hit.rule
    evidence = hit.line.strip()[:MAX_EVIDENCE]
    module: str | None = None
    if rule.kind is FailureKind.MISSING_MODULE:
        module = hit.match[1]
    elif rule.kind is FailureKind.IMPORT_ERROR:
        named = re.search(r"from '([^']+)'", hit.line)
        module = named[1] if named else None
    elif rule.kind is FailureKind.KILLED:
        number = next((g for g in hit.match.groups() if g and g.isdigit()), None)
        signal = int(number) if number is not None else None
        killer = signal_name(signal) if signal is not None else "a signal"
        return Failure(
            rule.kind, f"a worker was killed by {killer}", evidence=evidence, signal=signal
        )
    summary = _one_line(rule.summary(hit.match, hit.line))
    return Failure(rule.kind, summary, evidence=evidence, module=module)


def _last_line(lines: Sequence[str]) -> str:
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:MAX_EVIDENCE]
    return ""


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"
