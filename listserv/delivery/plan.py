"""The sender's decisions, without I/O: retry times, transactions, personal copies.

``sender.py`` claims rows and talks to the transport; everything it has to
*decide* is a pure function here, tested directly: when a deferred
recipient is tried again (``next_attempt``), which recipients share one SMTP
transaction and with which envelope sender (``plan``), and what a member's
personal copy looks like (``PersonalCopies``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage

from listserv.bounces import verp
from listserv.config import ListConfig
from listserv.delivery import transform
from listserv.delivery.outcomes import DeliveryResult, Outcome, RcptOutcome

#: Waits after the 1st, 2nd, ... failed attempt; the last one repeats.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
    timedelta(hours=2), timedelta(hours=4),
)
GIVE_UP_AFTER = timedelta(days=5)


def next_attempt(
    attempts: int,
    queued_at: datetime,
    now: datetime,
    *,
    schedule: Sequence[timedelta] = RETRY_SCHEDULE,
    give_up_after: timedelta = GIVE_UP_AFTER,
) -> datetime | None:
    """When to try again after ``attempts`` failed tries; None means give up.

    The give-up age counts from when the copy was queued, not from the last
    try, so a recipient is never retried for longer than ``give_up_after``.
    """
    wait = schedule[min(max(attempts, 1), len(schedule)) - 1]
    when = now + wait
    if when - queued_at > give_up_after:
        return None
    return when


# -- transactions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """One deliveries row taken by the sender."""

    id: int
    outgoing_id: int
    rcpt: str
    domain: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What the sender needs of an ``outgoing`` row (its raw bytes stay in a cache)."""

    id: int
    kind: str
    list_address: str
    mail_from: str
    message_id: str
    created_at: datetime
    verp: bool
    personalize: bool

    @property
    def per_member(self) -> bool:
        """One transaction per recipient: VERP or personal copies."""
        return self.kind == "post" and (self.verp or self.personalize)


@dataclass(frozen=True, slots=True)
class Job:
    """One SMTP transaction: one envelope sender, same bytes for all ``rcpts``."""

    outgoing_id: int
    mail_from: str
    rcpts: tuple[str, ...]
    ids: tuple[int, ...]
    personal: bool = False  # the bytes are this one member's own copy
    answer: bool = False    # a reply or notice (carries a token): its body goes once sent


def verp_sender(key: bytes, bounces_address: str, list_address: str, rcpt: str) -> str:
    """``L-bounces@D`` + ``user@dom`` -> ``L-bounces+user=dom=MAC@D`` (``bounces.verp``)."""
    return verp.sender(key, bounces_address, list_address, rcpt)


def plan(
    rows: Iterable[Claimed], outgoing: Mapping[int, Outgoing], max_recipients: int,
    *, verp_key: bytes = b"",
) -> list[Job]:
    """Cut claimed rows into transactions.

    Shared content (replies, notices, bulk posts): recipients of one message
    and one domain share a transaction, up to ``max_recipients``; the relay
    then hands each domain one copy. VERP or personalised posts: one
    transaction per member, since the envelope sender (or the bytes) differ;
    a VERP sender carries a MAC under ``verp_key`` (``bounces.verp``).
    """
    jobs: list[Job] = []
    groups: dict[tuple[int, str], list[Claimed]] = {}
    for row in rows:
        out = outgoing[row.outgoing_id]
        if out.per_member:
            sender = (verp_sender(verp_key, out.mail_from, out.list_address, row.rcpt)
                      if out.verp else out.mail_from)
            jobs.append(Job(out.id, sender, (row.rcpt,), (row.id,), out.personalize))
        else:
            groups.setdefault((row.outgoing_id, row.domain), []).append(row)
    for (outgoing_id, _), members in groups.items():
        for start in range(0, len(members), max_recipients):
            chunk = members[start:start + max_recipients]
            jobs.append(Job(outgoing_id, outgoing[outgoing_id].mail_from,
                            tuple(r.rcpt for r in chunk), tuple(r.id for r in chunk),
                            answer=outgoing[outgoing_id].kind != "post"))
    return jobs


# -- outcomes -----------------------------------------------------------------

REMOVED = RcptOutcome(Outcome.PERMANENT, 554, "5.3.0 the message was removed before delivery")
NO_ANSWER = RcptOutcome(Outcome.TEMPORARY, 451, "4.3.0 the transport reported nothing")


