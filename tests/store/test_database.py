"""The store on both backends (SQLite file, PostgreSQL server): group commit, crash recovery."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listserv.errors import StoreError
from listserv.store.database import MAX_ATTEMPTS, Store
from listserv.store.migrations import MIGRATIONS
from listserv.store.rows import InboxState, NewInbound
from tests.store.conftest import Opener

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def inbound(n: int = 0, rcpt: str = "l@d.example") -> NewInbound:
    return NewInbound(
        received_at=NOW, peer="127.0.0.1:1", helo="h", mail_from=f"a{n}@example.org",
        rcpt=rcpt, list_address="l@d.example", role="post", extension="",
        message_id=f"<{n}@x>", raw=b"Subject: %d\r\n\r\nbody\r\n" % n,
    )


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


async def test_new_database_is_wal_and_migrated(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    assert await store.schema_version() == MIGRATIONS[-1][0]
    await store.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


async def test_reopening_keeps_rows_and_applies_only_new_steps(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "db.sqlite3"
    store = await Store.open(path)
    await store.add_inbound([inbound(1)])
    await store.close()
    extra = (MIGRATIONS[-1][0] + 1, "CREATE TABLE later_feature (id INTEGER PRIMARY KEY)")
    monkeypatch.setattr("listserv.store.database.MIGRATIONS", [*MIGRATIONS, extra])
    store = await Store.open(path)
    assert await store.schema_version() == extra[0]
    assert (await store.fetchone("SELECT count(*) FROM inbox"))[0] == 1
    assert await store.fetchall("SELECT * FROM later_feature") == []
    await store.close()


async def test_concurrent_inserts_are_group_committed(opener: Opener) -> None:
    store = await opener()
    results = await asyncio.gather(*(store.add_inbound([inbound(i)]) for i in range(200)))
    ids = [r[0] for r in results]
    assert len(set(ids)) == 200
    rows = await store.fetchall("SELECT id, message_id FROM inbox ORDER BY id")
    # Each caller got the id of its own row.
    assert {row["id"]: row["message_id"] for row in rows} == {
        ids[i]: f"<{i}@x>" for i in range(200)
    }
    await store.close()


async def test_failed_write_leaves_nothing(opener: Opener) -> None:
    store = await opener()
    good = inbound(2)
    # A row that breaks a constraint fails the whole message, not half of it.
    broken = NewInbound(**{**inbound(3).__dict__, "mail_from": None})  # NOT NULL
    with pytest.raises(StoreError):
        await store.add_inbound([good, broken])
    assert (await store.fetchone("SELECT count(*) FROM inbox"))[0] == 0
    await store.add_inbound([good])
    assert (await store.fetchone("SELECT count(*) FROM inbox"))[0] == 1
    await store.close()


async def test_claim_is_in_order_and_survives_a_crash(opener: Opener) -> None:
    store = await opener()
    await store.add_inbound([inbound(1)])
    await store.add_inbound([inbound(2)])
    first = await store.claim_next()
    assert first is not None and first.message_id == "<1@x>"
    # The process dies here: no finish(). Simulate by dropping the connection.
    await store.close()
    store = await opener()
    assert await store.recover_claimed() == (1, 0)
    again = await store.claim_next()
    assert again is not None and again.id == first.id and again.attempts == 2
    await store.finish(again.id, "recorded")
    second = await store.claim_next()
    assert second is not None and second.message_id == "<2@x>"
    await store.close()


async def test_poison_message_is_parked_not_retried_forever(opener: Opener) -> None:
    store = await opener()
    await store.add_inbound([inbound(1)])
    for _ in range(MAX_ATTEMPTS):
        item = await store.claim_next()
        assert item is not None
        await store.recover_claimed()  # as if it crashed the daemon each time
    counts = await store.inbox_counts()
    assert counts == {"failed": 1}
    await store.close()


async def test_failed_attempt_is_retried_after_backoff(opener: Opener) -> None:
    clock = Clock()
    store = await opener(clock=clock)
    await store.add_inbound([inbound(1)])
    item = await store.claim_next()
    assert item is not None
    await store.fail(item, "RuntimeError: boom")
    assert await store.claim_next() is None          # not yet due
    due = await store.next_due()
    assert due == NOW + timedelta(seconds=30)
    clock.now = due
    retry = await store.claim_next()
    assert retry is not None and retry.id == item.id
    await store.close()


async def test_a_fault_after_the_handler_committed_does_not_run_it_again(
        opener: Opener) -> None:
    """The handler's change and finish_in are committed; publishing then raised."""
    store = await opener()
    await store.add_inbound([inbound(1)])
    item = await store.claim_next()
    assert item is not None
    async with store.transaction() as db:
        await store.finish_in(db, item.id, "approved by policy, post 1")
    assert await store.fail(item, "RuntimeError: publishing failed") == InboxState.DONE
    assert await store.claim_next() is None
    assert await store.inbox_counts() == {"done": 1}
    await store.close()
