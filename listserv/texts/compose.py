"""Building the mails listserv writes itself: answers, notices, welcomes.

Pure: a template name, a language, the list and the request in, a ready
``EmailMessage`` out. Every such mail carries ``Auto-Submitted:
auto-replied`` (RFC 3834), answers the request it replies to
(``In-Reply-To``/``References``), comes from ``L-request@D`` and marks
our own loop (``X-Loop``), so that neither we nor a well-behaved robot
answers it again.
"""

from __future__ import annotations

import email.policy
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from listserv.config import ListConfig
from listserv.mail.message import one_line
from listserv.texts.render import LANGUAGES, render

# CRLF as on the wire. Lines up to 998 octets (RFC 5322's hard limit): at
# 78, Python folds a long Subject right after "Subject:", and clients then
# show it with a leading blank.
WIRE = email.policy.SMTP.clone(max_line_length=998)


MESSAGE_ID_SYNTAX = re.compile(r"<[!-;=?-~]{1,250}>")   # printable, no "<", ">" or space


def as_bytes(msg: EmailMessage) -> bytes:
    """The mail as it goes on the wire and into the outbox."""
    return msg.as_bytes(policy=WIRE)


def standard_values(mlist: ListConfig) -> dict[str, str]:
    """Placeholders every template may use."""
    return {
        "list_name": mlist.display_name,
        "list_address": mlist.address,
        "request_address": mlist.request_address,
        "join_address": mlist.sub_address("join"),
        "leave_address": mlist.sub_address("leave"),
        "owner_address": mlist.owner_address,
    }


def compose(
    mlist: ListConfig,
    *,
    to: str,
    template: str,
    language: str,
    now: datetime,
    values: dict[str, object] | None = None,
    token: str | None = None,
    in_reply_to: str = "",
    references: list[str] | None = None,
    also_in: str | None = None,
    kind: str = "auto-replied",
) -> EmailMessage:
    """One answer from ``L-request@D``.

    ``token``: the reply address becomes ``L-confirm+TOKEN@D`` and the
    subject carries the token too, so a plain reply or a forward with the
    subject intact both confirm. ``also_in``: a second language appended
    below the first (first contact, when we cannot know which one reads).
    """
    merged: dict[str, object] = {**standard_values(mlist), **(values or {})}
    if token:
        merged["confirm_address"] = mlist.sub_address(f"confirm+{token}")
        merged["token"] = token
    text = render(language, template, **merged)
    body = text.body
    if also_in and also_in != language and also_in in LANGUAGES:
        other = render(also_in, template, **merged)
        body = f"{body.rstrip()}\n\n{'-' * 40}\n\n{other.body}"
    msg = EmailMessage()
    msg["From"] = Address(one_line(mlist.display_name, 100), addr_spec=mlist.request_address)
    msg["To"] = to
    subject = one_line(text.subject)
    if token and token not in subject:
        subject = f"{subject} [{token}]"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=mlist.domain)
    if token:
        msg["Reply-To"] = mlist.sub_address(f"confirm+{token}")
    # Only what looks like a Message-ID is echoed: these come from the writer, who may
    # be a stranger using a victim's address, and must carry no text of hers.
    in_reply_to = in_reply_to if MESSAGE_ID_SYNTAX.fullmatch(in_reply_to) else ""
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        kept = [r for r in references or [] if MESSAGE_ID_SYNTAX.fullmatch(r)]
        msg["References"] = " ".join([*kept, in_reply_to][-10:])
    msg["Auto-Submitted"] = kind
    msg["X-Auto-Response-Suppress"] = "All"   # asks Exchange not to answer with OOF
    msg["X-Loop"] = mlist.address
    msg["Precedence"] = "bulk"   # what old vacation programs check instead
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg
