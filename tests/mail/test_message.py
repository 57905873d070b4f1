"""Names arrive as RFC 2047 encoded words; they are decoded once, where they enter."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address

import pytest

from listserv.config import ListConfig
from listserv.mail.message import decode_words, parse, sender_of
from listserv.membership.memberfile import read_members
from listserv.texts.compose import as_bytes, compose
from tests.conftest import LIST, MODERATOR


@pytest.mark.parametrize(("raw", "text"), [
    ("=?iso-8859-1?Q?M=FCller=2C_Sabine?=", "Müller, Sabine"),
    ("=?utf-8?B?SsO8cmdlbiBXZWnDnw==?=", "Jürgen Weiß"),
    ("=?windows-1252?Q?Sch=FCtz?= Dora", "Schütz Dora"),
    ("Anna Schmidt", "Anna Schmidt"),
    ("=?x-unknown?Q?M=FCller?=", "=?x-unknown?Q?M=FCller?="),     # kept, never raises
    ("=?utf-8?B?broken", "=?utf-8?B?broken"),
    ("=?utf-8?Q?a=0D=0Ab?=", "a b"),                                # no line break smuggled
])
def test_decode_words(raw: str, text: str) -> None:
    assert decode_words(raw) == text


def test_the_from_name_is_text() -> None:
    msg = parse(b"From: =?iso-8859-1?Q?Sabine_M=FCller?= <Sabine.Mueller@Schule.example>\r\n"
                b"Subject: x\r\n\r\nanmelden\r\n")
    sender = sender_of(msg)
    assert sender.display_name == "Sabine Müller"
    assert sender.address == "sabine.mueller@schule.example"


def test_csv_names_are_decoded() -> None:
    data = ("E-Mail-Adresse;Anzeigename\r\n"
            "s@schule.example;=?iso-8859-1?Q?Sabine_M=FCller?=\r\n").encode("cp1252")
    rows, problems = read_members(data)
    assert problems == [] and rows[0].name == "Sabine Müller"


def test_a_name_goes_out_encoded_again() -> None:
    mlist = ListConfig(LIST, "Netzwerk Soziale Arbeit an Schulen", (MODERATOR,))
    msg = compose(mlist, to="s@schule.example", to_name="Sabine Müller", template="welcome",
                  language="de", now=datetime(2026, 11, 30, tzinfo=UTC),
                  reply_to=Address("Jürgen Weiß", addr_spec="j@x.example"))
    wire = as_bytes(msg)
    assert b"To: Sabine =?utf-8?q?M=C3=BCller?= <s@schule.example>" in wire
    assert b"M\xc3\xbcller" not in wire.split(b"\r\n\r\n")[0]        # headers stay 7-bit
    assert parse(wire)["To"].addresses[0].display_name == "Sabine Müller"
