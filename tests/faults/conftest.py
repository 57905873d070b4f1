"""The fault suites' shared fixture: daemon processes that are closed after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.helpers import Proc


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every daemon process a test starts; any still running is killed afterwards."""
    started: list[Proc] = []
    yield started
    for p in started:
        p.close()
