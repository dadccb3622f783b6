"""Masking what looks like a credential in text that leaves the daemon (notifications).

A log tail can hold whatever a training script printed: URLs with a password in them,
``WANDB_API_KEY=…``, a Hugging Face or GitHub token. The patterns below replace the
secret part with ``***`` and keep the rest, so the line still says what happened.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_TOKENS = re.compile(
    r"\b(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|sk-[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic and other OpenAI-compatible APIs
    r"|hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"  # JWT
    r")"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+)(?=[\w.~+/=-]*\d)[\w.~+/=-]{12,}")
"""``Authorization: Bearer …``; the credential has a digit in it, a word after "token" not."""
_KEYWORD = (
    r"(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
)
_VALUE = r"([\"']?)([^\s\"',;]{4,})"
_ASSIGNMENT = re.compile(rf"(?i)\b([\w.-]*{_KEYWORD}[\w.-]*[\"']?\s*=\s*){_VALUE}")
"""``WANDB_API_KEY=…``, ``password = "…"``."""
_LABELLED = re.compile(
    rf"(?i)\b((?:(?=[\w.-]*[_-])[\w.-]*{_KEYWORD}[\w.-]*|[\w-]*passw(?:or)?d)[\"']?\s*:\s*)"
    + _VALUE
)
"""``api_key: …``, ``db password: …``; a bare word before a colon (``secret: .env``) is
prose more often than a secret."""

_NUMBER = re.compile(r"[-+]?[0-9][0-9_.,]*(?:e[-+]?[0-9]+)?", re.I)
_NOT_SECRETS = frozenset({"none", "null", "true", "false", "unset", "<redacted>"})


def redact(text: str) -> str:
    """``text`` with credentials, tokens and private keys replaced by ``***``."""
    text = _PRIVATE_KEY.sub(MASK, text)
    text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
    text = _TOKENS.sub(MASK, text)
    text = _BEARER.sub(rf"\1\2{MASK}", text)
    text = _ASSIGNMENT.sub(_mask_value, text)
    return _LABELLED.sub(_mask_value, text)


def _mask_value(match: re.Match[str]) -> str:
    value = match.group(3)
    if value == MASK or value.lower() in _NOT_SECRETS or _NUMBER.fullmatch(value):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{MASK}"
