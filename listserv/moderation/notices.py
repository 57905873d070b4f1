"""Notices that carry a mail: the moderator's approval request, the owner forward.

Pure. The original is attached as ``message/rfc822`` so the coordinator
sees it as her mail client shows any mail. Some real mail cannot be
re-serialised by Python's ``email`` package (see the corpus hazards);
then the original's exact bytes are attached instead, as a ``.eml`` file,
which every client opens as well. Nothing of the original is lost either way.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime

from listserv.clock import local_text
from listserv.config import ListConfig
from listserv.mail.message import one_line
from listserv.mail.text import body_text, fresh_lines, header_text
from listserv.texts.compose import WIRE, compose
from listserv.texts.render import render


def attachment_names(msg: Message, limit: int = 20) -> list[str]:
    names: list[str] = []
    try:
        for part in msg.walk():
            try:
                name = part.get_filename()
            except Exception:
                name = None
            if name:
                names.append(one_line(str(name), 80))
            if len(names) >= limit:
                break
    except Exception:
        pass
    return names


def excerpt(msg: Message, lines: int = 15, *, empty: str = "") -> str:
    text = fresh_lines(body_text(msg))[:lines]
    return "\n".join(f"  | {one_line(line, 100)}" for line in text) or f"  | {empty}"


def sent_at(msg: Message, zone: tzinfo, language: str) -> str:
    """The post's Date as the coordinator reads it ("30.11.2026, 13:19 Uhr"), else as written."""
    written = one_line(header_text(msg, "Date"), 60)
    try:
        return local_text(parsedate_to_datetime(written), zone, language)
    except (TypeError, ValueError, IndexError, OverflowError):
        return written or "-"


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def attach_original(notice: EmailMessage, raw: bytes) -> bytes:
    """The notice with ``raw`` attached; returns wire bytes (never raises on raw)."""
    try:
        original = email.message_from_bytes(raw, policy=email.policy.default)
        candidate = _copy(notice)
        candidate.add_attachment(original, disposition="attachment")
        return candidate.as_bytes(policy=WIRE)
    except Exception:
        candidate = _copy(notice)
        candidate.add_attachment(raw, maintype="application", subtype="octet-stream",
                                 filename="original.eml")
        return candidate.as_bytes(policy=WIRE)


def _copy(msg: EmailMessage) -> EmailMessage:
    out = email.message_from_bytes(msg.as_bytes(policy=WIRE), policy=email.policy.default)
    assert isinstance(out, EmailMessage)
    return out


def held_notice(
    mlist: ListConfig, *, to: str, original: Message, raw: bytes, reason: str, token: str,
    now: datetime, zone: tzinfo = UTC, request_like: bool = False,
) -> bytes:
    """The held-post notice; for a post that reads like a join request it also
    offers "aufnehmen" (the line from ``held_notice_join_choice.txt``)."""
    names = attachment_names(original)
    no_text = render(mlist.language, "no_text", texts_dir=mlist.texts_dir).body.strip()
    none = render(mlist.language, "no_attachments", texts_dir=mlist.texts_dir).body.strip()
    join_choice = (render(mlist.language, "held_notice_join_choice",
                          texts_dir=mlist.texts_dir).body if request_like else "")
    notice = compose(
        mlist, to=to, template="held_notice", language=mlist.language, now=now,
        values={
            "sender": one_line(header_text(original, "From"), 150) or "-",
            "subject": one_line(header_text(original, "Subject"), 150),
            "date": sent_at(original, zone, mlist.language),
            "size": human_size(len(raw)),
            "reason": reason,
            "attachments": ", ".join(names) or none,
            "excerpt": excerpt(original, empty=no_text),
            "join_choice": join_choice,
        },
        token=token, kind="auto-generated",
    )
    return attach_original(notice, raw)


def owner_forward(
    mlist: ListConfig, *, to: str, original: Message, raw: bytes, now: datetime,
    asker: Address | None = None,
) -> bytes:
    """The question to ``L-owner@D``, for one moderator.

    ``asker`` (the validated From, never one of our own addresses) becomes
    the Reply-To, so the coordinator's plain reply reaches the person who
    asked; without one, a reply reaches ``L-owner@D`` again, never
    ``-request``. The forward comes from ``L-owner@D`` with our loop headers.
    """
    reply_address = asker.addr_spec if asker is not None else mlist.owner_address
    notice = compose(
        mlist, to=to, template="owner_forward", language=mlist.language, now=now,
        values={
            "sender": one_line(header_text(original, "From"), 150) or "-",
            "subject": one_line(header_text(original, "Subject"), 150),
            "reply_address": reply_address,
        },
        kind="auto-generated", from_address=mlist.owner_address,
        reply_to=asker if asker is not None else Address(addr_spec=mlist.owner_address),
    )
    return attach_original(notice, raw)
