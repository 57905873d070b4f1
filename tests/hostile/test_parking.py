"""Class 3: a post that cannot be read or built is parked, seen, removable, and blocks nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from listserv.clock import iso
from listserv.config import Config
from listserv.daemon import Daemon
from listserv.moderation.posts import publish_approved
from listserv.ops.health import gather
from tests.conftest import LIST, FakeClock, FakeDns, mail, make_daemon
from tests.hostile.conftest import MEMBERS
from tests.mailflow import Flow


def slow_to_read(parts: int = 300, words: int = 1500) -> bytes:
    """Passes the DATA screen (few top-level words, few parts) but costs seconds to decode."""
    note = "\r\n ".join(" ".join(["=?a?q?b?="] * 3) for _ in range(words // 3))
    body = "".join(f"--b\r\nContent-Type: text/plain\r\nX-Note: {note}\r\n\r\nx\r\n"
                   for _ in range(parts)) + "--b--\r\n"
    return (f"From: angreifer@example.org\r\nTo: {LIST}\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
            "Message-ID: <slow@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n{body}").encode()


def too_many_parts(count: int = 100_000) -> bytes:
    body = "".join("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    return (f"From: anna@example.org\r\nTo: {LIST}\r\nSubject: Alt\r\n"
            "Message-ID: <old@example.org>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=b\r\n\r\n{body}--b--\r\n").encode()


@pytest.fixture
async def flow(config_factory: Callable[..., Config], clock: FakeClock, dns: FakeDns
               ) -> AsyncIterator[Flow]:
    d: Daemon = make_daemon(config_factory(server={"worker_timeout": 2}), dns, clock=clock)
    await d.start()
    assert d.store is not None
    async with d.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, m, iso(clock.now)) for m in MEMBERS])
    try:
        yield Flow(d)
    finally:
        await d.stop()


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "listserv", *args, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=config.parent)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_an_unreadable_post_is_parked_listed_and_discarded(flow: Flow) -> None:
    await flow.send(slow_to_read(), mail_from="angreifer@example.org", to=LIST)
    await flow.send(mail(sender="anna@example.org", subject="Danach"),
                    mail_from="anna@example.org", to=LIST)
    rows = flow.query("SELECT state, rule, reason, subject FROM posts ORDER BY id")
    assert [(r["state"], r["rule"]) for r in rows] == [("parked", "unreadable"),
                                                       ("held", "moderate_all")]
    assert rows[0]["reason"] == "took longer than 2 s"
    assert rows[0]["subject"] == "=?utf-8?q?Gr=C3=BC=C3=9Fe?="   # as it came: never decoded
    # No mail to anybody about the parked one; the later post got its notice.
    notices = [str(m["Subject"]) for m in flow.sent_to("koordination@gelsenkirchen.de")]
    assert len(notices) == 1 and notices[0].startswith("Freigabe nötig: Danach")
    config = flow.daemon.config.path
    now = flow.daemon.clock()
    report = await gather(flow.daemon.store, flow.daemon.config, now)
    assert report.lists[0].parked == 1 and report.inbox_parked_recent == 1
    assert any("1 parked posts" in reason for reason in report.reasons)
    code, out, err = await cli(config, "held", "list")
    assert code == 0 and "PARKED" in out and "took longer than 2 s" in out
    assert "1 held post(s), 1 parked" in err
    code, out, _ = await cli(config, "held", "show", "1")
    assert "State: parked" in out and "Message-ID: <slow@example.org>" in out
    code, out, _ = await cli(config, "held", "discard", "1")
    assert code == 0 and out.strip() == "post 1 discarded (was parked)"
    assert (await gather(flow.daemon.store, flow.daemon.config, now)).lists[0].parked == 0


async def test_a_post_that_cannot_be_built_does_not_block_the_next(flow: Flow) -> None:
    """Two approved posts (the first stored before the DATA screen existed): one is parked."""
    daemon = flow.daemon
    assert daemon.store is not None and daemon.ctx is not None
    async with daemon.store.transaction() as db:
        for n, raw in enumerate([too_many_parts(), mail(sender="anna@example.org",
                                                        subject="Gut")], start=1):
            await db.execute(
                "INSERT INTO inbox (id, received_at, peer, helo, mail_from, rcpt, list_address,"
                " role, extension, message_id, size, raw, state)"
                " VALUES (?, '2026-11-25T09:00:00Z', '', '', 'anna@example.org', ?, ?, 'post',"
                " '', ?, ?, ?, 'done')", (100 + n, LIST, LIST, f"<{n}@x>", len(raw), raw))
            await db.execute(
                "INSERT INTO posts (inbox_id, list_address, sender, rule, reason, created_at,"
                " state) VALUES (?, ?, 'anna@example.org', 'cli', '', '2026-11-25T09:00:00Z',"
                " 'approved')", (100 + n, LIST))
    assert await publish_approved(daemon.ctx) == 1
    await flow.settled()
    states = flow.query("SELECT state, reason FROM posts ORDER BY id")
    assert [s["state"] for s in states] == ["parked", "approved"]
    assert states[0]["reason"] == "list copy not built: took longer than 2 s"
    assert all(len(flow.sent_to(m)) == 1 for m in MEMBERS)
    # Discarding works in any state, an approved and queued one too.
    code, out, _ = await cli(daemon.config.path, "held", "discard", "2")
    assert code == 0 and "was approved" in out
