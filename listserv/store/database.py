"""The SQLite store: one file, WAL, one write connection, ordered migrations.

Every state change is one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``)
run under one asyncio lock, so a change is applied whole or not at all and
a crash at any point leaves the database at the last commit. ``synchronous
= FULL`` makes a commit durable, which is what lets intake answer ``250``.

Intake's inserts are *group-committed*: messages that arrive while a
commit is running are written together by the next one, so many
concurrent SMTP clients cost one fsync per batch rather than one each,
and every client still gets its ``250`` only after its own row is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import aiosqlite

from listserv.clock import Clock, from_iso, iso, utcnow
from listserv.errors import StoreError
from listserv.mail.message import decode_words
from listserv.store import keys
from listserv.store.migrations import MIGRATIONS
from listserv.store.rows import InboxItem, InboxState, NewInbound
from listserv.store.seal import Sealer

MAX_ATTEMPTS = 5  # a message that fails this often is parked as 'failed'


class Store:
    """The SQLite store; ``postgres.PgStore`` is the same interface on PostgreSQL."""

    dialect = "sqlite"
    shared = False        # several daemons on one database (PostgreSQL only)
    skip_locked = ""      # appended to a claim's sub-select where rows can be locked

    def __init__(self, db: aiosqlite.Connection | None, path: Path, clock: Clock, *,
                 instance: str = "", lease: float = 300.0) -> None:
        self._db = db  # type: ignore[assignment]
        self.path = path
        self.clock = clock
        # Who claims rows: this installation (host and data_dir) and this process.
        self.instance = instance or f"{socket.gethostname()}:{path}"
        self.claimer = f"{self.instance}/{os.getpid()}"
        self.lease = timedelta(seconds=lease)
        self._lock = asyncio.Lock()
        self._pending: list[tuple[Sequence[NewInbound], asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, path: Path, *, clock: Clock = utcnow, busy_timeout: float = 5.0,
        instance: str = "",
    ) -> Store:
        try:
            keys.private_dir(path.parent)
            keys.private_file(path)   # 0600 before SQLite makes it: -wal and -shm inherit it
            sealer = Sealer(keys.key(path.parent, keys.MAIL_KEY))
            db = await aiosqlite.connect(path, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open database: {exc}") from exc
        try:
            db.row_factory = aiosqlite.Row
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            # For migrations that turn stored encoded-word names into text (step 7).
            await db.create_function("rfc2047_decode", 1, decode_words, deterministic=True)
            # Freed space is overwritten with zeros, so a deleted row (an erased
            # address, a used token's mail) does not live on in a free page.
            await db.execute("PRAGMA secure_delete = ON")
            await db.create_function("seal", 1, sealer.seal)
            await db.create_function("unseal", 1, sealer.unseal, deterministic=True)
            await db.create_function("unseal_text", 1, sealer.unseal_text, deterministic=True)
            for suffix in ("-wal", "-shm"):
                keys.tighten(path.with_name(path.name + suffix))
            store = cls(db, path, clock, instance=instance)
            await store._migrate()
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"{path}: cannot prepare database: {exc}") from exc
        return store

    async def close(self) -> None:
        await self.close_writes()
        await self._db.close()

    async def close_writes(self) -> None:
        """Wait for the intake rows being committed."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    def on_notify(self, what: str, wake: object) -> None:
        """One process owns an SQLite file: its own wake calls are all there is."""

    async def listen(self) -> None:
        """Nothing to listen to (see ``on_notify``)."""

    async def run_once(self, job: str, slot: str) -> bool:
        """Take the run of ``job`` for ``slot`` (a day, an hour); False if it was taken.

        With several daemons on one database each scheduler fires every job;
        the first to insert the row runs it, the others see it and skip, so
        a daily job runs once a day across all of them.
        """
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO job_runs (job, slot, claimed_by, started_at)"
                " VALUES (?, ?, ?, ?)", (job, slot, self.claimer, iso(self.clock())))
        return cur.rowcount == 1

    async def _migrate(self) -> None:
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = await self.schema_version()
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            # executescript would COMMIT on its own; run the statements
            # ourselves so each step is one transaction.
            async with self.transaction() as db:
                for statement in statements(script):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, iso(self.clock())),
                )

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT max(version) FROM schema_version")
        return int(row[0] or 0) if row is not None else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; any error rolls it back and becomes ``StoreError``."""
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot begin a write: {exc}") from exc
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as exc:
                # The failed COMMIT may already have ended the transaction.
                with contextlib.suppress(sqlite3.Error):
                    await self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"write failed: {exc}") from exc
                raise

    @property
    def reader(self) -> aiosqlite.Connection:
        """The connection, for a long read outside any transaction (a scan; never a write)."""
        return self._db

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[aiosqlite.Row]:
        async with self._db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[object] = ()) -> aiosqlite.Row | None:
        async with self._db.execute(sql, params) as cur:
            return await cur.fetchone()

    # -- inbox ---------------------------------------------------------------

    async def add_inbound(self, items: Sequence[NewInbound]) -> list[int]:
        """Commit one message's rows durably; return their ids.

        Raises ``StoreError`` when the write failed; then nothing of this
        message is in the database.
        """
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_inbound())
        return await asyncio.shield(future)

    async def _flush_inbound(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                ids = await self._insert_batch(batch)
            except Exception as exc:
                error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), message_ids in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(message_ids)

    async def _insert_batch(
        self, batch: list[tuple[Sequence[NewInbound], asyncio.Future[list[int]]]]
    ) -> list[list[int]]:
        result: list[list[int]] = []
        async with self.transaction() as db:
            for items, _ in batch:
                ids = []
                for it in items:
                    cursor = await db.execute(
                        "INSERT INTO inbox (received_at, peer, helo, mail_from, rcpt,"
                        " list_address, role, extension, message_id, size, raw)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, seal(?), ?, ?, seal(?))",
                        (iso(it.received_at), it.peer, it.helo, it.mail_from, it.rcpt,
                         it.list_address, it.role, it.extension, it.message_id,
                         len(it.raw), it.raw),
                    )
                    assert cursor.lastrowid is not None
                    ids.append(cursor.lastrowid)
                result.append(ids)
        return result

    async def recover_claimed(self) -> tuple[int, int]:
        """At start: work claimed by a process that died is taken up again.

        Returns (requeued, parked): a row that has already been tried
        ``MAX_ATTEMPTS`` times is parked as failed instead, so one poison
        message cannot crash the daemon in a loop.
        """
        async with self.transaction() as db:
            parked = await db.execute(
                "UPDATE inbox SET state = 'failed', outcome = 'crashed while processing',"
                " handled_at = ? WHERE state = 'processing' AND attempts >= ?",
                (iso(self.clock()), MAX_ATTEMPTS),
            )
            requeued = await db.execute(
                "UPDATE inbox SET state = 'new' WHERE state = 'processing'"
            )
        return requeued.rowcount, parked.rowcount

    async def release_sending(self) -> int:
        """At the sender's start: deliveries a crash left ``sending`` are ``pending`` again.

        Only this installation's own claims: on PostgreSQL another daemon's are
        alive, or are taken over when their lease runs out (``sender.CLAIMS``).
        """
        mine = self.instance + "/%" if self.shared else "%"
        async with self.transaction() as db:
            cur = await db.execute("UPDATE deliveries SET state = 'pending', next_attempt = NULL"
                                   " WHERE state = 'sending' AND claimed_by LIKE ?", (mine,))
        return int(cur.rowcount)

    async def claim_next(self) -> InboxItem | None:
        """Claim the oldest due row (state new -> processing), committed."""
        now = iso(self.clock())
        async with self.transaction() as db, db.execute(
            "UPDATE inbox SET state = 'processing', attempts = attempts + 1"
            " WHERE id = (SELECT id FROM inbox WHERE state = 'new'"
            "             AND (not_before IS NULL OR not_before <= ?)"
            "             ORDER BY id LIMIT 1)"
            " RETURNING id, received_at, peer, mail_from, rcpt, list_address, role,"
            "           unseal_text(extension) AS extension, message_id, unseal(raw) AS raw,"
            "           attempts",
            (now,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return InboxItem(**{k: row[k] for k in row.keys()})  # noqa: SIM118 (Row has no iter)

    async def next_due(self) -> datetime | None:
        """When the earliest deferred inbox row becomes due, if any."""
        row = await self.fetchone(
            "SELECT min(not_before) FROM inbox WHERE state = 'new' AND not_before IS NOT NULL"
        )
        if row is None or row[0] is None:
            return None
        return from_iso(row[0])

    async def next_delivery_due(self) -> datetime | None:
        """When the sender has work again: the first deferred delivery falls due or,
        with several daemons, another daemon's claim runs out (and is taken over)."""
        lease = " OR (state = 'sending' AND claimed_by <> ?)" if self.shared else ""
        row = await self.fetchone(
            "SELECT min(CASE state WHEN 'deferred' THEN next_attempt ELSE lease_until END)"
            f" FROM deliveries WHERE state = 'deferred'{lease}", (self.claimer,) if lease else ())
        return from_iso(row[0]) if row is not None and row[0] is not None else None

    async def finish(self, item_id: int, outcome: str) -> None:
        async with self.transaction() as db:
            await self.finish_in(db, item_id, outcome)

    async def finish_in(self, db: aiosqlite.Connection, item_id: int, outcome: str) -> None:
        """Mark a row done inside the caller's transaction.

        A handler that changes state calls this in the same transaction as
        its change, so a crash cannot apply the change and then do it again.
        The processor's own ``finish`` afterwards is then a no-op.
        """
        await db.execute(
            "UPDATE inbox SET state = 'done', outcome = ?, handled_at = ?"
            " WHERE id = ? AND state = 'processing'",
            (outcome, iso(self.clock()), item_id),
        )

    async def fail(self, item: InboxItem, error: str) -> InboxState:
        """A processing attempt raised: retry later with backoff, or park it.

        Only a row still ``processing``: a handler that committed its change
        (and ``finish_in``) and then raised on a later step, such as
        publishing, must not run again, or it would apply its change twice.
        That row stays ``done`` and ``DONE`` is returned.
        """
        now = self.clock()
        async with self.transaction() as db:
            if item.attempts >= MAX_ATTEMPTS:
                cur = await db.execute(
                    "UPDATE inbox SET state = 'failed', outcome = ?, handled_at = ?"
                    " WHERE id = ? AND state = 'processing'", (error, iso(now), item.id))
                return InboxState.FAILED if cur.rowcount else InboxState.DONE
            delay = timedelta(seconds=30 * 2 ** (item.attempts - 1))
            cur = await db.execute(
                "UPDATE inbox SET state = 'new', outcome = ?, not_before = ?"
                " WHERE id = ? AND state = 'processing'", (error, iso(now + delay), item.id))
            return InboxState.NEW if cur.rowcount else InboxState.DONE

    async def scrub(self) -> None:
        """Leave no trace of deleted data in the files: rebuild, then empty the WAL.

        ``secure_delete`` zeroes what is freed from now on; ``VACUUM``
        rewrites the whole file, so space freed before (by an older
        version, or a connection without the pragma) goes too; the
        ``TRUNCATE`` checkpoint copies the WAL into the file and cuts the
        WAL to zero bytes, so no older page image stays in it. Used by
        ``members forget``. Waits for the daemon's writes (busy timeout).
        """
        async with self._lock:
            try:
                await self._db.execute("VACUUM")
                for _ in range(50):   # a reader of the daemon's may hold the WAL a moment
                    async with self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                        row = await cur.fetchone()
                    if row is not None and row[0] == 0:
                        return
                    await asyncio.sleep(0.1)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot scrub the database (run it again): {exc}") from exc
            raise StoreError("cannot empty the WAL: a reader holds it (run it again)")

    async def inbox_counts(self) -> dict[str, int]:
        rows = await self.fetchall("SELECT state, count(*) FROM inbox GROUP BY state")
        return {row[0]: row[1] for row in rows}


def statements(script: str) -> list[str]:
    """Split a migration into statements (migrations hold no ';' in literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
