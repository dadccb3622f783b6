"""Mining conversations and failed runs: each pattern, and the hard negatives."""

from __future__ import annotations

from labmind.indexers.lessons import (
    Turn,
    aggregate,
    imported_libraries,
    lesson_id,
    mine_conversation,
    mine_run,
    score,
)
from labmind.indexers.lessons.phrases import complaint, mentions


def chat(*turns: tuple[str, str]) -> list[Turn]:
    return [Turn(str(i), role, text, 1000.0 + i) for i, (role, text) in enumerate(turns)]  # type: ignore[arg-type]


def mine(*turns: tuple[str, str]) -> dict[str, str | None]:
    found = mine_conversation("c", "title", chat(*turns))
    return {e.library: None if e.resolution is None else e.resolution.text for e in found}


def test_import_failure_and_a_replacement_on_the_assistants_advice() -> None:
    found = mine_conversation(
        "c1",
        "Resize images",
        chat(
            ("user", "import cv2 fails:\nImportError: libGL.so.1: cannot open shared object file"),
            ("assistant", "Use Pillow instead:\n```python\nfrom PIL import Image\n```"),
            ("user", "Switched to Pillow, works now."),
        ),
    )
    assert len(found) == 1
    episode = found[0]
    assert episode.library == "opencv-python"
    assert episode.resolution is not None
    assert episode.resolution.kind == "replacement"
    assert episode.resolution.library == "pillow"
    assert episode.resolution.confirmed
    assert episode.ref == "chat:c1#0"
    assert "Resize images" in episode.context


def test_complaints_with_the_library_as_subject() -> None:
    for text in (
        "dlib won't install on my laptop",
        "I can't install detectron2 on Windows",
        "couldn't get pyaudio to build",
        "PyPDF2 is deprecated and breaks on my files",
        "bitsandbytes is broken on Windows",
    ):
        found = mine(("user", text))
        assert len(found) == 1, text


def test_complaints_about_own_code_are_not_lessons() -> None:
    assert mine(("user", "My pandas code doesn't work, the groupby gives NaN")) == {}
    assert mine(("user", "why doesn't my torch model converge?")) == {}


def test_switch_phrases_and_pins_and_workarounds() -> None:
    failure = ("user", "ERROR: Failed building wheel for psycopg2")
    assert mine(failure, ("assistant", "```bash\napt-get install -y libpq-dev\n```")) == {
        "psycopg2": "install system package libpq-dev"
    }
    numpy = ("user", "AttributeError: module 'numpy' has no attribute 'float'")
    assert mine(numpy, ("assistant", "```bash\npip install numpy==1.23.5\n```")) == {
        "numpy": "pin numpy==1.23.5"
    }
    gym = ("user", "The `gym` library is broken since the update")
    assert mine(gym, ("assistant", "Switch to gymnasium, the maintained fork.")) == {
        "gym": "use gymnasium instead"
    }


def test_a_rejected_fix_is_dropped_and_a_later_confirmed_one_wins() -> None:
    found = mine(
        ("user", "ModuleNotFoundError: No module named 'cv2'"),
        ("assistant", "```bash\npip install opencv-python\n```"),
        ("user", "still the same error"),
        ("assistant", "Then use opencv-python-headless instead."),
        ("user", "that fixed it"),
    )
    assert found == {"opencv-python": "use opencv-python-headless instead"}


def test_no_resolution() -> None:
    assert mine(
        ("user", "ERROR: Failed building wheel for detectron2"),
        ("assistant", "Can you share the full log?"),
    ) == {"detectron2": None}


def test_hard_negatives() -> None:
    many_imports = (
        "```python\nimport os\nimport numpy as np\nimport pandas as pd\nimport torch\n"
        "import cv2\nimport sklearn\n```\nTraceback (most recent call last):\n"
        '  File "/x/site-packages/pandas/core/frame.py", line 3761, in __getitem__\n'
        "KeyError: 'label'\nWhy doesn't it work?"
    )
    assert mine(("user", many_imports), ("assistant", "Use df['Label'] instead.")) == {}
    assert mine(("user", "I use torch and numpy. How do I plot the loss?")) == {}
    assert mine(("user", "librosa works great. How do I change the hop length?")) == {}
    assert (
        mine(
            ("user", "Which library reads webcam frames?"),
            ("assistant", "If OpenCV doesn't work, use imageio instead."),
        )
        == {}
    )
    assert mine(("user", "ModuleNotFoundError: No module named 'utils'")) == {}
    assert mine(("assistant", "ModuleNotFoundError: No module named 'cv2' means…")) == {}


def test_tool_output_counts_as_a_failure() -> None:
    assert mine(
        ("user", "load a ViT"),
        ("tool", "ModuleNotFoundError: No module named 'timm'"),
    ) == {"timm": None}


def test_ambiguous_names_need_code_or_a_library_word() -> None:
    assert [m.library for m in mentions("the datasets are large")] == []
    assert [m.library for m in mentions("the `datasets` library")] == ["datasets"]
    assert [m.library for m in mentions("OpenCV and PyTorch")] == ["opencv-python", "torch"]
    text = "cv2 won't install"
    assert complaint(text, mentions(text)[0]) == text


def test_runs_with_import_failures_and_not_others() -> None:
    tail = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'timm'"
    found = mine_run("r1", failure="missing_module", summary=None, log_tail=tail, seen=5.0)
    assert [(e.library, e.ref) for e in found] == [("timm", "run:r1")]
    assert mine_run("r2", failure="cuda_oom", summary=None, log_tail=tail) == []


def test_aggregate_and_score() -> None:
    runs = mine_run(
        "r1",
        failure="import_error",
        summary=None,
        log_tail="    import cv2\nImportError: libGL.so.1: cannot open shared object file",
        seen=10.0,
    )
    chats = mine_conversation(
        "c1",
        "Resize images",
        chat(
            ("user", "import cv2 fails:\nImportError: libGL.so.1: cannot open shared object file"),
            ("assistant", "Use Pillow instead."),
        ),
    )
    lesson = aggregate("opencv-python", [*runs, *chats])
    assert lesson.id == lesson_id("opencv-python")
    assert lesson.count == 2
    assert lesson.resolution == "use pillow instead"
    assert lesson.replacement == "pillow"
    assert (lesson.first_seen, lesson.last_seen) == (10.0, 1000.0)
    assert lesson.confidence > max(e.confidence for e in [*runs, *chats])
    assert score(lesson, "crop and resize a folder of photos") >= 2.0
    assert score(lesson, "cv2 video capture") >= 3.0
    assert score(lesson, "fit a gradient boosting regressor") < 1.0


def test_imported_libraries() -> None:
    source = "import os\nimport cv2\nfrom sklearn.svm import SVC\nfrom . import local\n"
    assert imported_libraries(source) == {"opencv-python": "cv2", "scikit-learn": "sklearn"}
    broken = "import cv2\ndef f(:\n"
    assert imported_libraries(broken) == {"opencv-python": "cv2"}
    notebook = '{"cells": [{"cell_type": "code", "source": ["!pip install x\\n", "import PIL"]}]}'
    assert imported_libraries(notebook, notebook=True) == {"pillow": "PIL"}


def test_a_real_export_without_library_trouble_teaches_nothing() -> None:
    from pathlib import Path

    from labmind.indexers.chats import open_export
    from labmind.indexers.lessons import turns_of

    real = Path(__file__).resolve().parents[2] / "fixtures" / "chats" / "conversations.json"
    for conv in open_export(real).conversations():
        assert mine_conversation(conv.id, conv.title, turns_of(conv)) == []
