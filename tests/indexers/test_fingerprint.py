from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from hypothesis import given
from hypothesis import strategies as st

from labmind.indexers.fingerprint import fingerprints, kgram_hash, normalized_tokens, winnow

LOAD_CONFIG = textwrap.dedent(
    '''
    import json
    import os


    def load_config(path, defaults=None):
        """Read a JSON config file and fill in defaults."""
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        for key, value in (defaults or {}).items():
            config.setdefault(key, value)
        return config
    '''
)


def texts(code: str, language: str = "python") -> list[str]:
    return [token.text for token in normalized_tokens(code, language)]


def test_locals_become_v_and_api_names_stay() -> None:
    code = "layer = torch.nn.Linear(width, 3, bias=False)  # the head\n"
    assert texts(code) == [
        "V", "=", "torch", ".", "nn", ".", "Linear", "(", "V", ",", "N", ",", "bias", "=",
        "False", ")",
    ]  # fmt: skip


def test_strings_and_numbers_are_placeholders() -> None:
    code = 'message = f\'{name}: \' + """doc""" + r\'\\d\' * 0x1F + 2.5e-3\n'
    assert texts(code) == ["V", "=", "S", "+", "S", "+", "S", "*", "N", "+", "N"]


def test_function_names_and_their_calls_become_v() -> None:
    code = "def apply(callback, items):\n    return callback(normalise(items))\n"
    assert texts(code) == [
        "def", "V", "(", "V", ",", "V", ")", ":", "return", "V", "(", "V", "(", "V", ")", ")",
    ]  # fmt: skip


def test_import_statements_keep_their_names() -> None:
    assert texts("from sklearn.metrics import f1_score as f1\n") == [
        "from", "sklearn", ".", "metrics", "import", "f1_score", "as", "f1",
    ]  # fmt: skip


def test_renames_do_not_change_the_stream() -> None:
    renamed = textwrap.dedent(
        '''
        import json
        import os


        def read_settings(filename, fallback=None):
            """Read a JSON config file and fill in defaults."""
            if not os.path.exists(filename):
                raise FileNotFoundError(filename)
            with open(filename, encoding="utf-8") as fh:
                settings = json.load(fh)
            for name, v in (fallback or {}).items():
                settings.setdefault(name, v)
            return settings
        '''
    )
    assert texts(renamed) == texts(LOAD_CONFIG)


def test_comments_and_whitespace_do_not_change_fingerprints() -> None:
    noisy = textwrap.dedent(
        '''
        import json
        import os
        # Loading helpers.

        def load_config(path,   defaults=None):   # reads the file
            """Read a JSON config file and fill in defaults."""

            if not os.path.exists(path):
                raise FileNotFoundError(path)  # fail early


            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
            for key, value in (defaults or {}).items():
                # keep what the file says
                config.setdefault(key, value)
            return config
        '''
    )
    assert fingerprints(noisy, "python").keys() == fingerprints(LOAD_CONFIG, "python").keys()


def test_formatter_differences_do_not_change_the_stream() -> None:
    compact = "result = compute(alpha, beta, gamma=(1 + 2))\nreturn (result, 'done')\n"
    black = 'result = compute(\n    alpha,\n    beta,\n    gamma=1 + 2,\n)\nreturn result, "done"\n'
    assert texts(black) == texts(compact)


def test_c_style_comments_and_semicolons() -> None:
    one = "function add(a, b) { /* sum */ return a + b; } // done\n"
    two = "function plus(x, y) {\n  return x + y\n}\n"
    assert texts(one, "javascript") == texts(two, "js")


def test_shell_variables_are_renamed_and_commands_kept() -> None:
    assert texts('for f in *.txt; do wc -l "$f" ${OUT}; done  # count\n', "bash") == [
        "for", "V", "in", "*", ".", "txt", "do", "wc", "-", "l", "S", "V", "done",
    ]  # fmt: skip


def test_unknown_languages_still_tokenise() -> None:
    assert texts("local total = count + 1 -- add one\n", "lua") == ["V", "V", "=", "V", "+", "N"]


def test_tokens_carry_their_lines() -> None:
    tokens = normalized_tokens("a = 1\n\nb = (\n    2\n)\n", "python")
    assert [(t.text, t.line) for t in tokens] == [
        ("V", 1), ("=", 1), ("N", 1), ("V", 3), ("=", 3), ("N", 4),
    ]  # fmt: skip


def test_tiny_snippets_have_no_fingerprints() -> None:
    assert fingerprints("import os\n", "python") == {}
    assert fingerprints("", "python") == {}


def test_fingerprint_lines_point_into_the_snippet() -> None:
    found = fingerprints(LOAD_CONFIG, "python")
    lines = LOAD_CONFIG.count("\n")
    assert found
    assert all(1 <= line <= lines for line in found.values())


def test_hashes_fit_a_positive_signed_64_bit_integer() -> None:
    found = fingerprints(LOAD_CONFIG, "python")
    assert all(0 < h < 2**63 for h in found)


def test_hashes_are_the_same_in_another_process() -> None:
    here = sorted(fingerprints(LOAD_CONFIG, "python"))
    script = (
        "import sys\n"
        "from labmind.indexers.fingerprint import fingerprints\n"
        "print(sorted(fingerprints(sys.stdin.read(), 'python')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=LOAD_CONFIG,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert result.stdout.strip() == str(here)
    assert kgram_hash(["def", "V", "(", "V", ")", ":"]) == kgram_hash(
        ["def", "V", "(", "V", ")", ":"]
    )


def test_winnow_takes_the_rightmost_minimum_once() -> None:
    assert winnow([5, 1, 3, 1, 4, 9, 2], 3) == [1, 3, 6]
    assert winnow([7, 7, 7], 4) == [2]
    assert winnow([], 4) == []


@given(st.lists(st.integers(min_value=0, max_value=20), max_size=60), st.integers(1, 8))
def test_every_window_holds_a_chosen_minimum(hashes: list[int], window: int) -> None:
    chosen = winnow(hashes, window)
    assert chosen == sorted(set(chosen))
    for start in range(max(0, len(hashes) - window + 1)):
        span = range(start, start + window)
        picked = [i for i in chosen if i in span]
        assert picked
        assert min(hashes[i] for i in picked) == min(hashes[start : start + window])
