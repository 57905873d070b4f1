"""The test suite on PostgreSQL: ``LISTSERV_TEST_STORE=postgresql python -m pytest``.

With that variable set, every configuration ``conftest.write_config`` writes
names a fresh PostgreSQL database (``[store] url``) on the throwaway server
of ``tests/pg.py``, so the daemon-level tests run their conversations on
PostgreSQL unchanged. Tests that look into the database with
``tests.sealed.connect(path)`` get ``SyncPg``: the same translated SQL the
daemon uses (``listserv.store.dialect``), run on a background event loop so
a synchronous test helper can call it from inside a running test loop.
Tests of SQLite's own files (WAL, backup, bytes at rest) are marked
``sqlite_only`` and skipped there.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

ENABLED = os.environ.get("LISTSERV_TEST_STORE", "sqlite") == "postgresql"
KEEP = 6   # databases of earlier tests are dropped once this many newer ones exist

_urls: dict[Path, str] = {}     # data_dir -> database URL
_created: list[str] = []
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run ``coro`` on the bridge's own event loop thread and wait for it."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, daemon=True, name="pgbridge").start()
    return asyncio.run_coroutine_threadsafe(coro, _loop).result(timeout)


server: Any = None   # tests.pg.PgServer, set by conftest's session fixture when ENABLED


def fresh_database(data_dir: Path) -> str:
    """A new empty database for the configuration whose data_dir is ``data_dir``."""
    while len(_created) >= KEEP:
        server.drop_database(_created.pop(0))
    name = server.create_database()
    _created.append(name)
    url: str = server.url(name)
    _urls[data_dir.absolute()] = url
    return url


def url_for(path: Path) -> str | None:
    """The database URL registered for the SQLite path's data_dir, if on PostgreSQL."""
    return _urls.get(Path(path).absolute().parent)


class SyncCursor:
    def __init__(self, cursor: Any) -> None:
        self._rows = run(cursor.fetchall())
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class SyncPg:
    """What a test needs of ``sqlite3.Connection``, on the test's PostgreSQL database."""

    def __init__(self, url: str, data_dir: Path) -> None:
        import asyncpg

        from listserv.store import keys
        from listserv.store.pg_connection import PgConnection
        from listserv.store.seal import Sealer

        self._conn = run(asyncpg.connect(url))
        self._db = PgConnection(self._conn, Sealer(keys.key(data_dir, keys.MAIL_KEY)))
        self.row_factory: Any = None

    def execute(self, sql: str, params: Any = ()) -> SyncCursor:
        async def go() -> Any:
            return await self._db.execute(sql, params)

        return SyncCursor(run(go()))

    def executemany(self, sql: str, many: Any) -> None:
        run(self._db.executemany(sql, list(many)))

    def commit(self) -> None:
        """Every statement outside a transaction is committed at once."""

    def close(self) -> None:
        if not self._conn.is_closed():
            run(self._conn.close())

    def __enter__(self) -> SyncPg:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
