"""One inbound mail as a handler sees it: parsed once, sender validated.

Building a ``Request`` is where an inbox row's raw bytes become facts:
the parsed message, the validated From, the guessed language. Handlers get
this and never touch the raw bytes or the parser themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from listserv.config import Config, ListConfig
from listserv.mail.message import Sender, parse, sender_of
from listserv.store.rows import InboxItem


@dataclass
class Request:
    item: InboxItem
    mlist: ListConfig
    msg: EmailMessage
    from_: Sender
    now: datetime
    language: str = "de"
    moderator_verified: bool = False   # From is a moderator and DKIM proves it
    timezone: str = "Europe/Berlin"     # for dates in answers

    @property
    def sender(self) -> str | None:
        return self.from_.address

    @property
    def display_name(self) -> str:
        return self.from_.display_name


def build(item: InboxItem, config: Config, now: datetime) -> Request:
    mlist = config.find_list(item.list_address)
    if mlist is None:  # the list was removed from the config since the mail came in
        raise LookupError(f"list {item.list_address} is no longer configured")
    msg = parse(item.raw)
    request = Request(item=item, mlist=mlist, msg=msg, from_=sender_of(msg, item.mail_from),
                      now=now, language=mlist.language, timezone=config.server.timezone)
    return request
