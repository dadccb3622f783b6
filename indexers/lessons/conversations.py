"""Lessons from one conversation: a library failed, and what was done instead.

A failure is seen in the user's or a tool's messages: an error signature
(``signatures.failures_in``) or a complaint with the library as its subject
(``phrases.complaint``). Assistants' messages never count as failures (they quote errors
to explain them, and say "if X doesn't work…"). After the first failure of a library,
later messages are read for what resolved it, in this order of preference: a
replacement library, a version pin, a workaround (a system package, another index or
channel, an environment variable), an upgrade, or a plain install of the missing
package. A resolution the user then rejects ("still the same error") is dropped; one
the user confirms ("that worked") wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ..chats.codeblocks import split_fenced
from ..chats.model import Conversation
from .model import Episode, Resolution, Turn
from .names import canonical, import_names, is_known
from .phrases import CONFIRM, REJECT, complaint, mentions, replacement
from .signatures import NOT_SUBJECTS, PIP_INSTALL, Failure, failures_in, installed_names

CONTEXT_CHARS: Final = 400

_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
_PIN = re.compile(
    r"(?:pip3?|python3? -m pip|uv pip|conda|mamba)\s+install\s+(?:-\S+\s+)*"
    r"[\"']?([A-Za-z][\w.\-]*)(?:\[[\w,\-]+\])?\s*(==|<=|<|~=|>=|=)\s*([\w.*]+)[\"']?"
)
_PIN_PROSE = re.compile(
    r"(?:downgrad(?:e|ed|ing)|pin(?:ned|ning)?|roll(?:ed)?\s+back|go\s+back)\s+`?"
    r"([A-Za-z][\w.\-]*)`?\s+to\s+(?:version\s+)?`?v?(\d+(?:\.[\w*]+)*)",
    re.IGNORECASE,
)
_UPGRADE = re.compile(
    r"(?:pip3?|python3? -m pip)\s+install\s+(?:-\S+\s+)*(?:-U|--upgrade)\s+(?:-\S+\s+)*"
    r"([A-Za-z][\w.\-]*)"
)
_APT = re.compile(r"(?:sudo\s+)?(?:apt(?:-get)?|yum|dnf|brew)\s+install\s+(?:-y\s+)?([^\n`;&|]+)")
_CONDA_FORGE = re.compile(r"conda\s+install\s+(?:-y\s+)?-c\s+conda-forge\s+([A-Za-z][\w.\-]*)")
_INDEX_URL = re.compile(r"pip3?\s+install[^\n`]*--(?:extra-)?index-url\s+(\S+)")
_ENV = re.compile(r"(?:^|\s)export\s+([A-Z][A-Z0-9_]+)=(\S+)", re.MULTILINE)


@dataclass(slots=True)
class _Open:
    """A library's failure in this conversation and the resolutions offered so far."""

    failure: Failure
    turn: Turn
    candidates: list[tuple[str, Resolution]] = field(default_factory=list)
    """(the id of the turn that offered it, the resolution), in order."""
    chosen: Resolution | None = None
    failures: int = 1


def turns_of(conversation: Conversation) -> list[Turn]:
    """The displayed path of a parsed conversation, as mining reads it."""
    return [Turn(m.id, m.role, m.text, m.created) for m in conversation.displayed]


def mine_conversation(conversation_id: str, title: str, turns: Sequence[Turn]) -> list[Episode]:
    """The episodes of library trouble in a conversation's displayed path."""
    installed = installed_names(t.text for t in turns)
    episodes: dict[str, _Open] = {}
    for index, turn in enumerate(turns):
        prose, _ = split_fenced(turn.text)
        if turn.role in ("user", "tool"):
            new = _failures(turn, prose, installed)
            for fail in new:
                open_ = episodes.get(fail.library)
                if open_ is None:
                    episodes[fail.library] = _Open(fail, turn)
                else:
                    open_.failures += 1
            if turn.role == "user":
                _judge(episodes, prose, {f.library for f in new})
        _offer(episodes, turn, prose, first_reply=_first_reply(turns, index))
    return [
        _episode(conversation_id, title, open_, turns)
        for open_ in episodes.values()
        if open_.failure.library not in NOT_SUBJECTS
    ]


def _failures(turn: Turn, prose: str, installed: set[str]) -> list[Failure]:
    found = {f.library: f for f in failures_in(turn.text, installed)}
    if turn.role != "user":
        return list(found.values())
    own_bug = not found and _TRACEBACK.search(turn.text) is not None
    if own_bug:
        return []
    for mention in mentions(prose):
        if mention.library in found:
            continue
        said = complaint(prose, mention)
        if said is not None:
            found[mention.library] = Failure(mention.library, f"reported: {said}", 0.5)
    return list(found.values())


def _first_reply(turns: Sequence[Turn], index: int) -> bool:
    """Whether ``turns[index]`` is the first assistant answer after a user's message."""
    return (
        turns[index].role == "assistant" and index > 0 and turns[index - 1].role in ("user", "tool")
    )


