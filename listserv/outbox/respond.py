"""Sending what the handlers decided: answers (rate-limited) and notices.

Both are queued with ``queue.enqueue`` inside the handler's transaction.
An *answer* goes to whoever wrote to us and counts against
``replies_per_address_per_day``: beyond it the request is logged and no
mail goes out, so a forged flood of requests for one victim address costs
the victim at most that many mails a day. A *notice* goes to the list's
own moderators and is capped too, per moderator and day, in total
(``notices_per_day``) and per kind (``notices_per_kind_per_day``): a flood
of join requests, held posts or mail to ``-owner`` must not bury the
coordinator's phone. A notice over the cap is recorded (``notice_log``,
``suppressed = 1``) instead of sent, and ``summarise`` (an hourly job) then
sends her one mail saying how many of which kind there were and where to
see them (``listserv held list``). The cap counts notices *sent* in the
last 24 hours, so a quiet day brings every kind back at once.

The cap is against backscatter to strangers, so mail a person asked for is
never held back by it (``capped=False``): what follows her reply to a
token mailed to her own address (the welcome, "waiting for approval",
"you are removed", the goodbye, a refusal), and the acknowledgement
of a moderator's own decision. It still counts in ``reply_log``, so a flood after it is
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
from listserv.texts.compose import as_bytes, compose
from listserv.texts.render import labels

SUMMARY = "notice_summary"
#: Never capped: the summary itself, and the acknowledgement of a decision the moderator
#: made (DESIGN §5 promises one for each; only her token or her DKIM signature makes one):
#: every kind named ``ack_*`` (the template names of ``membership.actions.acknowledge``).
UNCAPPED = frozenset({SUMMARY, "moderator_done"})
ACKNOWLEDGEMENT = "ack_"


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
    """Queue a notice to moderators (or to one of them), within the notice caps."""
    await notify_raw(db, mlist, as_bytes(msg), rcpts=rcpts, now=now, kind=kind,
                     inbox_id=inbox_id, message_id=str(msg["Message-ID"]))


async def _under_cap(db: aiosqlite.Connection, mlist: ListConfig, rcpt: str, kind: str,
                    now: datetime) -> bool:
    """Record one notice for ``rcpt``; True when it may be sent (under both caps)."""
    if kind in UNCAPPED or kind.startswith(ACKNOWLEDGEMENT):
        return True
    async with db.execute(
        "SELECT count(*), coalesce(sum(CASE WHEN kind = ? THEN 1 ELSE 0 END), 0)"
        " FROM notice_log WHERE list_address = ? AND rcpt = ? AND at > ? AND suppressed = 0",
        (kind, mlist.address, rcpt.lower(), iso(now - timedelta(days=1))),
    ) as cur:
        row = await cur.fetchone()
    total, same = (int(row[0]), int(row[1])) if row else (0, 0)
    ok = total < mlist.notices_per_day and same < mlist.notices_per_kind_per_day
    await db.execute(
        "INSERT INTO notice_log (list_address, rcpt, kind, at, suppressed) VALUES (?, ?, ?, ?, ?)",
        (mlist.address, rcpt.lower(), kind, iso(now), int(not ok)))
    return ok


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
    allowed = [r for r in rcpts if await _under_cap(db, mlist, r, kind, now)]
    if len(allowed) < len(rcpts):
        event("notice_suppressed", reason="daily cap", kind=kind, list=mlist.address,
              rcpts=",".join(r for r in rcpts if r not in allowed), inbox=inbox_id)
    if not allowed:
        return
    rcpts = allowed
    await enqueue(
        db, now=now, kind="notice", list_address=mlist.address,
        mail_from=mlist.bounces_address, rcpts=rcpts, raw=raw, message_id=message_id,
        inbox_id=inbox_id,
    )
    event("notice_queued", kind=kind, rcpts=",".join(rcpts), list=mlist.address,
          inbox=inbox_id, msgid=message_id)


async def summarise(db: aiosqlite.Connection, mlist: ListConfig, now: datetime) -> int:
    """One mail per moderator naming the notices the cap held back; how many were sent."""
    async with db.execute(
        "SELECT rcpt, kind, count(*) FROM notice_log WHERE list_address = ? AND suppressed = 1"
        " AND summarised_at IS NULL GROUP BY rcpt, kind ORDER BY rcpt, kind",
        (mlist.address,),
    ) as cur:
        rows = await cur.fetchall()
    per_rcpt: dict[str, list[tuple[str, int]]] = {}
    for rcpt, kind, count in rows:
        per_rcpt.setdefault(rcpt, []).append((kind, int(count)))
    names = labels(mlist.language, "notice_kinds")
    for rcpt, kinds in per_rcpt.items():
        lines = "\n".join(f"- {count} × {names.get(kind, kind)}" for kind, count in kinds)
        msg = compose(mlist, to=rcpt, template=SUMMARY, language=mlist.language, now=now,
                      values={"count": sum(c for _, c in kinds), "lines": lines},
                      kind="auto-generated")
        await notify(db, mlist, msg, rcpts=[rcpt], now=now, kind=SUMMARY, inbox_id=None)
    await db.execute("UPDATE notice_log SET summarised_at = ? WHERE list_address = ?"
                     " AND suppressed = 1 AND summarised_at IS NULL", (iso(now), mlist.address))
    # The log only feeds the cap and the summary: two days are enough.
    await db.execute("DELETE FROM notice_log WHERE list_address = ? AND at < ?",
                     (mlist.address, iso(now - timedelta(days=2))))
    return len(per_rcpt)
