"""Reading headers: RFC 2047 names decoded once where they enter; raw UTF-8 (RFC 6532),
raw Latin-1 or garbage bytes read without a failure."""

from __future__ import annotations

from datetime import UTC, datetime
from email.headerregistry import Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listserv.config import ListConfig
from listserv.mail.message import decode_words, one_line, parse, sender_of, subject, to_bytes
from listserv.mail.text import header_text
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

header_bytes = st.binary(max_size=80).map(
    lambda b: b.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\x00", b" "))


def utf8_clean(text: str) -> bool:
    text.encode("utf-8")   # raises on a lone surrogate
    return True


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    msg = parse("From: Jörg Müller <jörg@schule.example>\r\nSubject: Grüße\r\n\r\nx\r\n".encode())
    sender = sender_of(msg)
    assert (sender.address, sender.display_name) == ("jörg@schule.example", "Jörg Müller")
    assert subject(msg) == "Grüße"
    assert to_bytes(msg).startswith("From: Jörg Müller <jörg@schule.example>".encode())


def test_raw_latin1_headers_fall_back_to_latin1() -> None:
    msg = parse("From: Jörg <j@schule.example>\r\nSubject: Grüße\r\n\r\nx\r\n".encode("latin-1"))
    assert sender_of(msg).display_name == "Jörg" and subject(msg) == "Grüße"


def test_one_line_never_keeps_a_lone_surrogate() -> None:
    assert one_line("J\udcc3\udcb6rg") == "Jörg"
    assert utf8_clean(one_line("a\ud800b"))


@settings(max_examples=200, deadline=None)
@given(name=header_bytes, subj=header_bytes, local=header_bytes)
def test_any_header_bytes_give_text_every_step_can_store(name: bytes, subj: bytes,
                                                         local: bytes) -> None:
    raw = (b"From: " + name + b" <" + local + b"@schule.example>\r\nTo: l@d.example\r\n"
           b"Subject: " + subj + b"\r\n\r\nHallo\r\n")
    msg = parse(raw)
    sender = sender_of(msg, "env@schule.example")
    for text in (sender.display_name, sender.raw, sender.address or "", subject(msg),
                 header_text(msg, "From"), header_text(msg, "Subject")):
        assert utf8_clean(text)
    assert isinstance(to_bytes(msg), bytes)
