"""Lesson mining: precision and recall on a labelled set of chats in the ChatGPT format.

The set (tests/fixtures/lessons) holds conversations in which a library failed — with a
replacement, a version pin, a workaround, an upgrade or install, or no resolution — and
hard negatives: libraries merely mentioned, code with many imports, errors in the
user's own code, questions about libraries that worked. Each conversation is read with
labmind's export reader and mined with the rules (offline, no LLM).

A predicted lesson is a (conversation, library) pair; it is right when the labels have
the same pair. The resolution is right when its kind matches the label and, for a
replacement, pin, upgrade or install, so does the package it names; "none" is right
when the label has no resolution either.

    python -m bench.lessons [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from labmind.indexers.chats import open_export
from labmind.indexers.lessons import Episode, mine_conversation, turns_of

from .report import print_table

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "lessons"


def _resolution_right(episode: Episode, expected: dict[str, Any] | None) -> bool:
    got = episode.resolution
    if expected is None or got is None:
        return expected is None and got is None
    if got.kind != expected["kind"]:
        return False
    return expected.get("library") is None or got.library == expected["library"]


def _text(episode: Episode) -> str | None:
    return None if episode.resolution is None else episode.resolution.text


def evaluate(folder: Path = FIXTURES) -> dict[str, Any]:
    labels: dict[str, Any] = json.loads((folder / "labels.json").read_text())
    export = open_export(folder / "conversations.json")
    started = time.perf_counter()
    predicted: dict[tuple[str, str], Episode] = {}
    conversations = 0
    for conv in export.conversations():
        conversations += 1
        for episode in mine_conversation(conv.id, conv.title, turns_of(conv)):
            predicted[(conv.id, episode.library)] = episode
    took = time.perf_counter() - started
    expected = {
        (cid, item["library"]): item["resolution"]
        for cid, label in labels.items()
        for item in label["lessons"]
    }
    right = [key for key in predicted if key in expected]
    wrong = sorted(
        f"{labels[c]['title']}: {lib}" for c, lib in predicted if (c, lib) not in expected
    )
    missed = sorted(
        f"{labels[c]['title']}: {lib}" for c, lib in expected if (c, lib) not in predicted
    )
    resolved_right = [k for k in right if _resolution_right(predicted[k], expected[k])]
    with_fix = [k for k in predicted if predicted[k].resolution is not None]
    fix_right = [
        k for k in with_fix if k in expected and _resolution_right(predicted[k], expected[k])
    ]
    expected_fix = [k for k, v in expected.items() if v is not None]
    fix_found = [
        k for k in expected_fix if k in predicted and _resolution_right(predicted[k], expected[k])
    ]
    wrong_fix = sorted(
        f"{labels[c]['title']}: {lib} -> {_text(predicted[(c, lib)])}"
        for c, lib in right
        if (c, lib) not in resolved_right
    )
    negatives = [cid for cid, label in labels.items() if not label["lessons"]]
    return {
        "conversations": conversations,
        "positive_conversations": len(labels) - len(negatives),
        "negative_conversations": len(negatives),
        "expected_lessons": len(expected),
        "predicted_lessons": len(predicted),
        "precision": len(right) / len(predicted) if predicted else 1.0,
        "recall": len(right) / len(expected) if expected else 1.0,
        "resolution_accuracy": len(resolved_right) / len(right) if right else 1.0,
        "resolution_precision": len(fix_right) / len(with_fix) if with_fix else 1.0,
        "resolution_recall": len(fix_found) / len(expected_fix) if expected_fix else 1.0,
        "resolutions_predicted": sorted(f"{c}:{lib}" for c, lib in with_fix),
        "resolutions_expected": sorted(f"{c}:{lib}" for c, lib in expected_fix),
        "negatives_with_a_lesson": sum(1 for c in negatives if any(k[0] == c for k in predicted)),
        "mining_ms_per_conversation": 1000 * took / max(conversations, 1),
        "false_lessons": wrong,
        "missed_lessons": missed,
        "wrong_resolutions": wrong_fix,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    result = evaluate()
    rows = {
        "lesson extraction": {
            "precision": result["precision"],
            "recall": result["recall"],
            "predicted": result["predicted_lessons"],
            "expected": result["expected_lessons"],
        },
        "resolution field": {
            "precision": result["resolution_precision"],
            "recall": result["resolution_recall"],
            "predicted": sum(1 for _ in result["resolutions_predicted"]),
            "expected": sum(1 for _ in result["resolutions_expected"]),
        },
    }
    title = (
        f"Lesson mining, {result['conversations']} labelled conversations "
        f"({result['positive_conversations']} with library trouble, "
        f"{result['negative_conversations']} hard negatives)"
    )
    print_table(title, rows)
    print(
        f"\nresolution right for {result['resolution_accuracy']:.3f} of the right lessons; "
        f"{result['negatives_with_a_lesson']} hard negatives produced a lesson; "
        f"{result['mining_ms_per_conversation']:.2f} ms per conversation"
    )
    for key in ("false_lessons", "missed_lessons", "wrong_resolutions"):
        for line in result[key]:
            print(f"{key.replace('_', ' ')}: {line}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
