"""Backups and restarts: a copy taken mid-delivery restores, a restart keeps every retry."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP

from listserv.clock import iso
from listserv.config import Config
from listserv.daemon import Daemon
from listserv.errors import StoreError
from listserv.ops import backup as backups
from listserv.ops.backup import backup
from listserv.store import keys
from listserv.store.database import Store
from tests import pgbridge, sealed
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon, wait_for
from tests.delivery import test_transports as test_transports
from tests.delivery.test_transports import Relay

serve = test_transports.serve  # the relay sink fixture
# listserv's own backups are SQLite's; on PostgreSQL they are pg_dump's (tested below).
sqlite_only = pytest.mark.skipif(pgbridge.ENABLED, reason="listserv's backups are SQLite's")

ANNA = "anna@x.de"


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def member_addresses(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT address FROM members")}


async def add_members(store: Store, addresses: list[str]) -> None:
    async with store.transaction() as db:
        await db.executemany("INSERT INTO members (list_address, address, joined_at)"
                             " VALUES (?, ?, ?)",
                             [(LIST, a, iso(datetime.now(UTC))) for a in addresses])


async def send(daemon: Daemon, sender: str = ANNA, subject: str = "Fachtag") -> None:
    """Hand one post to the daemon over SMTP; do not wait for its delivery."""
    assert daemon.address is not None
    smtp = aiosmtplib.SMTP(hostname=daemon.address[0], port=daemon.address[1], start_tls=False)
    await smtp.connect()
    errors, _ = await smtp.sendmail(sender, [LIST], mail(sender=sender, subject=subject))
    await smtp.quit()
    assert errors == {}


def relay_config(config_factory: Callable[..., Config], relay: Relay, **server: Any) -> Config:
    return config_factory(
        server=server or None,
        delivery={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
                  "smtp_starttls": "off", "verp": False, "max_recipients_per_transaction": 50},
        lists=[{"address": LIST, "display_name": "SAS", "moderators": [MODERATOR],
                "post_policy": "open"}])


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    """Daemons a test started; each is stopped at the end (stopping twice is harmless)."""
    started: list[Daemon] = []
    yield started
    for d in started:
        await d.stop()


# -- the backup itself --------------------------------------------------------


async def test_backup_is_checked_named_by_utc_time_and_keeps_the_newest(tmp_path: Path) -> None:
    db_path = tmp_path / "var" / "listserv.sqlite3"
    store = await Store.open(db_path)
    await add_members(store, ["a@x.de", "b@y.de"])
    target = tmp_path / "var" / "backups"
    start = datetime(2026, 11, 1, 1, 30, tzinfo=UTC)
    made = [backup(db_path, target, keep=3, now=start + timedelta(days=i)) for i in range(5)]
    await store.close()
    assert made[0].name == "listserv-20261101T013000Z.sqlite3"
    assert backups.existing(target) == made[-3:]           # the oldest two are gone
    assert [p.name for p in target.iterdir() if p.name.startswith(".")] == []  # no temp left
    for path in made[-3:]:
        assert integrity(path) == "ok" and member_addresses(path) == {"a@x.de", "b@y.de"}
        assert not Path(f"{path}-wal").exists()                # one self-contained file
    assert backups.taken_at(made[-1]) == start + timedelta(days=4)


def test_a_missing_database_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no database"):
        backup(tmp_path / "nothing.sqlite3", tmp_path / "backups")
    assert not (tmp_path / "nothing.sqlite3").exists()


@sqlite_only
async def test_the_daily_job_writes_into_data_dir_backups(
    clocked_daemon: Daemon, clock: FakeClock
) -> None:
    assert clocked_daemon.scheduler is not None
    assert "backup" in clocked_daemon.scheduler.next_runs()
    name = await clocked_daemon.scheduler.run_now("backup")
    assert name == "listserv-20261125T090000Z.sqlite3"
    path = clocked_daemon.config.server.data_dir / "backups" / str(name)
    assert integrity(path) == "ok"


# -- backup while delivering, then restore ------------------------------------


@sqlite_only
async def test_backup_taken_while_delivering_restores_and_runs(
    serve: Callable[..., Any], config_factory: Callable[..., Config], dns: FakeDns,
    tmp_path: Path, daemons: list[Daemon],
) -> None:
    gate = asyncio.Event()
    arrived = 0

    class GatedRelay(Relay):
        """Holds every DATA until the test opens the gate: delivery is mid-flight."""

        async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
            nonlocal arrived
            arrived += 1
            await gate.wait()
            return await super().handle_DATA(server, session, envelope)

    relay = await serve(GatedRelay())
    cfg = relay_config(config_factory, relay)
    daemon = make_daemon(cfg, dns)
    await daemon.start()
    daemons.append(daemon)
    assert daemon.store is not None
    members = [ANNA] + [f"m{i:03}@d{i % 7}.de" for i in range(399)]
    await add_members(daemon.store, members)
    await send(daemon)
    await wait_for(lambda: arrived >= 1, timeout=10)   # transactions are open at the relay
    path = await asyncio.to_thread(backup, cfg.database_path, tmp_path / "backups")
    gate.set()
    await wait_for(lambda: len(relay.delivered()) == len(members), timeout=20)
    await daemon.stop()

    # Restore as docs/operations.md says: copy over the database, no -wal/-shm.
    restored_dir = tmp_path / "restored"
    restored_cfg = config_factory(
        server={"data_dir": str(restored_dir / "var")},
        delivery={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
                  "smtp_starttls": "off", "verp": False},
        lists=[{"address": LIST, "display_name": "SAS", "moderators": [MODERATOR],
                "post_policy": "open"}])
    restored_cfg.database_path.parent.mkdir(parents=True)
    shutil.copyfile(path, restored_cfg.database_path)
    # The keys are not in the backup (a stolen backup alone reads nothing): the
    # operator restores them from where she keeps them (docs/operations.md).
    for name in (keys.MAIL_KEY, keys.VERP_KEY):
        shutil.copyfile(cfg.server.data_dir / name, restored_cfg.server.data_dir / name)
    assert integrity(restored_cfg.database_path) == "ok"
    assert member_addresses(restored_cfg.database_path) == set(members)
    with sqlite3.connect(restored_cfg.database_path) as db:
        states = Counter(r[0] for r in db.execute("SELECT state FROM deliveries"))
    assert states["sent"] < len(members)      # the copy is from the middle of the sending
    # A daemon runs on the restored copy and finishes what the copy had not sent.
    again = make_daemon(restored_cfg, dns)
    await again.start()
    daemons.append(again)

    def unsent() -> list[Any]:
        with sqlite3.connect(restored_cfg.database_path) as db:
            return db.execute("SELECT id FROM deliveries WHERE state != 'sent'").fetchall()

    await wait_for(lambda: not unsent(), timeout=20)
    assert set(relay.delivered()) == set(members)


# -- a restart in the middle of a retry schedule ----------------------------------


async def test_a_restart_mid_retry_schedule_loses_no_retry(
    serve: Callable[..., Any], config_factory: Callable[..., Config], dns: FakeDns,
    clock: FakeClock, daemons: list[Daemon],
) -> None:
    down = True
    relay = await serve(Relay(data_reply=lambda: "451 4.3.0 try later" if down else None))
    cfg = relay_config(config_factory, relay)
    members = [ANNA] + [f"m{i}@d{i % 3}.de" for i in range(19)]
    first = make_daemon(cfg, dns, clock=clock)
    await first.start()
    daemons.append(first)
    assert first.store is not None
    await add_members(first.store, members)
    await send(first)
    query = "SELECT rcpt, state, attempts, next_attempt FROM deliveries ORDER BY rcpt"

    def deliveries() -> list[tuple[Any, ...]]:
        with sealed.connect(cfg.database_path) as db:
            return [tuple(r) for r in db.execute(query).fetchall()]

    await wait_for(lambda: {r[1] for r in deliveries()} == {"deferred"}, timeout=10)
    schedule = deliveries()
    assert len(schedule) == len(members)
    assert {r[3] for r in schedule} == {iso(clock.now + timedelta(minutes=1))}
    await first.stop()
    down = False
    second = make_daemon(cfg, dns, clock=clock)
    await second.start()
    daemons.append(second)
    assert second.sender is not None
    assert await second.sender.run_once() == 0       # nothing due yet: nothing taken
    assert deliveries() == schedule and not relay.messages
    clock.advance(minutes=2)
    second.wake_sender()
    await wait_for(lambda: {r[1] for r in deliveries()} == {"sent"}, timeout=10)
    assert relay.delivered() == Counter({m: 1 for m in members})
    assert {r[2] for r in deliveries()} == {2}       # the deferred try, then the one after


# -- on PostgreSQL the operator's pg_dump makes the backups --------------------


async def test_on_postgresql_backup_says_pg_dump_and_the_daily_job_skips_quietly(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from listserv import config as configuration
    from listserv.context import Context
    from listserv.store.backends import open_store
    from tests.conftest import write_config
    from tests.ops.test_health import run_cli

    path = write_config(tmp_path, extra=f'[store]\nurl = "{pg_url}"\n')
    cfg = configuration.load(path)
    assert run_cli("init", "--config", str(path), cwd=tmp_path).returncode == 0
    made = run_cli("backup", "--config", str(path), cwd=tmp_path)
    assert made.returncode == backups.EXIT_NOT_HERE == 2
    assert made.stdout == ""
    assert made.stderr.splitlines() == [
        f"listserv backup: the database is PostgreSQL ({pg_url}): back it up with pg_dump"
        " (deploy/postgresql); nothing was written"]
    assert not backups.backups_dir(cfg).exists()
    store = await open_store(cfg)
    try:
        with caplog.at_level("INFO", logger="listserv"):
            assert await backups.backup_job(Context(config=cfg, store=store,
                                                    clock=lambda: datetime.now(UTC))) == ""
    finally:
        await store.close()
    assert any("event=backup_skipped" in r.getMessage() for r in caplog.records)
    assert not backups.backups_dir(cfg).exists()
