"""Reading an inbound mail safely: parse once, answer the few questions we ask.

Python's ``email`` package raises on some real mail (see the corpus'
``python-email-hazards.json``): CR/LF inside an address header, unknown
charsets, broken multiparts. Everything here is guarded, so the deciding
code can ask "who sent this?" of any message without a try/except.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from email_validator import EmailNotValidError, validate_email

from listserv.mail.text import header_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_UNSAFE = re.compile(r"[^\x21-\x7e]")
_SUBJECT = re.compile(rb"^subject:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def header_block(raw: bytes) -> bytes:
    """The header part of a raw message (up to the first empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[: end + len(sep)]
    return raw


def message_id_of(raw: bytes) -> str:
    """The Message-ID for logs, read from bytes: cheap (no parse) and never raises."""
    match = _MESSAGE_ID.search(header_block(raw))
    if not match:
        return ""
    return _UNSAFE.sub("", match.group(1).decode("latin-1"))[:250]


def raw_subject_of(raw: bytes, limit: int = 120) -> str:
    """The Subject line's first bytes, undecoded: for a mail too hostile to parse."""
    match = _SUBJECT.search(header_block(raw)[:65536])
    if not match:
        return ""
    return one_line(match.group(1)[:limit].decode("utf-8", "replace"), limit)


def parse(raw: bytes) -> EmailMessage:
    """Parse with the modern policy; parsing itself does not raise on bad mail.

    Raw 8-bit header values (RFC 6532, SMTPUTF8: ``From: Jörg Müller
    <jörg@…>``) are read as UTF-8, or as Latin-1 when they are not valid
    UTF-8 (old clients wrote their own charset raw). The email package
    alone keeps such bytes as lone surrogates, which no text, log line or
    SQLite column can take: the cause of "failed" rows for good mail. Only
    the top-level header values are decoded; the body and the parts stay
    as the bytes parser read them.
    """
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    items = list(msg.raw_items())
    if all(value.isascii() for _, value in items):
        return msg
    for name in {name for name, _ in items}:
        del msg[name]
    for name, value in items:
        msg.set_raw(name, _decoded(value))
    return msg


def _decoded(value: str) -> str:
    """A header value the bytes parser read: its 8-bit bytes as UTF-8, else Latin-1."""
    if value.isascii():
        return value
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def one_line(text: str, limit: int = 200) -> str:
    """User text made safe for a header we build: no CR/LF/NUL, no lone surrogate
    (an undecodable byte becomes U+FFFD), bounded length."""
    return " ".join(_CONTROL.sub(" ", without_surrogates(text)).split())[:limit]


def without_surrogates(text: str) -> str:
    """``text`` with each undecodable byte (a lone surrogate) as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "replace").decode("utf-8")
    return text


def decode_words(text: str) -> str:
    """RFC 2047 encoded words as text: ``=?iso-8859-1?Q?M=FCller?=`` is ``Müller``.

    Used once where a name enters (a From, a CSV import, the migration of
    names stored before), so everything after stores and shows text. Text
    without encoded words, and words that do not decode (an unknown
    charset), come back as they were; never raises.
    """
    if "=?" not in text:
        return one_line(text, 500)
    try:
        decoded = str(make_header(decode_header(text)))
    except Exception:  # unknown charset, broken base64: keep what we have
        return one_line(text, 500)
    return one_line(decoded, 500)


def normalise_address(value: str) -> str | None:
    """Syntax-checked (email-validator, no DNS), lowercased address, or None."""
    value = value.strip().strip("<>").strip()
    if not value or _CONTROL.search(value):
        return None
    try:
        info = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return f"{info.local_part}@{info.domain}".lower()


def _raw_header(msg: EmailMessage, name: str) -> str:
    """The undecoded header value (compat32 style): never raises on bad addresses."""
    try:
        for key, value in msg.raw_items():
            if key.lower() == name.lower():
                return str(value)
    except Exception:
        pass
    return ""


@dataclass(frozen=True)
class Sender:
    address: str | None   # validated and lowercased, or None when unusable
    display_name: str     # one line, may be ""
    raw: str              # what the header said, one line, for answers and logs
    as_given: str = ""    # the valid address as written: local part kept, domain lower-cased


def sender_of(msg: EmailMessage, envelope_from: str = "") -> Sender:
    """The From address (validated), falling back to the envelope sender."""
    raw = _raw_header(msg, "From")
    name, addr = parseaddr(one_line(raw, 500))
    address = normalise_address(addr) if addr else None
    if address is None and not raw and envelope_from:
        addr = envelope_from
        address = normalise_address(addr)
    as_given = ""
    if address is not None:
        local = addr.strip().strip("<>").strip().rpartition("@")[0]
        as_given = f"{local}@{address.rpartition('@')[2]}"
    return Sender(address=address, display_name=one_line(decode_words(name), 100),
                  raw=one_line(raw or addr),
                  as_given=as_given)


def recipients_in_headers(msg: EmailMessage) -> list[str]:
    """Addresses in To and Cc, lowercased (for the "was the list addressed?" rule)."""
    values = [_raw_header(msg, "To"), _raw_header(msg, "Cc")]
    try:
        pairs = getaddresses([one_line(v, 5000) for v in values if v])
    except Exception:
        return []
    return [a.lower() for _, a in pairs if "@" in a]


def message_id(msg: EmailMessage) -> str:
    return one_line(header_text(msg, "Message-ID"), 250)


def references(msg: EmailMessage) -> list[str]:
    refs = one_line(header_text(msg, "References"), 2000).split()
    return [r for r in refs if r.startswith("<") and r.endswith(">")][-10:]


def subject(msg: EmailMessage) -> str:
    return one_line(header_text(msg, "Subject"), 300)


def to_bytes(msg: EmailMessage, policy: email.policy.EmailPolicy | None = None) -> bytes:
    """``msg`` as bytes; raw UTF-8 headers (RFC 6532) stay UTF-8 instead of raising.

    A header that came in as raw UTF-8 (see ``parse``) cannot be written in
    7-bit without changing its meaning (a UTF-8 local part has no encoded
    form), so such a mail is written with ``utf8=True``, as it arrived.
    """
    policy = policy or msg.policy  # type: ignore[assignment]
    try:
        return msg.as_bytes(policy=policy)
    except UnicodeEncodeError:
        return msg.as_bytes(policy=policy.clone(utf8=True))  # type: ignore[union-attr]
