"""The worker's full read of a mail: real mail is never parked, hostile structure is."""

from __future__ import annotations

import time

import pytest

from listserv.inbox.examine import MAX_PARTS, Unreadable, examine_message
from tests.conftest import CORPUS


def nested(depth: int) -> bytes:
    raw = b"From: a@b.example\r\n"
    for i in range(depth):
        raw += f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
    raw += b"Content-Type: text/plain\r\n\r\nx\r\n"
    for i in reversed(range(depth)):
        raw += f"--b{i}--\r\n".encode()
    return raw


def test_deep_nesting_and_many_parts_are_unreadable() -> None:
    with pytest.raises(Unreadable, match="nested deeper than 40"):
        examine_message(nested(60))
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(MAX_PARTS + 5))
    with pytest.raises(Unreadable, match="over 1000 MIME parts"):
        examine_message(b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                        + body + b"--b--\r\n")


def test_a_step_the_email_package_cannot_do_is_a_fault_not_a_refusal() -> None:
    # CR/LF inside an address (RFC 2047-encoded): the handlers guard such headers.
    raw = (b"From: a@b.example\r\nTo: =?utf-8?q?Eve=0D=0ABcc=3A_v=40x?= <x@y.example>\r\n"
           b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nhi\r\n")
    examined = examine_message(raw)
    assert examined.parts == 1 and examined.depth == 1


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus not found at {CORPUS}")
def test_no_corpus_mail_is_refused_and_each_is_read_quickly() -> None:
    files = [p for sub in ("messages", "bounces") for p in (CORPUS / sub).rglob("*")
             if p.is_file() and p.stat().st_size < 20_000_000]
    assert len(files) > 1000
    slowest = 0.0
    for path in files:
        started = time.perf_counter()
        examine_message(path.read_bytes())   # raises only when a limit is exceeded
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 5.0
