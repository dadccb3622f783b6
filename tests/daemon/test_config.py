from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from labmind.daemon.config import (
    Config,
    ConfigError,
    config_as_dict,
    get_value,
    known_keys,
    load_config,
    set_value,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "config.toml")
    assert config == Config()
    assert config.index.max_file_size_mb == 2.0
    assert config.index.debounce_ms == 300
    assert config.index.exclude == []
    assert config.index.follow_symlinks is False
    assert config.embedder.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert config.embedder.batch_size == 64
    assert config.embedder.idle_timeout_s == 300
    assert config.embedder.enabled is True
    assert config.embedder.nice == 10
    assert config.search.default_limit == 10
    assert config.search.default_mode == "hybrid"
    assert config.daemon.log_level == "info"


def test_file_values_override_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path / "config.toml",
        '[index]\nmax_file_size_mb = 5\nexclude = ["*.csv"]\n[search]\ndefault_mode = "lexical"\n',
    )
    config = load_config(path)
    assert config.index.max_file_size_mb == 5.0
    assert config.index.exclude == ["*.csv"]
    assert config.search.default_mode == "lexical"
    assert config.index.debounce_ms == 300


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[index]\ndebounce_ms = 300\nexclude == []\n", 3),
        ("[index]\ndebounce_ms = 300\nexclude = [\n", 3),
        ("[index\n", 1),
    ],
)
def test_toml_syntax_error_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError, match=rf"config\.toml line {line}: \w") as info:
        load_config(path)
    assert "(at " not in str(info.value)


def test_validation_error_names_the_dotted_key(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "[index]\nmax_file_size_mb = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "index.max_file_size_mb: Input should be greater than 0" in str(info.value)
    assert info.value.key == "index.max_file_size_mb"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[index]\nfoo = 1\n", "unknown key 'index.foo'; known keys: index.max_file_size_mb"),
        ("[indx]\n", "unknown key 'indx'; known keys: index, embedder"),
        ('[index]\ndebounce_ms = "300"\n', "index.debounce_ms: Input should be a valid integer"),
        ("[index]\ndebounce_ms = 5\n", "index.debounce_ms: Input should be greater than or equal"),
        ('[search]\ndefault_mode = "fuzzy"\n', "search.default_mode: Input should be 'hybrid'"),
        ("index = 3\n", "index: expected a table ([index])"),
        ("[embedder]\nidle_timeout_s = inf\n", "embedder.idle_timeout_s: "),
    ],
)
def test_invalid_files_are_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_get_value(tmp_path: Path) -> None:
    config = Config()
    assert get_value(config, "index.debounce_ms") == 300
    assert get_value(config, "search.default_mode") == "hybrid"
    assert get_value(config, "daemon") == {"log_level": "info"}
    with pytest.raises(ConfigError, match=r"unknown key 'index\.foo'; known keys: "):
        get_value(config, "index.foo")


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("index.max_file_size_mb", "3.5", 3.5),
        ("index.max_file_size_mb", "4", 4.0),
        ("index.debounce_ms", "500", 500),
        ("index.follow_symlinks", "true", True),
        ("index.follow_symlinks", "YES", True),
        ("index.follow_symlinks", "1", True),
        ("index.follow_symlinks", "no", False),
        ("index.follow_symlinks", "0", False),
        ("index.exclude", "*.csv, data/ ,", ["*.csv", "data/"]),
        ("index.exclude", '["a, b", "c"]', ["a, b", "c"]),
        ("index.exclude", "", []),
        ("embedder.model", "BAAI/bge-small-en-v1.5", "BAAI/bge-small-en-v1.5"),
        ("embedder.enabled", "false", False),
        ("embedder.idle_timeout_s", "60", 60.0),
        ("search.default_mode", " semantic ", "semantic"),
        ("daemon.log_level", "debug", "debug"),
    ],
)
def test_set_value_roundtrips_types(tmp_path: Path, key: str, raw: str, expected: Any) -> None:
    path = tmp_path / "config.toml"
    config = set_value(path, key, raw)
    assert get_value(config, key) == expected
    reloaded = get_value(load_config(path), key)
    assert reloaded == expected
    assert type(reloaded) is type(expected)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_value_keeps_other_keys_and_creates_folder(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "config.toml"
    set_value(path, "index.debounce_ms", "1000")
    set_value(path, "search.default_limit", "25")
    config = load_config(path)
    assert config.index.debounce_ms == 1000
    assert config.search.default_limit == 25
    assert tomllib.loads(path.read_text()) == {
        "index": {"debounce_ms": 1000},
        "search": {"default_limit": 25},
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("index.foo", "1", "unknown key 'index.foo'; known keys: index.max_file_size_mb, "),
        ("index", "1", "unknown key 'index'"),
        ("index.debounce_ms", "fast", "index.debounce_ms: expected a whole number, got 'fast'"),
        ("index.debounce_ms", "1.5", "index.debounce_ms: expected a whole number"),
        ("index.debounce_ms", "99999", "index.debounce_ms: Input should be less than or equal"),
        ("index.max_file_size_mb", "0", "index.max_file_size_mb: Input should be greater than 0"),
        ("index.max_file_size_mb", "nan", "index.max_file_size_mb: "),
        ("index.follow_symlinks", "maybe", "index.follow_symlinks: expected true or false"),
        ("index.exclude", "[1, 2]", "index.exclude.0: Input should be a valid string"),
        ("index.exclude", "[unclosed", "index.exclude: not a TOML array"),
        ("search.default_mode", "fuzzy", "search.default_mode: Input should be 'hybrid'"),
    ],
)
def test_bad_set_leaves_the_file_untouched(
    tmp_path: Path, key: str, raw: str, message: str
) -> None:
    path = write(tmp_path / "config.toml", "# mine\n[index]\ndebounce_ms = 400\n")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        set_value(path, key, raw)
    assert message in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_set_value_refuses_when_another_key_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "[index]\nfoo = 1\n")
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        set_value(path, "index.debounce_ms", "400")
    assert str(info.value).startswith(f"{path}: unknown key 'index.foo'")
    assert path.read_bytes() == before


