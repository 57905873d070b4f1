"""Several daemons on one PostgreSQL: claims, leases, jobs once, NOTIFY, sealing, faults."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from listserv.errors import StoreError
from listserv.store.postgres import PgStore
from listserv.store.seal import MAGIC
from tests.conftest import wait_for
from tests.store.test_database import NOW, Clock, inbound


async def two(pg_url: str, tmp_path: Path, clock: Clock | None = None,
              lease: float = 300.0) -> tuple[PgStore, PgStore]:
    """Two daemons' stores: two installations (instances) on one database."""
    kwargs = {"clock": clock} if clock is not None else {}
    a = await PgStore.connect(pg_url, data_dir=tmp_path / "var", instance="host-a:/var",
                              lease=lease, **kwargs)
    b = await PgStore.connect(pg_url, data_dir=tmp_path / "var", instance="host-b:/var",
                              lease=lease, **kwargs)
    return a, b


async def test_two_daemons_never_claim_the_same_row(pg_url: str, tmp_path: Path) -> None:
    a, b = await two(pg_url, tmp_path)
    for i in range(120):
        await a.add_inbound([inbound(i)])
    taken: dict[PgStore, list[int]] = {a: [], b: []}

    async def drain(store: PgStore) -> None:
        while (item := await store.claim_next()) is not None:
            taken[store].append(item.id)
            await asyncio.sleep(0)   # let the other daemon's claim interleave
            await store.finish(item.id, "done")

    await asyncio.gather(drain(a), drain(b))
    assert sorted(taken[a] + taken[b]) == list(range(1, 121))
    assert taken[a] and taken[b], "both daemons worked"
    assert await a.inbox_counts() == {"done": 120}
    await a.close()
    await b.close()


async def test_a_dead_daemons_claim_is_taken_over_after_its_lease(pg_url: str,
                                                                  tmp_path: Path) -> None:
    clock = Clock()
    a, b = await two(pg_url, tmp_path, clock, lease=60)
    await a.add_inbound([inbound(1)])
    first = await a.claim_next()
    assert first is not None
    await a.close()                                   # daemon A dies holding the claim
    assert await b.recover_claimed() == (0, 0)        # not B's own claim: left alone
    assert await b.claim_next() is None               # the lease still runs
    clock.now = NOW + timedelta(seconds=61)
    again = await b.claim_next()
    assert again is not None and again.id == first.id and again.attempts == 2
    await b.close()


async def test_restart_takes_back_only_its_own_claims(pg_url: str, tmp_path: Path) -> None:
    a, b = await two(pg_url, tmp_path)
    await a.add_inbound([inbound(1)])
    await a.add_inbound([inbound(2)])
    mine = await a.claim_next()
    theirs = await b.claim_next()
    assert mine is not None and theirs is not None
    await a.close()
    a = await PgStore.connect(pg_url, data_dir=tmp_path / "var", instance="host-a:/var")
    assert await a.recover_claimed() == (1, 0)        # A's row, not B's live one
    rows = await a.fetchall("SELECT id, state FROM inbox ORDER BY id")
    assert [(r["id"], r["state"]) for r in rows] == [(mine.id, "new"), (theirs.id, "processing")]
    await a.close()
    await b.close()


async def test_a_job_slot_runs_once_across_daemons(pg_url: str, tmp_path: Path) -> None:
    a, b = await two(pg_url, tmp_path)
    results = await asyncio.gather(*(s.run_once("retention", "2026-11-30")
                                     for s in (a, b, a, b)))
    assert sorted(results) == [False, False, False, True]
    assert await b.run_once("retention", "2026-12-01") is True
    await a.close()
    await b.close()


async def test_a_commit_by_one_daemon_wakes_the_other(pg_url: str, tmp_path: Path) -> None:
    a, b = await two(pg_url, tmp_path)
    woken = asyncio.Event()
    b.on_notify("inbox", woken.set)
    await b.listen()
    await a.add_inbound([inbound(1)])
    await asyncio.wait_for(woken.wait(), timeout=5)
    await a.close()
    await b.close()


async def test_stored_mail_is_sealed_on_the_server(pg_url: str, tmp_path: Path) -> None:
    store = await PgStore.connect(pg_url, data_dir=tmp_path / "var")
    item = inbound(1)
    await store.add_inbound([item])
    conn = await asyncpg.connect(pg_url)
    raw, extension = await conn.fetchrow("SELECT raw, extension FROM inbox")
    await conn.close()
    assert raw.startswith(MAGIC) and b"body" not in raw
    assert extension.startswith(MAGIC) or extension == b""
    claimed = await store.claim_next()
    assert claimed is not None and claimed.raw == item.raw
    await store.close()


async def test_an_unreachable_server_is_one_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot connect") as caught:
        await PgStore.connect(f"postgresql://listserv@/nowhere?host={tmp_path}",
                              data_dir=tmp_path / "var")
    assert "Traceback" not in str(caught.value)


async def test_a_server_gone_mid_run_is_a_store_error_and_loses_nothing(
        pg_url: str, pg_server, tmp_path: Path) -> None:
    store = await PgStore.connect(pg_url, data_dir=tmp_path / "var")
    await store.add_inbound([inbound(1)])
    name = urlsplit(pg_url).path.lstrip("/")
    pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false",
                   f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   f" WHERE datname = '{name}'")
    with pytest.raises(StoreError):
        await store.add_inbound([inbound(2)])
    pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    ids = await wait_for(lambda: _try(store.add_inbound([inbound(3)])), timeout=10)
    assert ids
    rows = await store.fetchall("SELECT message_id FROM inbox ORDER BY id")
    assert [r["message_id"] for r in rows] == ["<1@x>", "<3@x>"]
    await store.close()


async def _try(write: object) -> object:
    try:
        return await write  # type: ignore[misc]
    except StoreError:
        return None


async def test_a_second_host_without_the_keys_is_refused(pg_url: str, tmp_path: Path) -> None:
    """Opening would make a new mail.key: the first host's stored mail unreadable here."""
    from listserv import config as configuration
    from listserv.store.backends import open_store
    from tests.conftest import write_config

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    extra = f'\n[store]\nurl = "{pg_url}"\n'
    first = configuration.load(write_config(tmp_path / "one", extra=extra))
    store = await open_store(first)
    await store.add_inbound([inbound(1)])
    await store.close()
    second = configuration.load(write_config(tmp_path / "two", extra=extra))
    with pytest.raises(StoreError, match=r"copy mail\.key, verp\.key and unsubscribe\.key"):
        await open_store(second)
    assert not (second.server.data_dir / "mail.key").exists()


async def test_a_lost_listen_connection_is_opened_again(pg_url: str, pg_server,
                                                        tmp_path: Path) -> None:
    a, b = await two(pg_url, tmp_path, lease=1.5)
    woken = asyncio.Event()
    b.on_notify("inbox", woken.set)
    await b.listen()
    name = urlsplit(pg_url).path.lstrip("/")
    pg_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   f" WHERE datname = '{name}' AND query ILIKE 'LISTEN%'")
    woken.clear()

    async def heard() -> bool:
        await a.add_inbound([inbound(len(await a.fetchall("SELECT id FROM inbox")))])
        try:
            await asyncio.wait_for(woken.wait(), timeout=0.5)
        except TimeoutError:
            return False
        return True

    assert await wait_for(heard, timeout=10)
    await a.close()
    await b.close()
