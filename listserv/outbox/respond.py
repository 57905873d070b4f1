"""Sending what the handlers decided: answers (rate-limited) and notices.

Both are queued with ``queue.enqueue`` inside the handler's transaction.
An *answer* goes to whoever wrote to us and counts against
``replies_per_address_per_day``: beyond it the request is logged and no
mail goes out, so a forged flood of requests for one victim address costs
the victim at most that many mails a day. A *notice* goes to the list's
own moderators and is not capped.

The cap is against backscatter to strangers, so mail a person asked for is
never held back by it (``capped=False``): what follows her reply to a
token mailed to her own address (the welcome, "waiting for approval",
"you are removed", the goodbye, a refusal), and everything to the
moderators. It still counts in ``reply_log``, so a flood after it is
capped as before. The first confirmation mail of a request stays capped:
its address has proved nothing yet.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage

import aiosqlite

from listserv.clock import iso
from listserv.config import ListConfig
from listserv.log import event
from listserv.outbox.queue import enqueue
from listserv.texts.compose import as_bytes


async def replies_today(db: aiosqlite.Connection, address: str, now: datetime) -> int:
    async with db.execute(
        "SELECT count(*) FROM reply_log WHERE address = ? AND at > ?",
        (address.lower(), iso(now - timedelta(days=1))),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def answer(
    db: aiosqlite.Connection,
    mlist: ListConfig,
    msg: EmailMessage,
    *,
    to: str,
    now: datetime,
    kind: str,
    inbox_id: int | None,
    capped: bool = True,
) -> bool:
    """Queue an answer to ``to`` unless its daily cap is reached; True if queued.

    ``capped=False``: mail the person asked for (see the module docstring).
    """
    if capped and await replies_today(db, to, now) >= mlist.replies_per_address_per_day:
        event("reply_suppressed", reason="rate_limit", rcpt=to, kind=kind,
              list=mlist.address, inbox=inbox_id)
        return False
    await db.execute(
        "INSERT INTO reply_log (address, at, kind) VALUES (?, ?, ?)", (to.lower(), iso(now), kind)
    )
    await enqueue(
        db, now=now, kind="reply", list_address=mlist.address,
        mail_from=mlist.bounces_address, rcpts=[to], raw=as_bytes(msg),
        message_id=str(msg["Message-ID"]), inbox_id=inbox_id,
    )
    event("reply_queued", kind=kind, rcpt=to, list=mlist.address, inbox=inbox_id,
          msgid=str(msg["Message-ID"]))
    return True


async def notify(
    db: aiosqlite.Connection,
    mlist: ListConfig,
    msg: EmailMessage,
    *,
    rcpts: list[str],
    now: datetime,
    kind: str,
    inbox_id: int | None,
) -> None:
    """Queue a notice to moderators (or to one of them); never capped."""
    await notify_raw(db, mlist, as_bytes(msg), rcpts=rcpts, now=now, kind=kind,
                     inbox_id=inbox_id, message_id=str(msg["Message-ID"]))


async def notify_raw(
    db: aiosqlite.Connection,
    mlist: ListConfig,
    raw: bytes,
    *,
    rcpts: list[str],
    now: datetime,
    kind: str,
    inbox_id: int | None,
    message_id: str = "",
) -> None:
    """``notify`` for a notice that is already bytes (one with an attachment)."""
    await enqueue(
        db, now=now, kind="notice", list_address=mlist.address,
        mail_from=mlist.bounces_address, rcpts=rcpts, raw=raw, message_id=message_id,
        inbox_id=inbox_id,
    )
    event("notice_queued", kind=kind, rcpts=",".join(rcpts), list=mlist.address,
          inbox=inbox_id, msgid=message_id)
