"""What the archive keeps of a mail: its fields, its text to search, its attachments.

Pure: bytes in, dataclasses out; no database, no clock. Run on the list copy
as it was published (in the worker process, beside the copy itself) and on
each mail of an imported mailbox. Text is what a member would read: every
text/plain part, and every text/html part as text (an HTML attachment too);
of a multipart/alternative only one version, so a post is not indexed twice.
An attached mail (``message/rfc822``) is one attachment, not more text.

``anonymised`` is the archived copy of a post after its sender was erased
(DSGVO): the same subject, date, text and attachments, her address and name
replaced wherever they stood, and no header that named her.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime

from listserv.mail.html import html_to_text
from listserv.mail.mentions import forms, names
from listserv.mail.message import (
    message_id,
    one_line,
    parse,
    recipients_in_headers,
    references,
    sender_of,
    subject,
    to_bytes,
)
from listserv.mail.text import header_text

MAX_TEXT = 200_000      # characters of a post's text that are indexed (a book is not a post)
MAX_PARTS = 200         # parts looked at; the DATA screen already refuses more than 1,000
ERASED_NAME = "ehemaliges Mitglied"


@dataclass(frozen=True)
class Part:
    """One attachment: ``position`` is its index among the mail's leaf parts."""

    position: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class Extract:
    message_id: str
    subject: str
    sender_address: str        # "" when the mail had no usable From
    sender_name: str
    posted_at: datetime | None  # the Date header, when it can be read
    in_reply_to: str
    references: tuple[str, ...]
    list_id: str               # the List-Id header's <id>, "" without one
    recipients: tuple[str, ...]  # To and Cc, lower-cased
    body: str
    parts: tuple[Part, ...]


def leaves(msg: Message) -> list[Message]:
    """The leaf parts in document order; an attached mail is one leaf."""
    found: list[Message] = []
    stack: list[Message] = [msg]
    while stack and len(found) < MAX_PARTS:
        part = stack.pop()
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))
            continue
        found.append(part)
    return found


def _filename(part: Message) -> str:
    try:
        return one_line(part.get_filename() or "", 200)
    except Exception:
        return ""


def _payload(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes()
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _text(part: Message) -> str:
    data = _payload(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return html_to_text(text) if part.get_content_type() == "text/html" else text


def _alternatives_skipped(msg: Message) -> set[int]:
    """ids of the parts that are a second version of a multipart/alternative."""
    skipped: set[int] = set()
    for part in msg.walk():
        if part.get_content_type() != "multipart/alternative":
            continue
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        keep = next((c for c in children if c.get_content_type() == "text/plain"),
                    children[-1] if children else None)
        for child in children:
            if child is not keep:
                skipped.update(id(p) for p in child.walk())
    return skipped


def _is_attachment(part: Message) -> bool:
    """A part a member would download: named, marked as attachment, or an attached mail."""
    return bool(_filename(part)) or part.get_content_disposition() == "attachment" or \
        part.get_content_maintype() == "message"


def _date(msg: Message) -> datetime | None:
    try:
        moment = parsedate_to_datetime(header_text(msg, "Date"))
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def extract(raw: bytes, *, original: bytes | None = None) -> Extract:
    """What the archive keeps of ``raw``; the sender from ``original`` when given.

    The list copy may carry a rewritten From (DMARC mitigation: "Anna via
    Netzwerk <list@…>"); the archive names the person who wrote the post,
    so the sender is read from the mail as it arrived when we have it.
    """
    msg = parse(raw)
    who = sender_of(parse(original) if original is not None else msg)
    skipped = _alternatives_skipped(msg)
    texts: list[str] = []
    parts: list[Part] = []
    for position, part in enumerate(leaves(msg)):
        ctype = part.get_content_type()
        name = _filename(part)
        if ctype in ("text/plain", "text/html") and id(part) not in skipped:
            texts.append(_text(part))
        if _is_attachment(part):
            parts.append(Part(position, name or f"teil-{position}", ctype, len(_payload(part))))
    list_id = re.search(r"<([^<>\s]+)>", header_text(msg, "List-Id"))
    return Extract(
        message_id=message_id(msg),
        subject=subject(msg),
        sender_address=who.address or "",
        sender_name=who.display_name,
        posted_at=_date(msg),
        in_reply_to=one_line(header_text(msg, "In-Reply-To"), 250),
        references=tuple(references(msg)),
        list_id=list_id.group(1).lower() if list_id else "",
        recipients=tuple(recipients_in_headers(msg)),
        body="\n\n".join(t.strip() for t in texts if t.strip())[:MAX_TEXT],
        parts=tuple(parts),
    )


def attachment(raw: bytes, position: int) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of the leaf part at ``position``, or None."""
    found = leaves(parse(raw))
    if not 0 <= position < len(found):
        return None
    part = found[position]
    return _filename(part) or f"teil-{position}", part.get_content_type(), _payload(part)


def redact(text: str, address: str, people: list[str], label: str = ERASED_NAME) -> str:
    """``text`` with every spelling of ``address`` and each name in ``people`` replaced."""
    for needle in [*forms(address), *[p for p in people if len(p.strip()) >= 3]]:
        text = re.sub(re.escape(needle.strip()), label, text, flags=re.IGNORECASE)
    return text


def anonymised(raw: bytes, address: str, people: list[str], list_address: str, *,
               own: bool) -> bytes:
    """The archived copy without her: fields and text redacted, attachments that name her dropped.

    Built anew rather than edited, so no header we did not think of (Cc,
    Reply-To, Received, a DKIM signature naming her) is carried over. ``own``:
    she wrote it, so the From becomes "ehemaliges Mitglied"; another's post
    keeps its From unless that names her too.
    """
    msg = parse(raw)
    out = EmailMessage()
    sender = one_line(header_text(msg, "From"), 500)
    if own or not sender or names(sender.encode(), address) or \
            any(p.lower() in sender.lower() for p in people if len(p) >= 3):
        out["From"] = Address(display_name=ERASED_NAME, addr_spec=list_address)
    else:
        out["From"] = sender
    out["Subject"] = redact(subject(msg), address, people)
    for name in ("Date", "Message-ID", "In-Reply-To", "References", "List-Id"):
        value = one_line(header_text(msg, name), 2000)
        if value and not names(value.encode(), address):
            out[name] = value
    out.set_content(redact(extract(raw).body, address, people) or "-")
    for part in leaves(msg):
        name = _filename(part)
        data = _payload(part)
        if not _is_attachment(part) or names(data, address) or \
                any(p.lower().encode() in data.lower() for p in people if len(p) >= 3):
            continue
        if part.get_content_maintype() == "message":
            out.add_attachment(parse(data))
            continue
        maintype, _, subtype = part.get_content_type().partition("/")
        out.add_attachment(data, maintype=maintype, subtype=subtype, filename=name or None)
    return to_bytes(out)