@dataclass
class Records:
    """The row updates for a set of outcomes, and what to log after their commit."""

    sent: list[tuple[str, int]] = field(default_factory=list)            # (reply, id)
    deferred: list[tuple[datetime, str, int]] = field(default_factory=list)  # (when, reply, id)
    failed: list[tuple[str, int]] = field(default_factory=list)          # (reply, id)
    bounced: dict[str, list[str]] = field(default_factory=dict)          # list -> members
    #: (outgoing id, "sent" | "deferred" | "failed") -> "rcpt reply" lines
    summary: dict[tuple[int, str], list[str]] = field(default_factory=dict)


def classify(
    results: Iterable[tuple[Job, DeliveryResult]],
    attempts: Mapping[int, int],
    outgoing: Mapping[int, Outgoing],
    now: datetime,
    *,
    schedule: Sequence[timedelta] = RETRY_SCHEDULE,
    give_up_after: timedelta = GIVE_UP_AFTER,
) -> Records:
    """Decide each row's new state from its outcome (``attempts``: tries before this one).

    A temporary outcome past the give-up age becomes a failure. A 5xx for a
    member's copy of a post counts as a bounce; a 5xx to a reply or notice
    does not (the address is no member's, or not in that role).
    """
    rec = Records()
    for job, result in results:
        info = outgoing[job.outgoing_id]
        for row_id, rcpt in zip(job.ids, job.rcpts, strict=True):
            outcome = result.outcomes.get(rcpt) or NO_ANSWER
            tries = attempts.get(row_id, 0) + 1
            if outcome.outcome is Outcome.TEMPORARY:
                when = next_attempt(tries, info.created_at, now, schedule=schedule,
                                    give_up_after=give_up_after)
                if when is not None:
                    rec.deferred.append((when, outcome.reply, row_id))
                    rec.summary.setdefault((info.id, "deferred"), []).append(
                        f"{rcpt} {outcome.reply}")
                    continue
                outcome = RcptOutcome(Outcome.PERMANENT, outcome.code,
                                      f"gave up after {tries} attempts: {outcome.text}")
            if outcome.outcome is Outcome.ACCEPTED:
                rec.sent.append((outcome.reply, row_id))
                rec.summary.setdefault((info.id, "sent"), []).append(rcpt)
                continue
            rec.failed.append((outcome.reply, row_id))
            rec.summary.setdefault((info.id, "failed"), []).append(f"{rcpt} {outcome.reply}")
            if info.kind == "post" and 500 <= outcome.code < 600 and outcome is not REMOVED:
                rec.bounced.setdefault(info.list_address, []).append(rcpt)
    return rec


# -- personal copies ----------------------------------------------------------


def unsubscribe_token(secret: bytes, list_address: str, address: str) -> str:
    """A member's one-click token: derived, so it need not be stored in clear.

    32 characters of base32 (160 bits) like the other tokens; the members
    table keeps only ``commands.tokens.token_hash`` of it, for the web endpoint.
    """
    mac = hmac.new(secret, f"{list_address.lower()}\0{address.lower()}".encode(),
                   hashlib.sha256).digest()
    return base64.b32encode(mac[:20]).decode("ascii").lower()


_LINE_END = re.compile(rb"\r\n|\n|\r(?!\n)")


def wire_form(data: bytes) -> bytes:
    """``data`` with CRLF line ends, as SMTP carries it (and as it is then signed)."""
    return _LINE_END.sub(b"\r\n", data)


_SAFE_VALUE = re.compile(r"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+|[a-z2-7]{32}")
_ENCODED = re.compile(rb"(?im)^content-transfer-encoding:\s*(quoted-printable|base64)")


def render_personal(raw: bytes, mlist: ListConfig, member: str, unsubscribe_url: str | None
                    ) -> bytes:
    """A member's copy, built from ``raw`` (the list copy without footer).

    With a one-click URL the copy carries it in List-Unsubscribe and in the
    footer; without one, the footer names the member's own address, so a
    member with several addresses knows which one to unsubscribe.
    """
    msg = message_from_bytes(raw, _class=EmailMessage, policy=transform.COPY_POLICY)
    out = transform.list_copy(msg, mlist, unsubscribe_url=unsubscribe_url, add_footer=False)
    # One varying value per copy (the URL's token, else the address) keeps
    # PersonalCopies' one-template rendering exact.
    footer = transform.render_footer(mlist, unsubscribe_url=unsubscribe_url,
                                     member=None if unsubscribe_url else member)
    try:
        transform.append_footer(out, footer)
    except Exception:  # a post we cannot change safely goes out without the footer
        out = transform.list_copy(msg, mlist, unsubscribe_url=unsubscribe_url, add_footer=False)
    return out.as_bytes(policy=transform.COPY_POLICY)


