"""Which files are indexed, and as which language.

Language ids name the chunker's view of a file: ``python`` … ``bash`` are parsed with
tree-sitter, ``notebook`` and ``markdown`` have their own chunkers, and the rest are
cut into line windows.
"""

from __future__ import annotations

from pathlib import Path

_BY_SUFFIX: dict[str, str] = {
    # parsed with tree-sitter
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cu": "cpp",
    ".cuh": "cpp",
    ".java": "java",
    ".sh": "bash",
    ".bash": "bash",
    # own chunkers
    ".md": "markdown",
    ".markdown": "markdown",
    ".ipynb": "notebook",
    # line windows
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonc": "json",
    ".ini": "ini",
    ".cfg": "cfg",
    ".conf": "cfg",
    ".txt": "text",
    ".rst": "rst",
    ".tex": "latex",
    ".sql": "sql",
    ".r": "r",
    ".jl": "julia",
    ".lua": "lua",
    ".rb": "ruby",
    ".php": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".swift": "swift",
    ".cs": "c_sharp",
    ".css": "css",
    ".scss": "scss",
    ".html": "html",
    ".htm": "html",
    ".zsh": "zsh",
    ".fish": "fish",
    ".pyx": "cython",
    ".pxd": "cython",
    ".proto": "protobuf",
    ".graphql": "graphql",
    ".cmake": "cmake",
    ".mk": "make",
    ".dockerfile": "dockerfile",
    ".vue": "vue",
    ".svelte": "svelte",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".dart": "dart",
    ".zig": "zig",
    ".nix": "nix",
    ".tf": "hcl",
    ".gradle": "groovy",
    ".groovy": "groovy",
    ".pl": "perl",
    ".ps1": "powershell",
    ".bat": "batch",
    ".f90": "fortran",
    ".slurm": "bash",
    ".sbatch": "bash",
}

_BY_NAME: dict[str, str] = {
    "Makefile": "make",
    "GNUmakefile": "make",
    "makefile": "make",
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "CMakeLists.txt": "cmake",
    "Justfile": "make",
    "justfile": "make",
    "Jenkinsfile": "groovy",
    "Vagrantfile": "ruby",
    "Gemfile": "ruby",
    "Rakefile": "ruby",
    "Snakefile": "python",
    "BUILD": "python",
    "BUILD.bazel": "python",
    "WORKSPACE": "python",
    "Pipfile": "toml",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".profile": "bash",
    ".zshrc": "zsh",
}

LOCK_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lockb",
        "Cargo.lock",
        "poetry.lock",
        "Pipfile.lock",
        "uv.lock",
        "pdm.lock",
        "composer.lock",
        "Gemfile.lock",
        "go.sum",
        "flake.lock",
        "conda-lock.yml",
    }
)
"""Generated dependency pins: large, machine-written, never worth a search hit."""

_MINIFIED = (".min.js", ".min.css", ".bundle.js")


def language_for_path(path: Path) -> str | None:
    """The language id used to chunk ``path``, or None when the file is not indexed."""
    name = path.name
    if name in LOCK_FILES or name.endswith(_MINIFIED):
        return None
    by_name = _BY_NAME.get(name)
    if by_name is not None:
        return by_name
    if name.startswith("Dockerfile.") or name.endswith(".Dockerfile"):
        return "dockerfile"
    return _BY_SUFFIX.get(path.suffix.lower())
