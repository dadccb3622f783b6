"""`labmind …`: the command line, a thin client of the daemon."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import tomli_w
import typer
from typer.core import TyperGroup

from . import cli_render as render
from .cli_backup import backup_app
from .cli_chats import chats_app, import_command, why_command
from .cli_experiments import exp_app
from .cli_gui import popup_command, run_gui
from .cli_hotkey import hotkey_app
from .cli_lessons import lessons_app, suggest_command
from .cli_mcp import mcp_command
from .cli_outliers import outliers_command
from .cli_pause import pause_command, resume_command
from .cli_service import service_app
from .cli_session import (
    NO_AUTOSTART_ENV,
    CliError,
    JsonOption,
    Session,
    connect_client,
    existing_path,
    session,
)
from .client import DaemonClient, DaemonError, DaemonUnavailable, connect
from .config import ConfigError, config_as_dict, get_value, load_config, set_value
from .instance import AlreadyRunning, is_answering, read_pid
from .launcher import start_background, stop
from .paths import InsecureRuntimeDir, Paths
from .protocol import IndexProgress, Kind, Mode, SearchRequest

POLL_S = 0.2
DEBUG_ENV = "LABMIND_DEBUG"


_EXPECTED = (
    CliError,
    DaemonUnavailable,
    DaemonError,
    ConfigError,
    AlreadyRunning,
    InsecureRuntimeDir,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"labmind: {' '.join(message.split())}", err=True)
    sys.exit(code)


class _Group(TyperGroup):
    """Runs the app so that every error is one line on stderr, never a traceback."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def run() -> Any:
            return super(_Group, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return run()
        try:
            code = run()
        except KeyboardInterrupt:
            sys.exit(130)
        except typer.TyperException as exc:
            message = exc.format_message()
            if not message.strip():
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            _fail(message + hint, exc.exit_code)
        except typer.Abort:
            _fail("aborted")
        except _EXPECTED as exc:
            _fail(str(exc))
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}")
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Group,
    name="labmind",
    help="labmind: search your code and chats; the daemon keeps the index fresh.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
watch_app = typer.Typer(help="Folders the daemon watches and indexes.", no_args_is_help=True)
config_app = typer.Typer(help="Read and change config.toml.", no_args_is_help=True)
app.add_typer(watch_app, name="watch")
app.add_typer(config_app, name="config")
app.add_typer(chats_app, name="chats")
app.add_typer(backup_app, name="backup")
app.add_typer(exp_app, name="exp")
app.add_typer(service_app, name="service")
app.add_typer(hotkey_app, name="hotkey")
app.add_typer(lessons_app, name="lessons")
app.command("import")(import_command)
app.command("why")(why_command)
app.command("outliers")(outliers_command)
app.command("suggest")(suggest_command)
app.command("mcp")(mcp_command)
app.command("gui")(run_gui)
app.command("popup")(popup_command)
app.command("pause")(pause_command)
app.command("resume")(resume_command)


@app.callback()
def _options(
    ctx: typer.Context,
    no_autostart: Annotated[
        bool,
        typer.Option(
            "--no-autostart",
            envvar=NO_AUTOSTART_ENV,
            help="Fail instead of starting the daemon when none is running.",
        ),
    ] = False,
) -> None:
    ctx.obj = Session(paths=Paths.resolve(), autostart=not no_autostart)


# -- the daemon process -------------------------------------------------------------------


@app.command("daemon")
def run_foreground(ctx: typer.Context) -> None:
    """Run the daemon in the foreground (logs to stderr)."""
    from .app import run_daemon

    raise typer.Exit(run_daemon(session(ctx).paths))


@app.command()
def start(ctx: typer.Context) -> None:
    """Start the daemon in the background."""
    paths = session(ctx).paths
    if is_answering(paths.socket_path):
        pid = read_pid(paths)
        typer.echo(f"labmind daemon already running (pid {pid})")
        return
    with render.spinner("starting the labmind daemon"):
        pid = start_background(paths)
    typer.echo(f"labmind daemon started (pid {pid})")


@app.command("stop")
def stop_command(ctx: typer.Context) -> None:
    """Stop the daemon."""
    with render.spinner("stopping the labmind daemon"):
        stopped = stop(session(ctx).paths)
    typer.echo("labmind daemon stopped" if stopped else "no labmind daemon was running")


@app.command()
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show whether the daemon runs, and what it has indexed."""
    try:
        with connect(session(ctx).paths, autostart=False) as client:
            info = client.status()
    except DaemonUnavailable:
        if not as_json:
            raise
        render.print_json({"running": False})
        raise typer.Exit(1) from None
    if as_json:
        render.print_json({"running": True, **info.model_dump()})
    else:
        render.stdout().print(render.status_table(info))


# -- watched folders ----------------------------------------------------------------------


@watch_app.command("add")
def watch_add(ctx: typer.Context, path: str) -> None:
    """Watch and index a folder."""
    folder = existing_path(path, folder=True)
    with connect_client(ctx) as client:
        root = client.watch_add(folder)
    typer.echo(f"watching {root.path}")


@watch_app.command("ls")
def watch_ls(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List watched folders."""
    with connect_client(ctx) as client:
        roots = client.watches()
    if as_json:
        render.print_json([root.model_dump() for root in roots])
    elif not roots:
        typer.echo("no folders are watched; add one with `labmind watch add PATH`")
    else:
        render.stdout().print(render.watch_table(roots))