def _judge(episodes: dict[str, _Open], prose: str, failed_again: set[str]) -> None:
    """A user's message after resolutions were offered: confirm or reject them."""
    for library, open_ in episodes.items():
        if not open_.candidates or open_.chosen is not None:
            continue
        if library in failed_again or REJECT.search(prose):
            open_.candidates.clear()
        elif CONFIRM.search(prose):
            turn = open_.candidates[-1][0]
            latest = [r for t, r in open_.candidates if t == turn]
            best = min(latest, key=lambda r: _ORDER[r.kind])
            open_.chosen = Resolution(best.kind, best.text, best.library, confirmed=True)


def _offer(episodes: dict[str, _Open], turn: Turn, prose: str, *, first_reply: bool) -> None:
    """Resolutions that ``turn`` offers for the failures seen before it."""
    live = [o for o in episodes.values() if o.turn is not turn and o.chosen is None]
    if not live:
        return
    for open_ in live:
        found = _resolutions(open_.failure.library, turn, prose, first_reply=first_reply)
        if found:
            open_.candidates.extend((turn.id, r) for r in found)
            if turn.role == "user" and any(r.confirmed for r in found):
                open_.chosen = next(r for r in found if r.confirmed)


def _resolutions(library: str, turn: Turn, prose: str, *, first_reply: bool) -> list[Resolution]:
    text = turn.text
    out: list[Resolution] = []
    confirmed = turn.role == "user" and CONFIRM.search(prose) is not None
    strong: list[str] = []
    weak: list[str] = []
    for mention in mentions(prose, installed_names([text])):
        if mention.library == library or mention.library in NOT_SUBJECTS:
            continue
        verdict = replacement(prose, mention)
        if verdict is True:
            strong.append(mention.library)
        elif verdict is False:
            weak.append(mention.library)
    for name in installed_names([text]):
        if name != library and import_names(name) & import_names(library):
            strong.append(name)
    if not strong and weak and (first_reply or turn.role == "user"):
        strong = weak[:1]
    for name in dict.fromkeys(strong):
        out.append(Resolution("replacement", f"use {name} instead", name, confirmed))
    for m in _PIN.finditer(text):
        name = canonical(m.group(1))
        if name in NOT_SUBJECTS or not is_known(name):
            continue
        op = "==" if m.group(2) == "=" else m.group(2)
        out.append(Resolution("pin", f"pin {name}{op}{m.group(3)}", name, confirmed))
    for m in _PIN_PROSE.finditer(prose):
        name = canonical(m.group(1))
        if is_known(name) and name not in NOT_SUBJECTS:
            text_ = f"pin {name}=={m.group(2)}"
            if not any(r.kind == "pin" and r.library == name for r in out):
                out.append(Resolution("pin", text_, name, confirmed))
    for m in _APT.finditer(text):
        packages = " ".join(w for w in m.group(1).split() if not w.startswith("-"))[:80]
        if packages:
            out.append(Resolution("workaround", f"install system package {packages}", None))
    for m in _CONDA_FORGE.finditer(text):
        name = canonical(m.group(1))
        out.append(Resolution("workaround", f"install {name} from conda-forge", name, confirmed))
    for m in _INDEX_URL.finditer(text):
        out.append(Resolution("workaround", f"install from {m.group(1)}", library, confirmed))
    for m in _ENV.finditer(text):
        out.append(Resolution("workaround", f"set {m.group(1)}={m.group(2)}", None, confirmed))
    for m in _UPGRADE.finditer(text):
        if canonical(m.group(1)) == library:
            out.append(Resolution("upgrade", f"upgrade {library}", library, confirmed))
    if not out:
        for m in PIP_INSTALL.finditer(text):
            names = installed_names([m.group(0)])
            if library in names and not re.search(r"[<>=~]", m.group(1)):
                out.append(Resolution("install", f"pip install {library}", library, confirmed))
                break
    return out


_ORDER: Final = {"replacement": 0, "pin": 1, "workaround": 2, "upgrade": 3, "install": 4}


def _choose(open_: _Open) -> Resolution | None:
    if open_.chosen is not None:
        return open_.chosen
    if not open_.candidates:
        return None
    return min((r for _, r in open_.candidates), key=lambda r: _ORDER[r.kind])


def _episode(conversation_id: str, title: str, open_: _Open, turns: Sequence[Turn]) -> Episode:
    resolution = _choose(open_)
    confidence = open_.failure.strength
    if resolution is not None:
        confidence += 0.2 if resolution.kind in ("replacement", "pin") else 0.1
        if resolution.confirmed:
            confidence += 0.15
    if open_.failures > 1:
        confidence += 0.05
    user_words = " ".join(split_fenced(t.text)[0] for t in turns if t.role == "user")
    context = " ".join(f"{title} {user_words}".split())[:CONTEXT_CHARS]
    return Episode(
        library=open_.failure.library,
        symptom=open_.failure.symptom,
        ref=f"chat:{conversation_id}#{open_.turn.id}",
        confidence=round(min(confidence, 0.95), 3),
        resolution=resolution,
        seen=open_.turn.created,
        context=context,
    )
