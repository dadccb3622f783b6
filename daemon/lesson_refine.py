"""The optional LLM pass over mined lessons (``lessons.llm_refine``, off by default).

It asks the experiments' OpenAI-compatible endpoint (``experiments.llm_base_url``,
``llm_model``, the key from the keyring) whether each episode that rule-based mining
found in a conversation really is a library failing, and lets it correct the resolution.
It only removes episodes or rewrites their resolution; when the endpoint fails, the
rule-based episodes stand as they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from labmind.indexers.lessons import Episode, Resolution, ResolutionKind, Turn, canonical
from labmind.trainers.llm_fixer import LlmEndpoint

from .backup.credentials import CredentialSource, KeyringCredentials
from .config import Config
from .experiment_advice import endpoint_for
from .lessons import Refiner

log = logging.getLogger("labmind.lessons")

MAX_CHARS = 8000

SYSTEM_PROMPT = """\
You check notes mined from a researcher's chat with an AI assistant. Each note claims \
that a Python library failed for the user (would not install, import or load, broke, \
was deprecated) and names what replaced it. Drop notes where the library did not fail \
(it was only mentioned, or the error was a bug in the user's own code). For kept notes, \
give the resolution in a few words ("use pillow instead", "pin numpy<2"), or null.
Answer with one JSON object and nothing else:
{"keep": [{"library": "<as given>", "resolution": null or "<text>", \
"replacement": null or "<pip name>"}]}"""


def refiner_for(config: Config, credentials: CredentialSource | None = None) -> Refiner | None:
    """The LLM pass when it is switched on and an endpoint is configured, else None."""
    if not config.lessons.llm_refine:
        return None
    exp = config.experiments
    if not (exp.llm_base_url and exp.llm_model):
        return None
    endpoint = endpoint_for(exp, credentials or KeyringCredentials())

    def refine(title: str, episodes: list[Episode], turns: list[Turn]) -> list[Episode]:
        try:
            return refine_episodes(endpoint, title, episodes, turns)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("the LLM pass over lessons failed, keeping the rules' answer: %s", exc)
            return episodes

    return refine


def refine_episodes(
    endpoint: LlmEndpoint,
    title: str,
    episodes: Sequence[Episode],
    turns: Sequence[Turn],
    client: httpx.Client | None = None,
) -> list[Episode]:
    notes = [
        {
            "library": e.library,
            "symptom": e.symptom,
            "resolution": None if e.resolution is None else e.resolution.text,
        }
        for e in episodes
    ]
    chat = "\n\n".join(f"[{t.role}] {t.text}" for t in turns)[-MAX_CHARS:]
    body = {
        "model": endpoint.model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": f"Chat title: {title}\n\nNotes:\n{json.dumps(notes)}\n\nChat:\n{chat}",
            },
        ],
        "response_format": {"type": "json_object"},
        "temperature": 0,
    }
    headers = {"Content-Type": "application/json"}
    if endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    if client is None:
        with httpx.Client(timeout=endpoint.timeout_s) as own:
            response = own.post(url, json=body, headers=headers)
    else:
        response = client.post(url, json=body, headers=headers, timeout=endpoint.timeout_s)
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    answer: Any = json.loads(content)
    kept = {str(k["library"]): k for k in answer["keep"] if isinstance(k, dict)}
    out: list[Episode] = []
    for e in episodes:
        verdict = kept.get(e.library)
        if verdict is None:
            continue
        text = verdict.get("resolution")
        if isinstance(text, str) and text.strip():
            repl = verdict.get("replacement")
            kind: ResolutionKind = "replacement" if isinstance(repl, str) and repl else "workaround"
            if e.resolution is not None and e.resolution.text == text.strip():
                out.append(e)
                continue
            library = canonical(repl) if isinstance(repl, str) and repl else None
            out.append(replace(e, resolution=Resolution(kind, text.strip()[:200], library)))
        else:
            out.append(e)
    return out
