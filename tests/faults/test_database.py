"""The database fails under the daemon: read-only, or locked by another writer.

SMTP must answer ``451`` (the sender keeps the message and retries), nothing
accepted before the fault may be lost, and the daemon must take mail and
work its queue again as soon as the fault is gone, without a restart.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from listserv.daemon import Daemon
from listserv.intake import codes as status
from tests.conftest import LIST, mail, sqlite_only, wait_for, write_config
from tests.faults.helpers import Proc, poll, query

pytestmark = sqlite_only


async def send(d: Daemon, subject: str) -> tuple[int, str]:
    assert d.address is not None
    smtp = aiosmtplib.SMTP(hostname=d.address[0], port=d.address[1], start_tls=False,
                           timeout=30)
    await smtp.connect()
    try:
        await smtp.sendmail("anna@example.org", [LIST], mail(subject=subject))
    except aiosmtplib.SMTPDataError as exc:
        return exc.code, exc.message
    finally:
        smtp.close()
    return 250, ""


def inbox(d: Daemon) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(d.config.database_path)) as db:
        return db.execute("SELECT message_id, state FROM inbox ORDER BY id").fetchall()


async def test_read_only_database_answers_451_then_recovers(daemon: Daemon) -> None:
    assert daemon.store is not None
    assert await send(daemon, "before") == (250, "")
    await daemon.store._db.execute("PRAGMA query_only = ON")  # the fault, on the daemon's own
    try:
        code, text = await send(daemon, "during")
        assert f"{code} {text}" == status.STORE_FAILED
    finally:
        await daemon.store._db.execute("PRAGMA query_only = OFF")
    assert await send(daemon, "after") == (250, "")
    await wait_for(lambda: [s for _, s in inbox(daemon)] == ["done"] * 2, timeout=15)
    assert len(inbox(daemon)) == 2  # the refused one is the client's to retry


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(write_config(tmp_path, server={"shutdown_grace": 1}))
    yield p
    p.close()


def test_database_locked_by_another_writer_answers_451_and_recovers(served: Proc) -> None:
    """A second process holds the write lock (a backup tool, a stuck sqlite3 shell)."""
    import smtplib

    def sendmail(subject: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", served.port, timeout=30) as smtp:
            try:
                smtp.sendmail("anna@example.org", [LIST], mail(subject=subject))
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code, exc.smtp_error
        return 250, b""

    assert sendmail("before")[0] == 250
    db = sqlite3.connect(served.config.parent / "var" / "listserv.sqlite3",
                         isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # hold the write lock
    try:
        code, text = sendmail("during")  # waits busy_timeout (5 s), then gives up
        assert f"{code} {text.decode()}" == status.STORE_FAILED
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert sendmail("after")[0] == 250
    served.wait_line(r"event=store_failed")
    rows = query(served.config, "SELECT message_id FROM inbox")
    assert len(rows) == 2

    def recovered() -> bool:
        # "after" is handled at once; "before" is done, or (if the fault hit it while it was
        # being processed) back in the queue with the processor's backoff, never lost.
        rows = query(served.config, "SELECT state, not_before, outcome FROM inbox ORDER BY id")
        before, after = rows
        retrying = before["state"] == "new" and before["not_before"] and "locked" in (
            before["outcome"] or "")
        return after["state"] == "done" and (before["state"] == "done" or retrying)

    poll(recovered, timeout=20)
