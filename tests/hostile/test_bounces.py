"""Class 4 of issue 12: a bounce counts only when we sent something.

The attacker can write any mail to ``L-bounces@D`` and to any
``L-bounces+…@D``: forged VERP addresses (old form, wrong MAC, another
member's MAC), ``X-Failed-Recipients``, a prose bounce, a well-formed RFC
3464 report about a member we sent nothing to. None of them may move a
bounce score; the real bounce of a copy we did send still counts.
"""

from __future__ import annotations

import re

import pytest

from listserv.bounces import verp
from listserv.store import keys
from tests.conftest import LIST, mail
from tests.hostile.conftest import MEMBERS, list_table, outbox_files
from tests.mailflow import Flow

L, D = LIST.split("@")
BOUNCES = f"{L}-bounces@{D}"
ANNA, BERND = MEMBERS


def dsn(recipient: str, *, to: str = BOUNCES) -> bytes:
    """A well-formed RFC 3464 report: what a forger can write as well as an MTA."""
    return (
        f"From: MAILER-DAEMON@mx.example\r\nTo: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        f"Message-ID: <{abs(hash((recipient, to)))}@mx.example>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n--b--\r\n").encode()


def prose(recipient: str, *, header: bool) -> bytes:
    extra = f"X-Failed-Recipients: {recipient}\r\n" if header else ""
    return (f"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\nTo: {BOUNCES}\r\n"
            f"Subject: Mail delivery failed: returning message to sender\r\n{extra}"
            f"Message-ID: <p{int(header)}@mx.example>\r\n\r\n"
            "This message was created automatically by mail delivery software.\r\n\r\n"
            "A message that you sent could not be delivered to one or more of its\r\n"
            f"recipients. This is a permanent error.\r\n\r\n  {recipient}\r\n"
            "    SMTP error from remote mail server: 550 5.1.1 User unknown\r\n").encode()


def scores(flow: Flow) -> dict[str, float]:
    return {r[0]: r[1] for r in flow.query("SELECT address, bounce_score FROM members")}


@pytest.mark.parametrize("hostile", [[list_table(post_policy="open")]], indirect=True)
async def test_forged_bounces_score_nobody_and_real_ones_still_count(hostile: Flow) -> None:
    key = keys.key(hostile.daemon.config.server.data_dir, keys.VERP_KEY)
    anna_verp = verp.sender(key, BOUNCES, LIST, ANNA)
    forged = {
        # VERP without a MAC (the old form), a wrong MAC, Bernd's MAC on Anna's name.
        f"{L}-bounces+{ANNA.replace('@', '=')}@{D}": dsn(ANNA),
        f"{L}-bounces+{ANNA.replace('@', '=')}=aaaaaaaa@{D}": dsn(ANNA),
        f"{L}-bounces+{ANNA.replace('@', '=')}={verp.mac(key, LIST, BERND)}@{D}": dsn(ANNA),
        # The short opaque form (used where user=domain=MAC passes 64 octets), guessed.
        f"{L}-bounces+h{'a' * 16}@{D}": dsn(ANNA),
    }
    for rcpt, raw in forged.items():
        await hostile.send(raw, mail_from="", to=rcpt)
    # The plain address: a header, prose, and a good report for a copy never sent.
    await hostile.send(prose(ANNA, header=True), mail_from="", to=BOUNCES)
    await hostile.send(prose(ANNA, header=False), mail_from="", to=BOUNCES)
    await hostile.send(dsn(ANNA), mail_from="", to=BOUNCES)
    # Even the right MAC counts only for a copy we sent: nothing was sent yet.
    await hostile.send(dsn(ANNA, to=anna_verp), mail_from="", to=anna_verp)
    assert scores(hostile) == {ANNA: 0.0, BERND: 0.0}
    outcomes = [r[0] for r in hostile.query("SELECT outcome FROM inbox WHERE role = 'bounces'")]
    assert sum(o.startswith("not counted") for o in outcomes) == 6, outcomes
    assert sum("not sent to 1" in o for o in outcomes) == 2, outcomes

    # A post goes out (VERP, one envelope per member); now real bounces count.
    await hostile.send(mail(sender=ANNA, subject="Fachtag"), mail_from=ANNA, to=LIST)
    envelope = {}
    for path in outbox_files(hostile):
        head = path.read_bytes().split(b"\n", 2)
        rcpt = head[1].split(b": ", 1)[1].strip().decode()
        envelope[rcpt] = re.match(rb"Return-Path: <(.*)>", head[0]).group(1).decode()
    assert envelope[ANNA] == anna_verp
    assert all(len(sender.partition("@")[0]) <= 64 for sender in envelope.values())
    await hostile.send(dsn("alias@elsewhere.example", to=anna_verp), mail_from="", to=anna_verp)
    await hostile.send(dsn(BERND), mail_from="", to=BOUNCES)   # bulk-style, structured
    # Still nothing from text alone, even for a member we did send to.
    await hostile.send(prose(BERND, header=True).replace(b"<p1@", b"<p3@"), mail_from="",
                       to=BOUNCES)
    assert scores(hostile) == {ANNA: 1.0, BERND: 1.0}
