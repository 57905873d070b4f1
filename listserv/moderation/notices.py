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
from datetime import datetime
from email.message import EmailMessage, Message

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


def excerpt(msg: Message, lines: int = 15) -> str:
    text = fresh_lines(body_text(msg))[:lines]
    return "\n".join(f"  | {one_line(line, 100)}" for line in text) or "  | (kein Text / no text)"


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
    now: datetime, request_like: bool = False,
) -> bytes:
    """The held-post notice; for a post that reads like a join request it also
    offers "aufnehmen" (the line from ``held_notice_join_choice.txt``)."""
    names = attachment_names(original)
    join_choice = render(mlist.language, "held_notice_join_choice").body if request_like else ""
    notice = compose(
        mlist, to=to, template="held_notice", language=mlist.language, now=now,
        values={
            "sender": one_line(header_text(original, "From"), 150) or "-",
            "subject": one_line(header_text(original, "Subject"), 150) or "-",
            "date": one_line(header_text(original, "Date"), 60) or "-",
            "size": human_size(len(raw)),
            "reason": reason,
            "attachments": ", ".join(names) or "-",
            "excerpt": excerpt(original),
            "join_choice": join_choice,
        },
        token=token, kind="auto-generated",
    )
    return attach_original(notice, raw)


def owner_forward(
    mlist: ListConfig, *, to: str, original: Message, raw: bytes, now: datetime
) -> bytes:
    notice = compose(
        mlist, to=to, template="owner_forward", language=mlist.language, now=now,
        values={
            "sender": one_line(header_text(original, "From"), 150) or "-",
            "subject": one_line(header_text(original, "Subject"), 150) or "-",
        },
        kind="auto-generated",
    )
    return attach_original(notice, raw)
