"""How to start labmind again from a service, a desktop file or a shortcut."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def labmind_argv() -> list[str]:
    """The absolute command that runs this installation's ``labmind``.

    The console script next to this interpreter (a virtual environment's ``bin/``), else
    the one on PATH, else ``python -m labmind.daemon``.
    """
    name = "labmind.exe" if sys.platform == "win32" else "labmind"
    beside = Path(sys.executable).absolute().parent / name
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("labmind")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "labmind.daemon"]
