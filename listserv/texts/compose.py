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
from listserv.texts.render import render

# CRLF as on the wire. Lines up to 998 octets (RFC 5322's hard limit): at
# 78, Python folds a long Subject right after "Subject:", and clients then
# show it with a leading blank.
WIRE = email.policy.SMTP.clone(max_line_length=998)


MESSAGE_ID_SYNTAX = re.compile(r"<[!-;=?-~]{1,250}>")   # printable, no "<", ">" or space


def as_bytes(msg: EmailMessage) -> bytes:
    """The mail as it goes on the wire and into the outbox."""
    return msg.as_bytes(policy=WIRE)


# The noun a list's name starts with decides the German preposition and article:
# "im Netzwerk Soziale Arbeit an Schulen", "in der Liste Fachtage". Any other name
# is put in quotes after "Verteiler", which is right whatever the name is.
# (in + dative: where; in + accusative: where to; aus + dative: where from)
_NEUTER = ("im", "ins", "aus dem")
_MASCULINE = ("im", "in den", "aus dem")
_FEMININE = ("in der", "in die", "aus der")
_ARTICLES = {
    **dict.fromkeys(["netzwerk", "forum", "team", "gremium"], _NEUTER),
    **dict.fromkeys(["verteiler", "arbeitskreis", "kreis", "verbund", "mailverteiler",
                     "e-mail-verteiler", "fachkreis"], _MASCULINE),
    **dict.fromkeys(["liste", "mailingliste", "gruppe", "runde", "arbeitsgemeinschaft",
                     "ag", "fachgruppe", "steuerungsgruppe"], _FEMININE),
}


def german_place(list_name: str) -> tuple[str, str, str]:
    """("im Netzwerk X", "ins Netzwerk X", "aus dem Netzwerk X") for "Netzwerk X"."""
    name = one_line(list_name, 100)
    first = name.split(" ", 1)[0].lower() if name else ""
    if first in _ARTICLES:
        return tuple(f"{words} {name}" for words in _ARTICLES[first])  # type: ignore[return-value]
    quoted = f"Verteiler »{name}«"
    return f"im {quoted}", f"in den {quoted}", f"aus dem {quoted}"


def person(name: str, address: str) -> str:
    """ "Sabine Müller (sabine@…)" or the address alone: never "(-)" for a missing name."""
    name = one_line(name, 100).strip(" -")   # "-" was how a missing name used to be passed
    return f"{name} ({address})" if name and name.lower() != address.lower() else address


def standard_values(mlist: ListConfig) -> dict[str, str]:
    """Placeholders every template may use."""
    list_in, list_into, list_from = german_place(mlist.display_name)
    return {
        "list_name": mlist.display_name,
        "list_in": list_in,
        "list_into": list_into,
        "list_from": list_from,
        "list_address": mlist.address,
        "request_address": mlist.request_address,
        "join_address": mlist.sub_address("join"),
        "leave_address": mlist.sub_address("leave"),
        "owner_address": mlist.owner_address,
    }


def _recipient(address: str, name: str) -> Address | str:
    """The To header: with the name when there is one and the header can carry it."""
    if not name.strip():
        return address
    try:
        return Address(one_line(name, 100), addr_spec=address)
    except (ValueError, IndexError, TypeError):  # e.g. a non-ASCII local part
        return address


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
    kind: str = "auto-replied",
    to_name: str = "",
    reply_to: Address | None = None,
    from_address: str = "",
) -> EmailMessage:
    """One mail in one language, from ``L-request@D`` (or ``from_address``).

    ``token``: the reply address becomes ``L-confirm+TOKEN@D``. The token
    stays out of the Subject (people read subjects; a plain reply confirms
    by its address). ``to_name``: the recipient's name, encoded in the To
    header by the header registry (RFC 2047 for umlauts). ``reply_to``: where
    a reply should go instead (the asker of an owner forward); a token wins.
    One language only: the caller picks it (the list's, or the writer's).
    """
    merged: dict[str, object] = {**standard_values(mlist), **(values or {})}
    if "subject" in merged and not str(merged["subject"]).strip(" -"):
        merged["subject"] = render(language, "no_subject", texts_dir=mlist.texts_dir).body.strip()
    if token:
        merged["confirm_address"] = mlist.sub_address(f"confirm+{token}")
        merged["token"] = token
    text = render(language, template, texts_dir=mlist.texts_dir, flowing=True, **merged)
    msg = EmailMessage()
    msg["From"] = Address(one_line(mlist.display_name, 100),
                          addr_spec=from_address or mlist.request_address)
    msg["To"] = _recipient(to, to_name)
    msg["Subject"] = one_line(text.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=mlist.domain)
    if token:
        msg["Reply-To"] = mlist.sub_address(f"confirm+{token}")
    elif reply_to is not None:
        msg["Reply-To"] = reply_to
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
    msg.set_content(text.body, charset="utf-8", cte="quoted-printable")
    return msg
