"""SIGKILL at the worst moments: mid fan-out, mid intake, right after a moderator's reply.

The daemon runs as a real process and is killed with SIGKILL (no handler,
no cleanup), then started again on the same data directory. What must hold
(DESIGN §6 "Nothing is lost"): every member gets the post, at most the
transactions in flight at the kill repeat (``connections ×
max_recipients_per_transaction`` copies); every message that got a ``250``
is in the store; a moderator's decision is applied whole or not at all.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
from collections import Counter
from pathlib import Path

import aiosmtplib
import pytest

from tests.conftest import LIST, MODERATOR, mail, write_config
from tests.faults.helpers import (
    FANOUT_MEMBERS,
    Proc,
    Sink,
    add_members,
    poll,
    query,
)

POSTER = "anna@schule0.example"
BOUNCES = LIST.replace("@", "-bounces@")


def open_list(**extra: object) -> dict[str, object]:
    table: dict[str, object] = {
        "address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
        "moderators": [MODERATOR], "subject_prefix": "[SAS]", "post_policy": "open",
        "dmarc_mitigation": "never"}
    table.update(extra)
    return table


def start(config: Path, procs: list[Proc]) -> Proc:
    p = Proc(config)
    procs.append(p)
    return p


def unfinished(config: Path) -> int:
    return query(config, "SELECT count(*) FROM deliveries WHERE state != 'sent'")[0][0]


@pytest.mark.parametrize("mode", ["bulk", "verp"])
def test_sigkill_mid_fanout_every_member_once_but_the_transactions_in_flight(
    mode: str, tmp_path: Path, procs: list[Proc]
) -> None:
    n = FANOUT_MEMBERS
    per_tx, connections = (10, 4) if mode == "bulk" else (1, 4)
    sink = Sink(delay=0.002 if mode == "bulk" else 0.0)
    try:
        config = write_config(tmp_path, lists=[open_list()], delivery={
            "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
            "smtp_starttls": "off", "verp": mode == "verp", "connections": connections,
            "max_recipients_per_transaction": per_tx})
        members = [POSTER] + [f"mitglied{i}@schule{i % 7}.example" for i in range(n - 1)]
        daemon = start(config, procs)
        add_members(config, LIST, members)
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as smtp:
            smtp.sendmail(POSTER, [LIST], mail(sender=POSTER, subject="Fachtag"))
        poll(lambda: sink.total() >= n // 3, timeout=60)
        daemon.kill()
        at_kill = sink.total()
        assert at_kill < n, "the fan-out ended before the kill: make it bigger"
        start(config, procs)
        poll(lambda: unfinished(config) == 0 and sink.total() >= n, timeout=120)
        counts = sink.snapshot()
        assert set(counts) == {m.lower() for m in members}, "a member got nothing"
        repeats = sum(c - 1 for c in counts.values())
        bound = connections * per_tx
        print(f"fanout[{mode}] n={n} killed_at={at_kill} repeats={repeats} bound={bound}")
        assert repeats <= bound, f"{repeats} copies repeated; in flight were at most {bound}"
        rows = query(config, "SELECT count(*), count(DISTINCT outgoing_id) FROM deliveries"
                             " WHERE outgoing_id IN (SELECT id FROM outgoing WHERE kind='post')")
        assert tuple(rows[0]) == (n, 1), "the post was queued twice"
    finally:
        sink.close()


async def _queue_first_chunk(config: Path, first_chunk: int) -> int:
    """What a SIGKILL between two chunks leaves: the post and its first chunk, one commit."""
    from listserv import config as configuration
    from listserv.outbox import queue as outbox
    from listserv.store.backends import open_store

    store = await open_store(configuration.load(config))
    try:
        async with store.transaction() as db:
            outgoing_id, _ = await outbox.enqueue_post(
                db, now=store.clock(), list_address=LIST, mail_from=BOUNCES,
                raw=mail(sender=POSTER, subject="Fachtag"), message_id="<chunks@test>",
                inbox_id=None, verp=False, personalize=False, first_chunk=first_chunk)
    finally:
        await store.close()
    return outgoing_id


def test_sigkill_between_chunks_of_queued_recipients_resumes_at_the_cursor(
    tmp_path: Path, procs: list[Proc]
) -> None:
    n, first_chunk = 1200, 300
    sink = Sink()
    try:
        config = write_config(tmp_path, lists=[open_list()], delivery={
            "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink.port,
            "smtp_starttls": "off", "verp": False, "connections": 2,
            "max_recipients_per_transaction": 10})
        members = [POSTER] + [f"mitglied{i}@schule{i % 7}.example" for i in range(n - 1)]
        start(config, procs).kill()  # the database exists, no daemon runs
        add_members(config, LIST, members)
        outgoing_id = asyncio.run(_queue_first_chunk(config, first_chunk))
        cursor = query(config, "SELECT fanout_after FROM outgoing WHERE id = ?", (outgoing_id,))
        assert cursor[0][0] is not None, "the state between two chunks: more to queue"
        assert query(config, "SELECT count(*) FROM deliveries")[0][0] == first_chunk
        start(config, procs)  # publishing at start finds the cursor and goes on
        poll(lambda: unfinished(config) == 0 and sink.total() >= n, timeout=120)
        assert sink.snapshot() == {m.lower(): 1 for m in members}, "lost or repeated"
        assert query(config, "SELECT count(*) FROM deliveries")[0][0] == n
        assert query(config, "SELECT fanout_after FROM outgoing WHERE id = ?",
                     (outgoing_id,))[0][0] is None
    finally:
        sink.close()


def test_sigkill_during_intake_keeps_every_message_that_got_250(
    tmp_path: Path, procs: list[Proc]
) -> None:
    config = write_config(tmp_path)
    daemon = start(config, procs)
    accepted: list[str] = []
    stop = threading.Event()

    async def client(k: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            msgid = f"<intake-{k}-{i}@example.org>"
            raw = mail(subject=f"m {k} {i}", headers={}).replace(
                b"Message-ID:", b"X-Old-Id:", 1)
            raw = f"Message-ID: {msgid}\r\n".encode() + raw
            try:
                smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=daemon.port, timeout=5,
                                       start_tls=False)
                await smtp.connect()
                await smtp.sendmail("anna@example.org", [LIST], raw)
            except (aiosmtplib.SMTPException, OSError):
                return  # the daemon died: whatever had no 250 may be lost
            accepted.append(msgid)  # only after the 250
            smtp.close()

    async def clients() -> None:
        await asyncio.gather(*(client(k) for k in range(20)))

    runner = threading.Thread(target=asyncio.run, args=(clients(),))
    runner.start()
    poll(lambda: len(accepted) >= 200, timeout=60)
    daemon.kill()
    stop.set()
    runner.join(30)
    got = list(accepted)
    start(config, procs)  # recovery must not lose or duplicate rows either
    stored = [r[0] for r in query(config, "SELECT message_id FROM inbox")]
    missing = set(got) - set(stored)
    print(f"intake: accepted={len(got)} stored={len(stored)} lost={len(missing)}")
    assert not missing, f"{len(missing)} messages got 250 and are not in the store"
    assert len(stored) == len(set(stored)), "a message was stored twice"


@pytest.mark.parametrize("delay_ms", [0, 3, 15, 60])
def test_sigkill_right_after_a_moderators_ok_applies_it_whole_or_not_at_all(
    delay_ms: int, tmp_path: Path, procs: list[Proc]
) -> None:
    members = [f"mitglied{i}@example.org" for i in range(30)]
    config = write_config(tmp_path, lists=[open_list(post_policy="moderate_all")])
    daemon = start(config, procs)
    add_members(config, LIST, members)
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as smtp:
        smtp.sendmail(members[0], [LIST], mail(sender=members[0], subject="Fachtag"))
    # The notice as delivered (the stored body is stripped of it once it is sent).
    outbox = tmp_path / "var" / "outbox" / "new"
    notice = poll(lambda: [p.read_bytes() for p in outbox.iterdir()
                           if f"Delivered-To: {MODERATOR}".encode() in p.read_bytes()])
    import re

    token = re.search(rb"-confirm\+([a-z2-7]{32})@", notice[0]).group(1).decode()
    reply = (f"From: {MODERATOR}\r\nTo: x\r\nSubject: AW: Freigabe\r\n"
             f"Message-ID: <ok-{delay_ms}@gelsenkirchen.de>\r\n\r\nok\r\n").encode()
    confirm = LIST.replace("@", f"-confirm+{token}@")
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as smtp:
        smtp.sendmail(MODERATOR, [confirm], reply)
        if delay_ms:
            threading.Event().wait(delay_ms / 1000)  # the kill point, not a wait for work
        daemon.kill()
    # At the kill: the decision is all there or not at all.
    post = query(config, "SELECT state, outgoing_id FROM posts")[0]
    used = query(config, "SELECT used_at FROM tokens WHERE action = 'moderate_post'")[0][0]
    assert (post["state"] == "held") == (used is None), "decision half applied"
    start(config, procs)
    poll(lambda: query(config, "SELECT 1 FROM posts WHERE outgoing_id IS NOT NULL")
         and unfinished(config) == 0, timeout=60)
    post = query(config, "SELECT state, outgoing_id, decided_by FROM posts")[0]
    assert (post["state"], post["decided_by"]) == ("approved", MODERATOR)
    queued = query(config, "SELECT count(*) FROM outgoing WHERE kind = 'post'")[0][0]
    assert queued == 1, "the approved post was queued twice"
    outbox = tmp_path / "var" / "outbox" / "new"
    copies = [p.read_bytes() for p in outbox.iterdir()]
    got = Counter(c.split(b"\n", 2)[1].split(b": ")[1].strip().decode() for c in copies
                  if b"List-Id:" in c and b"Subject: [SAS] Fachtag" in c)
    assert set(got) == set(members), "a member did not get the approved post"
    # VERP: one copy a transaction; at most one transaction per connection (4) repeats.
    assert sum(got.values()) - len(members) <= 4
