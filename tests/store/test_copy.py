"""``listserv store migrate-to``: an SQLite installation with mail in it, moved to PostgreSQL.

The source is made the way an installation is filled: a daemon on SQLite
with members joining by mail, a post published and archived, one held, a
delivery queued. After the copy a daemon on the PostgreSQL database must
go on from there: list the members, find the archived post, and publish
the held post when the coordinator answers the notice she got before the
move (her token and the held mail were copied, sealed as they were).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from listserv import config as configuration
from listserv.cli import storing
from listserv.clock import iso
from listserv.config import Config
from listserv.daemon import Daemon
from listserv.ops.preflight import DataDirLock
from listserv.store import copy
from listserv.store.backends import open_store
from listserv.store.database import Store
from tests import pgbridge
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon, write_config
from tests.mailflow import Flow, reply_to, token_of
from tests.ops.test_health import run_cli

ANNA = "anna.schmidt@schule-gelsenkirchen.de"
BERND = "bernd@example.org"
CARLA = "carla@example.net"
REQUEST = LIST.replace("@", "-request@")


class PgFlow(Flow):
    """``Flow`` for a daemon on PostgreSQL: the test reads the database it names."""

    def __init__(self, daemon: Daemon, url: str) -> None:
        super().__init__(daemon)
        self.url = url

    def query(self, sql: str, params: tuple = ()) -> list[Any]:
        with pgbridge.SyncPg(self.url, self.daemon.config.server.data_dir) as db:
            return db.execute(sql, params).fetchall()


def sqlite_config(directory: Path) -> Config:
    """An installation on SQLite, whatever LISTSERV_TEST_STORE says: it is the source."""
    path = directory / "var" / "listserv.sqlite3"
    return configuration.load(write_config(directory, extra=f'[store]\nurl = "sqlite:///{path}"\n'))


def postgresql_config(directory: Path, data_dir: Path, url: str) -> Config:
    """The same installation (same data_dir, so the same keys) on PostgreSQL."""
    directory.mkdir(exist_ok=True)
    return configuration.load(write_config(directory, server={"data_dir": str(data_dir)},
                                           extra=f'[store]\nurl = "{url}"\n'))


async def fill(cfg: Config, dns: FakeDns, clock: FakeClock) -> dict[str, Any]:
    """Run a daemon on SQLite with mail flowing; return what the test checks later."""
    daemon = make_daemon(cfg, dns, clock=clock)
    await daemon.start()
    try:
        flow = Flow(daemon)
        assert daemon.store is not None
        async with daemon.store.transaction() as db:
            await db.executemany(
                "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
                [(LIST, m, iso(clock.now)) for m in (ANNA, BERND)])
        # Carla asks to join and confirms: consent_log rows, a token for the coordinator.
        await flow.send(mail(sender=CARLA, to=REQUEST, subject="anmelden", body=""),
                        mail_from=CARLA, to=REQUEST)
        confirm = flow.last_to(CARLA)
        await flow.send(reply_to(confirm, sender=CARLA), mail_from=CARLA,
                        to=str(confirm["Reply-To"]))
        join_notice = flow.last_to(MODERATOR)
        # A post held, approved by "ok", published, archived.
        await flow.send(mail(sender=ANNA, subject="Fachtag Kinderschutz"), mail_from=ANNA, to=LIST)
        notice = flow.last_to(MODERATOR)
        await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                        to=str(notice["Reply-To"]))
        # A second post, held: the coordinator decides after the move.
        await flow.send(mail(sender=BERND, subject="Supervision im Januar"), mail_from=BERND,
                        to=LIST)
        held_notice = flow.last_to(MODERATOR)
        assert "Supervision" in str(held_notice["Subject"])
        # A delivery still queued: deferred by the relay, due again tomorrow.
        async with daemon.store.transaction() as db:
            cur = await db.execute(
                "INSERT INTO outgoing (created_at, kind, list_address, mail_from, raw)"
                " VALUES (?, 'post', ?, ?, seal(?))",
                (iso(clock.now), LIST, "bounces@x.de", b"Subject: queued\r\n\r\nbody\r\n"))
            await db.execute(
                "INSERT INTO deliveries (outgoing_id, rcpt, domain, state, next_attempt,"
                " updated_at) VALUES (?, 'later@example.com', 'example.com', 'deferred', ?, ?)",
                (cur.lastrowid, iso(clock.now.replace(day=26)), iso(clock.now)))
        await flow.settled()
        tokens = {tuple(r) for r in flow.query("SELECT rowid, token_hash FROM tokens")}
        raws = {r[0]: r[1] for r in flow.query("SELECT id, unseal(raw) FROM inbox")}
    finally:
        await daemon.stop()
    return {"join_notice": join_notice, "held_notice": held_notice, "tokens": tokens,
            "raws": raws}


async def test_migrate_to_copies_everything_and_a_daemon_goes_on_on_postgresql(
    tmp_path: Path, pg_url: str, dns: FakeDns, clock: FakeClock
) -> None:
    cfg = sqlite_config(tmp_path)
    before = await fill(cfg, dns, clock)
    source = await Store.open(cfg.database_path)
    expected = {t: int((await source.fetchone(f"SELECT count(*) FROM {t}"))[0])  # type: ignore[index]
                for t in ("members", "consent_log", "tokens", "posts", "inbox", "outgoing",
                          "deliveries", "archive", "archive_fts", "archive_lists")}
    await source.close()
    assert expected["archive"] == 1 and expected["tokens"] >= 3 and expected["deliveries"] >= 4

    moved = run_cli("store", "migrate-to", pg_url, "--config", str(cfg.path), cwd=tmp_path)
    assert moved.returncode == 0, moved.stderr
    lines = moved.stdout.splitlines()
    assert lines[0] == f"copied {cfg.database_path} into {pg_url}:"
    table = {line.split()[0]: line.split()[1:] for line in lines[2:-4]}
    for name, count in expected.items():
        assert table[name] == [str(count), str(count)], (name, table[name])
    assert "schema_version" not in table and len(table) == 17
    assert lines[-3] == "counts equal in all 17 tables; listserv.sqlite3 is unchanged."
    assert lines[-2] == f'next: set [store] url = "{pg_url}" in {cfg.path};'
    assert "mail.key, verp.key and unsubscribe.key" in lines[-1]
    assert moved.stderr == ""

    pg = postgresql_config(tmp_path / "pg", cfg.server.data_dir, pg_url)
    daemon = make_daemon(pg, dns, clock=clock)
    await daemon.start()
    try:
        flow = PgFlow(daemon, pg_url)
        assert daemon.store is not None and daemon.store.dialect == "postgresql"
        # The ids, the desk's token numbers and the sealed mail came over unchanged.
        assert {tuple(r) for r in flow.query("SELECT rowid, token_hash FROM tokens")} \
            == before["tokens"]
        assert {r[0]: r[1] for r in flow.query("SELECT id, unseal(raw) FROM inbox")} \
            == before["raws"]
        # The member list, as the operator asks for it.
        listed = run_cli("members", "list", "--config", str(pg.path), cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert {ANNA, BERND} <= set(listed.stdout.split())
        # The archive's search index: the copied text is found by PostgreSQL's own index.
        hits = flow.query("SELECT a.number, a.subject FROM archive_fts f"
                          " JOIN archive a ON a.id = f.rowid"
                          " WHERE f.doc @@ plainto_tsquery('simple', 'Kinderschutz')")
        assert [tuple(h) for h in hits] == [(1, "[SAS] Fachtag Kinderschutz")]
        # The coordinator approves Carla and the held post by answering the old notices.
        await flow.send(reply_to(before["join_notice"], sender=MODERATOR, body="ok"),
                        mail_from=MODERATOR, to=str(before["join_notice"]["Reply-To"]))
        assert CARLA in flow.members()
        held = before["held_notice"]
        await flow.send(reply_to(held, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                        to=str(held["Reply-To"]))
        states = {r[0]: r[1] for r in flow.query("SELECT sender, state FROM posts")}
        assert states == {ANNA: "approved", BERND: "approved"}
        supervision = [m for m in flow.sent_to(ANNA) if "Supervision" in str(m["Subject"])]
        assert supervision and supervision[-1]["List-Id"]
        # New rows took new ids after the copied ones (the sequences were set).
        newest = flow.query("SELECT max(id) FROM inbox")[0][0]
        assert newest > max(before["raws"])
    finally:
        await daemon.stop()
    assert token_of(held)   # the token the coordinator used was made before the move


async def refused(cfg: Config, url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert await storing.run(cfg, argparse.Namespace(url=url)) == storing.EXIT_REFUSED
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


async def test_migrate_to_refuses_what_would_not_be_a_sound_copy(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = sqlite_config(tmp_path)
    assert (await refused(cfg, pg_url, capsys)).endswith(
        f"no database at {cfg.database_path} (run 'listserv init')")
    store = await open_store(cfg)
    async with store.transaction() as db:
        await db.execute("INSERT INTO members (list_address, address, joined_at)"
                         " VALUES (?, ?, '2026-11-25T09:00:00.000000Z')", (LIST, ANNA))
    await store.close()
    secret = pg_url.replace("listserv@", "listserv:hunter2@")
    said = await refused(cfg, secret, capsys)
    assert "must not hold the password" in said and "hunter2" not in said
    lock = DataDirLock(cfg.server.data_dir)
    lock.acquire()
    try:
        assert "the daemon is running" in await refused(cfg, pg_url, capsys)
    finally:
        lock.release()
    assert await storing.run(cfg, argparse.Namespace(url=pg_url)) == 0
    assert "counts equal" in capsys.readouterr().out
    again = await refused(cfg, pg_url, capsys)
    assert again.endswith("the target database is not empty (members have rows):"
                          " migrate-to copies into an empty database only")
    pg = postgresql_config(tmp_path / "pg", cfg.server.data_dir, pg_url)
    assert "already names PostgreSQL" in await refused(pg, pg_url, capsys)


async def test_an_older_source_schema_is_migrated_by_init_first(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    from listserv.store.migrations import MIGRATIONS

    cfg = sqlite_config(tmp_path)
    monkeypatch.setattr("listserv.store.database.MIGRATIONS", MIGRATIONS[:3])
    await (await Store.open(cfg.database_path)).close()
    monkeypatch.undo()
    said = await refused(cfg, pg_url, capsys)
    assert f"has schema version 3, this listserv needs {MIGRATIONS[-1][0]}" in said
    assert "run 'listserv init' first" in said


def test_tables_are_copied_parents_first_and_counts_are_rendered() -> None:
    order = copy.order_by_references(
        ["archive_parts", "deliveries", "posts", "archive", "outgoing", "inbox"],
        [("archive_parts", "archive"), ("deliveries", "outgoing"), ("posts", "inbox"),
         ("posts", "outgoing")])
    assert order.index("archive") < order.index("archive_parts")
    assert order.index("outgoing") < order.index("deliveries")
    assert order.index("inbox") < order.index("posts") > order.index("outgoing")
    text = copy.render([copy.Counted("members", 98, 98), copy.Counted("inbox", 2, 2)])
    assert text.splitlines() == ["table      sqlite  postgresql",
                                 "members        98          98",
                                 "inbox           2           2",
                                 "total         100         100"]


def test_values_take_the_postgresql_column_types() -> None:
    # A sealed extension SQLite kept as text (written before sealing) becomes BYTEA's bytes.
    assert copy.for_postgres("confirm+abc", "bytea") == b"confirm+abc"
    assert copy.for_postgres(b"\x00LSv1\x00sealed", "bytea") == b"\x00LSv1\x00sealed"
    assert copy.for_postgres(3, "double precision") == 3.0
    assert copy.for_postgres("7", "bigint") == 7
    assert copy.for_postgres(12, "text") == "12"
    assert copy.for_postgres(None, "bytea") is None
