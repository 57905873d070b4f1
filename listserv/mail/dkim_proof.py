"""Is this mail provably the moderator's own, written for us, now? (DKIM proof)

Used for the one shortcut in moderation: the coordinator's own post, or
her ``einladen``/``entfernen``, need no token round trip when her mail is
provably hers. A valid signature alone proves little: dkimpy verifies the
header instances named in ``h=`` from the bottom up, while the email
package reads the *top* instance. An attacker who holds any mail the
coordinator once sent can put an unsigned ``Subject:`` or ``To:`` above
the signed one, or send it again next week. So a signature counts only
when all of this holds (``examine``):

1. its ``d=`` aligns with the From domain: equal, or the same
   organisational domain by the Public Suffix List (``dmarc``);
2. ``h=`` names ``from``, and every header we read for the decision
   (``DECISION_HEADERS``) occurs at most once and no more often than
   ``h=`` names it: an unsigned extra instance is a forgery (RFC 6376
   §8.15). From, Date, Message-ID and Subject must be present and signed;
   ``l=`` (a signed prefix of the body) is refused, since we read the body;
3. the address the mail reached (``recipients``) is in its signed To/Cc;
4. the signed Date is within ``MAX_AGE`` before now and at most
   ``MAX_AHEAD`` after it;
5. and only then, with DNS (``dns_timeout`` per lookup), dkimpy verifies it.

The last rule, "never seen before", needs the database: the caller
remembers ``Proof.message_id`` and ``Proof.signature``
(``store.replay.first_use``). Everything here is synchronous and pure but
for ``dnsfunc`` (dkimpy's signature: ``(name: bytes, timeout=…) -> bytes``),
so tests pass a stub; ``prove`` runs it in a worker thread with an overall
timeout. Any failure is a ``Proof`` with ``ok=False`` and a reason: the
caller falls back to the confirm-by-token path, never to an error.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime

import dkim
from dkim.util import parse_tag_value

from listserv.mail.dmarc import organisational_domain

DnsFunc = Callable[..., bytes | None]

# Headers whose content a decision reads: none may carry an unsigned instance.
DECISION_HEADERS = ("from", "subject", "to", "cc", "date", "message-id")
# Of those, the ones a proof needs present (and so signed).
REQUIRED_HEADERS = ("from", "date", "message-id", "subject")
# Structure headers: big providers leave them unsigned (Gmail signs no
# Content-Type), so one unsigned instance is allowed; a second is a forgery.
SINGLE_HEADERS = ("content-type", "content-transfer-encoding", "mime-version")
MAX_AGE = timedelta(days=1)
MAX_AHEAD = timedelta(minutes=5)
MAX_SIGNATURES = 5
DNS_TIMEOUT = 2.0


@dataclass(frozen=True)
class Proof:
    ok: bool
    reason: str                # why not, or "verified"
    domain: str = ""           # d= of the signature that proved it
    message_id: str = ""       # the signed Message-ID, for the replay table
    signature: str = ""        # the signature's b= without white space, for the replay table


def aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC relaxed alignment with the Public Suffix List's organisational domain."""
    signing_domain = signing_domain.lower().rstrip(".")
    from_domain = from_domain.lower().rstrip(".")
    return signing_domain == from_domain or (
        organisational_domain(signing_domain) == organisational_domain(from_domain))


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _unfolded(value: bytes) -> str:
    return " ".join(_text(value).split())


def _signed_names(tags: dict[bytes, bytes]) -> list[str]:
    return [n.strip().lower() for n in re.split(r"\s*:\s*", _text(tags.get(b"h", b"")))
            if n.strip()]


def coverage_fault(tags: dict[bytes, bytes], present: Counter[str]) -> str | None:
    """Why this signature does not cover what we read, or None when it does."""
    if b"l" in tags:
        return "l= signs only a prefix of the body"
    signed = Counter(_signed_names(tags))
    if signed["from"] < 1:
        return "h= does not include from"
    for name in DECISION_HEADERS:
        if present[name] > 1:
            return f"{name} appears {present[name]} times"
        if present[name] > signed[name]:
            return f"an unsigned {name} header"
    for name in REQUIRED_HEADERS:
        if present[name] != 1:
            return f"no {name} header"
    for name in SINGLE_HEADERS:
        if present[name] > max(1, signed[name]):
            return f"{name} appears {present[name]} times"
    return None