@watch_app.command("rm")
def watch_rm(ctx: typer.Context, path: str) -> None:
    """Stop watching a folder and drop it from the index."""
    folder = os.path.realpath(Path(path).expanduser())
    with connect_client(ctx) as client:
        client.watch_remove(folder)
    typer.echo(f"no longer watching {folder}")


# -- indexing and search ------------------------------------------------------------------


@app.command()
def index(
    ctx: typer.Context,
    paths: Annotated[list[str] | None, typer.Argument(help="Folders; default: all.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for files AND vectors.")] = False,
    rebuild: Annotated[bool, typer.Option(help="Re-index from scratch.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Index folders now (a folder not yet watched is added)."""
    roots = [existing_path(path, folder=False) for path in paths or []]
    with connect_client(ctx) as client:
        job = client.index(roots, rebuild=rebuild)
        if not wait:
            if as_json:
                render.print_json(job.model_dump())
            else:
                typer.echo(f"index job {job.job_id} queued: {', '.join(job.roots) or 'nothing'}")
            return
        final = _wait_for_index(client, job.job_id)
    if as_json:
        render.print_json(final.model_dump())
    else:
        typer.echo(render.index_summary(final))
    if final.last_error:
        typer.echo(f"labmind: last indexing error: {final.last_error}", err=True)


def _wait_for_index(client: DaemonClient, job_id: int) -> IndexProgress:
    with render.IndexProgressView(enabled=render.stderr().is_terminal) as view:
        while True:
            state = client.progress()
            view.update(state)
            if state.paused:
                raise CliError("indexing was paused; `labmind resume --indexing` goes on with it")
            vectors_done = not state.embedder_enabled or state.embedded >= state.embed_total
            if state.jobs_done >= job_id and vectors_done and state.links_pending == 0:
                return state
            time.sleep(POLL_S)


@app.command()
def search(
    ctx: typer.Context,
    query: str,
    kind: Annotated[Kind | None, typer.Option(help="Only this kind of result.")] = None,
    mode: Annotated[Mode | None, typer.Option(help="Default: search.default_mode.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, max=1000, help="How many results.")
    ] = None,
    as_json: JsonOption = False,
    path: Annotated[str | None, typer.Option("--path", help="Only paths matching a glob.")] = None,
    lang: Annotated[str | None, typer.Option(help="Only this language.")] = None,
    since: Annotated[str | None, typer.Option(help="Changed since: 7d, 12h, 2026-01-01.")] = None,
) -> None:
    """Hybrid search over code, chats, runs and lessons."""
    current = session(ctx)
    request = SearchRequest(
        query=query,
        kind=kind,
        mode=mode,
        limit=limit or _default_limit(current.paths),
        path_glob=path,
        language=lang,
        since=None if since is None else parse_since(since),
    )
    with connect_client(ctx) as client:
        response = client.search(request)
    if response.mode != "lexical" and response.embedded < response.embed_total:
        typer.echo(
            f"vectors: {response.embedded}/{response.embed_total} chunks embedded; "
            "results will improve",
            err=True,
        )
    if as_json:
        render.print_json([hit.model_dump(exclude_none=True) for hit in response.hits])
    elif not response.hits:
        typer.echo(f"no results for {query!r}", err=True)
    else:
        render.print_hits(render.stdout(), response.hits)


def _default_limit(paths: Paths) -> int:
    try:
        return load_config(paths.config_file).search.default_limit
    except ConfigError:
        return int(SearchRequest.model_fields["limit"].default)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_AGE_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, *, now: float | None = None) -> float:
    """`7d`, `12h`, `30m`, `2w` ago, or a date/time (`2026-01-01`), as a Unix time."""
    match = _AGE.match(text)
    if match:
        age = float(match.group(1)) * _AGE_UNIT_S[match.group(2).lower()]
        return (time.time() if now is None else now) - age
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an age like 7d, 12h, 30m nor a date like 2026-01-01",
            param_hint="'--since'",
        ) from None


@app.command()
def skipped(
    ctx: typer.Context,
    root: Annotated[str | None, typer.Option(help="Only files under this folder.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Files that were not indexed, and why."""
    folder = None if root is None else os.path.realpath(Path(root).expanduser())
    with connect_client(ctx) as client:
        files = client.skipped(folder)
    if as_json:
        render.print_json([item.model_dump() for item in files])
    elif not files:
        typer.echo("no files were skipped")
    else:
        render.stdout().print(render.skipped_table(files))


# -- configuration ------------------------------------------------------------------------


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The whole configuration, defaults included."""
    data = config_as_dict(load_config(session(ctx).paths.config_file))
    if as_json:
        render.print_json(data)
    else:
        typer.echo(tomli_w.dumps(data).rstrip("\n"))


@config_app.command("get")
def config_get(ctx: typer.Context, key: str) -> None:
    """One setting (`index.debounce_ms`) or a whole section."""
    config = load_config(session(ctx).paths.config_file)
    typer.echo(render.value(get_value(config, key)))


@config_app.command("set")
def config_set(ctx: typer.Context, key: str, value: str) -> None:
    """Change one setting; a running daemon reloads it."""
    paths = session(ctx).paths
    config = set_value(paths.config_file, key, value)
    typer.echo(f"{key} = {render.value(get_value(config, key))}")
    if not is_answering(paths.socket_path):
        return
    try:
        with DaemonClient(paths) as client:
            client.reload_config()
    except DaemonUnavailable:
        return
    except DaemonError as exc:
        raise CliError(f"saved, but the daemon did not take the change: {exc}") from None


def main() -> None:
    """The `labmind` console script."""
    app(prog_name="labmind")
