"""Who bounced: a pure function from the raw bytes of a bounce to the failed members.

The answer is built from the most to the least trustworthy evidence, and the first
source that names someone wins:

1. the VERP address the caller decoded from the envelope (``L-bounces+user=dom@D``): we
   sent that copy to exactly one member, so if this mail is a failure, that is who failed;
2. RFC 3464 delivery-status fields (read here by hand, see `bounce_dsn`), which also tell
   a success DSN ("delivered", "relayed", "expanded") from a failure;
3. flufl.bounce's detectors for the classic non-standard formats;
4. the ``X-Failed-Recipients`` header (Exim, Gmail, many hosted MTAs);
5. the prose before the returned copy of the mail (see `bounce_text`).

Auto-replies (RFC 3834, "out of office") and ARF abuse complaints name a person but are
not delivery failures, so they report nobody. Nothing here may raise: a bounce is
written by a broken mail system more often than not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_string
from email.message import Message

from flufl.bounce import all_failures

try:  # the detector order of all_failures(); private, so optional
    from flufl.bounce._scan import _DETECTORS as _FLUFL_DETECTORS
except ImportError:  # pragma: no cover - another flufl.bounce layout
    _FLUFL_DETECTORS = None

from listserv.bounces.dsn import delivery_status_texts, parse_dsn
from listserv.bounces.mime import addresses_in, header_text, normalise_address, parse, walk_readable
from listserv.bounces.prose import (
    failed_in_text,
    looks_temporary,
    returned_part,
    says_undeliverable,
)

__all__ = ["ANALYSIS_FAILED", "NOT_A_BOUNCE", "BounceReport", "analyse"]


@dataclass(frozen=True)
class BounceReport:
    """The failed recipients of one mail, as lowercased addresses.

    ``permanent`` failed for good (5.x.x, or the MTA gave up); ``temporary`` are delay
    warnings and 4.x.x. ``is_bounce`` is False for mail that is no delivery failure at
    all (auto-replies, success DSNs, complaints, ordinary mail); it can be True with
    both sets empty when a bounce names nobody we could read. ``error`` is set when
    our reading itself failed: that is a fault to count and look at, not "no bounce".
    """

    permanent: frozenset[str]
    temporary: frozenset[str]
    is_bounce: bool
    error: str = ""
    #: How the failed recipients were found: "verp" (the caller's verified VERP address),
    #: "dsn" (an RFC 3464 message/delivery-status part) or "guess" (everything else:
    #: flufl.bounce's detectors, X-Failed-Recipients, the prose). Only the first two may
    #: cost a member anything (roles.bounce_mail): a guess is written by whoever wrote
    #: the mail.
    evidence: str = field(default="guess", compare=False)

    @property
    def recipients(self) -> frozenset[str]:
        return self.permanent | self.temporary


NOT_A_BOUNCE = BounceReport(frozenset(), frozenset(), False)
ANALYSIS_FAILED = "bounce analysis failed"   # the inbox outcome ``listserv status`` counts

_DAEMON_RE = re.compile(
    r"mailer[-_]?daemon|post_?master|mail[-_ ]?delivery|mail[-_]?daemon|mailer@|"
    r"\bmail\s+administrator|\bnon[-_]?delivery|\bndr\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|deliver(?:y|ed)?\s+(?:status|fail|problem|notification|report)"
    r"|not\s+(?:be\s+)?delivered|returned\s+mail|failure\s+notice|mail\s+delivery"
    r"|delivery\s+(?:has\s+)?failed|could\s+not\s+(?:be\s+)?(?:sent|delivered)|bounce"
    r"|unzustellbar|nicht\s+zustellbar|zustellung|fehlgeschlagen|non\s+remis|échec"
    r"|non[- ]?recapitabile|warning:\s+(?:could|message|delay)|delayed|rejected|nondeliverable"
    r"|mail\s+(?:error|failure|system\s+error)|error\s+sending|delivery\s+to\s+the\s+following",
    re.IGNORECASE,
)
_AUTOREPLY_SUBJECT_RE = re.compile(
    r"auto(?:matic|matische)?[-_ ]?(?:reply|response|respons|antwort|answer)|autoreply"
    r"|out\s+of\s+(?:the\s+)?office|abwesen|urlaub|vacation|r[ée]ponse\s+automatique"
    r"|^\s*away\b|\bbin\s+nicht\s+im\s+b[üu]ro",
    re.IGNORECASE,
)
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-mailautoreply")


def analyse(raw: bytes, *, verp_recipient: str | None = None) -> BounceReport:
    """Read one incoming mail to a bounce address; never raises (a fault is ``error``).

    ``verp_recipient`` is the member decoded from a VERP envelope recipient, if any.
    """
    try:
        return _analyse(raw, verp_recipient)
    except Exception as exc:  # a reader that raises on a hostile bounce would stop the queue
        return BounceReport(frozenset(), frozenset(), False,
                            error=f"{type(exc).__name__}: {exc}"[:200])


def _analyse(raw: bytes, verp_recipient: str | None) -> BounceReport:
    msg = parse(raw)
    if _is_complaint(msg):
        return NOT_A_BOUNCE
    reading = _read_failures(msg)
    if reading is None:  # it said what it is, and it is no failure
        return NOT_A_BOUNCE
    report, delayed = reading
    verp = normalise_address(verp_recipient) if verp_recipient else None
    if verp is None:
        return report
    if delayed:
        return BounceReport(frozenset(), frozenset({verp}), True, evidence="verp")
    return BounceReport(frozenset({verp}), frozenset(), True, evidence="verp")


def _read_failures(msg: Message) -> tuple[BounceReport, bool] | None:
    """Failures by the first source that names any, and whether the mail is only a
    delay warning; None when the mail is no failure at all."""
    dsn = [r for text in delivery_status_texts(msg) for r in parse_dsn(text)]
    evidence = "dsn" if dsn else "guess"   # DSN fields in a body text are a guess
    texts, returned = walk_readable(msg)
    if not dsn:
        dsn = [r for text in texts for r in parse_dsn(text)]
    if dsn:
        failed = [r for r in dsn if r.outcome != "success"]
        if not failed:
            return None
        permanent = {a for r in failed if r.outcome == "permanent" for a in r.addresses}
        temporary = {a for r in failed if r.outcome == "temporary" for a in r.addresses}
        report, delayed = _reading(permanent, temporary - permanent)
        return BounceReport(report.permanent, report.temporary, True, evidence=evidence), delayed

    ses = _amazon_ses(texts)
    if ses is not None:
        return (ses, bool(ses.temporary) and not ses.permanent) if ses.is_bounce else None
    bounce_like = _looks_like_bounce(msg) or (
        # Carriers write failure notices from no-reply addresses with subjects like
        # "Mail"; the text gives them away. A newsletter (List-*) never gets this pass.
        not msg.get("List-Id") and not msg.get("List-Unsubscribe") and says_undeliverable(texts)
    )
    if not bounce_like and _looks_like_autoreply(msg):
        return None

    ours = _our_addresses(msg, returned, texts)
    permanent, temporary = _flufl(msg)
    if (permanent | temporary) - ours:
        # SimpleMatch over-collects from inline copies; drop what is ours, unless that
        # is all it found (anonymised samples and self-sent tests do name our address).
        permanent, temporary = permanent - ours, temporary - ours
    if permanent or temporary:
        return _reading(permanent, temporary - permanent)

    failed = [a for a in addresses_in(header_text(msg, "X-Failed-Recipients")) if a not in ours]
    if not failed and bounce_like:
        failed = failed_in_text(texts, ours)
    if not failed and bounce_like:
        failed = [a for a in _returned_recipients(texts, returned) if a not in ours]
    if not failed and not bounce_like:
        return None
    if looks_temporary(texts):  # also when it names nobody: VERP still needs to know
        return _reading(set(), set(failed), delayed=True)
    return _reading(set(failed), set(), delayed=False)


def _reading(
    permanent: set[str], temporary: set[str], *, delayed: bool | None = None
) -> tuple[BounceReport, bool]:
    """A failure report, and whether it is a mere delay warning (nobody failed for good)."""
    if delayed is None:
        delayed = bool(temporary) and not permanent
    return BounceReport(frozenset(permanent), frozenset(temporary), True), delayed


def _report(permanent: set[str], temporary: set[str]) -> BounceReport:
    return BounceReport(frozenset(permanent), frozenset(temporary), True)


def _flufl(msg: Message) -> tuple[set[str], set[str]]:
    """flufl.bounce's answer, with its non-addresses (paths, JSON, pipes) dropped.

    Its all_failures() stops at the first detector that raises (Yale on an empty From,
    Sina on an encoded one) and logs a traceback for it; run its detectors one by one in
    its own order instead, so one broken detector costs only itself.
    """
    temporary: frozenset[bytes] = frozenset()
    permanent: frozenset[bytes] = frozenset()
    if _FLUFL_DETECTORS is None:
        try:
            temporary, permanent = all_failures(msg)
        except Exception:
            return set(), set()
    else:
        for detector in _FLUFL_DETECTORS:
            try:
                temporary, permanent = detector().process(msg)
            except Exception:
                continue
            if temporary or permanent:
                break

    def clean(found: frozenset[bytes]) -> set[str]:
        out = set()
        for item in found:
            text = item.decode("ascii", "replace")
            address = normalise_address(text)
            if address and address == text.strip().strip("<>").lower():
                out.add(address)
        return out

    return clean(permanent), clean(temporary)


def _is_complaint(msg: Message) -> bool:
    """An ARF abuse report: the member got the mail and called it spam."""
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if report_type == "feedback-report":
            return True
    return any(p.get_content_type() == "message/feedback-report" for p in msg.walk())


_QUOTE_RE = re.compile(r"^(?:[ \t]*>)+ ?")
_HEADER_LINE_RE = re.compile(r"[ \t>]*[A-Za-z][A-Za-z0-9-]*:[ \t]")
_SES_TYPE_RE = re.compile(r'\\?"notificationType\\?"\s*:\s*\\?"(\w+)')
_SES_BOUNCED_RE = re.compile(r'\\?"bouncedRecipients\\?"\s*:\s*\[(.*?)\]', re.DOTALL)
_SES_ADDRESS_RE = re.compile(r'\\?"emailAddress\\?"\s*:\s*\\?"([^"\\]+)')
_SES_TRANSIENT_RE = re.compile(r'\\?"bounceType\\?"\s*:\s*\\?"Transient')


def _amazon_ses(texts: list[str]) -> BounceReport | None:
    """Amazon SES notifications: JSON, often wrapped in SNS JSON, and often line-broken.

    Read by pattern rather than json.loads, because relays fold the long line and
    leave the JSON unparsable. Only notificationType "Bounce" is a failure.
    """
    for text in texts:
        kind = _SES_TYPE_RE.search(text)
        if kind is None:
            continue
        if kind.group(1) != "Bounce":
            return NOT_A_BOUNCE
        found: set[str] = set()
        for block in _SES_BOUNCED_RE.findall(text):
            for value in _SES_ADDRESS_RE.findall(block):
                address = normalise_address(value)
                if address:
                    found.add(address)
        if _SES_TRANSIENT_RE.search(text):
            return _report(set(), found)
        return _report(found, set())
    return None


def _returned_recipients(texts: list[str], returned: list[Message]) -> list[str]:
    """Last resort: the recipients of the returned copy of our mail.

    For list mail its To is the list itself, which matches no member and so does no
    harm; a copy sent to one member (personalised, or delivered through a forwarder)
    names that member. "for <addr>" in its Received lines is the envelope recipient.
    """
    copies = list(returned)
    for text in texts:
        lines = returned_part(text).splitlines()[1:]
        while lines and not _HEADER_LINE_RE.match(lines[0]):
            lines.pop(0)  # stray continuation lines of a header the MTA cut away
        if lines:
            unquoted = (_QUOTE_RE.sub("", line) for line in lines)
            copies.append(message_from_string("\n".join(unquoted)))
    found: list[str] = []
    for copy in copies:
        received = " ".join(str(v) for v in copy.get_all("Received") or [])
        candidates = re.findall(r"\bfor\s+<?([^\s<>;@]+@[^\s<>;@]+)", received)
        if not copy.get("List-Id") and not copy.get("List-Post"):
            # The To of list mail is the list; only a personal copy names the member.
            candidates += addresses_in(header_text(copy, "To") + " " + header_text(copy, "Cc"))
        for candidate in candidates:
            address = normalise_address(candidate)
            if address and address not in found:
                found.append(address)
    return found


def _looks_like_bounce(msg: Message) -> bool:
    if msg.get_content_type() == "multipart/report" or msg.get("X-Failed-Recipients"):
        return True
    sender = header_text(msg, "From")
    subject = header_text(msg, "Subject")
    return bool(_DAEMON_RE.search(sender) or _BOUNCE_SUBJECT_RE.search(subject))


def _looks_like_autoreply(msg: Message) -> bool:
    auto = header_text(msg, "Auto-Submitted").strip().lower()
    if auto.startswith("auto-replied") or any(msg.get(h) for h in _AUTOREPLY_HEADERS):
        return True
    if header_text(msg, "Precedence").strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT_RE.search(header_text(msg, "Subject")))


_MESSAGE_ID_RE = re.compile(r"(?im)^[ \t>]*(?:message-id|in-reply-to|references):\s*(.*)$")


def _our_addresses(msg: Message, returned: list[Message], texts: list[str]) -> set[str]:
    """Addresses that are the bounce's own, our mail's sender, or message ids.

    flufl.bounce's SimpleMatch and the prose reader both pick these up from a
    returned copy pasted inline; none of them is ever the failed recipient.
    """
    ours: set[str] = set()
    for text in texts:
        for value in _MESSAGE_ID_RE.findall(text):
            ours.update(addresses_in(value))
    # Not X-Original-To: DragonFly's DMA puts the failed recipient there.
    for name in ("From", "To", "Cc", "Reply-To", "Return-Path", "Sender", "Delivered-To",
                 "Errors-To"):
        ours.update(addresses_in(header_text(msg, name)))
    for original in returned:
        for name in ("From", "Sender", "Return-Path", "Reply-To", "Errors-To", "Message-ID"):
            ours.update(addresses_in(header_text(original, name)))
    return ours
