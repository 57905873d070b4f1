"""Every address of DESIGN §4 attacked at RCPT: never an open relay, nothing stored.

Each case is one RCPT TO over real SMTP; the expected reply is named. After
all of them, the inbox and the outbox are empty: relay attempts accepted 0.
"""

from __future__ import annotations

import asyncio

import pytest

from listserv.intake import codes as status
from tests.conftest import LIST
from tests.hostile.conftest import smtp_to
from tests.mailflow import Flow

L, D = LIST.split("@")
RELAY, UNKNOWN, SYNTAX = status.RELAY_DENIED, status.UNKNOWN_USER, status.BAD_RECIPIENT_SYNTAX

ATTACKS: list[tuple[str, str]] = [
    # foreign domains, look-alikes and sub-domains
    ("victim@example.com", RELAY),
    (f"{L}@example.com", RELAY),
    (f"{L}@sub.{D}", RELAY),
    (f"{L}@{D}.evil.example", RELAY),
    (f"{L}@{D[:-1]}", RELAY),
    (f"{L}@[127.0.0.1]", SYNTAX),
    # %-hack, bang paths, source routes, quoted local parts
    (f"victim%example.com@{D}", SYNTAX),
    (f"{L}%example.com@{D}", SYNTAX),
    (f"example.com!victim@{D}", SYNTAX),
    # source routes: aiosmtpd drops the route (RFC 5321 C), what is left is foreign
    (f"@{D}:victim@example.com", RELAY),
    (f"@{D},@relay.example:victim@example.com", RELAY),
    (f'"victim@example.com"@{D}', SYNTAX),
    (f"victim@example.com@{D}", SYNTAX),
    (f"{L}@{D}@example.com", SYNTAX),
    # every role with a suffix or extension it must not take
    (f"{L}-confirm@{D}", UNKNOWN),
    (f"{L}-confirm+@{D}", UNKNOWN),
    (f"{L}-request+x@{D}", UNKNOWN),
    (f"{L}-join+victim=example.com@{D}", UNKNOWN),
    (f"{L}-owner+x@{D}", UNKNOWN),
    (f"{L}-leave+x@{D}", UNKNOWN),
    (f"{L}-admin@{D}", UNKNOWN),
    (f"{L}x@{D}", UNKNOWN),
    (f"postmaster-{L}@{D}", UNKNOWN),
    # SQL metacharacters
    (f"{L}'--@{D}", UNKNOWN),
    (f"x' OR '1'='1@{D}", SYNTAX),
    (f"{L}-confirm+'OR1=1--@{D}", None),     # routed as an unknown token; see below
    (f"';DROP-TABLE-members;--@{D}", SYNTAX),
    # control characters
    (f"{L}\x00@{D}", SYNTAX),
    (f"{L}\x7f@{D}", SYNTAX),
    (f"{L}\t@{D}", status.OK_RCPT),  # white space in <...> is dropped: the list itself
]


async def rcpt_reply(flow: Flow, rcpt: str) -> str:
    """One RCPT over a raw socket (client libraries refuse control characters)."""
    assert flow.daemon.address is not None
    reader, writer = await asyncio.open_connection(*flow.daemon.address)

    async def answer() -> str:
        while True:
            got = await reader.readuntil(b"\r\n")
            if got[3:4] != b"-":
                return got.decode().strip()

    await answer()
    for line in (b"EHLO evil.example", b"MAIL FROM:<spammer@example.net>",
                 f"RCPT TO:<{rcpt}>".encode()):
        writer.write(line + b"\r\n")
        text = await answer()
    writer.close()
    return text


@pytest.mark.parametrize(("rcpt", "reply"), [a for a in ATTACKS if a[1] is not None],
                         ids=lambda v: repr(v)[:40] if isinstance(v, str) else None)
async def test_refused_at_rcpt(hostile: Flow, rcpt: str, reply: str) -> None:
    text = await rcpt_reply(hostile, rcpt)
    if reply == SYNTAX:  # aiosmtpd refuses some syntax itself (501/553) before our handler
        assert text[:3] in ("501", "553"), (rcpt, text)
    else:
        assert text == reply, (rcpt, text)
    assert hostile.query("SELECT count(*) FROM inbox")[0][0] == 0


async def test_a_quoted_local_part_naming_our_own_list_is_that_list(hostile: Flow) -> None:
    """RFC 5321 2.4: ``"L"@D`` is ``L@D`` (aiosmtpd unquotes it). A quoted foreign address
    (``"v@example.com"@D``) is refused above: quotes never smuggle a relay through."""
    assert (await rcpt_reply(hostile, f'"{L}"@{D}')) == status.OK_RCPT


async def test_no_relay_in_a_batch_with_one_good_recipient(hostile: Flow) -> None:
    """A good list address in the same transaction does not open the door for the rest."""
    smtp = await smtp_to(hostile.daemon)
    await smtp.mail("spammer@example.net")
    accepted = []
    for rcpt, _ in ATTACKS:
        if any(c in rcpt for c in "\x00\x7f\t"):
            continue
        code, _msg = await smtp.execute_command(f"RCPT TO:<{rcpt}>".encode())
        if code == 250:
            accepted.append(rcpt)
    code, _ = await smtp.execute_command(f"RCPT TO:<{LIST}>".encode())
    assert code == 250
    await smtp.data(b"Subject: x\r\n\r\nspam\r\n")
    smtp.close()
    await hostile.settled()
    assert accepted == [f"{L}-confirm+'OR1=1--@{D}".lower()] or accepted == [
        f"{L}-confirm+'OR1=1--@{D}"]
    rcpts = {r[0] for r in hostile.query("SELECT rcpt FROM inbox")}
    assert all(r.endswith("@" + D) for r in rcpts)
    sent_to = {r[0] for r in hostile.query("SELECT rcpt FROM deliveries")}
    assert not sent_to & {"victim@example.com"}, "relay attempts accepted: must be 0"
    # The SQL-looking token was only an unknown token: the tables are all there.
    assert hostile.query("SELECT count(*) FROM members")[0][0] == 2
    outcomes = [r[0] for r in hostile.query("SELECT outcome FROM inbox")]
    assert "unknown token" in outcomes


async def test_sql_metacharacters_in_mail_from_and_headers_are_data(hostile: Flow) -> None:
    evil = "x';DELETE/**/FROM/**/members;--@example.org"
    smtp = await smtp_to(hostile.daemon)
    await smtp.mail(f"<{evil}>")
    await smtp.rcpt(f"{L}-join@{D}")
    await smtp.data(f"From: {evil}\r\nSubject: '; DROP TABLE inbox; --\r\n\r\nanmelden\r\n"
                    .encode())
    smtp.close()
    await hostile.settled()
    assert hostile.query("SELECT count(*) FROM members")[0][0] == 2
    assert hostile.query("SELECT count(*) FROM inbox")[0][0] == 1  # stored as data
