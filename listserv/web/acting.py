"""A web action as the handlers of a mail see it: a ``Request`` without an inbox row.

The join form, the member's settings and the desk's buttons call the very
functions a mail calls (``membership.actions``, ``roles.confirm.decide``,
``moderation.posts``), so every change writes the same consent record and
queues the same mails. Those functions take an ``inbox.request.Request``;
this builds one for a person at a web page: her address as the From, the
client's IP as the peer (the consent log's proof), no inbox row (mails it
queues carry ``inbox_id`` NULL, as the CLI's do) and no Message-ID.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr

from listserv.clock import iso
from listserv.config import ListConfig
from listserv.inbox.request import Request
from listserv.mail.message import Sender, normalise_address
from listserv.store.rows import InboxItem


def web_request(mlist: ListConfig, *, as_given: str, name: str, peer: str, now: datetime,
                language: str, timezone: str, proven: bool = False) -> Request:
    """The ``Request`` of a web action by ``as_given`` from ``peer``.

    ``proven``: the address logged in with a link mailed to it (a session),
    which proves it as a DKIM signature would; a moderator's desk action is
    then carried out at once, as her signed mail would be.
    """
    address = normalise_address(as_given)
    msg = EmailMessage()
    msg["From"] = formataddr((name, as_given)) if name else as_given
    msg["Subject"] = "web"
    msg.set_content("")
    item = InboxItem(id=None,  # type: ignore[arg-type]  # no inbox row: a web action
                     received_at=iso(now), peer=f"web {peer}", mail_from=as_given, rcpt="",
                     list_address=mlist.address, role="web", extension="", message_id="",
                     raw=b"", attempts=0)
    return Request(item=item, mlist=mlist, msg=msg,
                   from_=Sender(address=address, display_name=name, raw=as_given,
                                as_given=as_given),
                   now=now, language=language, moderator_verified=proven, timezone=timezone)
