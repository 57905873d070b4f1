"""Personalised copies through a running daemon and a real relay on loopback.

Two personalised posts are queued in one commit, so the sender claims their
copies in one page: one post's body is quoted-printable (copies made from a
template, signed in the signing processes from the members' values alone),
the other's base64 (no byte substitution is exact: rendered and signed whole).
Every copy is RSA-signed and must verify with dkimpy, carry its own member's
one-click URL (List-Unsubscribe and footer) and belong to its own post.
Then a signing process killed under the pool: it is replaced.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from listserv.config import Config, DkimConfig
from listserv.daemon import Daemon
from listserv.delivery import transform
from listserv.delivery.personal import SigningPool
from listserv.delivery.plan import PersonalCopies, fill, unsubscribe_token
from listserv.outbox import queue as outbox
from listserv.store import keys
from tests.conftest import LIST, mail, wait_for
from tests.delivery import test_transports as test_transports
from tests.delivery.test_end_to_end import daemons, rsa_key, run_daemon
from tests.delivery.test_sender import BOUNCES, verifies
from tests.delivery.test_transports import Relay

serve = test_transports.serve  # the relay fixture
__all__ = ["daemons", "serve"]  # fixtures used by name

BASE_URL = "https://listen.gelsenkirchen.de"
MEMBERS = [f"mitglied{i}@schule{i % 4}.example" for i in range(20)]
QP_BODY = "Liebe Kolleginnen und Kollegen, bis März.\n" * 30
BASE64_POST = mail(subject="Anhang", body="x").replace(
    b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: base64").replace(
    b"\r\n\r\nx", b"\r\n\r\nTGllYmUgS29sbGVnaW5uZW4sIGJpcyBNw6RyeiE=\r\n")


async def test_two_personalised_posts_in_one_page_each_copy_its_own_and_signed(
    tmp_path: Path, config_factory: Callable[..., Config], serve: Callable[..., Any],
    daemons: list[Daemon],
) -> None:
    relay = await serve(Relay())
    table, record = rsa_key(tmp_path)
    config = config_factory(delivery={
        "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
        "smtp_starttls": "off", "verp": True, "personalize": True},
        extra=table + f'\n[web]\nbase_url = "{BASE_URL}"\n')
    daemon = await run_daemon(config, daemons)
    assert daemon.store is not None and daemon.sender is not None
    mlist = config.lists[0]
    posts = {"Fachtag": mail(subject="Fachtag", body=QP_BODY), "Anhang": BASE64_POST}
    async with daemon.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, a, "2026-01-01T00:00:00.000000Z") for a in MEMBERS])
        for subject, raw in posts.items():
            msg = message_from_bytes(raw, _class=EmailMessage, policy=default)
            copy = transform.list_copy(msg, mlist, add_footer=False).as_bytes()
            await outbox.enqueue_post(db, now=daemon.store.clock(), list_address=LIST,
                                      mail_from=BOUNCES, raw=copy, inbox_id=None,
                                      message_id=f"<{subject}@example.org>", verp=True,
                                      personalize=True)
    daemon.sender.wake()
    await wait_for(lambda: len(relay.messages) >= 2 * len(MEMBERS), timeout=60)
    secret = keys.key(config.server.data_dir, keys.UNSUBSCRIBE_KEY)
    seen: Counter[tuple[str, str]] = Counter()
    for received in relay.messages:
        (rcpt,) = received.rcpts
        assert verifies(received.data, record.encode()), rcpt
        copy = message_from_bytes(received.data, policy=default)
        subject = str(copy["Subject"]).removeprefix("[SAS] ")
        seen[(subject, rcpt)] += 1
        url = f"{BASE_URL}/u/{unsubscribe_token(secret, LIST, rcpt)}"
        assert str(copy["List-Unsubscribe"]).startswith(f"<{url}>")
        body = copy.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert url in body and body.count(f"{BASE_URL}/u/") == 1, (subject, rcpt)
        assert body.startswith("Liebe Kolleginnen")
        cte = copy.get_body(("plain",))["Content-Transfer-Encoding"]  # type: ignore[index]
        assert cte == ("base64" if subject == "Anhang" else "quoted-printable")
    assert seen == Counter({(s, m): 1 for s in posts for m in MEMBERS})
    await wait_for(lambda: daemon.sender is not None and daemon.sender.sent == 2 * len(MEMBERS))


async def test_a_killed_signing_process_fails_its_chunk_and_the_next_gets_a_new_one(
    tmp_path: Path, config_factory: Callable[..., Config],
) -> None:
    """The chunk in the dead process fails (the sender then retries its rows: 451);
    the next chunk goes to a fresh process, which is sent the template again."""
    _, record = rsa_key(tmp_path)
    config = config_factory()
    key_path = tmp_path / "dkim" / "listserv.key"
    pool = SigningPool(DkimConfig(domain="gelsenkirchen.de", selector="test",
                                  private_key=key_path), workers=1)
    try:
        await pool.wait_ready()
        msg = message_from_bytes(mail(body=QP_BODY), _class=EmailMessage, policy=default)
        raw = transform.list_copy(msg, config.lists[0], add_footer=False).as_bytes()
        copies = PersonalCopies(raw, config.lists[0], base_url=BASE_URL, secret=b"k" * 32,
                                sample_member=MEMBERS[0])
        assert copies.template is not None
        values = [copies.value(m).encode() for m in MEMBERS[:3]]
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.signatures(copies, values)
        fields = await pool.signatures(copies, values)
        assert pool.pids() and pool.pids() != [pid]
        for value, field in zip(values, fields, strict=True):
            assert verifies(field + fill(copies.template, copies.slots, value), record.encode())
    finally:
        pool.close()
