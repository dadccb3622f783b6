"""Fixtures shared by the daemon's tests."""

from __future__ import annotations

from collections.abc import Iterator

import keyring
import pytest

from .keyrings import MemoryKeyring


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The process-wide keyring replaced by an in-memory one; the previous one comes back."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)