def _header(headers: list[tuple[bytes, bytes]], name: str) -> bytes:
    for key, value in headers:
        if _text(key).lower() == name:
            return value
    return b""


def freshness_fault(date_value: str, now: datetime) -> str | None:
    try:
        sent = parsedate_to_datetime(date_value)
    except (TypeError, ValueError, IndexError):
        return "the Date cannot be read"
    if sent.tzinfo is None:
        return "the Date has no time zone"
    if sent < now - MAX_AGE:
        return "the Date is more than a day old"
    if sent > now + MAX_AHEAD:
        return "the Date is in the future"
    return None


def addressed_to(headers: list[tuple[bytes, bytes]], recipients: set[str]) -> bool:
    """Is one of ``recipients`` in the To/Cc (already known to be signed)?"""
    values = [_unfolded(_header(headers, "to")), _unfolded(_header(headers, "cc"))]
    try:
        found = {addr.lower() for _, addr in getaddresses([v for v in values if v])}
    except Exception:
        return False
    return bool(found & {r.lower() for r in recipients})


def examine(
    raw: bytes,
    *,
    from_domain: str,
    recipients: set[str],
    now: datetime,
    dnsfunc: DnsFunc | None = None,
    dns_timeout: float = DNS_TIMEOUT,
) -> Proof:
    """Apply rules 1–5 to every DKIM-Signature (at most ``MAX_SIGNATURES``)."""
    try:
        verifier = dkim.DKIM(raw, timeout=dns_timeout)
    except Exception as exc:  # dkimpy refuses header lines it cannot read
        return Proof(False, f"unreadable header: {type(exc).__name__}")
    headers = [(bytes(k), bytes(v)) for k, v in verifier.headers]
    present = Counter(_text(k).lower() for k, _ in headers)
    signatures = [v for k, v in headers if k.lower() == b"dkim-signature"]
    if not signatures:
        return Proof(False, "no DKIM signature")
    reason = "no signature aligned with the From domain"
    for index, value in enumerate(signatures[:MAX_SIGNATURES]):
        try:
            tags = parse_tag_value(value)
        except Exception:
            reason = "a malformed DKIM-Signature"
            continue
        domain = _text(tags.get(b"d", b"")).strip()
        if not domain or not aligned(domain, from_domain):
            continue
        fault = (coverage_fault(tags, present)
                 or freshness_fault(_unfolded(_header(headers, "date")), now)
                 or (None if addressed_to(headers, recipients)
                     else "our address is not among the signed To/Cc"))
        if fault is not None:
            reason = fault
            continue
        try:
            kwargs = {"dnsfunc": dnsfunc} if dnsfunc is not None else {}
            valid = verifier.verify(idx=index, **kwargs)
        except Exception as exc:  # DNS timeout, a bad key record, a broken signature
            reason = f"not verified: {type(exc).__name__}"
            continue
        if not valid:
            reason = "the signature does not verify"
            continue
        return Proof(True, "verified", domain=domain.lower(),
                     message_id=_unfolded(_header(headers, "message-id"))[:250],
                     signature=re.sub(r"\s+", "", _text(tags.get(b"b", b""))))
    return Proof(False, reason)


async def prove(
    raw: bytes,
    *,
    from_domain: str,
    recipients: set[str],
    now: datetime,
    dnsfunc: DnsFunc | None = None,
    timeout: float = 3 * DNS_TIMEOUT,
) -> Proof:
    """``examine`` in a worker thread, bounded by ``timeout``: the loop keeps serving."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(
            examine, raw, from_domain=from_domain, recipients=recipients, now=now,
            dnsfunc=dnsfunc), timeout)
    except TimeoutError:
        return Proof(False, "DNS did not answer in time")
    except Exception as exc:  # never an error for the caller: the token path remains
        return Proof(False, f"not verified: {type(exc).__name__}")
