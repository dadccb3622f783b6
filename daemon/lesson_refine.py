"""The optional LLM pass over mined lessons (``lessons.llm_refine``, off by default).

It asks the experiments' OpenAI-compatible endpoint (``experiments.llm_base_url``,
``llm_model``, the key from the keyring for the endpoint's host) whether each episode
that rule-based mining found in a conversation really is a library failing, and lets it
correct the resolution. The model sees the notes and the messages they were found in
(with the replies after them), redacted; never the whole chat, never a credential.

It only removes episodes or rewrites their resolution. When the endpoint fails (cannot
be reached, does not answer in time, answers an HTTP error) or the model answers
something that is not the expected JSON, the rule-based episodes stand as they are and
one line says why. After an endpoint failure the rest of that mining pass is rules only,
so an endpoint that is down costs one timeout per pass, not one per conversation.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final

import httpx

from labmind.indexers.lessons import Episode, Resolution, ResolutionKind, Turn, canonical
from labmind.trainers.llm_fixer import LlmEndpoint, LlmFixerError, chat_completion

from .backup.credentials import CredentialSource, KeyringCredentials
from .config import Config
from .experiment_advice import endpoint_for
from .redaction import redact

log = logging.getLogger("labmind.lessons")

MAX_CHARS: Final = 8000
"""Characters of chat excerpts sent with one conversation's notes."""
TURN_CHARS: Final = 1500
"""Characters kept of one message."""
BEFORE: Final = 1
AFTER: Final = 3
"""Messages sent before and after each message a note was found in."""
RESOLUTION_CHARS: Final = 200

SYSTEM_PROMPT = """\
You check notes mined from a researcher's chat with an AI assistant. Each note claims \
that a Python library failed for the user (would not install, import or load, broke, \
was deprecated) and names what replaced it. Drop notes where the library did not fail \
(it was only mentioned, or the error was a bug in the user's own code). For kept notes, \
give the resolution in a few words ("use pillow instead", "pin numpy<2"), or null.
Answer with one JSON object and nothing else:
{"keep": [{"library": "<as given>", "resolution": null or "<text>", \
"replacement": null or "<pip name>"}]}"""

