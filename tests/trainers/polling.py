"""Waiting for a condition a test cannot be told about, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``probe`` until it returns something other than None/False, or fail."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
