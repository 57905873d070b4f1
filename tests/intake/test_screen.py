"""The DATA screen: what is refused at once, and that everything below the limits is cheap."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from listserv.intake.screen import (
    MAX_CONTAINERS,
    MAX_ENCODED_WORDS,
    MAX_HEADER_BYTES,
    MAX_PARTS,
    screen,
)
from listserv.mail.message import parse, subject

WORD = "=?utf-8?q?Gr=C3=BC=C3=9Fe?="


def with_subject(words: int, word: str = WORD) -> bytes:
    return (f"From: a@b.example\r\nTo: l@d.example\r\nSubject: {' '.join([word] * words)}\r\n"
            "\r\nHallo\r\n").encode()


def with_parts(count: int, boundary: str = "b1") -> bytes:
    body = "".join(f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    return (f"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            f"{body}--{boundary}--\r\n").encode()


def nested(depth: int) -> bytes:
    raw = "From: a@b.example\r\n"
    for i in range(depth):
        raw += f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
    raw += "Content-Type: text/plain\r\n\r\nx\r\n"
    for i in reversed(range(depth)):
        raw += f"--b{i}--\r\n"
    return raw.encode()


def test_an_ordinary_mail_passes() -> None:
    assert screen(with_subject(3)) is None
    assert screen(with_parts(3)) is None
    assert screen(nested(3)) is None


def test_tens_of_thousands_of_encoded_words_are_refused() -> None:
    refused = screen(with_subject(20_000, "=?a?q?b?="))
    assert refused == "20000 encoded words in the header (at most 2000)"
    assert screen(with_subject(50_000)) == "header block over 256 KiB"


def test_a_hundred_thousand_parts_are_refused_quickly() -> None:
    raw = with_parts(100_000)
    started = time.perf_counter()
    assert screen(raw) == f"over {MAX_PARTS} MIME parts"
    assert time.perf_counter() - started < 1.0


def test_deep_nesting_is_refused() -> None:
    assert "nested MIME containers" in (screen(nested(250)) or "")
    assert screen(nested(MAX_CONTAINERS)) is None


def test_a_huge_header_block_is_refused() -> None:
    raw = b"From: a@b.example\r\n" + (b"X-Filler: " + b"a" * 30 + b"\r\n") * 10_000 + b"\r\nx"
    assert len(raw) > MAX_HEADER_BYTES
    assert "header block over" in (screen(raw) or "")


@settings(max_examples=25, deadline=None)
@given(words=st.integers(0, MAX_ENCODED_WORDS),
       word=st.sampled_from([WORD, "=?iso-8859-1?b?R3L832U=?=", "=?UTF-8?Q?a?=", "=?x?q?=FF?="]))
def test_any_encoded_word_count_up_to_the_limit_passes_and_decodes_fast(
    words: int, word: str
) -> None:
    raw = with_subject(words, word)
    assert screen(raw) is None
    started = time.perf_counter()
    subject(parse(raw))
    assert time.perf_counter() - started < 1.0


@settings(max_examples=25, deadline=None)
@given(words=st.integers(MAX_ENCODED_WORDS + 1, 20 * MAX_ENCODED_WORDS))
def test_any_encoded_word_count_over_the_limit_is_refused(words: int) -> None:
    assert screen(with_subject(words)) is not None


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 3 * MAX_PARTS), quoted=st.booleans(),
       boundary=st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7a), min_size=1,
                        max_size=40).filter(lambda b: "--" not in b))
def test_parts_are_counted_whatever_the_boundary(count: int, quoted: bool, boundary: str) -> None:
    raw = with_parts(count, boundary)
    if not quoted and boundary.isalnum():
        raw = raw.replace(f'"{boundary}"'.encode(), boundary.encode(), 1)
    assert (screen(raw) is None) is (count <= MAX_PARTS)
