"""``listserv status``: what it shows, when it says "needs attention", and the CLI's exit status."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listserv.clock import iso
from listserv.config import Config
from listserv.ops.backup import backup
from listserv.ops.health import gather, next_runs, render
from listserv.store.backends import open_store
from listserv.store.database import Store
from tests import pgbridge
from tests.conftest import LIST, ROOT, FakeClock

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)   # 10:00 in Berlin


# Tests of SQLite's own files (backups, the file that is not there): not on PostgreSQL.
sqlite_only = pytest.mark.skipif(pgbridge.ENABLED, reason="about SQLite's own files")


@pytest.fixture
async def store(cfg: Config, clock: FakeClock) -> AsyncIterator[Store]:
    s = await open_store(cfg, clock=clock)
    yield s
    await s.close()


async def insert(store: Store, table: str, **values: Any) -> int:
    names, marks = ", ".join(values), ", ".join("?" * len(values))
    async with store.transaction() as db:
        cur = await db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})",
                               tuple(values.values()))
    assert cur.lastrowid is not None
    return cur.lastrowid


async def inbox(store: Store, state: str, at: datetime) -> int:
    return await insert(store, "inbox", received_at=iso(at), peer="p", mail_from="a@b.de",
                        rcpt=LIST, list_address=LIST, role="post", size=1, raw=b"x",
                        state=state, handled_at=iso(at) if state != "new" else None)


async def quiet_list(store: Store) -> None:
    """A list as it should be: members, one post delivered this morning."""
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at, status) VALUES (?, ?, ?, ?)",
            [(LIST, f"m{i}@x.de", iso(T0), "enabled") for i in range(98)]
            + [(LIST, "gone@x.de", iso(T0), "disabled"), (LIST, "old@x.de", iso(T0), "disabled")])
    out = await insert(store, "outgoing", created_at=iso(T0 - timedelta(hours=3)), kind="post",
                       list_address=LIST, mail_from="b@x.de", raw=b"x")
    await insert(store, "deliveries", outgoing_id=out, rcpt="m1@x.de", domain="x.de",
                 state="sent", updated_at=iso(T0 - timedelta(minutes=2)))


@sqlite_only
async def test_a_healthy_list_shows_its_numbers_and_needs_nothing(
    cfg: Config, store: Store
) -> None:
    await quiet_list(store)
    backup(cfg.database_path, cfg.server.data_dir / "backups", now=T0 - timedelta(hours=8))
    report = await gather(store, cfg, T0)
    assert report.healthy, report.reasons
    text = render(report)
    assert "listserv status at 25.11.2026, 10:00 Uhr (Europe/Berlin)" in text
    assert "members   enabled 98, disabled 2" in text
    assert "last sent   25.11.2026, 09:58 Uhr (2 min ago)" in text
    assert "oldest due  -" in text
    assert "backup      listserv-20261125T010000Z.sqlite3 (8 h ago)" in text
    assert "held      0" in text and text.endswith("OK: nothing needs attention")
    assert "web         off (no [web] table)" in text   # the test config has no [web]


async def test_status_names_the_web_face_url_of_the_embedded_default(cfg: Config,
                                                                    store: Store) -> None:
    from listserv import config as configuration
    from listserv.ops.report import facts

    default = configuration.load(ROOT / "config" / "listserv.toml")
    assert default.web is not None and (default.web.host, default.web.port) == ("127.0.0.1",
                                                                                 8080)
    report = await gather(store, dataclasses.replace(cfg, web=default.web), T0)
    assert "web         http://127.0.0.1:8080/ (join form, /login, /desk/)" in render(report)
    assert facts(report)["web"] == "http://127.0.0.1:8080"


async def test_what_needs_attention_is_listed(cfg: Config, store: Store, clock: FakeClock) -> None:
    await quiet_list(store)
    old = T0 - timedelta(hours=2)
    out = await insert(store, "outgoing", created_at=iso(old), kind="post", list_address=LIST,
                       mail_from="b@x.de", raw=b"x")
    await insert(store, "deliveries", outgoing_id=out, rcpt="m2@x.de", domain="x.de",
                 state="deferred", next_attempt=iso(T0 + timedelta(hours=1)),
                 updated_at=iso(old))
    await inbox(store, "failed", T0 - timedelta(hours=3))
    await inbox(store, "new", T0 - timedelta(hours=1))
    held_inbox = await inbox(store, "done", T0 - timedelta(days=13, hours=1))
    await insert(store, "posts", inbox_id=held_inbox, list_address=LIST, sender="a@b.de",
                 rule="r", reason="r", created_at=iso(T0 - timedelta(days=13, hours=1)),
                 state="held")
    on_sqlite = store.dialect == "sqlite"     # on PostgreSQL, backups are pg_dump's
    if on_sqlite:
        backup(cfg.database_path, cfg.server.data_dir / "backups", now=T0 - timedelta(days=3))
    report = await gather(store, cfg, T0)
    text = render(report)
    assert len(report.reasons) == (5 if on_sqlite else 4), report.reasons
    assert "NEEDS ATTENTION:" in text
    assert "1 deliveries still not done an hour after queueing" in text
    assert "1 received mails not handled after 15 minutes" in text
    assert "1 received mails failed in the last 24 h" in text
    assert "held posts expire within a day" in text
    assert ("last backup is 3 days old" in text) == on_sqlite
    assert "deferred 1" in text and "held      1, oldest 13 days old" in text


@sqlite_only
async def test_no_backup_at_all_counts_only_after_two_days(cfg: Config, store: Store,
                                                           clock: FakeClock) -> None:
    assert (await gather(store, cfg, clock.now)).healthy      # a fresh install has had no night yet
    assert (await gather(store, cfg, clock.now + timedelta(days=3))).reasons == [
        "no backup yet (run 'listserv backup'; the daemon makes one daily)"]


def test_next_runs_come_from_the_jobs_own_triggers_in_local_time() -> None:
    runs = {job: str(when) for job, when, _ in next_runs("Europe/Berlin", T0)}
    assert {"retention", "backup", "bounce_decay", "notify_disabled", "expire_held"} <= set(runs)
    assert runs["retention"] == "2026-11-26 02:00:00+01:00"
    assert runs["backup"] == "2026-11-26 02:30:00+01:00"
    assert runs["bounce_decay"] == "2026-11-26 04:00:00+01:00"
    assert runs["remind_moderators"] == "2026-11-26 08:00:00+01:00"
    assert runs["expire_held"] == "2026-11-25 10:15:00+01:00"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "listserv", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@sqlite_only
def test_cli_status_and_backup_exit_codes(cfg: Config, tmp_path: Path) -> None:
    config = str(cfg.path)
    missing = run_cli("status", "--config", config, cwd=tmp_path)
    assert missing.returncode == 1 and "listserv init" in missing.stdout
    assert run_cli("init", "--config", config, cwd=tmp_path).returncode == 0
    made = run_cli("backup", "--config", config, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert Path(made.stdout.strip()).parent == cfg.server.data_dir / "backups"
    status = run_cli("status", "--config", config, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "OK: nothing needs attention" in status.stdout and "next runs" in status.stdout
    # A received mail nobody handled for an hour (the daemon is not running): exit 1.
    with sqlite3.connect(cfg.database_path) as db:
        db.execute("INSERT INTO inbox (received_at, peer, mail_from, rcpt, list_address, role,"
                   " size, raw) VALUES (?, 'p', 'a@b.de', ?, ?, 'post', 1, x'00')",
                   (iso(datetime.now(UTC) - timedelta(hours=1)), LIST, LIST))
    status = run_cli("status", "--config", config, cwd=tmp_path)
    assert status.returncode == 1
    assert "not handled after 15 minutes (is the daemon running?)" in status.stdout


@sqlite_only
async def test_an_old_database_is_named_and_init_is_suggested(
    tmp_path, capsys, monkeypatch
) -> None:
    from listserv import config as configuration
    from listserv.ops import health
    from listserv.store.database import Store
    from listserv.store.migrations import MIGRATIONS
    from tests.conftest import write_config

    cfg = configuration.load(write_config(tmp_path))
    monkeypatch.setattr("listserv.store.database.MIGRATIONS", MIGRATIONS[:1])
    store = await Store.open(cfg.database_path)
    await store.close()
    assert await health.command(cfg) == 1
    out = capsys.readouterr().out
    assert f"has schema version 1, this listserv needs {MIGRATIONS[-1][0]}" in out
    assert "listserv init" in out


async def test_facts_for_a_monitor_carry_the_oldest_due_delivery_and_the_same_reasons(
    cfg: Config, store: Store
) -> None:
    from listserv.ops.health import snapshot
    from listserv.ops.report import facts

    await quiet_list(store)
    queued = T0 - timedelta(minutes=20)
    out = await insert(store, "outgoing", created_at=iso(queued), kind="post", list_address=LIST,
                       mail_from="b@x.de", raw=b"x")
    await insert(store, "deliveries", outgoing_id=out, rcpt="m3@x.de", domain="x.de",
                 state="deferred", next_attempt=iso(T0 - timedelta(minutes=1)))
    later = await insert(store, "outgoing", created_at=iso(T0 - timedelta(hours=5)),
                         kind="post", list_address=LIST, mail_from="b@x.de", raw=b"x")
    await insert(store, "deliveries", outgoing_id=later, rcpt="m4@x.de", domain="x.de",
                 state="deferred", next_attempt=iso(T0 + timedelta(hours=1)))  # not due yet
    report = await gather(store, cfg, T0)
    assert report.oldest_due == queued
    found = facts(report)
    again = await snapshot(cfg, T0)      # interval jobs count from the real clock: leave them out
    assert {k: v for k, v in found.items() if k != "next_runs"} == \
        {k: v for k, v in again.items() if k != "next_runs"}
    assert found["oldest_due_delivery"] == {"at": iso(queued), "age_seconds": 1200}
    assert found["deliveries"] == {"pending": 0, "sending": 0, "deferred": 2,
                                   "failed_last_24h": 0}
    assert found["lists"][0]["members"] == {"enabled": 98, "disabled": 2}
    assert found["next_runs"]["backup"] == "2026-11-26T01:30:00.000000Z"
    assert found["delivery"] == {"transport": "maildir", "signed": False, "selector": None,
                                 "domain": None, "to": str(cfg.server.data_dir / "outbox/new")}
    assert found["healthy"] is False and found["reasons"] == report.reasons
    assert "oldest due  25.11.2026, 09:40 Uhr (20 min ago)" in render(report)


async def test_a_missing_database_is_a_reason_not_a_crash(cfg: Config) -> None:
    from listserv.ops.health import snapshot

    found = await snapshot(cfg, T0)
    assert found["healthy"] is False
    if cfg.store.is_postgresql:
        assert found["reasons"] == [f"no database at {cfg.store.url} yet: it has no listserv"
                                    " tables (run 'listserv init')"]
    else:
        assert found["reasons"] == [f"no database at {cfg.database_path} (run 'listserv init')"]


def test_status_on_postgresql_reads_through_the_store_and_names_the_server(
    tmp_path: Path, pg_url: str
) -> None:
    from tests.conftest import write_config

    config = str(write_config(tmp_path, extra=f'[store]\nurl = "{pg_url}"\n'))
    empty = run_cli("status", "--config", config, cwd=tmp_path)
    assert empty.returncode == 1
    assert empty.stdout.strip() == (f"listserv status: no database at {pg_url} yet: it has no"
                                    " listserv tables (run 'listserv init')")
    assert run_cli("init", "--config", config, cwd=tmp_path).returncode == 0
    status = run_cli("status", "--config", config, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"database    {pg_url}" in status.stdout
    assert "backup      pg_dump, by the operator (deploy/postgresql)" in status.stdout
    assert "OK: nothing needs attention" in status.stdout
    as_json = run_cli("status", "--json", "--config", config, cwd=tmp_path)
    assert as_json.returncode == 0 and '"healthy": true' in as_json.stdout


def test_status_on_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import write_config

    nowhere = f"postgresql://listserv@/listserv?host={tmp_path / 'no-socket-here'}"
    config = str(write_config(tmp_path, extra=f'[store]\nurl = "{nowhere}"\n'))
    status = run_cli("status", "--config", config, cwd=tmp_path)
    assert status.returncode == 1
    lines = status.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"listserv status: {nowhere}: cannot connect")
    assert "Traceback" not in status.stderr + status.stdout


def test_status_on_postgresql_without_the_keys_asks_for_them_and_makes_none(
    tmp_path: Path, pg_url: str
) -> None:
    from tests.conftest import write_config

    config = str(write_config(tmp_path, extra=f'[store]\nurl = "{pg_url}"\n'))
    assert run_cli("init", "--config", config, cwd=tmp_path).returncode == 0
    (tmp_path / "var" / "mail.key").unlink()      # a second host, keys not copied yet
    for command in (["status"], ["members", "list"]):
        out = run_cli(*command, "--config", config, cwd=tmp_path)
        assert out.returncode == 1
        assert "no mail.key in" in out.stdout + out.stderr
        assert "copy mail.key, verp.key and unsubscribe.key" in out.stdout + out.stderr
    second_init = run_cli("init", "--config", config, cwd=tmp_path)
    assert second_init.returncode == 1
    assert "is in use already" in second_init.stderr and "copy mail.key" in second_init.stderr
    assert not (tmp_path / "var" / "mail.key").exists()
