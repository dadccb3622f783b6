"""`labmind mcp` driven by the MCP SDK's own stdio client, against a real daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from .conftest import CLI, Lab, wait_until
from .test_chats_e2e import SAMPLE, SAMPLE_ID, code_cells, import_json, sample

pytestmark = pytest.mark.slow

TOOLS = {
    "search",
    "why",
    "lessons",
    "suggest",
    "experiments",
    "experiment",
    "experiment_logs",
    "outliers",
}
CALL_TIMEOUT_S = 60.0

TRAIN = """\
import sys
from labmind.trainers.track import log

for step in range(5):
    log(step, loss=1.0 / (step + 1))
    print(f"step {step} loss {1.0 / (step + 1):.3f}")
print("x" * 3000, flush=True)
print("training finished", file=sys.stderr)
"""

BROKEN = """\
import sys

print("Traceback (most recent call last):", file=sys.stderr)
print('  File "train.py", line 3, in <module>', file=sys.stderr)
print("ModuleNotFoundError: No module named 'flash_attn'", file=sys.stderr)
sys.exit(1)
"""


@asynccontextmanager
async def mcp_session(lab: Lab, errlog: Any) -> AsyncIterator[ClientSession]:
    server = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "mcp"], env=lab.env)
    async with (
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT_S) as session,
    ):
        await session.initialize()
        yield session


def with_session(lab: Lab, test: Callable[[ClientSession], Awaitable[None]]) -> None:
    with tempfile.TemporaryFile("w+") as errlog:

        async def main() -> None:
            async with mcp_session(lab, errlog) as session:
                await test(session)

        try:
            anyio.run(main)
        except BaseException:
            errlog.seek(0)
            sys.stderr.write(f"labmind mcp stderr:\n{errlog.read()}\n")
            raise


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    structured: dict[str, Any] = result.structured_content
    assert json.loads(text(result)) == structured
    return structured


def text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def test_tools_answer_from_a_real_daemon(lexical_lab: Lab, tmp_path: Path) -> None:
    lab = lexical_lab
    lab.configure("[embedder]\nenabled = false\n[experiments]\nslots = 1\n")
    import_json(lab, SAMPLE)
    project = tmp_path / "project"
    project.mkdir()
    script = project / "average_distance.py"
    script.write_text("# worked out with ChatGPT\n" + code_cells(sample()[0])[0] + "\n")
    (project / "schedule.py").write_text(
        "import math\n\n\ndef cosine_warmup_schedule(step, warmup, total):\n"
        "    if step < warmup:\n        return step / warmup\n"
        "    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))\n"
    )
    (project / "train.py").write_text(TRAIN)
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text("print('not in a watched folder')\n")
    spec = project / "spec.yaml"
    spec.write_text(
        json.dumps(
            {"name": "mcp", "command": f"{sys.executable} train.py --seed {{seed}}", "workdir": "."}
            | {"params": {"grid": {"seed": [1]}}}
        )
    )
    lab.cli("index", str(project), "--wait")
    [run] = lab.json("exp", "submit", str(spec))["runs"]
    lab.cli("exp", "wait", run["id"], "--timeout", "120")

    async def check(session: ClientSession) -> None:
        listed = await session.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40, tool.name
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None and tool.output_schema["type"] == "object"
            assert tool.annotations is not None and tool.annotations.read_only_hint
        search_args = tools["search"].input_schema
        assert search_args["required"] == ["query"]
        assert search_args["properties"]["limit"]["maximum"] == 50
        kinds = search_args["properties"]["kind"]["anyOf"][0]["enum"]
        assert set(kinds) == {"code", "chat", "run", "lesson"}
        assert tools["why"].input_schema["required"] == ["path"]
        assert tools["suggest"].input_schema["required"] == ["task"]
        assert tools["experiment_logs"].input_schema["properties"]["tail_bytes"]["maximum"] > 0

        found = data(await session.call_tool("search", {"query": "cosine warmup", "limit": 3}))
        assert found["results"], found
        top = found["results"][0]
        assert top["path"] == str(project / "schedule.py")
        assert top["start_line"] <= 4 <= top["end_line"]
        assert "cosine_warmup_schedule" in top["snippet"]
        assert len(found["results"]) <= 3
        chats = data(
            await session.call_tool("search", {"query": "monte carlo simulation", "kind": "chat"})
        )
        assert {r["kind"] for r in chats["results"]} == {"chat"}
        assert chats["results"][0]["chat_id"] == SAMPLE_ID

        why = data(await session.call_tool("why", {"path": str(script), "line": 3}))
        assert why["chats"][0]["chat_id"] == SAMPLE_ID
        assert why["chats"][0]["created"].startswith("20")
        missing = await session.call_tool("why", {"path": str(tmp_path / "nowhere.py")})
        assert missing.is_error and "no such file" in text(missing)
        not_indexed = await session.call_tool("why", {"path": str(elsewhere)})
        assert not_indexed.is_error and "is not indexed" in text(not_indexed)

        runs = data(await session.call_tool("experiments", {"status": "succeeded"}))
        assert [r["id"] for r in runs["runs"]] == [run["id"]]
        assert runs["by_status"] == {"succeeded": 1}
        assert data(await session.call_tool("experiments", {"status": "failed"}))["runs"] == []

        detail = data(await session.call_tool("experiment", {"run": run["id"]}))
        assert detail["run"]["status"] == "succeeded"
        assert detail["run"]["exit_code"] == 0
        assert [a["attempt"] for a in detail["attempts"]] == [1]
        assert detail["metrics"]["loss"]["last"] == pytest.approx(0.2)
        assert detail["metrics"]["loss"]["points"] == 5
        assert "training finished" in detail["log_tail"]

        logs = data(
            await session.call_tool("experiment_logs", {"run": run["id"][:6], "tail_bytes": 200})
        )
        assert logs["run"] == run["id"]
        assert logs["finished"] is True and logs["truncated"] is True
        assert logs["text"] == "training finished\n"
        whole = data(await session.call_tool("experiment_logs", {"run": run["id"]}))
        assert whole["start"] == 0 and not whole["truncated"]
        assert whole["text"].startswith("step 0 loss 1.000\n")
        assert whole["end"] == len(whole["text"].encode()) == logs["end"]

        for name in ("experiment", "experiment_logs", "outliers"):
            unknown = await session.call_tool(name, {"run": "no-such-run"})
            assert unknown.is_error, name
            assert "no run 'no-such-run'" in text(unknown), text(unknown)
        bad = await session.call_tool("search", {"query": "x", "limit": 500})
        assert bad.is_error and "limit" in text(bad)

        outliers = data(await session.call_tool("outliers", {"run": run["id"]}))
        assert outliers["flagged"] == 0 and outliers["note"]

        still_there = data(await session.call_tool("experiments", {}))
        assert still_there["total"] == 1

    with_session(lab, check)


def test_lessons_and_suggest_carry_what_a_failed_run_taught(
    lexical_lab: Lab, tmp_path: Path
) -> None:
    lab = lexical_lab
    lab.configure("[embedder]\nenabled = false\n[experiments]\nslots = 1\n")
    (tmp_path / "train.py").write_text(BROKEN)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps({"name": "attn", "command": f"{sys.executable} train.py", "workdir": "."})
    )
    [run] = lab.json("exp", "submit", str(spec))["runs"]
    lab.cli("exp", "wait", run["id"], "--timeout", "120", check=False)
    assert wait_until(lambda: bool(lab.json("lessons")), timeout=60), "no lesson was mined"
    expected = lab.json("lessons")
    task = "train a transformer with flash attention"
    told = lab.json("suggest", task, "--limit", "3")

    async def check(session: ClientSession) -> None:
        lessons = data(await session.call_tool("lessons", {}))
        assert lessons["total"] == len(expected)
        assert [x["id"] for x in lessons["lessons"]] == [x["id"] for x in expected]
        first = lessons["lessons"][0]
        assert first["library"] == expected[0]["library"]
        assert f"run:{run['id']}" in first["evidence"]
        assert "flash" in first["library"]

        advice = data(await session.call_tool("suggest", {"task": task, "limit": 3}))
        assert advice["task"] == task
        assert advice["preamble"] == told["preamble"]
        assert [x["id"] for x in advice["lessons"]] == [x["id"] for x in told["lessons"]]
        assert [c["path"] for c in advice["code"]] == [c["path"] for c in told["code"]]
        assert len(advice["code"]) <= 3 and len(advice["chats"]) <= 3
        empty = await session.call_tool("suggest", {"task": "   "})
        assert empty.is_error and "task is empty" in text(empty)

    with_session(lab, check)


def test_a_stopped_daemon_is_a_tool_error_not_a_crash(lexical_lab: Lab) -> None:
    lexical_lab.env["LABMIND_NO_AUTOSTART"] = "1"

    async def check(session: ClientSession) -> None:
        refused = await session.call_tool("experiments", {})
        assert refused.is_error
        assert "no labmind daemon is running" in text(refused)
        assert (await session.list_tools()).tools, "the server stays up"

    with_session(lexical_lab, check)


def test_the_server_speaks_only_protocol_on_stdout_and_exits_when_stdin_closes(
    lexical_lab: Lab,
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    proc = subprocess.Popen(
        [*CLI, "--no-autostart", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=lexical_lab.env,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def ask(*messages: dict[str, Any]) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()
        answer: dict[str, Any] = json.loads(proc.stdout.readline())
        return answer

    try:
        hello = ask(initialize)
        listed = ask(
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        )
        proc.stdin.close()
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert code == 0, proc.stderr.read() if proc.stderr else ""
    assert hello["id"] == 1 and hello["result"]["serverInfo"]["name"] == "labmind"
    assert listed["id"] == 2 and {t["name"] for t in listed["result"]["tools"]} == TOOLS
    assert proc.stdout.read() == "", "nothing but answers on stdout"
    assert not lexical_lab.paths.socket_path.exists(), "listing tools starts no daemon"


def test_without_the_sdk_it_says_which_extra_to_install(lexical_lab: Lab) -> None:
    blocked = (
        "import sys; sys.modules['mcp'] = None; sys.argv = ['labmind', 'mcp']; "
        "from labmind.daemon.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", blocked],
        env=lexical_lab.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "labmind: the MCP server needs the 'mcp' extra: pip install 'labmind[mcp]'"
    ]
