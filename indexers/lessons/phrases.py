"""What people write around a library name: complaints, replacements, confirmations.

Everything here reads prose (code fences removed by the caller) and works on library
*mentions*: spans of text that name a library of the curated map. A complaint needs the
library to be the subject ("cv2 won't install", "couldn't get dlib to build"), not a
word next to the user's own code ("my pandas code doesn't work").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .names import AMBIGUOUS, canonical, is_known
from .signatures import NOT_SUBJECTS


@dataclass(frozen=True, slots=True)
class Mention:
    library: str
    start: int
    end: int


_TOKEN = re.compile(r"`?([A-Za-z][A-Za-z0-9_.\-]*[A-Za-z0-9])`?")
_LIBRARY_WORD = re.compile(r"^\W{0,3}(?:library|package|module|lib|wheel)\b", re.IGNORECASE)
_LIBRARY_WORD_BEFORE = re.compile(
    r"(?:library|package|module|pip install|install|import)\s+`?$", re.IGNORECASE
)
_NOT_LIBRARIES: Final = frozenset({"it", "is", "to", "as", "in", "on", "or", "an", "the"})


def mentions(prose: str, installed: frozenset[str] | set[str] = frozenset()) -> list[Mention]:
    """Library names in ``prose``: the curated map's names in any spelling, ambiguous
    ones (``datasets``, ``requests``) only when written as code, called a library, or
    ``installed`` (named by an install command of the same message)."""
    found: list[Mention] = []
    for m in _TOKEN.finditer(prose):
        word = m.group(1)
        if word.lower() in _NOT_LIBRARIES:
            continue
        base = word.split(".")[0] if "." in word and not is_known(word) else word
        name = canonical(base)
        if not is_known(name) or name in NOT_SUBJECTS:
            continue
        if base.lower() in AMBIGUOUS or name in AMBIGUOUS:
            coded = m.group(0).startswith("`") and m.group(0).endswith("`")
            called = bool(
                _LIBRARY_WORD.match(prose[m.end() : m.end() + 12])
                or _LIBRARY_WORD_BEFORE.search(prose[max(0, m.start() - 16) : m.start()])
            )
            if not (coded or called or name in installed):
                continue
        found.append(Mention(name, m.start(), m.end()))
    return found


_NEG = (
    r"(?:doesn'?t|does\s+not|didn'?t|did\s+not|won'?t|will\s+not|can'?t|cannot|couldn'?t|"
    r"could\s+not|isn'?t|is\s+not|refuses\s+to|refused\s+to|fails?\s+to|failed\s+to|"
    r"keeps?\s+failing\s+to)"
)
_VERB = (
    r"(?:work|working|install|build|compile|import|load|run|be\s+installed|be\s+imported|"
    r"be\s+found|find\s+\S+)"
)
_AFTER_COMPLAINT: Final = re.compile(
    r"^`?\s*(?:\([^)]{0,40}\)\s*)?(?:(?:library|package|module|lib)\s+)?"
    r"(?:(?:just|still|really|simply|also|even|now|anymore)\s+)?"
    r"(?:"
    rf"{_NEG}\s+(?:(?:even|seem\s+to|want\s+to|properly|at\s+all)\s+)*{_VERB}"
    r"|(?:is|was|seems|seemed|looks|has\s+been|got|became|are|were)\s+(?:(?:completely|totally|"
    r"just|so|still|now|also)\s+)?(?:broken|deprecated|abandoned|unmaintained|incompatible|"
    r"not\s+compatible|no\s+longer\s+(?:maintained|supported|working)|dead|a\s+nightmare|"
    r"impossible\s+to\s+(?:install|build))"
    r"|(?:install(?:ation)?|import|build|pip\s+install)\s+(?:fails|failed|keeps\s+failing|"
    r"is\s+failing|errors?\s+out|broke|crashes)"
    r"|(?:keeps?\s+)?(?:crash(?:es|ed|ing)?|segfaults?|segfaulted|breaks|broke|fails|failed|"
    r"blows\s+up)(?:\s+(?:on|when|at|during|while)\s+(?:import|install|startup|load))?\b"
    r"|(?:throws|gives(?:\s+me)?|raises|errors?\s+with)\s+(?:an?\s+|the\s+)?[^.\n]{0,30}?"
    r"(?:ImportError|ModuleNotFoundError|import\s+error|DLL|libGL|\.so\b|segfault|"
    r"error\s+on\s+import|build\s+error|install\s+error)"
    r"|(?:no\s+longer|doesn'?t|does\s+not)\s+(?:works?|supports?\s+(?:python|my|the|this))"
    r")",
    re.IGNORECASE,
)
_BEFORE_COMPLAINT: Final = re.compile(
    r"(?:"
    r"(?:can'?t|cannot|couldn'?t|could\s+not|unable\s+to|failed\s+to|fail\s+to|impossible\s+to|"
    r"never\s+managed\s+to)\s+(?:get\s+|make\s+)?(?:pip\s+)?(?:install|import|build|compile|load)"
    r"|(?:errors?|problems?|trouble|issues?)\s+(?:when\s+|while\s+)?(?:installing|importing|"
    r"building|compiling|loading)"
    r"|gave\s+up\s+on|giving\s+up\s+on|fighting\s+with|struggling\s+with"
    r")\s+(?:the\s+)?(?:latest\s+)?`?$",
    re.IGNORECASE,
)
_GET_TO_WORK: Final = re.compile(
    r"(?:can'?t|cannot|couldn'?t|could\s+not|unable\s+to|never\s+managed\s+to)\s+(?:get|make)\s+"
    r"`?$",
    re.IGNORECASE,
)
_TO_WORK: Final = re.compile(r"^`?\s+(?:to\s+)?(?:work|install|build|import|run|load)\b", re.I)
_OWN_THING: Final = re.compile(
    r"^`?\s*(?:code|script|function|dataframe|df|model|loop|query|plot|pipeline|program|app|"
    r"training|implementation|snippet|notebook|class|project|call|example|tutorial|docs|"
    r"documentation|version\s+of\s+my|groupby|merge|join|tensor|array)s?\b",
    re.IGNORECASE,
)


def complaint(prose: str, mention: Mention) -> str | None:
    """The sentence in which the user says ``mention``'s library failed, if they do."""
    after = prose[mention.end : mention.end + 90]
    before = prose[max(0, mention.start - 70) : mention.start]
    if _OWN_THING.match(after):
        return None
    hit = (
        _AFTER_COMPLAINT.match(after)
        or _BEFORE_COMPLAINT.search(before)
        or (_GET_TO_WORK.search(before) and _TO_WORK.match(after))
    )
    if not hit:
        return None
    return _sentence(prose, mention.start, mention.end)


