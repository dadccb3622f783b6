from __future__ import annotations

from pathlib import Path

import pytest

from labmind.daemon.config import ConfigError, load_config, set_value
from labmind.daemon.hotkey_chord import Chord, ChordError


def test_a_chord_in_every_desktop_syntax() -> None:
    chord = Chord.parse("<ctrl>+<alt>+k")
    assert (chord.pynput(), chord.gnome(), chord.xfce(), chord.kde(), chord.xdg()) == (
        "<ctrl>+<alt>+k",
        "<Control><Alt>k",
        "<Primary><Alt>k",
        "Ctrl+Alt+K",
        "CTRL+ALT+k",
    )
    named = Chord.parse("<SHIFT>+<cmd>+<page_up>")
    assert named.pynput() == "<shift>+<cmd>+<page_up>"
    assert named.gnome() == "<Shift><Super>Page_Up"
    assert named.kde() == "Shift+Meta+PgUp"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("k", "not a chord"),
        ("<ctrl>+", "not a chord"),
        ("<hyper>+k", "not a modifier"),
        ("ctrl+k", "not a modifier"),
        ("<ctrl>+<ctrl>+k", "twice"),
        ("<ctrl>+<alt>", "ends in a modifier"),
        ("<ctrl>+<menu>", "not a key labmind can bind"),
    ],
)
def test_bad_chords_say_what_is_wrong(text: str, match: str) -> None:
    with pytest.raises(ChordError, match=match):
        Chord.parse(text)


@pytest.mark.parametrize(
    "accelerator",
    ["<Control><Alt>k", "<Primary><Alt>K", "<Ctrl><Mod1>k", "Ctrl+Alt+K", "Alt+Ctrl+k"],
)
def test_desktop_accelerators_read_back(accelerator: str) -> None:
    assert Chord.parse_accelerator(accelerator) == Chord.parse("<ctrl>+<alt>+k")


@pytest.mark.parametrize("accelerator", ["", "k", "<Hyper>k", "none", "Ctrl+Alt+Menu"])
def test_unknown_accelerators_are_none(accelerator: str) -> None:
    assert Chord.parse_accelerator(accelerator) is None


def test_the_gui_hotkey_setting_is_validated_and_normalised(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    assert load_config(config_file).gui.hotkey == "<ctrl>+<alt>+k"
    assert set_value(config_file, "gui.hotkey", "<CTRL>+<Shift>+<F5>").gui.hotkey == (
        "<ctrl>+<shift>+<f5>"
    )
    with pytest.raises(ConfigError, match=r"gui.hotkey: .*not a modifier"):
        set_value(config_file, "gui.hotkey", "ctrl+k")
    config_file.write_text('[gui]\nhotkey = "<ctrl>"\n')
    with pytest.raises(ConfigError, match=r"gui.hotkey: .*not a chord"):
        load_config(config_file)
