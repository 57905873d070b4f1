"""The store's tests run against both backends: an SQLite file and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from listserv.clock import utcnow
from listserv.store.database import Store

Opener = Callable[..., Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    """Open (again) this test's database on the backend; the same one each time."""
    if backend == "sqlite":
        async def open_sqlite(clock: Any = utcnow, instance: str = "", **_: Any) -> Store:
            return await Store.open(tmp_path / "var" / "db.sqlite3", clock=clock,
                                    instance=instance)
        return open_sqlite
    url = request.getfixturevalue("pg_url")

    async def open_postgresql(clock: Any = utcnow, instance: str = "",
                              lease: float = 300.0) -> Store:
        from listserv.store.postgres import PgStore

        return await PgStore.connect(url, data_dir=tmp_path / "var", clock=clock,
                                     instance=instance, lease=lease)
    return open_postgresql
