"""Error signatures that mean a library failed to install, import or load.

``failures_in`` reads pasted tracebacks, pip and conda output and log tails. Only the
kinds of error that point at a library itself count: a missing module, a failed import
or shared object, a removed attribute of a library module, a wheel that would not build,
a requirement that cannot be met, a version conflict. An exception raised inside a
library by the user's own code (``KeyError``, shape mismatches, …) is not one, and
module names of the user's own code are told apart by ``names.is_known`` and by the
packages the conversation installs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .names import canonical, is_known, is_stdlib

NOT_SUBJECTS: Final = frozenset({"pip", "wheel", "conda", "poetry", "python", "mamba", "uv"})
"""Tools, not libraries: their own failures are about something else."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A library (pip name) and the one-line signature of how it failed."""

    library: str
    symptom: str
    strength: float


_MODULE_NOT_FOUND = re.compile(
    r"(?:ModuleNotFoundError|ImportError): No module named ['\"]?([\w.]+)['\"]?"
)
_CANNOT_IMPORT = re.compile(r"ImportError: cannot import name ['\"]?(\w+)['\"]? from ['\"]([\w.]+)")
_SHARED_OBJECT = re.compile(
    r"((?:ImportError|OSError): (?:[^\n]*?\.(?:so|dll|dylib)[.\d]*: cannot open shared object file"
    r"|DLL load failed[^\n]*|[^\n]*undefined symbol: \S+|[^\n]*version `GLIBC\w*_[\d.]+' not found"
    r"|[^\n]*\[WinError 126\][^\n]*|libcudart[^\n]*|[^\n]*Library not loaded[^\n]*))"
)
_CIRCULAR = re.compile(r"partially initialized module|most likely due to a circular import")
_NO_ATTRIBUTE = re.compile(r"AttributeError: module ['\"]([\w.]+)['\"] has no attribute ['\"](\w+)")
_BUILD = re.compile(
    r"Failed building wheel for ([\w.\-]+)|"
    r"Could not build wheels for ([\w.\-]+)|"
    r"Building wheel for ([\w.\-]+) \([^)]*\) \.\.\. error|"
    r"Running setup\.py install for ([\w.\-]+) \.\.\. error|"
    r"Failed to build ([\w.\-]+)\s*$|"
    r"Failed to build installable wheels for some pyproject\.toml based projects \(([\w.\-]+)\)"
)
_NO_VERSION = re.compile(
    r"Could not find a version that satisfies the requirement ([\w.\-]+)|"
    r"No matching distribution found for ([\w.\-]+)|"
    r"Package ['\"]([\w.\-]+)['\"] requires a different Python|"
    r"PackagesNotFoundError: The following packages are not available[^\n]*\n\s*\n?\s*- ([\w.\-]+)"
)
_CONFLICT = re.compile(
    r"([\w.\-]+) [\w.]+ requires ([\w.\-]+)(\S*), but you have ([\w.\-]+) ([\w.]+)"
    r" which is incompatible"
)
_CANNOT_INSTALL = re.compile(r"Cannot install ([\w.\-]+)(?:==[\w.]+)? and ([\w.\-]+)")
_NUMPY_ABI = re.compile(
    r"compiled using NumPy 1\.x cannot be run in\s+NumPy 2|"
    r"module compiled against (?:ABI|API) version \w+ but this version of numpy is|"
    r"numpy\.dtype size changed, may indicate binary incompatibility"
)
_SITE_FRAME = re.compile(r"(?:site|dist)-packages[/\\]([A-Za-z_][\w]*)")
_IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][\w.]*)", re.MULTILINE)
PIP_INSTALL = re.compile(
    r"(?:pip3?|python3? -m pip|uv pip|conda|mamba)\s+install\s+((?:[^\n`;&|#]|\\\n)+)"
)


def installed_names(texts: Iterable[str]) -> set[str]:
    """Pip names in ``pip install …`` / ``conda install …`` commands of ``texts``."""
    names: set[str] = set()
    for text in texts:
        for match in PIP_INSTALL.finditer(text):
            for word in match.group(1).split():
                if word.startswith("-") or "://" in word or "/" in word:
                    continue
                name = re.split(r"[\[<>=!~]", word.strip("\"'"), maxsplit=1)[0]
                if re.fullmatch(r"[A-Za-z][\w.\-]*", name):
                    names.add(canonical(name))
    return names


def _library(module: str, installed: set[str]) -> str | None:
    """The pip name behind a module name, if it is a third-party library."""
    if is_stdlib(module):
        return None
    name = canonical(module)
    if name in NOT_SUBJECTS:
        return None
    return name if is_known(name) or name in installed else None


def _culprit(text: str, installed: set[str]) -> str | None:
    """The library a low-level import error belongs to: the first third-party package in
    the traceback's frames, else the last third-party module the pasted code imports."""
    for match in _SITE_FRAME.finditer(text):
        name = _library(match.group(1), installed)
        if name is not None:
            return name
    imported = [_library(m.group(1), installed) for m in _IMPORT_LINE.finditer(text)]
    known = [name for name in imported if name is not None]
    return known[-1] if known else None


def failures_in(text: str, installed: set[str]) -> list[Failure]:
    """Library failures that ``text`` (a message, a log tail) shows, first seen first."""
    found: dict[str, Failure] = {}

    def add(library: str | None, symptom: str, strength: float) -> None:
        if library is not None and library not in found:
            found[library] = Failure(library, " ".join(symptom.split())[:200], strength)

    if _CIRCULAR.search(text):
        return []
    for m in _MODULE_NOT_FOUND.finditer(text):
        add(_library(m.group(1), installed), m.group(0), 0.6)
    for m in _CANNOT_IMPORT.finditer(text):
        add(_library(m.group(2), installed), m.group(0), 0.6)
    for m in _SHARED_OBJECT.finditer(text):
        add(_culprit(text, installed), m.group(1), 0.6)
    for m in _NO_ATTRIBUTE.finditer(text):
        add(_library(m.group(1), installed), m.group(0), 0.5)
    for m in _BUILD.finditer(text):
        name = next(g for g in m.groups() if g)
        add(_library(name, installed | {canonical(name)}), f"build failed: {m.group(0)}", 0.6)
    for m in _NO_VERSION.finditer(text):
        name = next(g for g in m.groups() if g)
        add(_library(name, installed | {canonical(name)}), f"cannot install: {m.group(0)}", 0.6)
    for m in _CONFLICT.finditer(text):
        add(_library(m.group(2), installed | {canonical(m.group(2))}), m.group(0), 0.5)
    for m in _CANNOT_INSTALL.finditer(text):
        add(_library(m.group(1), installed | {canonical(m.group(1))}), m.group(0), 0.5)
    for m in _NUMPY_ABI.finditer(text):
        add("numpy", m.group(0), 0.6)
    return list(found.values())