#: Where the placeholder stands in a template: (start, end, soft line breaks inside it
#: as (offset in the value, the break's bytes)).
Slots = list[tuple[int, int, tuple[tuple[int, bytes], ...]]]
_SOFT_BREAK = re.compile(rb"=\r?\n")


def find_slots(template: bytes, placeholder: bytes) -> Slots:
    """Every occurrence of ``placeholder``, also where quoted-printable broke its line."""
    pattern = rb"(?:=\r?\n)?".join(re.escape(bytes([c])) for c in placeholder)
    slots: Slots = []
    for match in re.finditer(pattern, template):
        breaks, offset, text = [], 0, match.group()
        for brk in _SOFT_BREAK.finditer(text):
            breaks.append((brk.start() - offset, brk.group()))
            offset += len(brk.group())
        slots.append((match.start(), match.end(), tuple(breaks)))
    return slots


def fill(template: bytes, slots: Slots, value: bytes) -> bytes:
    """``template`` with ``value`` in each slot, its soft line breaks kept in place."""
    out, pos = [], 0
    for start, end, breaks in slots:
        out.append(template[pos:start])
        piece = value
        for at, brk in reversed(breaks):
            piece = piece[:at] + brk + piece[at:]
        out.append(piece)
        pos = end
    out.append(template[pos:])
    return b"".join(out)


class PersonalCopies:
    """All member copies of one post from one rendering, when that is exact.

    Rendering a MIME message costs milliseconds; 100,000 of them would cost
    minutes. So the copy is rendered once with a random placeholder in the
    member's place, and each member's copy is that template with the
    placeholder replaced. This is used only where replacing bytes is
    provably the same as rendering: the placeholder has the value's
    length and alphabet (a token), or the body is not transfer-encoded and
    the address has only characters that no encoder touches. The first
    member's copy is also rendered for real and compared; any doubt falls
    back to rendering each copy.
    """

    def __init__(self, raw: bytes, mlist: ListConfig, *, base_url: str | None,
                 secret: bytes, sample_member: str) -> None:
        self.raw, self.mlist, self.base_url, self.secret = raw, mlist, base_url, secret
        self.placeholder = self._placeholder()
        self.template: bytes | None = None
        self.slots: Slots = []
        try:
            template = wire_form(render_personal(raw, mlist, self.placeholder,
                                                 self._url(self.placeholder)))
        except Exception:
            return
        slots = find_slots(template, self.placeholder.encode())
        # A value of another length moves quoted-printable line breaks: only tokens may
        # sit in a transfer-encoded body (base64 hides the placeholder entirely).
        ok = bool(slots) and (base_url is not None or (
            not _ENCODED.search(template) and not any(brk for _, _, brk in slots)))
        if ok and self._safe(sample_member):
            value = self.value(sample_member).encode()
            ok = fill(template, slots, value) == self.render(sample_member)
        if ok:
            self.template, self.slots = template, slots

    def _placeholder(self) -> str:
        if self.base_url is not None:
            return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()
        return f"{secrets.token_hex(8)}@placeholder.invalid"

    def _url(self, token: str) -> str | None:
        return f"{self.base_url}/u/{token}" if self.base_url is not None else None

    def url(self, member: str) -> str | None:
        """The member's one-click URL, when the web endpoint is configured."""
        return self._url(self.value(member)) if self.base_url is not None else None

    def value(self, member: str) -> str:
        """What stands in the placeholder's place for ``member``."""
        if self.base_url is not None:
            return unsubscribe_token(self.secret, self.mlist.address, member)
        return member

    def _safe(self, member: str) -> bool:
        return _SAFE_VALUE.fullmatch(self.value(member)) is not None

    def fast(self, member: str) -> bool:
        return self.template is not None and self._safe(member)

    def fits(self, value: str) -> bool:
        """A member's ``value`` can go into the template (``fast`` for a known value)."""
        return self.template is not None and _SAFE_VALUE.fullmatch(value) is not None

    @property
    def key(self) -> tuple[int, str]:
        """Names this template among all (a signing process keeps templates by it)."""
        return id(self), self.placeholder

    def substitute(self, member: str) -> bytes:
        assert self.template is not None
        return fill(self.template, self.slots, self.value(member).encode())

    def render(self, member: str) -> bytes:
        """The slow, always-right way: render this member's copy from scratch (CRLF)."""
        return wire_form(render_personal(self.raw, self.mlist, member, self.url(member)))
