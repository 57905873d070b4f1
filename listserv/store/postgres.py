"""The PostgreSQL store: the same interface as ``database.Store``, for several daemons.

Selected by ``[store] url = "postgresql://…"``. The shell writes its SQL
once, in SQLite's dialect; ``store.dialect`` says it again for PostgreSQL,
and ``PgConnection`` gives it the shape of an aiosqlite connection
(``execute`` as an awaitable and an async context manager, cursors with
``fetchone``, ``fetchall``, ``rowcount`` and ``lastrowid``, rows readable by
index and by name). So every shell module runs on both backends unchanged,
and the store tests run against both.

What is different, and why:

* **Several daemons.** Inbox rows are claimed with ``FOR UPDATE SKIP
  LOCKED`` and a lease (``inbox.claimed_by``, ``lease_until``): two daemons
  never take the same row, and a dead daemon's claim is taken over once its
  lease has run out (a live daemon renews its leases every third of one).
  At start a daemon takes back only the claims of its own earlier life
  (same ``instance``), never another live daemon's.
* **Durability.** ``synchronous_commit = on`` for every connection: intake's
  ``250`` follows a commit that is on the server's disk. A database that
  cannot be reached is a ``StoreError``, which intake answers with ``451``.
* **Waking.** An insert into ``deliveries`` or ``inbox`` sends ``NOTIFY
  listserv`` with the table's name at commit; every daemon listens and wakes
  its sender or processor, so work committed by one daemon is seen by all
  without polling.
* **Sealing** is done here, in Python, not by SQL functions: the key never
  goes to the database server.
* **Migrations** run under an advisory lock, so two daemons started at once
  do not both apply a step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from listserv.clock import Clock, iso, utcnow
from listserv.errors import StoreError
from listserv.store import keys
from listserv.store.database import MAX_ATTEMPTS, Store, statements
from listserv.store.migrations_pg import postgres_migrations
from listserv.store.pg_connection import FAULTS as _FAULTS
from listserv.store.pg_connection import PgConnection, Row
from listserv.store.rows import InboxItem
from listserv.store.seal import Sealer

CHANNEL = "listserv"
MIGRATION_LOCK = 0x6C697374   # "list": the advisory lock key of schema changes
class PgStore(Store):
    """``Store`` on PostgreSQL; see the module docstring for what differs."""

    dialect = "postgresql"
    shared = True
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool, sealer: Sealer, data_dir: Path, clock: Clock,
                 instance: str, lease: float, connect: Callable[[], Any] | None = None) -> None:
        super().__init__(None, data_dir / "postgresql", clock, instance=instance, lease=lease)
        self._pool = pool
        self._sealer = sealer
        self._write = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._wakers: dict[str, list[Callable[[], None]]] = {}
        self._connect = connect    # a connection of its own, for LISTEN

    @classmethod
    async def connect(cls, url: str, *, data_dir: Path, password: str | None = None,
                      clock: Clock = utcnow, instance: str = "", lease: float = 300.0,
                      pool_size: int = 8) -> PgStore:
        try:
            keys.private_dir(data_dir)
            sealer = Sealer(keys.key(data_dir, keys.MAIL_KEY))
            pool = await asyncpg.create_pool(
                url, password=password, min_size=1, max_size=pool_size, timeout=10,
                command_timeout=60, server_settings={"synchronous_commit": "on"})
        except (*_FAULTS, ValueError) as exc:
            raise StoreError(f"{_safe(url)}: cannot connect: {exc}") from exc
        store = cls(pool, sealer, data_dir, clock, instance, lease,
                    lambda: asyncpg.connect(url, password=password, timeout=10))
        try:
            await store.migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await super().close_writes()
        if self._listener is not None:   # closing twice (a daemon stopped twice) is harmless
            listener, self._listener = self._listener, None
            with contextlib.suppress(*_FAULTS):
                await listener.close()
        await self._pool.close()

    async def migrate(self) -> None:
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            for version, script in postgres_migrations():
                if version <= current:
                    continue
                for statement in statements(script):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    version, iso(self.clock()))

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One pooled connection; a server that cannot be reached is ``StoreError``."""
        try:
            conn = await self._pool.acquire(timeout=10)
        except _FAULTS as exc:
            raise StoreError(f"database unreachable: {exc}") from exc
        try:
            yield conn
        except _FAULTS as exc:
            raise StoreError(f"database: {exc}") from exc
        finally:
            with contextlib.suppress(*_FAULTS):
                await self._pool.release(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:  # type: ignore[override]
        """One write transaction; one at a time per daemon, as in SQLite."""
        async with self._write, self.connection() as conn:
            db = PgConnection(conn, self._sealer)
            tx = conn.transaction()
            try:
                await tx.start()
            except _FAULTS as exc:
                raise StoreError(f"cannot begin a write: {exc}") from exc
            try:
                yield db
                for payload in sorted(db.notify):
                    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                await tx.commit()
            except BaseException as exc:
                with contextlib.suppress(*_FAULTS):   # a dead connection ended it already
                    await tx.rollback()
                if isinstance(exc, _FAULTS):
                    raise StoreError(f"write failed: {exc}") from exc
                raise
        self._wake_here(db.notify)

    @property
    def reader(self) -> PgConnection:  # type: ignore[override]
        return PgConnection(self._pool, self._sealer)

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[Row]:  # type: ignore[override]
        cursor = await self.reader.execute(sql, params)
        return await cursor.fetchall()

    async def fetchone(self, sql: str, params: Sequence[object] = ()) -> Row | None:  # type: ignore[override]
        cursor = await self.reader.execute(sql, params)
        return await cursor.fetchone()

    # -- several daemons -------------------------------------------------------

    async def recover_claimed(self) -> tuple[int, int]:
        """At start: take back the claims of this instance's earlier life only."""
        mine = self.instance + "/%"
        async with self.transaction() as db:
            parked = await db.execute(
                "UPDATE inbox SET state = 'failed', outcome = 'crashed while processing',"
                " handled_at = ? WHERE state = 'processing' AND attempts >= ?"
                " AND claimed_by LIKE ?", (iso(self.clock()), MAX_ATTEMPTS, mine))
            requeued = await db.execute(
                "UPDATE inbox SET state = 'new' WHERE state = 'processing'"
                " AND claimed_by LIKE ?", (mine,))
        return requeued.rowcount, parked.rowcount

    async def claim_next(self) -> InboxItem | None:
        """The oldest due row, or one whose claimer's lease ran out; never a live claim."""
        now = self.clock()
        async with self.transaction() as db, db.execute(
            "UPDATE inbox SET state = 'processing', attempts = attempts + 1,"
            " claimed_by = ?, lease_until = ?"
            " WHERE id = (SELECT id FROM inbox WHERE (state = 'new'"
            "             AND (not_before IS NULL OR not_before <= ?))"
            "             OR (state = 'processing' AND lease_until < ?)"
            "             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, received_at, peer, mail_from, rcpt, list_address, role,"
            "           unseal_text(extension) AS extension, message_id, unseal(raw) AS raw,"
            "           attempts",
            (self.claimer, iso(now + self.lease), iso(now), iso(now)),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return InboxItem(**{k: row[k] for k in row.keys()})  # noqa: SIM118

    def on_notify(self, what: str, wake: Callable[[], None]) -> None:
        """Call ``wake`` when any daemon commits new rows of ``what`` (inbox, deliveries)."""
        self._wakers.setdefault(what, []).append(wake)

    async def listen(self) -> None:
        """Open the LISTEN connection (the daemon calls this once it has its wakers)."""
        if self._connect is None:
            return
        try:
            self._listener = await self._connect()
            await self._listener.add_listener(CHANNEL, self._heard)
        except _FAULTS as exc:
            raise StoreError(f"cannot listen for notifications: {exc}") from exc
        self._renewer = asyncio.create_task(self._renew_leases(), name="leases")

    async def _renew_leases(self) -> None:
        """While this daemon lives, its claims stay its own: renewed every third of the lease.

        A page of deliveries can take longer than the lease to send (a slow
        relay, a long list); without renewal another daemon would take over
        rows this one is still sending, and both would send them. A daemon
        that dies stops renewing, and its claims run out after one lease.
        """
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            if self._listener is not None and self._listener.is_closed():
                await self._listen_again()   # the server restarted: LISTEN anew
            until = iso(self.clock() + self.lease)
            with contextlib.suppress(StoreError):  # the server is away: the next round tries
                async with self.transaction() as db:
                    for table, state in (("deliveries", "sending"), ("inbox", "processing")):
                        await db.execute(f"UPDATE {table} SET lease_until = ?"
                                         " WHERE state = ? AND claimed_by = ?",
                                         (until, state, self.claimer))

    async def _listen_again(self) -> None:
        """A new LISTEN connection; until it works, the processor's and sender's polls serve."""
        assert self._connect is not None
        with contextlib.suppress(*_FAULTS):
            listener = await self._connect()
            await listener.add_listener(CHANNEL, self._heard)
            self._listener = listener
            self._wake_here(set(self._wakers))   # what was committed meanwhile

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._wake_here({payload})

    def _wake_here(self, what: set[str]) -> None:
        for payload in what:
            for wake in self._wakers.get(payload, ()):
                wake()

    async def scrub(self) -> None:
        """Rewrite the tables an erasure touched, so dead row versions are gone.

        ``VACUUM FULL`` writes each table anew and drops the old files; what
        the server's WAL and the operator's base backups still hold ages out
        with their retention (docs/operating-postgresql.md).
        """
        try:
            async with self._write, self.connection() as conn:
                for table in ("members", "consent_log", "tokens", "inbox", "outgoing",
                              "deliveries", "posts", "reply_log", "notice_log", "archive",
                              "archive_fts", "archive_parts", "dkim_seen", "login_links",
                              "web_sessions"):
                    await conn.execute(f"VACUUM FULL {table}")
        except StoreError as exc:
            raise StoreError(f"cannot scrub the database (run it again): {exc}") from exc


def _safe(url: str) -> str:
    """The URL without a password, for a message an operator reads."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        rest = credentials.split(":", 1)[0] + "@" + host
    return scheme + sep + rest