def test_error_about_the_edited_key_does_not_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as info:
        set_value(path, "index.debounce_ms", "1")
    assert str(info.value) == "index.debounce_ms: Input should be greater than or equal to 10"
    assert info.value.key == "index.debounce_ms"
    assert not path.exists()


def test_set_value_can_repair_the_invalid_key(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "[index]\ndebounce_ms = 1\n")
    config = set_value(path, "index.debounce_ms", "400")
    assert config.index.debounce_ms == 400
    assert load_config(path).index.debounce_ms == 400


def test_set_value_on_unparsable_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "[index\n")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"config\.toml line 1: "):
        set_value(path, "index.debounce_ms", "400")
    assert path.read_bytes() == before


def test_config_as_dict_has_every_key() -> None:
    data = config_as_dict(Config())
    flat = [f"{section}.{key}" for section, values in data.items() for key in values]
    assert flat == known_keys()
    assert data["index"]["exclude"] == []
    assert data["search"]["default_mode"] == "hybrid"


def test_per_folder_backup_settings_are_set_as_an_inline_table(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"

    config = set_value(path, "backup.repos", '{"~/code/big" = {interval_min = 60, push = false}}')

    assert config.backup.repos["~/code/big"].interval_min == 60
    assert config.backup.repos["~/code/big"].push is False
    assert load_config(path) == config
    with pytest.raises(
        ConfigError, match=r"unknown key 'backup.repos.x.every'; known keys: enabled"
    ):
        set_value(path, "backup.repos", '{"x" = {every = 5}}')
    with pytest.raises(ConfigError, match="not a TOML inline table"):
        set_value(path, "backup.repos", "{oops")
    assert load_config(path) == config


def test_notifications_section(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    defaults = Config().notifications
    assert (defaults.enabled, defaults.do_not_disturb, defaults.min_interval_s) == (True, False, 60)
    assert (defaults.run_succeeded, defaults.open_command) == (False, "")

    config = set_value(path, "notifications.do_not_disturb", "on")
    config = set_value(path, "notifications.min_interval_s", "0")

    assert config.notifications.do_not_disturb is True
    assert config.notifications.min_interval_s == 0.0
    assert load_config(path) == config
    with pytest.raises(ConfigError) as info:
        set_value(path, "notifications.min_interval_s", "-1")
    assert str(info.value) == (
        "notifications.min_interval_s: Input should be greater than or equal to 0"
    )
    bad = write(tmp_path / "bad.toml", "[notifications]\ndnd = true\n")
    with pytest.raises(ConfigError, match=r"unknown key 'notifications\.dnd'; known keys: "):
        load_config(bad)


def test_experiments_executor_and_ray_address(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert Config().experiments.executor == "local"
    assert Config().experiments.ray_address == "http://127.0.0.1:8265"

    config = set_value(path, "experiments.executor", "ray")
    config = set_value(path, "experiments.ray_address", "http://head.lab:8265/")

    assert (config.experiments.executor, config.experiments.ray_address) == (
        "ray",
        "http://head.lab:8265",
    )
    assert load_config(path) == config
    with pytest.raises(ConfigError) as info:
        set_value(path, "experiments.executor", "slurm")
    assert str(info.value) == "experiments.executor: Input should be 'local' or 'ray'"
    with pytest.raises(ConfigError) as info:
        set_value(path, "experiments.ray_address", "ray://head.lab:10001")
    assert str(info.value) == (
        "experiments.ray_address: expected the http:// or https:// address of the Ray "
        "dashboard, like http://127.0.0.1:8265"
    )
    assert load_config(path) == config
