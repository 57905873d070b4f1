"""asyncpg spoken to like aiosqlite: the connection, cursor and row the shell expects.

The shell writes ``async with db.execute(sql, params) as cur`` and reads
rows by index and by name; ``PgConnection`` does that on an asyncpg
connection (a transaction) or pool (single reads), with each statement put
through ``store.dialect`` first. Sealing happens here, in Python: the
parameters the translation names are sealed before they are sent, the
columns it names are opened when they come back.
"""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import asyncpg

from listserv.errors import StoreError
from listserv.store import dialect
from listserv.store.seal import Sealer

# What a dead server, a refused connection or a broken pool raise.
FAULTS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


class Row(tuple):  # type: ignore[type-arg]
    """A result row readable by index and by column name, like ``aiosqlite.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Iterable[Any], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


class PgCursor:
    def __init__(self, rows: list[Row], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    async def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Row]:
        return self._rows

    def __aiter__(self) -> AsyncIterator[Row]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Row]:
        for row in self._rows:
            yield row


class _Pending:
    """What ``execute`` returns: await it, or use it with ``async with``."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> PgCursor:
        cursor: PgCursor = await self._run()
        return cursor

    async def __aexit__(self, *exc: object) -> None:
        return None


class PgConnection:
    """An asyncpg connection, or the pool for single reads, spoken to like aiosqlite."""

    dialect = "postgresql"   # for the few readers that say a thing differently (archive search)

    def __init__(self, target: asyncpg.Connection | asyncpg.Pool, sealer: Sealer) -> None:
        self._target = target
        self._sealer = sealer
        self.notify: set[str] = set()

    def execute(self, sql: str, params: Any = ()) -> _Pending:
        return _Pending(lambda: self._execute(sql, params))

    async def executemany(self, sql: str, many: Iterable[Any]) -> None:
        t = dialect.to_postgres(sql)
        args = [self._arguments(t, params) for params in many]
        if not args:
            return
        if t.notify:
            self.notify.add(t.notify)
        try:
            await self._target.executemany(t.sql, args)
        except FAULTS as exc:
            raise StoreError(f"write failed: {exc}") from exc

    async def _execute(self, sql: str, params: Any) -> PgCursor:
        t = dialect.to_postgres(sql)
        args = self._arguments(t, params)
        if t.notify:
            self.notify.add(t.notify)
        try:
            if t.returns_rows:
                records = await self._target.fetch(t.sql, *args)
                rows = self._rows(t, records)
                lastrowid = rows[-1][0] if t.returning_id and rows else None
                return PgCursor(rows, len(rows) if t.returning else -1, lastrowid)
            status = await self._target.execute(t.sql, *args)
        except FAULTS as exc:
            raise StoreError(f"database: {type(exc).__name__}: {exc}") from exc
        return PgCursor([], dialect.status_count(status), None)

    def _arguments(self, t: dialect.Translated, params: Any) -> list[object]:
        args = dialect.arguments(t, params)
        for position in t.sealed:
            args[position] = self._sealer.seal(args[position])  # type: ignore[arg-type]
        return args

    def _rows(self, t: dialect.Translated, records: list[asyncpg.Record]) -> list[Row]:
        if not records:
            return []
        index = {name: i for i, name in enumerate(records[0].keys())}
        opened = [(index[name], kind) for name, kind in t.unsealed if name in index]
        rows = []
        for record in records:
            values = [_plain(v) for v in record.values()]
            for i, kind in opened:
                values[i] = (self._sealer.unseal_text(values[i]) if kind == "text"
                             else self._sealer.unseal(values[i]))
            rows.append(Row(values, index))
        return rows


def _plain(value: Any) -> Any:
    """What SQLite would have returned: ints for whole sums, bytes for bytea."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value
