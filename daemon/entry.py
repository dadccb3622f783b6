"""The `labmind` console script: `labmind popup [--toggle]` (bound to a hotkey) takes a
path that imports neither typer nor httpx nor Qt; everything else goes to the CLI."""

from __future__ import annotations

import sys

FAST = (["popup"], ["popup", "--toggle"])


def main() -> None:
    args = sys.argv[1:]
    if args in FAST:
        from .gui_control import main as popup_main

        sys.exit(popup_main(args))
    from .cli import main as cli_main

    cli_main()
