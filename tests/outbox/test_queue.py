"""Queuing a post's recipients in chunks: the rows and the cursor move together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from listserv.moderation.posts import discard_any
from listserv.outbox import queue as outbox
from listserv.store.database import Store
from tests.conftest import LIST

BOUNCES = LIST.replace("@", "-bounces@")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "var" / "listserv.sqlite3")
    yield s
    await s.close()


async def members(store: Store, n: int, *, disabled: set[int] = frozenset()) -> None:
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at, status) VALUES (?, ?, ?, ?)",
            [(LIST, f"m{i:04d}@x.example", "2026-01-01T00:00:00.000000Z",
              "disabled" if i in disabled else "enabled") for i in range(n)])


async def post(store: Store, first_chunk: int | None) -> tuple[int, int]:
    async with store.transaction() as db:
        return await outbox.enqueue_post(
            db, now=store.clock(), list_address=LIST, mail_from=BOUNCES, raw=b"Subject: t\r\n\r\n",
            message_id="<q@x>", inbox_id=None, verp=False, personalize=False,
            first_chunk=first_chunk)


async def rcpts(store: Store) -> list[str]:
    return [r[0] for r in await store.fetchall("SELECT rcpt FROM deliveries ORDER BY id")]


async def test_chunks_queue_every_enabled_member_once_in_member_order(store: Store) -> None:
    await members(store, 25, disabled={3, 17})
    outgoing_id, first = await post(store, first_chunk=5)
    assert first == 5
    sizes = []
    while True:
        async with store.transaction() as db:
            count, done = await outbox.queue_more(db, outgoing_id, limit=7)
        sizes.append(count)
        if done:
            break
    assert sizes == [7, 7, 4]  # 23 enabled: 5 + 7 + 7 + 4
    expected = [f"m{i:04d}@x.example" for i in range(25) if i not in {3, 17}]
    assert await rcpts(store) == expected
    async with store.transaction() as db:
        assert await outbox.queue_more(db, outgoing_id) == (0, True)  # nothing twice


async def test_without_a_first_chunk_everyone_is_queued_at_once(store: Store) -> None:
    await members(store, 12)
    outgoing_id, count = await post(store, first_chunk=None)
    row = await store.fetchone("SELECT fanout_after FROM outgoing WHERE id = ?", (outgoing_id,))
    assert count == 12 and row is not None and row[0] is None


async def test_a_discarded_post_queues_no_more_members(store: Store) -> None:
    await members(store, 10)
    outgoing_id, _ = await post(store, first_chunk=4)
    async with store.transaction() as db:
        await db.execute("INSERT INTO inbox (received_at, peer, mail_from, rcpt, list_address,"
                         " role, size, state) VALUES ('2026-01-01', '127.0.0.1:1', 'a@x', ?, ?,"
                         " 'post', 1, 'done')", (LIST, LIST))
        await db.execute("INSERT INTO posts (inbox_id, list_address, sender, rule, reason,"
                         " created_at, state, outgoing_id)"
                         " VALUES (1, ?, 'a@x', 'open', '', '2026-01-01', 'approved', ?)",
                         (LIST, outgoing_id))
        await discard_any(db, 1, by="cli", now=store.clock())
        assert await outbox.queue_more(db, outgoing_id) == (0, True)
    assert len(await rcpts(store)) == 4


async def test_members_of_lists_that_interleave_are_queued_for_their_own_list_only(
    store: Store,
) -> None:
    """The chunks walk the members table in id order past other lists' rows."""
    other = LIST.replace("@", "-andere@")
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST if i % 3 else other, f"m{i:04d}@x.example", "2026-01-01T00:00:00.000000Z")
             for i in range(40)])
    outgoing_id, first = await post(store, first_chunk=4)
    total = first
    while True:
        async with store.transaction() as db:
            count, done = await outbox.queue_more(db, outgoing_id, limit=6)
        total += count
        if done:
            break
    expected = [f"m{i:04d}@x.example" for i in range(40) if i % 3]
    assert total == len(expected) and await rcpts(store) == expected


async def test_a_small_list_after_a_large_one_is_queued_whole(store: Store) -> None:
    """Its members come after the cursor's walk through the other list's rows."""
    other = LIST.replace("@", "-andere@")
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(other, f"o{i:04d}@x.example", "2026-01-01T00:00:00.000000Z")
             for i in range(3000)] + [(LIST, "klein@x.example", "2026-01-01T00:00:00.000000Z")])
    outgoing_id, first = await post(store, first_chunk=500)
    assert first == 1 and await rcpts(store) == ["klein@x.example"]
    row = await store.fetchone("SELECT fanout_after FROM outgoing WHERE id = ?", (outgoing_id,))
    assert row is not None and row[0] is None
