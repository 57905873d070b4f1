"""The DKIM proof's pure decision, against messages dkimpy signs in the test.

Keys are made here; DNS is a stub passed as ``dnsfunc`` that counts its
calls, so a test can also show that DNS is asked only for aligned,
well-covered, fresh signatures.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.util import parse_tag_value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listserv.mail.dkim_proof import DECISION_HEADERS, aligned, examine, prove
from tests.conftest import CORPUS

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LIST = "liste@gelsenkirchen.de"
MODERATOR = "koordination@gelsenkirchen.de"
SIGNED = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"mime-version",
          b"content-type"]

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024)
PRIVATE = _KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
RECORD = b"v=DKIM1; k=rsa; p=" + base64.b64encode(_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


class Dns:
    def __init__(self, fail: BaseException | None = None, delay: float = 0.0) -> None:
        self.asked: list[bytes] = []
        self.fail, self.delay = fail, delay

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        self.asked.append(name)
        if self.delay:
            time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return RECORD if name.endswith(b"._domainkey.gelsenkirchen.de.") or name.endswith(
            b"._domainkey.gelsenkirchen.de") else None


def message(*, sender: str = MODERATOR, to: str = LIST, subject: str = "Fachtag",
            date: datetime = NOW, body: str = "einladen dora@schule.example Dora\r\n",
            extra: list[str] | None = None) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             f"Date: {date.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
             "Message-ID: <m1@gelsenkirchen.de>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"] + (extra or [])
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sign(raw: bytes, *, domain: str = "gelsenkirchen.de", headers: list[bytes] | None = None,
         length: bool = False) -> bytes:
    signature = dkim.sign(raw, b"sel", domain.encode(), PRIVATE,
                          include_headers=headers or SIGNED, length=length)
    return signature + raw


def check(raw: bytes, dns: Dns | None = None, *, from_domain: str = "gelsenkirchen.de",
          rcpt: str = LIST, now: datetime = NOW):
    return examine(raw, from_domain=from_domain, recipients={rcpt}, now=now,
                   dnsfunc=dns or Dns())


def test_a_signed_fresh_mail_to_us_is_proven() -> None:
    dns = Dns()
    proof = check(sign(message()), dns)
    assert proof.ok, proof.reason
    assert proof.message_id == "<m1@gelsenkirchen.de>" and len(proof.signature) > 100
    assert dns.asked == [b"sel._domainkey.gelsenkirchen.de."]


@pytest.mark.parametrize("name", ["Subject", "To", "From", "Date", "Message-ID", "Cc"])
@pytest.mark.parametrize("where", ["top", "bottom"])
def test_an_extra_unsigned_decision_header_is_a_forgery(name: str, where: str) -> None:
    raw = sign(message())
    extra = f"{name}: entfernen mitglied@schule.example <{LIST}>\r\n".encode()
    forged = extra + raw if where == "top" else raw.replace(b"\r\n\r\n", b"\r\n" + extra[:-2]
                                                            + b"\r\n\r\n", 1)
    dns = Dns()
    proof = check(forged, dns)
    assert not proof.ok
    if name != "Cc":   # Cc is oversigned here (h= names it, the mail has none): dkimpy refuses
        assert dns.asked == []   # refused before any DNS lookup


def test_oversigned_absent_cc_is_fine_but_an_added_cc_is_not() -> None:
    raw = sign(message(), headers=[*SIGNED, b"cc"])
    assert check(raw).ok
    assert not check(b"Cc: " + LIST.encode() + b"\r\n" + raw).ok


def test_an_unsigned_cc_is_refused_even_when_single() -> None:
    raw = sign(message(to="kollegin@schule.example", extra=[f"Cc: {LIST}"]),
               headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    assert check(raw).reason == "an unsigned cc header"


def test_signed_cc_names_the_list() -> None:
    assert check(sign(message(to="kollegin@schule.example", extra=[f"Cc: {LIST}"]))).ok


@pytest.mark.parametrize("to", [
    f'"{LIST}" <kollegin@schule.example>',                       # our address as a name
    "=?utf-8?q?liste=40gelsenkirchen.de?= <kollegin@schule.example>",
    f"kollegin@schule.example (bitte an {LIST})",                  # ... or in a comment
])
def test_our_address_only_as_a_name_or_comment_is_not_addressed_to_us(to: str) -> None:
    assert check(sign(message(to=to))).reason == "our address is not among the signed To/Cc"


def test_an_obsolete_space_before_the_colon_is_no_proof() -> None:
    raw = sign(message())
    assert not check(b"Subject : entfernen mitglied@schule.example\r\n" + raw).ok


def test_a_mail_to_someone_else_is_no_proof_for_us() -> None:
    proof = check(sign(message(to="kollegin@schule.example")))
    assert proof.reason == "our address is not among the signed To/Cc"
    # ... nor is a post to the list a proof for a request to -request.
    assert not check(sign(message()), rcpt="liste-request@gelsenkirchen.de").ok


@pytest.mark.parametrize(("age", "ok"), [
    (timedelta(hours=23), True), (timedelta(days=1, minutes=1), False),
    (timedelta(minutes=-4), True), (timedelta(minutes=-6), False)])
def test_the_signed_date_must_be_fresh(age: timedelta, ok: bool) -> None:
    assert check(sign(message(date=NOW - age))).ok is ok


def test_a_body_length_limit_is_refused() -> None:
    proof = check(sign(message(), length=True))
    assert proof.reason == "l= signs only a prefix of the body"


def test_a_signature_without_from_in_h_is_refused() -> None:
    raw = sign(message())
    forged = raw.replace(b"h=from : ", b"h=").replace(b"h=from:", b"h=", 1)
    assert b"h=from" not in forged
    assert check(forged).reason == "h= does not include from"


@pytest.mark.parametrize("missing", ["Subject", "Date", "Message-ID"])
def test_required_headers_must_be_present(missing: str) -> None:
    lines = [line for line in message().split(b"\r\n")
             if not line.startswith(missing.encode() + b":")]
    assert not check(sign(b"\r\n".join(lines))).ok


def test_two_content_types_are_a_forgery() -> None:
    raw = sign(message())
    forged = b"Content-Type: multipart/mixed; boundary=x\r\n" + raw
    assert check(forged).reason == "content-type appears 2 times"


def test_organisational_domain_from_the_public_suffix_list() -> None:
    assert aligned("mail.gelsenkirchen.de", "gelsenkirchen.de")
    assert aligned("gelsenkirchen.de", "stadt.gelsenkirchen.de")
    assert not aligned("evil.com.de", "x.com.de")
    assert not aligned("com.de", "x.com.de")
    assert not aligned("evil.co.uk", "x.co.uk")


def test_dns_is_asked_only_for_an_aligned_signature() -> None:
    dns = Dns()
    raw = sign(message(sender="koordination@x.com.de"), domain="evil.com.de")
    assert not check(raw, dns, from_domain="x.com.de").ok
    assert dns.asked == []


def test_a_dns_failure_is_no_proof_and_no_error() -> None:
    proof = check(sign(message()), Dns(fail=dkim.DnsTimeoutError("slow")))
    assert not proof.ok and proof.reason == "the signature does not verify"


def test_a_tampered_body_does_not_verify() -> None:
    raw = sign(message()).replace(b"einladen dora", b"entfernen anna")
    assert not check(raw).ok


async def test_prove_gives_up_on_slow_dns_and_keeps_the_loop_free() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    proof = await prove(sign(message()), from_domain="gelsenkirchen.de", recipients={LIST},
                        now=NOW, dnsfunc=Dns(delay=1.0), timeout=0.3)
    task.cancel()
    assert not proof.ok and proof.reason == "DNS did not answer in time"
    assert ticks > 10


def _header_lines(raw: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            lines[-1] += b"\r\n" + line
        else:
            lines.append(line)
    return lines, body


SIGNED_MAIL = sign(message())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(len(_header_lines(SIGNED_MAIL)[0]))))
def test_any_header_order_keeps_a_valid_proof(order: list[int]) -> None:
    lines, body = _header_lines(SIGNED_MAIL)
    raw = b"\r\n".join(lines[i] for i in order) + b"\r\n\r\n" + body
    assert check(raw).ok


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(DECISION_HEADERS), position=st.integers(0, 20),
       value=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40),
       case=st.sampled_from([str.lower, str.upper, str.title]))
def test_any_added_decision_header_anywhere_is_refused(
    name: str, position: int, value: str, case
) -> None:
    lines, body = _header_lines(SIGNED_MAIL)
    lines.insert(position % (len(lines) + 1), f"{case(name)}: {value}".encode())
    assert not check(b"\r\n".join(lines) + b"\r\n\r\n" + body).ok


# -- the shared DKIM corpus (skipped where it is absent) --------------------------------------

DKIM_CORPUS = CORPUS / "dkim"
needs_corpus = pytest.mark.skipif(not (DKIM_CORPUS / "expected.json").is_file(),
                                  reason=f"DKIM corpus not found at {DKIM_CORPUS}")


def corpus_case(vector: dict, tables: dict) -> tuple[bytes, dict, Callable[..., bytes | None]]:
    raw = (DKIM_CORPUS / vector["file"]).read_bytes().replace(b"\r\n", b"\n")
    raw = raw.replace(b"\n", b"\r\n")
    table = tables[vector["dns_table"]]

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        value = table.get(name.decode("utf-8", "replace").rstrip("."))
        if value is None or value == "NXDOMAIN":
            return None
        if value.startswith("~~"):
            raise dkim.DnsTimeoutError(value)
        return value.encode()

    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    signature = parse_tag_value(msg.get("DKIM-Signature", "d=x").encode()) if msg.get(
        "DKIM-Signature") else {}
    facts = {
        "from_domain": (signature.get(b"d") or b"x").decode("utf-8", "replace").strip(),
        "recipients": {a.lower() for _, a in getaddresses(msg.get_all("To", [])
                                                           + msg.get_all("Cc", []))},
    }
    try:
        facts["now"] = parsedate_to_datetime(msg["Date"]) + timedelta(hours=1)
    except Exception:
        facts["now"] = NOW
    return raw, facts, dnsfunc


@needs_corpus
def test_no_corpus_vector_that_fails_verification_is_ever_a_proof() -> None:
    expected = json.loads((DKIM_CORPUS / "expected.json").read_text())
    checked = 0
    for vector in expected["vectors"]:
        if vector["expected"] == "pass":
            continue
        raw, facts, dnsfunc = corpus_case(vector, expected["dns_tables"])
        proof = examine(raw, dnsfunc=dnsfunc, **facts)
        assert not proof.ok, vector["file"]
        checked += 1
    assert checked == 40


@needs_corpus
def test_the_rfc8463_example_is_a_proof_when_fresh_and_only_then() -> None:
    expected = json.loads((DKIM_CORPUS / "expected.json").read_text())
    (vector,) = [v for v in expected["vectors"] if v["file"] == "rfc8463/signed.eml"]
    raw, facts, dnsfunc = corpus_case(vector, expected["dns_tables"])
    proof = examine(raw, dnsfunc=dnsfunc, **facts)
    assert proof.ok and proof.domain == "football.example.com", proof
    stale = {**facts, "now": facts["now"] + timedelta(days=1)}
    assert not examine(raw, dnsfunc=dnsfunc, **stale).ok
    forged = b"Subject: entfernen joe@football.example.com\r\n" + raw
    assert not examine(forged, dnsfunc=dnsfunc, **facts).ok
