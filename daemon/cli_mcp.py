"""`labmind mcp`: serve the MCP protocol on stdin/stdout for a coding agent."""

from __future__ import annotations

import typer

from .cli_session import CliError, session


def mcp_command(ctx: typer.Context) -> None:
    """Run an MCP server on stdio for coding agents (Claude Desktop, Cursor, VS Code)."""
    from .mcp_server import MissingExtra, run_server

    current = session(ctx)
    try:
        run_server(current.paths, autostart=current.autostart)
    except MissingExtra as exc:
        raise CliError(str(exc)) from None
