"""`config.toml`: typed settings, strict validation, and atomic edits from the CLI."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .hotkey_chord import Chord, ChordError


class ConfigError(ValueError):
    """A config file or a `config set` that cannot be used; the message names the key."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class IndexConfig(_Section):
    max_file_size_mb: float = Field(default=2.0, gt=0)
    debounce_ms: int = Field(default=300, ge=10, le=10_000)
    exclude: list[str] = Field(default_factory=list)
    follow_symlinks: bool = False
    parallel_scan: bool = True
    """Prepare the files of a large scan in worker processes."""
    scan_workers: int = Field(default=0, ge=0, le=64)
    """Worker processes for a large scan; 0: one per core, at most four."""


class EmbedderConfig(_Section):
    model: str = Field(default="sentence-transformers/all-MiniLM-L6-v2", min_length=1)
    batch_size: int = Field(default=64, ge=1, le=4096)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    enabled: bool = True
    nice: int = Field(default=10, ge=0, le=19)


class SearchConfig(_Section):
    default_limit: int = Field(default=10, ge=1, le=1000)
    default_mode: Literal["hybrid", "lexical", "semantic"] = "hybrid"


class ChatsConfig(_Section):
    export_dir: str = Field(default="~/Downloads", min_length=1)
    """Folder watched for ChatGPT and Claude exports (recognised by content, not by name)."""
    auto_import: bool = True


class RepoBackupConfig(_Section):
    """Settings for one repository or folder that override `[backup]`; unset keys inherit."""

    enabled: bool | None = None
    interval_min: float | None = Field(default=None, gt=0)
    push: bool | None = None
    remote: str | None = None


class BackupConfig(_Section):
    enabled: bool = True
    """Snapshot every watched folder (repositories in place, other folders in a shadow)."""
    interval_min: float = Field(default=15.0, gt=0)
    quiet_s: float = Field(default=120.0, ge=0)
    """Snapshot this long after edits stop (0: only on the interval)."""
    push: bool = True
    remote: str = ""
    """Where snapshots are pushed; empty: each repository's ``origin``."""
    push_branches: bool = False
    """Also push the user's own branches when they are strictly ahead of their upstream."""
    max_file_mb: float = Field(default=50.0, gt=0)
    allow: list[str] = Field(default_factory=list)
    """Gitignore-style globs let through the secret and size guards."""
    host: str = ""
    """The name in ``labmind/<host>/<branch>``; empty: this machine's host name."""
    repos: dict[str, RepoBackupConfig] = Field(default_factory=dict)
    """Per-folder overrides, keyed by the folder's path."""


class ExperimentsConfig(_Section):
    slots: int = Field(default=0, ge=0, le=256)
    """CPU runs (runs that ask for no GPU) at once; 0: half the cores (at least one)."""
    share_gpus: bool = False
    """Start runs on GPUs that processes labmind did not start are using, within limits."""
    share_max_used_mb: int = Field(default=2048, ge=0)
    share_max_utilization_pct: int = Field(default=50, ge=0, le=100)
    llm_base_url: str = ""
    """An OpenAI-compatible endpoint (``…/v1``) for specs with ``retry.fixer: llm``; its
    key is read from the keyring for the endpoint's host (`labmind backup token HOST`)."""
    llm_model: str = ""
    llm_auto_apply: bool = False
    """Apply the model's proposals without waiting for `labmind exp approve`."""
    executor: Literal["local", "ray"] = "local"
    """Where runs go: processes on this machine, or Ray Jobs on the cluster at `ray_address`."""
    ray_address: str = "http://127.0.0.1:8265"
    """The Ray cluster's dashboard (Jobs API), for `executor = "ray"`."""

    @field_validator("ray_address")
    @classmethod
    def _dashboard_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(
                "expected the http:// or https:// address of the Ray dashboard, "
                "like http://127.0.0.1:8265"
            )
        return value.rstrip("/")


class NotificationsConfig(_Section):
    enabled: bool = True
    """Desktop notifications for failed, retried and waiting runs, finished sweeps, flagged
    samples and backup alerts."""
    do_not_disturb: bool = False
    """Show no notifications at all (the tray, `labmind exp ls` and `backup status` still
    show everything)."""
    min_interval_s: float = Field(default=60.0, ge=0, le=86_400)
    """At most one notification per group (one sweep's failures, one folder's backup
    alerts, …) this often; what arrives in between is shown as one summary. 0: no limit."""
    run_succeeded: bool = False
    """Also notify each run that succeeds (finished sweeps notify either way)."""
    open_command: str = ""
    """The command that opens a run's log (its path is appended); empty: ``xdg-open`` on
    Linux, ``open`` on macOS."""


class LessonsConfig(_Section):
    preflight: bool = True
    """Notify when a watched file or a submitted sweep's script starts importing a library
    with an active lesson."""
    llm_refine: bool = False
    """Have the experiments' LLM endpoint (`experiments.llm_base_url`, `llm_model`) check
    what rule-based mining finds in each conversation; off: rules only, offline."""


class DaemonConfig(_Section):
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class GuiConfig(_Section):
    hotkey: str = "<ctrl>+<alt>+k"
    """The chord that shows the search popup, pynput style: ``<ctrl>``, ``<alt>``,
    ``<shift>``, ``<cmd>`` (Super) and one key; `labmind hotkey install` binds the same."""

    @field_validator("hotkey")
    @classmethod
    def _chord(cls, value: str) -> str:
        try:
            return Chord.parse(value).pynput()
        except ChordError as exc:
            raise ValueError(str(exc)) from None


