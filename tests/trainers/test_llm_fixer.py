"""The LLM fixer against a real OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence

import pytest

from labmind.trainers.failures import Failure, FailureKind
from labmind.trainers.llm_fixer import LlmEndpoint, LlmFixerError, Proposal, propose
from labmind.trainers.sweep import ParamValue

from .chat_server import ChatServer

KEY = "sk-test-SECRET-0123456789"
COMMAND = "python train.py --lr {lr} --batch-size {batch_size}"
PARAMS: dict[str, ParamValue] = {"lr": 0.001, "batch_size": 64, "dataset": "cifar10"}
OOM = Failure(
    kind=FailureKind.CUDA_OOM,
    summary="CUDA out of memory (tried to allocate 2.00 GiB)",
    evidence="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
)
GOOD = json.dumps(
    {
        "changes": {"batch_size": 32},
        "command": None,
        "rationale": "The batch does not fit; halve it.",
    }
)


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer() as running:
        yield running


def endpoint(server: ChatServer, key: str | None = KEY) -> LlmEndpoint:
    return LlmEndpoint(base_url=server.base_url, model="test-model", api_key=key, timeout_s=5)


def ask(
    ep: LlmEndpoint,
    log_tail: str = "step 1 loss 2.3\n",
    history: Sequence[str] = (),
    max_log_chars: int = 6000,
) -> Proposal:
    return propose(
        ep,
        command=COMMAND,
        params=PARAMS,
        failure=OOM,
        log_tail=log_tail,
        history=history,
        max_log_chars=max_log_chars,
    )


def test_good_proposal_round_trip(server: ChatServer) -> None:
    server.content = GOOD
    log = "".join(f"line {i:05d}\n" for i in range(2000)) + OOM.evidence + "\n"

    proposal = ask(
        endpoint(server),
        log_tail=log,
        history=["attempt 1: cuda_oom, batch_size 128 → 64"],
        max_log_chars=500,
    )

    assert proposal == Proposal(
        changes={"batch_size": 32}, command=None, rationale="The batch does not fit; halve it."
    )
    assert Proposal.from_json(proposal.to_json()) == proposal
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "test-model"
    assert request.body["temperature"] == 0
    assert request.body["response_format"] == {"type": "json_object"}
    system, user = request.body["messages"]
    assert system["role"] == "system" and '"changes"' in system["content"]
    assert user["role"] == "user"
    text = user["content"]
    assert "cuda_oom" in text
    assert OOM.summary in text and OOM.evidence in text
    assert COMMAND in text
    assert json.dumps(PARAMS, sort_keys=True) in text
    assert "attempt 1: cuda_oom, batch_size 128 → 64" in text
    assert log[-500:] in text
    assert "line 00000" not in text  # the log tail is bounded
    assert len(text) < 500 + 2000


def test_no_key_sends_no_authorization(server: ChatServer) -> None:
    server.content = GOOD
    ask(endpoint(server, key=None))
    assert "authorization" not in server.requests[0].headers


def test_command_change_only(server: ChatServer) -> None:
    server.content = json.dumps(
        {"changes": {}, "command": "python train.py --lr {lr}", "rationale": "x" * 900}
    )
    proposal = ask(endpoint(server))
    assert proposal.changes == {}
    assert proposal.command == "python train.py --lr {lr}"
    assert proposal.rationale == "x" * 500


def test_fenced_json_answer(server: ChatServer) -> None:
    server.content = f"Here is my proposal:\n```json\n{GOOD}\n```\nGood luck."
    proposal = ask(endpoint(server))
    assert proposal.changes == {"batch_size": 32}


def test_unknown_param_rejected(server: ChatServer) -> None:
    server.content = json.dumps(
        {"changes": {"batch_size": 32, "warmup": 100}, "command": None, "rationale": "r"}
    )
    with pytest.raises(LlmFixerError, match="unknown parameters: warmup"):
        ask(endpoint(server))


def test_non_scalar_value_rejected(server: ChatServer) -> None:
    server.content = json.dumps({"changes": {"lr": [0.1, 0.2]}, "command": None, "rationale": "r"})
    with pytest.raises(LlmFixerError, match="not a string, number or boolean for: lr"):
        ask(endpoint(server))


def test_missing_rationale_rejected(server: ChatServer) -> None:
    server.content = json.dumps({"changes": {"lr": 0.0005}, "command": None, "rationale": " "})
    with pytest.raises(LlmFixerError, match="no rationale"):
        ask(endpoint(server))


def test_no_change_is_an_error(server: ChatServer) -> None:
    server.content = json.dumps(
        {"changes": {}, "command": None, "rationale": "A person must install timm."}
    )
    with pytest.raises(LlmFixerError) as caught:
        ask(endpoint(server))
    assert str(caught.value) == "the model proposed no change: A person must install timm."


@pytest.mark.parametrize("status", [401, 500])
def test_http_error_is_one_line_without_key(server: ChatServer, status: int) -> None:
    server.status = status
    with pytest.raises(LlmFixerError) as caught:
        ask(endpoint(server))
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert "\n" not in message
    assert KEY not in message and KEY not in repr(caught.value)


def test_server_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ep = LlmEndpoint(base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key=KEY, timeout_s=5)
    with pytest.raises(LlmFixerError, match="cannot reach") as caught:
        ask(ep)
    assert "\n" not in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "content",
    ["I think you should lower the batch size.", '{"changes": {"lr": 0.1}', '["changes"]'],
)
def test_malformed_content(server: ChatServer, content: str) -> None:
    server.content = content
    with pytest.raises(LlmFixerError, match=r"not JSON|not a JSON object") as caught:
        ask(endpoint(server))
    assert "\n" not in str(caught.value)


def test_not_a_chat_completion(server: ChatServer) -> None:
    server.raw_body = b'{"object": "list", "data": []}'
    with pytest.raises(LlmFixerError, match="not a chat completion"):
        ask(endpoint(server))


def test_key_never_in_repr_or_errors(server: ChatServer) -> None:
    ep = endpoint(server)
    assert KEY not in repr(ep) and KEY not in str(ep)
    messages: list[str] = []
    for status, content in [(401, ""), (200, "nonsense"), (200, '{"changes": {"x": 1}}')]:
        server.status, server.content = status, content
        with pytest.raises(LlmFixerError) as caught:
            ask(ep)
        messages += [str(caught.value), repr(caught.value)]
    assert messages and all(KEY not in m for m in messages)


def test_proposal_from_json_rejects_bad_data() -> None:
    with pytest.raises(ValueError):
        Proposal.from_json('{"changes": {"lr": [1]}, "command": null, "rationale": "r"}')
