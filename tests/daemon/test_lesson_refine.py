"""The LLM pass over mined lessons, switched on as a user does, against a real
OpenAI-compatible HTTP endpoint on loopback: what it is asked, what its answer changes,
and that a failing endpoint leaves the rules' lessons as they were with one log line."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon.backup.credentials import KeyringCredentials
from labmind.daemon.chat_chunks import conversation_update
from labmind.daemon.chat_store import ChatStore
from labmind.daemon.config import Config, load_config, set_value
from labmind.daemon.lesson_refine import apply_answer, parse_answer, question, refiner_for
from labmind.daemon.lessons import LessonService, Refiner
from labmind.daemon.protocol import LessonInfo
from labmind.daemon.provenance import Linker
from labmind.daemon.store import Store
from labmind.indexers.chats import open_export
from labmind.indexers.lessons import Episode, Resolution, Turn

from ..trainers.chat_server import ChatServer, Received
from .keyrings import MemoryKeyring

LESSONS = Path(__file__).resolve().parents[1] / "fixtures" / "lessons" / "conversations.json"
CHATS = (
    "Resize training images",
    "TensorFlow after upgrading numpy",
    "PyTorch CUDA wheels",
    "KeyError in my dataframe code",
)
API_KEY = "sk-lessons-0123456789abcdef"
PLANTED = "hf_AbCdEfGhIjKlMnOpQrStUvWx12"
MODEL = "lesson-checker-1"
CUDA_FIX = "reinstall torch from the PyTorch cu121 wheel index"


@dataclass
class ModelServer(ChatServer):
    """The loopback chat server, answering each request with ``reply(request)``; with
    ``hold`` set, every answer waits for that event first (an endpoint that hangs)."""

    reply: Callable[[Received], str] | None = None
    hold: threading.Event | None = None

    def answer(self) -> tuple[int, bytes]:
        if self.hold is not None:
            self.hold.wait(30)
        if self.reply is not None and self.requests:
            self.content = self.reply(self.requests[-1])
        return super().answer()


def title_of(request: Received) -> str:
    text = str(request.body["messages"][1]["content"])
    return text.partition("Chat title: ")[2].partition("\n")[0]


def checker(request: Received) -> str:
    """What a sensible model says about the chats of `CHATS`."""
    keep: dict[str, list[dict[str, Any]]] = {
        "Resize training images": [
            {"library": "cv2", "resolution": "use pillow instead", "replacement": "PIL"}
        ],
        "TensorFlow after upgrading numpy": [
            {"library": "numpy", "resolution": "pin numpy<2", "replacement": None}
        ],
        "PyTorch CUDA wheels": [
            {"library": "torch", "resolution": CUDA_FIX, "replacement": None},
        ],
    }
    return json.dumps({"keep": keep.get(title_of(request), [])})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    found = Store(tmp_path / "store.db")
    yield found
    found.close()


class Events:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, event: Any) -> None:
        self.published.append(dict(event))


def chat_export(tmp_path: Path) -> Path:
    """A ChatGPT export of `CHATS`; the CUDA chat's user pasted a token in passing."""
    chats = [c for c in json.loads(LESSONS.read_text()) if c["title"] in CHATS]
    assert len(chats) == len(CHATS)
    for chat in chats:
        if chat["title"] == "PyTorch CUDA wheels":
            last = chat["mapping"][chat["current_node"]]["message"]["content"]
            last["parts"][0] += f"\n(I also set HF_TOKEN={PLANTED} for the model download)"
    path = tmp_path / "export" / "conversations.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(chats))
    return path


def import_export(store: Store, path: Path) -> None:
    """The export's conversations written to the store as `labmind import` writes them."""
    export = open_export(path)
    linker = Linker()
    ChatStore(store).apply(
        [conversation_update(c, str(path), linker) for c in export.conversations()]
    )


def enable(tmp_path: Path, base_url: str) -> Config:
    """`labmind config set` for the endpoint, the model and the LLM pass."""
    file = tmp_path / "config" / "config.toml"
    file.parent.mkdir(parents=True, exist_ok=True)
    set_value(file, "experiments.llm_base_url", base_url)
    set_value(file, "experiments.llm_model", MODEL)
    set_value(file, "lessons.llm_refine", "true")
    return load_config(file)