class Config(_Section):
    index: IndexConfig = Field(default_factory=IndexConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    chats: ChatsConfig = Field(default_factory=ChatsConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    experiments: ExperimentsConfig = Field(default_factory=ExperimentsConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    lessons: LessonsConfig = Field(default_factory=LessonsConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    gui: GuiConfig = Field(default_factory=GuiConfig)


def known_keys() -> list[str]:
    """Every settable key, dotted: `index.debounce_ms`, …"""
    return [
        f"{section}.{name}"
        for section, info in Config.model_fields.items()
        for name in _section_model(info.annotation).model_fields
    ]


def load_config(path: Path) -> Config:
    """The config at `path`; defaults when the file does not exist."""
    return _validate(_read_raw(path), origin=path)


def get_value(config: Config, key: str) -> Any:
    """The value of a dotted key (`index.debounce_ms`), or a whole section as a dict."""
    parts = key.split(".")
    if len(parts) == 1 and key in Config.model_fields:
        return getattr(config, key).model_dump(mode="json")
    section, name = _split_key(key)
    return getattr(getattr(config, section), name)


def set_value(path: Path, key: str, raw_value: str) -> Config:
    """Parse `raw_value` for `key`, validate the whole file and write it only if it is valid."""
    section, name = _split_key(key)
    value = _parse(key, _field_type(section, name), raw_value)
    data = _read_raw(path)
    section_data = data.get(section)
    if not isinstance(section_data, dict):
        section_data = {}
        data[section] = section_data
    section_data[name] = value
    config = _validate(data, origin=path, edited_key=key)
    _write_atomic(path, tomli_w.dumps(data).encode())
    return config


def config_as_dict(config: Config) -> dict[str, Any]:
    """The full config (defaults included) as plain JSON-able data, for `config show`."""
    return config.model_dump(mode="json")


def _section_model(annotation: Any) -> type[_Section]:
    assert isinstance(annotation, type) and issubclass(annotation, _Section)
    return annotation


def _split_key(key: str) -> tuple[str, str]:
    parts = key.split(".")
    if len(parts) == 2:
        section, name = parts
        info = Config.model_fields.get(section)
        if info is not None and name in _section_model(info.annotation).model_fields:
            return section, name
    raise ConfigError(f"unknown key '{key}'; known keys: {', '.join(known_keys())}", key=key)


def _field_type(section: str, name: str) -> Any:
    model = _section_model(Config.model_fields[section].annotation)
    return model.model_fields[name].annotation


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _parse(key: str, annotation: Any, raw: str) -> Any:
    text = raw.strip()
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{key}: expected true or false, got {raw!r}", key=key)
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a whole number, got {raw!r}", key=key) from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {raw!r}", key=key) from None
    if typing.get_origin(annotation) is list:
        return _parse_list(key, text)
    if typing.get_origin(annotation) is dict:
        return _parse_table(key, text)
    if annotation is str or typing.get_origin(annotation) is Literal:
        return text
    raise TypeError(f"no parser for {key} of type {annotation!r}")


def _parse_list(key: str, text: str) -> list[Any]:
    if text.startswith("["):
        try:
            value = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{key}: not a TOML array: {exc}", key=key) from None
        assert isinstance(value, list)
        return value
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse_table(key: str, text: str) -> dict[str, Any]:
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{key}: not a TOML inline table: {exc}", key=key) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a TOML inline table {{…}}, got {text!r}", key=key)
    return value


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match is None:
            raise ConfigError(f"{path}: {message}") from None
        line = match.group(1) or str(max(1, len(text.splitlines())))
        raise ConfigError(f"{path} line {line}: {message[: match.start()]}") from None


def _validate(data: Mapping[str, Any], *, origin: Path, edited_key: str | None = None) -> Config:
    """Validate; errors name the dotted key, and the file unless they are all about `edited_key`."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        keys = [".".join(str(part) for part in error["loc"]) for error in errors]
        messages = [_describe(error["loc"], error["type"], error["msg"]) for error in errors]
        about_edit = edited_key is not None and all(
            k == edited_key or k.startswith(f"{edited_key}.") for k in keys
        )
        prefix = "" if about_edit else f"{origin}: "
        raise ConfigError(prefix + "; ".join(messages), key=keys[0]) from None


def _describe(loc: tuple[int | str, ...], kind: str, msg: str) -> str:
    key = ".".join(str(part) for part in loc)
    if kind == "extra_forbidden":
        if len(loc) == 1:
            known = list(Config.model_fields)
        elif len(loc) == 2:
            known = known_keys()
        else:
            known = list(_model_at(loc[:-1]).model_fields)
        return f"unknown key '{key}'; known keys: {', '.join(known)}"
    if kind == "model_type" and len(loc) == 1:
        return f"{key}: expected a table ([{key}])"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return f"{key}: {msg}"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model that validates the table at ``loc`` (dict keys step into the value type)."""
    model: type[BaseModel] = Config
    annotation: Any = Config
    for part in loc:
        if typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            annotation = model.model_fields[str(part)].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return model


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o600)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