_REPLACE_BEFORE: Final = re.compile(
    r"(?:"
    r"(?:use|using|try|trying|switch(?:ed|ing)?(?:\s+over)?\s+to|go(?:ing)?\s+with|went\s+with|"
    r"mov(?:e|ed|ing)\s+to|migrat(?:e|ed|ing)\s+to|replac(?:e|ed|ing)\s+(?:it|them|that|\S+)\s+"
    r"with|recommend(?:ing)?(?:\s+using)?|suggest(?:ing)?(?:\s+using)?|stick\s+(?:to|with)|"
    r"opt\s+for|rely\s+on|ended\s+up\s+(?:using|with)|settled\s+on|"
    r"(?:better|good|simpler|lighter|maintained)\s+(?:alternative|option|choice)\s+(?:is|would\s+be)"
    r"|alternative(?:ly)?\s*(?:is|:|,)?"
    r")\s+(?:the\s+)?(?:official\s+)?(?:\w+\s+)?"
    r")`?$",
    re.IGNORECASE,
)
_REPLACE_AFTER: Final = re.compile(
    r"^`?\s*(?:\([^)]{0,40}\)\s*)?(?:library|package|module)?\s*,?\s*(?:instead|rather\s+than|"
    r"in\s+place\s+of|as\s+an?\s+(?:replacement|alternative|drop-in)|is\s+an?\s+(?:drop-in\s+)?"
    r"(?:replacement|alternative)|works?\s+(?:fine|great|perfectly|now|instead|for\s+me)|"
    r"worked(?:\s+(?:fine|great|perfectly|instead|for\s+me))?\b)",
    re.IGNORECASE,
)
_STRONG_BEFORE: Final = re.compile(
    r"(?:switch|mov|migrat|replac|instead|alternative|ended\s+up|settled|went\s+with)",
    re.IGNORECASE,
)
_DONT: Final = re.compile(
    r"(?:don'?t|do\s+not|never|avoid|not|stop)\s+(?:\w+\s+){0,2}$", re.IGNORECASE
)


def replacement(prose: str, mention: Mention) -> bool | None:
    """Whether ``mention`` is offered as what to use instead: True for a clear switch
    ("use Y instead", "switch to Y", "replace X with Y"), False for a plain suggestion
    ("try Y"), None when it is not offered at all."""
    after = prose[mention.end : mention.end + 60]
    before = prose[max(0, mention.start - 70) : mention.start]
    if _DONT.search(before[-30:]):
        return None
    strong_after = bool(_REPLACE_AFTER.match(after))
    lead = _REPLACE_BEFORE.search(before)
    if lead and _STRONG_BEFORE.search(lead.group(0)):
        return True
    if strong_after:
        return True
    if lead:
        return False
    return None


CONFIRM: Final = re.compile(
    r"\b(?:(?:it|that|this|everything)\s+(?:now\s+)?works|works\s+(?:now|great|perfectly|fine)|"
    r"worked(?:\s+(?:great|perfectly|fine|like\s+a\s+charm))?|working\s+now|that\s+(?:fixed|"
    r"solved|did)\s+it|fixed\s+it|problem\s+solved|runs?\s+(?:fine\s+)?now|installed\s+"
    r"(?:fine|without\s+(?:errors?|problems?))|no\s+more\s+errors?)\b",
    re.IGNORECASE,
)
REJECT: Final = re.compile(
    r"\b(?:still\s+(?:doesn'?t|does\s+not|not|fails|failing|broken|get(?:ting)?|the\s+same|"
    r"crash\w*|errors?)|same\s+error|didn'?t\s+(?:work|help|fix)|doesn'?t\s+(?:work|help|fix)|"
    r"did\s+not\s+(?:work|help)|no\s+luck|another\s+error|new\s+error|now\s+i\s+get)\b",
    re.IGNORECASE,
)


def _sentence(text: str, start: int, end: int) -> str:
    left = max(text.rfind(c, 0, start) for c in ".!?\n") + 1
    rights = [i for i in (text.find(c, end) for c in ".!?\n") if i >= 0]
    right = min(rights) if rights else len(text)
    return " ".join(text[left:right].split())[:200]
