"""`labmind mcp`: an MCP server on stdio that gives a coding agent the researcher's memory:
search over their code, notebooks and AI chats, where code came from, which libraries caused
trouble, and their experiments.

The MCP SDK (extra `mcp`) is imported only here, and only when the server starts. While it
serves, stdout carries the protocol alone: the SDK points file descriptor 1 at stderr, where
its logging goes too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from . import __version__
from . import mcp_results as results
from .mcp_tools import LabTools, ToolFailure
from .paths import Paths
from .protocol import Kind, OutlierReason, RunStatus

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MISSING_EXTRA = "the MCP server needs the 'mcp' extra: pip install 'labmind[mcp]'"
SERVER_NAME = "labmind"

INSTRUCTIONS = """\
labmind indexes this researcher's code folders, notebooks and AI-chat history (ChatGPT,
Claude), remembers which libraries failed them and what replaced them, and runs their
experiments. Before writing code for a task, call `suggest` with the task: it returns lessons
(libraries to avoid and what worked instead) and the researcher's own related code. Use
`search` to find existing code or past discussions before reinventing them, `why` to learn
which conversation produced a piece of code, and `experiments`/`experiment`/`experiment_logs`
to check on training runs."""

RunArg = Annotated[
    str,
    Field(
        min_length=1, description="A run id from the experiments tool (a unique prefix is enough)."
    ),
]


class MissingExtra(RuntimeError):
    """The MCP SDK is not installed."""


def run_server(paths: Paths, *, autostart: bool) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin."""
    server = build_server(LabTools(paths, autostart=autostart))
    server.run("stdio")


def build_server(tools: LabTools) -> MCPServer[Any]:
    """An MCP server whose tools call `tools`."""
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.types import ToolAnnotations
    except ImportError as exc:
        if (exc.name or "").startswith("mcp"):
            raise MissingExtra(MISSING_EXTRA) from None
        raise

    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        title="labmind",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    hints = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def failing(error: ToolFailure) -> Exception:
        return ToolError(str(error))

    @server.tool(annotations=hints)
    def search(
        query: Annotated[
            str,
            Field(
                min_length=1,
                description="Words, an identifier or a question; code-aware (snake_case, "
                "camelCase are split).",
            ),
        ],
        kind: Annotated[
            Kind | None,
            Field(description="Only this kind: code (incl. notebooks), chat, run or lesson."),
        ] = None,
        path: Annotated[
            str | None, Field(description="Only paths matching this glob, e.g. '*/models/*.py'.")
        ] = None,
        language: Annotated[
            str | None, Field(description="Only this language, e.g. python, markdown.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=50, description="How many results.")] = 10,
    ) -> results.SearchResults:
        """Hybrid (keyword + semantic) search over the researcher's indexed code, notebooks and
        AI chats. Each result has a path (chat:<id> for a chat), the line range, a snippet and a
        score; code results name the chat that likely produced them."""
        try:
            return tools.search(query, kind, path, language, limit)
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def why(
        path: Annotated[
            str, Field(min_length=1, description="A file path (absolute, or relative to the cwd).")
        ],
        line: Annotated[
            int | None, Field(ge=1, description="A line in it; omit for the whole file.")
        ] = None,
    ) -> results.Provenance:
        """Provenance: which AI-chat conversations produced this code (matched by code
        fingerprints, chat older than the code), best match first, with the message and the
        lines it covers. Useful to recover the reasoning or constraints behind code."""
        try:
            return tools.why(path, line)
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def lessons() -> results.Lessons:
        """Lessons the researcher learned the hard way, most confident first: libraries that
        failed (import errors, install trouble, broken versions) and what replaced them, mined
        from their chats and failed runs. Avoid the failed libraries; prefer the resolutions."""
        try:
            return tools.lessons()
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def suggest(
        task: Annotated[
            str, Field(min_length=1, description="The task you are about to work on, in words.")
        ],
        limit: Annotated[
            int, Field(ge=1, le=20, description="How many code and chat excerpts.")
        ] = 5,
    ) -> results.TaskAdvice:
        """Call before starting a task: the lessons that apply (libraries to avoid, what worked
        instead), the researcher's most relevant existing code and related chats, and a
        paste-ready preamble that sums them up."""
        try:
            return tools.suggest(task, limit)
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def experiments(
        status: Annotated[
            RunStatus | None, Field(description="Only runs with this status.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="How many runs.")] = 20,
    ) -> results.Runs:
        """The researcher's experiment runs, newest first: id, status (queued, running,
        succeeded, failed, cancelled, needs_approval), attempt, params, exit code and failure
        class, with counts per status."""
        try:
            return tools.experiments(status, limit)
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def experiment(run: RunArg) -> results.Experiment:
        """One run in detail: its command, every attempt (what was changed, exit code, failure
        class), the latest value and range of each logged metric, and the tail of its log."""
        try:
            return tools.experiment(run)
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def experiment_logs(
        run: RunArg,
        tail_bytes: Annotated[
            int, Field(ge=1, le=65_536, description="How much of the log's end to return.")
        ] = 8000,
    ) -> results.ExperimentLog:
        """The end of a run's output (stdout and stderr of its latest attempt), from a line
        start, with byte offsets and whether the run has finished."""
        try:
            return tools.experiment_logs(run, tail_bytes)
        except ToolFailure as exc:
            raise failing(exc) from None

    @server.tool(annotations=hints)
    def outliers(
        run: RunArg,
        limit: Annotated[int, Field(ge=1, le=200, description="How many samples.")] = 20,
        reason: Annotated[
            OutlierReason | None, Field(description="Only samples flagged for this reason.")
        ] = None,
    ) -> results.Outliers:
        """Training samples a run's labmind SampleTracker flagged (likely label errors,
        corrupted inputs, samples behind loss spikes, forgotten samples), most suspicious first,
        and the latest loss spikes."""
        try:
            return tools.outliers(run, limit, reason)
        except ToolFailure as exc:
            raise failing(exc) from None

    return server