_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)```", re.DOTALL | re.IGNORECASE)
_PACKAGE = re.compile(r"\b(?:pin|upgrade|install|downgrade)\s+([A-Za-z][\w.\-]*)", re.I)
_INSTALL = re.compile(r"(?:pip3?\s+)?install\s+[A-Za-z][\w.\-]*(?:\[[\w,\-]+\])?", re.I)
"""``pip install X``: the missing package itself (anything more is a workaround)."""


class RefineError(Exception):
    """The model's answer cannot be used; the one-line message says why."""


class LessonRefiner:
    """A `Refiner` for one mining pass: asks the endpoint about each conversation's
    episodes until the endpoint fails once, then hands back the rules' episodes. The
    endpoint (and its key) is looked up when first asked."""

    def __init__(
        self, endpoint: Callable[[], LlmEndpoint], client: httpx.Client | None = None
    ) -> None:
        self._lookup = endpoint
        self._endpoint: LlmEndpoint | None = None
        self.client = client
        self.failure: str | None = None
        """Why the endpoint failed in this pass (then it is not asked again)."""

    @property
    def endpoint(self) -> LlmEndpoint:
        if self._endpoint is None:
            self._endpoint = self._lookup()
        return self._endpoint

    def __call__(self, title: str, episodes: list[Episode], turns: list[Turn]) -> list[Episode]:
        if self.failure is not None or not episodes:
            return episodes
        try:
            return refine_episodes(self.endpoint, title, episodes, turns, self.client)
        except LlmFixerError as exc:
            self.failure = str(exc)
            log.warning(
                "LLM check of lessons failed, keeping the rules' lessons (not asking again "
                "until the next mining pass): %s",
                self.failure,
            )
        except RefineError as exc:
            log.warning(
                "LLM check of lessons in chat “%s” failed, keeping the rules' lessons: %s",
                _one_line(title, 80),
                exc,
            )
        return episodes


def refiner_for(
    config: Config,
    credentials: CredentialSource | None = None,
    *,
    timeout_s: float | None = None,
) -> LessonRefiner | None:
    """The LLM pass when it is switched on and an endpoint is configured, else None."""
    if not config.lessons.llm_refine:
        return None
    exp = config.experiments
    if not (exp.llm_base_url and exp.llm_model):
        return None

    def endpoint() -> LlmEndpoint:
        found = endpoint_for(exp, credentials or KeyringCredentials())
        return found if timeout_s is None else replace(found, timeout_s=timeout_s)

    return LessonRefiner(endpoint)


def refine_episodes(
    endpoint: LlmEndpoint,
    title: str,
    episodes: Sequence[Episode],
    turns: Sequence[Turn],
    client: httpx.Client | None = None,
) -> list[Episode]:
    """The episodes the model keeps, with its resolutions; raises `LlmFixerError` when
    the endpoint fails and `RefineError` when its answer is unusable."""
    body = {
        "model": endpoint.model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question(title, episodes, turns)},
        ],
        "response_format": {"type": "json_object"},
        "temperature": 0,
    }
    content = chat_completion(endpoint, body, client)
    return apply_answer(episodes, parse_answer(content))


def question(title: str, episodes: Sequence[Episode], turns: Sequence[Turn]) -> str:
    """What the model is asked: the notes, and the messages they were found in."""
    notes = [
        {
            "library": e.library,
            "symptom": redact(e.symptom),
            "resolution": None if e.resolution is None else redact(e.resolution.text),
        }
        for e in episodes
    ]
    return (
        f"Chat title: {redact(title)}\n\n"
        f"Notes:\n{json.dumps(notes, ensure_ascii=False)}\n\n"
        f"Chat (the messages the notes were found in, and the replies after them):\n"
        f"{evidence(episodes, turns)}"
    )


def evidence(episodes: Sequence[Episode], turns: Sequence[Turn]) -> str:
    """The turns around each episode's message, in chat order, redacted and bounded."""
    index = {t.id: i for i, t in enumerate(turns)}
    wanted: set[int] = set()
    for e in episodes:
        at = index.get(e.ref.partition("#")[2])
        if at is not None:
            wanted.update(range(max(0, at - BEFORE), min(len(turns), at + AFTER + 1)))
    if not wanted:
        wanted = set(range(min(len(turns), BEFORE + AFTER + 1)))
    parts: list[str] = []
    previous = -1
    for i in sorted(wanted):
        if previous >= 0 and i != previous + 1:
            parts.append("[…]")
        text = turns[i].text
        if len(text) > TURN_CHARS:
            text = text[:TURN_CHARS] + " […]"
        parts.append(f"[{turns[i].role}] {redact(text)}")
        previous = i
    chat = "\n\n".join(parts)
    return chat if len(chat) <= MAX_CHARS else chat[:MAX_CHARS] + " […]"


def parse_answer(content: str) -> dict[str, dict[str, Any]]:
    """The model's verdicts by library (pip name); `RefineError` when the answer is not
    ``{"keep": [{"library": …}, …]}``."""
    text = content.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        answer: Any = json.loads(text)
    except ValueError:
        raise RefineError(f"the model's answer is not JSON: {_one_line(content)!r}") from None
    keep = answer.get("keep") if isinstance(answer, dict) else None
    if not isinstance(keep, list):
        raise RefineError(f'the model\'s answer has no "keep" list: {_one_line(content)!r}')
    verdicts: dict[str, dict[str, Any]] = {}
    for item in keep:
        library = item.get("library") if isinstance(item, dict) else None
        if not isinstance(library, str) or not library.strip():
            raise RefineError(
                f'an entry of the model\'s "keep" names no library: {_one_line(str(item))!r}'
            )
        verdicts[canonical(library.strip())] = item
    return verdicts


def apply_answer(episodes: Sequence[Episode], verdicts: dict[str, dict[str, Any]]) -> list[Episode]:
    """Drop the episodes the model did not keep; take the resolutions it rewrote."""
    out: list[Episode] = []
    for e in episodes:
        verdict = verdicts.get(e.library)
        if verdict is None:
            continue
        resolution = _resolution(e, verdict)
        out.append(e if resolution is e.resolution else replace(e, resolution=resolution))
    return out


def _resolution(episode: Episode, verdict: dict[str, Any]) -> Resolution | None:
    """The model's resolution for ``episode``; the rules' one when it gives none or the same."""
    current = episode.resolution
    raw = verdict.get("resolution")
    text = " ".join(raw.split()).rstrip(".")[:RESOLUTION_CHARS] if isinstance(raw, str) else ""
    if not text or (current is not None and current.text.lower() == text.lower()):
        return current
    repl = verdict.get("replacement")
    replacement = canonical(repl.strip()) if isinstance(repl, str) and repl.strip() else None
    if replacement == episode.library:
        replacement = None
    if (
        replacement is None
        and current is not None
        and current.kind == "replacement"
        and current.library
        and current.library.lower() in text.lower()
    ):
        replacement = current.library
    kind, library = _kind(text, replacement)
    confirmed = current is not None and current.confirmed
    return Resolution(kind, text, library, confirmed)


def _kind(text: str, replacement: str | None) -> tuple[ResolutionKind, str | None]:
    """What sort of resolution ``text`` is, and the library it names."""
    if replacement is not None:
        return "replacement", replacement
    lowered = text.lower()
    named = _PACKAGE.search(text)
    package = canonical(named.group(1)) if named else None
    if lowered.startswith(("pin ", "downgrade ")):
        return "pin", package
    if lowered.startswith("upgrade "):
        return "upgrade", package
    if _INSTALL.fullmatch(text):
        return "install", package
    return "workaround", None


def _one_line(text: str, most: int = 160) -> str:
    line = " ".join(redact(text).split())
    return line if len(line) <= most else line[: most - 1] + "…"
