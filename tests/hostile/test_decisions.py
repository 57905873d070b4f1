"""A decision only where it belongs (issue 12, item 2), over real SMTP.

The class: a token reaching us anywhere but in the body's answer — in the
Subject of a mail to ``-request``, or in a second envelope recipient of the
same DATA — must never decide by itself. The body's answer decides, read by
the same reader as a reply to ``-confirm+TOKEN``, and one mail is decided once.
"""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import LIST, MODERATOR
from tests.hostile.conftest import MEMBERS
from tests.mailflow import Flow, token_of

L, D = LIST.split("@")
REQUEST = f"{L}-request@{D}"
POSTER = MEMBERS[0]


def to_request(sender: str, token: str, body: str, *, subject: str | None = None,
               to: str = REQUEST) -> bytes:
    subject = subject if subject is not None else f"Re: Freigabe nötig: Angebot [{token}]"
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@client.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


async def held_token(flow: Flow, subject: str = "Angebot") -> str:
    raw = (f"From: {POSTER}\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{secrets.token_hex(8)}@x.example>\r\n\r\nHallo zusammen\r\n")
    await flow.send(raw.encode(), mail_from=POSTER, to=LIST)
    return token_of(flow.last_to(MODERATOR))


def post_state(flow: Flow) -> str:
    return flow.query("SELECT state FROM posts ORDER BY id DESC LIMIT 1")[0]["state"]


def published(flow: Flow) -> bool:
    return any(m["List-Id"] for m in flow.sent_to(MEMBERS[1]))


@pytest.mark.parametrize(("body", "state"), [
    ("ablehnen Werbung\r\n", "rejected"),
    ("Nein\r\n", "rejected"),
    ("verwerfen\r\n", "discarded"),
    ("nicht freigeben\r\n", "held"),
    ("\r\n", "held"),                          # a token in the Subject is no "yes"
    ("ok\r\n", "approved"),
])
async def test_a_token_in_the_subject_is_decided_by_the_body(
        hostile: Flow, body: str, state: str) -> None:
    token = await held_token(hostile)
    await hostile.send(to_request(MODERATOR, token, body), mail_from=MODERATOR, to=REQUEST)
    assert post_state(hostile) == state
    assert published(hostile) is (state == "approved")


async def test_no_in_the_body_keeps_a_member_whose_leave_token_is_in_the_subject(
        hostile: Flow) -> None:
    member = MEMBERS[1]
    await hostile.send(to_request(member, "", "abmelden\r\n", subject="abmelden"),
                       mail_from=member, to=REQUEST)
    token = token_of(hostile.last_to(member))
    await hostile.send(to_request(member, token, "Nein, ich will nicht abgemeldet werden\r\n",
                                  subject=f"AW: Bitte bestätigen [{token}]"),
                       mail_from=member, to=REQUEST)
    assert member in hostile.members()
    (row,) = hostile.query("SELECT outcome FROM tokens WHERE action = 'unsubscribe'")
    assert row["outcome"] == "declined"


@pytest.mark.parametrize("body", ["verwerfen\r\n", "\r\n"])
async def test_one_data_to_request_and_confirm_is_decided_once(hostile: Flow, body: str
                                                               ) -> None:
    token = await held_token(hostile)
    confirm = f"{L}-confirm+{token}@{D}"
    before = len(hostile.sent_to(MODERATOR))
    raw = to_request(MODERATOR, token, body, to=f"{REQUEST}, {confirm}")
    await hostile.send(raw, mail_from=MODERATOR, to=[REQUEST, confirm])
    rows = hostile.query("SELECT role, outcome FROM inbox WHERE role IN ('request', 'confirm')")
    assert len(rows) == 2
    after = hostile.sent_to(MODERATOR)[before:]
    assert not any("Bereits erledigt" in str(m["Subject"]) for m in after)
    if body.strip():
        assert post_state(hostile) == "discarded"
        assert sum("discarded" in r["outcome"] for r in rows) == 1
        # one acknowledgement of the one decision, nothing else
        assert [str(m["Subject"]).split(":")[0] for m in after] == ["Verworfen"]
    else:
        assert post_state(hostile) == "held" and not published(hostile)
        assert len(after) == 1   # asked again, once; nothing decided
