"""Reading headers of any bytes: raw UTF-8 (RFC 6532), raw Latin-1, or garbage."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from listserv.mail.message import one_line, parse, sender_of, subject, to_bytes
from listserv.mail.text import header_text

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
