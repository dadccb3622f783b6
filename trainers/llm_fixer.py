"""The optional LLM fixer: ask an OpenAI-compatible chat endpoint what to change.

``propose`` sends the failed attempt (command, parameters, the classified failure, a
bounded tail of its log, the earlier attempts) to ``{base_url}/chat/completions`` and
reads back a structured ``Proposal``: parameter changes, an optional new command, and a
rationale. Nothing is applied here; the daemon stores the proposal (``to_json``) and
applies it once the researcher approves, or at once when auto-apply is on.

Every failure to get a usable proposal is an ``LlmFixerError`` with a one-line message
(endpoint unreachable, HTTP status, malformed answer); the API key never appears in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from .failures import Failure
from .sweep import ParamValue

MAX_RATIONALE = 500
"""Characters of the model's rationale kept."""

_MAX_DETAIL = 200

SYSTEM_PROMPT = """\
You help a machine-learning researcher recover from a failed training run.
You are given the command that ran, its parameters (JSON), how the failure was \
classified, the last lines of its log, and the fixes already tried.
Propose the smallest change likely to make the next attempt succeed: new values for \
some of the existing parameters, and/or a corrected command. Only change parameters \
that already exist; values must be strings, numbers or booleans. Do not repeat a fix \
that was already tried. If the command must change, give the whole new command \
(it may use {param} placeholders).
Answer with one JSON object and nothing else:
{"changes": {"<param>": <new value>}, "command": null or "<new command>", \
"rationale": "<one or two sentences: why this should work>"}"""


class LlmFixerError(Exception):
    """The endpoint could not be reached, refused, or answered something unusable."""


@dataclass(frozen=True)
class LlmEndpoint:
    """Where to ask: an OpenAI-compatible base URL (``…/v1``), a model, an optional key."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Proposal:
    """What the model proposes for the next attempt."""

    changes: dict[str, ParamValue]
    command: str | None
    rationale: str

    def to_json(self) -> str:
        return json.dumps(
            {"changes": self.changes, "command": self.command, "rationale": self.rationale},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Proposal:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a stored proposal must be a JSON object")
        changes = data.get("changes", {})
        command = data.get("command")
        rationale = data.get("rationale", "")
        if not isinstance(changes, dict) or not all(
            isinstance(k, str) and _is_scalar(v) for k, v in changes.items()
        ):
            raise ValueError("a stored proposal's changes must map names to scalars")
        if command is not None and not isinstance(command, str):
            raise ValueError("a stored proposal's command must be a string or null")
        if not isinstance(rationale, str):
            raise ValueError("a stored proposal's rationale must be a string")
        return cls(changes=dict(changes), command=command, rationale=rationale)


def propose(
    endpoint: LlmEndpoint,
    *,
    command: str,
    params: dict[str, ParamValue],
    failure: Failure,
    log_tail: str,
    history: Sequence[str] = (),
    max_log_chars: int = 6000,
    client: httpx.Client | None = None,
) -> Proposal:
    """Ask ``endpoint`` for a fix to ``failure``; raise ``LlmFixerError`` when none comes."""
    body = {
        "model": endpoint.model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": _user_message(
                    command, params, failure, log_tail, history, max_log_chars
                ),
            },
        ],
        "response_format": {"type": "json_object"},
        "temperature": 0,
    }
    content = chat_completion(endpoint, body, client)
    return _parse(content, params)


def _user_message(
    command: str,
    params: Mapping[str, ParamValue],
    failure: Failure,
    log_tail: str,
    history: Sequence[str],
    max_log_chars: int,
) -> str:
    tail = log_tail[-max_log_chars:] if max_log_chars > 0 else ""
    tried = "\n".join(f"- {line}" for line in history) if history else "(none)"
    return (
        f"Command:\n{command}\n\n"
        f"Parameters (JSON):\n{json.dumps(dict(params), sort_keys=True)}\n\n"
        f"Failure kind: {failure.kind.value}\n"
        f"Summary: {failure.summary}\n"
        f"Evidence: {failure.evidence or '(none)'}\n\n"
        f"Earlier attempts:\n{tried}\n\n"
        f"Log tail (last {len(tail)} characters):\n{tail}"
    )


def chat_completion(
    endpoint: LlmEndpoint, body: dict[str, Any], client: httpx.Client | None
) -> str:
    """The first choice's message text of a chat completion request; :class:`LlmFixerError`
    with a one-line reason (the key masked) for any failure."""
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    key = endpoint.api_key
    try:
        if client is None:
            with httpx.Client(timeout=endpoint.timeout_s) as own:
                response = own.post(url, json=body, headers=headers)
        else:
            response = client.post(url, json=body, headers=headers, timeout=endpoint.timeout_s)
    except httpx.TimeoutException:
        raise LlmFixerError(
            f"the LLM endpoint {endpoint.base_url} did not answer within {endpoint.timeout_s:g}s"
        ) from None
    except httpx.HTTPError as exc:
        raise LlmFixerError(
            f"cannot reach the LLM endpoint {endpoint.base_url}: "
            f"{_one_line(type(exc).__name__ + ': ' + str(exc), key)}"
        ) from None
    if response.status_code >= 400:
        detail = _error_detail(response)
        suffix = f": {_one_line(detail, key)}" if detail else ""
        raise LlmFixerError(
            f"the LLM endpoint answered HTTP {response.status_code} "
            f"{response.reason_phrase}{suffix}".rstrip()
        )
    try:
        payload = response.json()
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LlmFixerError("the LLM endpoint's answer is not a chat completion") from None
    if not isinstance(content, str):
        raise LlmFixerError("the LLM endpoint's answer has no message content")
    return content


def _error_detail(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return response.text


_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)


def _parse(content: str, params: Mapping[str, ParamValue]) -> Proposal:
    text = content.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except ValueError:
        raise LlmFixerError(
            f"the model's answer is not JSON: {_one_line(content, None)!r}"
        ) from None
    if not isinstance(data, dict):
        raise LlmFixerError("the model's answer is not a JSON object")

    changes = data.get("changes") or {}
    if not isinstance(changes, dict):
        raise LlmFixerError("the model's 'changes' is not an object")
    unknown = sorted(str(name) for name in changes if name not in params)
    if unknown:
        raise LlmFixerError(f"the model proposed unknown parameters: {', '.join(unknown)}")
    not_scalar = sorted(str(name) for name, value in changes.items() if not _is_scalar(value))
    if not_scalar:
        raise LlmFixerError(
            "the model proposed values that are not a string, number or boolean for: "
            + ", ".join(not_scalar)
        )

    command = data.get("command")
    if command is not None and not isinstance(command, str):
        raise LlmFixerError("the model's 'command' is not a string or null")
    if command is not None and not command.strip():
        command = None

    rationale = data.get("rationale")
    if not isinstance(rationale, str) or not rationale.strip():
        raise LlmFixerError("the model's answer has no rationale")
    rationale = rationale.strip()[:MAX_RATIONALE]

    if not changes and command is None:
        raise LlmFixerError(f"the model proposed no change: {_one_line(rationale, None)}")
    return Proposal(changes=dict(changes), command=command, rationale=rationale)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _one_line(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    line = " ".join(text.split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"