def mined(store: Store, tmp_path: Path, refiner: Callable[[], Refiner | None]) -> list[LessonInfo]:
    service = LessonService(store, Events(), tmp_path / "runs", refiner=refiner)
    import_export(store, chat_export(tmp_path))
    service.mine_chats()
    return service.lessons()


def rules_only(tmp_path: Path) -> list[LessonInfo]:
    folder = tmp_path / "rules"
    folder.mkdir()
    other = Store(folder / "store.db")
    try:
        return mined(other, folder, lambda: None)
    finally:
        other.close()


def host_of(base_url: str) -> str:
    return base_url.split("/")[2]


def test_the_llm_pass_checks_each_chat_with_its_evidence_and_its_answer_is_stored(
    store: Store, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    rules = {lesson.library: lesson for lesson in rules_only(tmp_path)}
    assert set(rules) == {"opencv-python", "numpy", "tensorflow", "torch"}
    with ModelServer(reply=checker) as server:
        KeyringCredentials().set_token(host_of(server.base_url), API_KEY)
        config = enable(tmp_path, server.base_url)
        found = {x.library: x for x in mined(store, tmp_path, lambda: refiner_for(config))}

    assert sorted(title_of(r) for r in server.requests) == sorted(CHATS[:3])
    for request in server.requests:
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.body["model"] == MODEL
        system, user = request.body["messages"]
        assert system["role"] == "system" and user["role"] == "user"
        assert "Drop notes where the library did not fail" in system["content"]
        sent = json.dumps(request.body)
        assert API_KEY not in sent and PLANTED not in sent
    asked = {title_of(r): str(r.body["messages"][1]["content"]) for r in server.requests}
    resize = asked["Resize training images"]
    assert "ImportError: libGL.so.1" in resize and "use Pillow instead" in resize
    assert '"library": "opencv-python"' in resize
    cuda = asked["PyTorch CUDA wheels"]
    assert "libcudnn.so.8" in cuda and "download.pytorch.org/whl/cu121" in cuda
    assert "HF_TOKEN=***" in cuda
    numpy = asked["TensorFlow after upgrading numpy"]
    assert '"library": "numpy"' in numpy and '"library": "tensorflow"' in numpy

    assert set(found) == {"opencv-python", "numpy", "torch"}, "tensorflow did not fail itself"
    assert found["opencv-python"] == rules["opencv-python"], "an answer that agrees changes nothing"
    assert found["numpy"].resolution == "pin numpy<2"
    assert rules["torch"].resolution == "install from https://download.pytorch.org/whl/cu121"
    assert found["torch"].resolution == CUDA_FIX
    assert found["torch"].replacement is None


def test_a_model_that_names_a_replacement_makes_it_the_lessons_replacement(
    store: Store, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    def headless(request: Received) -> str:
        if title_of(request) != "Resize training images":
            return checker(request)
        fix = {"library": "OpenCV-Python", "resolution": "use opencv-python-headless instead"}
        return (
            "```json\n"
            + json.dumps({"keep": [{**fix, "replacement": "opencv-python-headless"}]})
            + "\n```"
        )

    with ModelServer(reply=headless) as server:
        config = enable(tmp_path, server.base_url)
        found = {x.library: x for x in mined(store, tmp_path, lambda: refiner_for(config))}
    assert "authorization" not in server.requests[0].headers, "no key in the keyring: none sent"
    lesson = found["opencv-python"]
    assert lesson.resolution == "use opencv-python-headless instead"
    assert lesson.replacement == "opencv-python-headless"


FAILURES: dict[str, tuple[dict[str, Any], str, int]] = {
    "prose": ({"content": "All of these look right to me!"}, "is not JSON", 3),
    "no keep list": ({"content": '{"keep": "all of them"}'}, 'has no "keep" list', 3),
    "keep without names": ({"content": '{"keep": [{"lib": "numpy"}]}'}, "names no library", 3),
    "http 500": ({"status": 500}, "answered HTTP 500", 1),
    "not a completion": ({"raw_body": b"<html>gateway</html>"}, "not a chat completion", 1),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_an_unusable_answer_leaves_the_rules_lessons_with_one_line_per_failure(
    case: str,
    store: Store,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_args, reason, asked = FAILURES[case]
    rules = rules_only(tmp_path)
    caplog.set_level(logging.WARNING, logger="labmind.lessons")
    with ModelServer(**server_args) as server:
        KeyringCredentials().set_token(host_of(server.base_url), API_KEY)
        config = enable(tmp_path, server.base_url)
        found = mined(store, tmp_path, lambda: refiner_for(config))
    assert found == rules
    assert len(server.requests) == asked, "an endpoint that fails is asked once per pass"
    messages = [r.getMessage() for r in caplog.records if r.name == "labmind.lessons"]
    assert len(messages) == asked
    for message in messages:
        assert reason in message and "keeping the rules' lessons" in message
        assert "\n" not in message and API_KEY not in message


def test_an_endpoint_that_does_not_answer_in_time_is_given_up_for_the_pass(
    store: Store,
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = rules_only(tmp_path)
    caplog.set_level(logging.WARNING, logger="labmind.lessons")
    hold = threading.Event()
    with ModelServer(reply=checker, hold=hold) as server:
        config = enable(tmp_path, server.base_url)
        try:
            found = mined(store, tmp_path, lambda: refiner_for(config, timeout_s=0.3))
        finally:
            hold.set()
    assert found == rules
    assert len(server.requests) == 1
    [message] = [r.getMessage() for r in caplog.records if r.name == "labmind.lessons"]
    assert "did not answer within 0.3s" in message and "\n" not in message


def test_the_pass_is_off_unless_switched_on_with_an_endpoint(tmp_path: Path) -> None:
    assert refiner_for(Config()) is None
    assert refiner_for(Config.model_validate({"lessons": {"llm_refine": True}})) is None
    with ModelServer() as server:
        config = enable(tmp_path, server.base_url)
        assert refiner_for(config.model_copy(update={"lessons": Config().lessons})) is None
        assert refiner_for(config) is not None
    assert server.requests == []


def test_the_question_carries_early_evidence_of_a_long_chat() -> None:
    failure = "ImportError: libGL.so.1: cannot open shared object file"
    turns = [Turn("m0", "user", f"import cv2 fails:\n{failure}")]
    turns += [Turn(f"m{i}", "assistant", "unrelated talk " * 200) for i in range(1, 40)]
    episode = Episode("opencv-python", failure, "chat:c#m0", 0.8)
    asked = question("Resize images", [episode], turns)
    assert failure in asked
    assert len(asked) < 9000


def test_a_reworded_resolution_keeps_the_rules_replacement_and_a_pin_stays_a_pin() -> None:
    rules = Resolution("replacement", "use pillow instead", "pillow", confirmed=True)
    episode = Episode("opencv-python", "ImportError: libGL.so.1", "chat:c#m0", 0.8, rules)
    [same] = apply_answer(
        [episode],
        parse_answer(
            '{"keep": [{"library": "opencv-python", "resolution": "Use Pillow instead."}]}'
        ),
    )
    assert same.resolution is rules
    [reworded] = apply_answer(
        [episode],
        parse_answer(
            '{"keep": [{"library": "cv2", "resolution": "switch to Pillow for resizing"}]}'
        ),
    )
    assert reworded.resolution == Resolution(
        "replacement", "switch to Pillow for resizing", "pillow", confirmed=True
    )
    numpy = Episode("numpy", "compiled using NumPy 1.x", "chat:c#m0", 0.8)
    [pinned] = apply_answer(
        [numpy], parse_answer('{"keep": [{"library": "numpy", "resolution": "pin numpy<2"}]}')
    )
    assert pinned.resolution == Resolution("pin", "pin numpy<2", "numpy")
    [conda] = apply_answer(
        [numpy],
        parse_answer(
            '{"keep": [{"library": "numpy", "resolution": "install numpy from conda-forge"}]}'
        ),
    )
    assert conda.resolution is not None and conda.resolution.kind == "workaround"
