"""What each MCP tool does, through `DaemonClient` only; kept free of the MCP SDK.

Every failure an agent can act on is a `ToolFailure` with one line that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from . import mcp_results as results
from .client import DaemonClient, DaemonError, DaemonUnavailable, connect
from .paths import Paths
from .protocol import Kind, OutlierReason, RunStatus, SearchRequest
from .run_log_tail import read_tail

T = TypeVar("T")

LESSONS_SHOWN = 100
SPIKES_SHOWN = 20
NOT_FOUND = 404


class ToolFailure(Exception):
    """A failure the agent should read: the daemon's reason, or what was wrong with a call."""


@dataclass(frozen=True)
class LabTools:
    """The tools' work, for the daemon of `paths` (started on first use if `autostart`)."""

    paths: Paths
    autostart: bool = True
    cwd: Path | None = None
    """Where relative paths start (default: this process's working folder)."""

    def search(
        self,
        query: str,
        kind: Kind | None = None,
        path: str | None = None,
        language: str | None = None,
        limit: int = 10,
    ) -> results.SearchResults:
        if not query.strip():
            raise ToolFailure("the query is empty; give a few words or an identifier")
        request = SearchRequest(
            query=query, kind=kind, limit=limit, path_glob=path or None, language=language or None
        )
        response = self._call(lambda client: client.search(request))
        return results.search_results(query, response)

    def why(self, path: str, line: int | None = None) -> results.Provenance:
        target = self._existing_file(path)
        answer = self._call(lambda client: client.why(str(target), line))
        if not answer.indexed:
            raise ToolFailure(
                f"{target} is not indexed; the user can watch its folder with "
                "`labmind watch add FOLDER`"
            )
        return results.provenance(answer)

    def lessons(self) -> results.Lessons:
        found = self._call(lambda client: client.lessons(include_dismissed=False), "lessons")
        return results.Lessons(
            lessons=[results.lesson(x) for x in found[:LESSONS_SHOWN]], total=len(found)
        )

    def suggest(self, task: str, limit: int = 5) -> results.TaskAdvice:
        if not task.strip():
            raise ToolFailure("the task is empty; describe what you are about to do")
        found = self._call(lambda client: client.suggest(task, limit=limit), "suggestions")
        return results.task_advice(found)

    def experiments(self, status: RunStatus | None = None, limit: int = 20) -> results.Runs:
        runs = self._call(lambda client: client.exp_runs())
        return results.runs_view(runs, status, limit)

    def experiment(self, run: str) -> results.Experiment:
        detail = self._call(lambda client: client.exp_run(_run_id(run)))
        return results.experiment_view(detail)

    def experiment_logs(self, run: str, tail_bytes: int = 8000) -> results.ExperimentLog:
        run_id = _run_id(run)

        def read(client: DaemonClient) -> results.ExperimentLog:
            full_id = client.exp_run(run_id).run.id
            tail = read_tail(client, full_id, tail_bytes)
            return results.ExperimentLog(
                run=full_id,
                text=tail.text,
                start=tail.start,
                end=tail.end,
                truncated=tail.start > 0,
                finished=tail.finished,
            )

        return self._call(read)

    def outliers(
        self, run: str, limit: int = 20, reason: OutlierReason | None = None
    ) -> results.Outliers:
        found = self._call(lambda client: client.exp_outliers(_run_id(run), limit, reason))
        return results.outliers_view(found, SPIKES_SHOWN)

    def _call(self, work: Callable[[DaemonClient], T], feature: str | None = None) -> T:
        """`work` with a client of the daemon; its errors become `ToolFailure`s."""
        try:
            with connect(self.paths, autostart=self.autostart) as client:
                return work(client)
        except DaemonUnavailable as exc:
            raise ToolFailure(str(exc)) from None
        except DaemonError as exc:
            if feature is not None and exc.status_code == NOT_FOUND and exc.message == "Not Found":
                raise ToolFailure(
                    f"this labmind daemon does not serve {feature}; upgrade labmind and "
                    "restart the daemon (`labmind stop`, then `labmind start`)"
                ) from None
            raise ToolFailure(exc.message) from None

    def _existing_file(self, path: str) -> Path:
        if not path.strip():
            raise ToolFailure("the path is empty; give a file path")
        base = self.cwd or Path.cwd()
        candidate = Path(path).expanduser()
        try:
            resolved = (base / candidate).resolve(strict=True)
        except FileNotFoundError:
            where = "" if candidate.is_absolute() else f" (relative paths start at {base})"
            raise ToolFailure(f"{path}: no such file{where}") from None
        except (OSError, RuntimeError) as exc:
            raise ToolFailure(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
        if not resolved.is_file():
            raise ToolFailure(f"{path}: not a file")
        return resolved


def _run_id(run: str) -> str:
    text = run.strip()
    if not text:
        raise ToolFailure("the run id is empty; list runs with the experiments tool")
    return text
