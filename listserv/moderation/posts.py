"""Posts: decide (policy), hold and notify, publish once approved.

The post handler gathers the facts the policy needs (membership, the
coordinator's DKIM signature), asks ``policy.decide`` and applies the
decision in one transaction: a ``posts`` row with the decision, a token
and a notice per moderator for a hold, an answer to the poster. Approval
(by reply, by policy, by the CLI) only marks the post ``approved``;
``publish_approved`` then builds the list copy and queues it for every
member. It runs after each decision and as a scheduled job, and picks up
any approved post not yet queued, so a crash between the two loses
nothing.

Post states:  held → approved (→ queued: outgoing_id set) | rejected | discarded | expired
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import aiosqlite

from listserv.clock import from_iso, iso, local_text
from listserv.commands import tokens
from listserv.commands.parse import Verb
from listserv.commands.tokens import Action, TokenRow
from listserv.config import ListConfig
from listserv.context import Context
from listserv.inbox.automatic import automatic_reason
from listserv.inbox.proof import moderator_proven
from listserv.inbox.request import Request
from listserv.log import event
from listserv.mail.message import (
    message_id,
    message_id_of,
    one_line,
    recipients_in_headers,
    subject,
)
from listserv.mail.text import header_text
from listserv.membership.actions import acknowledge, notify_moderators, start_join
from listserv.moderation.notices import held_notice
from listserv.moderation.policy import Action as PolicyAction
from listserv.moderation.policy import Decision, Facts, decide
from listserv.moderation.publish import publish_approved
from listserv.outbox.respond import answer, notify, notify_raw
from listserv.texts.compose import compose
from listserv.texts.render import render


async def gather_facts(ctx: Context, req: Request) -> Facts:
    mlist, sender = req.mlist, req.sender
    is_member = False
    if sender is not None:
        row = await ctx.store.fetchone(
            "SELECT 1 FROM members WHERE list_address = ? AND address = ? AND status = 'enabled'",
            (mlist.address, sender))
        is_member = row is not None
    is_moderator = sender is not None and sender in mlist.moderators
    aligned = await moderator_proven(ctx.store, req, ctx.dkim_dns)
    own_id = mlist.list_id in header_text(req.msg, "List-Id").lower()
    own_loop = mlist.address in header_text(req.msg, "X-Loop").lower()
    own_addresses = {mlist.address, mlist.request_address, mlist.owner_address,
                     mlist.bounces_address}
    from_own = (sender in own_addresses) or req.item.mail_from.lower() in own_addresses
    automatic = automatic_reason(req.msg, req.item.mail_from, ctx.config.lists)
    return Facts(
        sender=sender, is_member=is_member, is_moderator=is_moderator,
        dkim_aligned_moderator=aligned,
        list_addressed=mlist.address in recipients_in_headers(req.msg),
        has_own_list_id=own_id or own_loop, from_own_address=from_own, automatic=automatic,
    )


async def handle_post(ctx: Context, req: Request, *, request_like: bool = False) -> str:
    """Decide and apply. ``request_like``: the text reads like a join request, so a
    held notice offers "aufnehmen" (start the sender's join) beside ok/ablehnen/verwerfen."""
    facts = await gather_facts(ctx, req)
    decision = decide(facts, req.mlist)
    async with ctx.store.transaction() as db:
        outcome = await _apply(db, ctx, req, decision, request_like)
        await ctx.store.finish_in(db, req.item.id, outcome)
    event(f"post_{decision.action}", list=req.mlist.address, inbox=req.item.id,
          msgid=req.item.message_id, sender=req.sender, rule=decision.rule)
    ctx.wake_sender()
    if decision.action is PolicyAction.ACCEPT:
        await publish_approved(ctx)
    return outcome


async def _apply(db: aiosqlite.Connection, ctx: Context, req: Request, d: Decision,
                 request_like: bool) -> str:
    if d.action is PolicyAction.DISCARD:
        return f"discarded: {d.reason}"
    mlist = req.mlist
    state = {PolicyAction.ACCEPT: "approved", PolicyAction.HOLD: "held",
             PolicyAction.REJECT: "rejected"}[d.action]
    cursor = await db.execute(
        "INSERT INTO posts (inbox_id, list_address, sender, subject, size, rule, reason,"
        " created_at, state, decided_at, decided_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (req.item.id, mlist.address, req.sender or req.item.mail_from,
         tokens.TOKEN_LIKE.sub("[…]", subject(req.msg)),  # "AW: … [token]" to the list
         len(req.item.raw), d.rule, d.reason, iso(req.now), state,
         None if state == "held" else iso(req.now), "" if state == "held" else "policy"),
    )
    post_id = cursor.lastrowid
    assert post_id is not None
    if d.action is PolicyAction.REJECT:
        if req.sender:
            await _tell_poster(db, req, "post_rejected", reason=d.reason)
        return f"rejected: {d.reason}"
    if d.action is PolicyAction.ACCEPT:
        return f"approved by policy ({d.rule}), post {post_id}"
    token = await tokens.issue(db, action=Action.MODERATE_POST, list_address=mlist.address,
                               address=req.sender or "", now=req.now, days=mlist.hold_days,
                               requester=req.sender or "",
                               data={"post": post_id, "request_like": request_like})
    for moderator in mlist.moderators:
        # Writing the original back to bytes is the costly part: in a thread, so the
        # event loop (SMTP) keeps answering while a large post is attached.
        raw = await asyncio.to_thread(
            partial(held_notice, mlist, to=moderator, original=req.msg, raw=req.item.raw,
                    reason=_reason_text(d, mlist), token=token, now=req.now,
                    zone=ZoneInfo(req.timezone), request_like=request_like))
        await notify_raw(db, mlist, raw, rcpts=[moderator], now=req.now, kind="held_notice",
                         inbox_id=req.item.id, message_id=message_id_of(raw))
    if req.sender:
        await _tell_poster(db, req, "post_held")
    return f"held ({d.rule}), post {post_id}"


def _reason_text(d: Decision, mlist: ListConfig) -> str:
    """Why a post is held, in the list's language (``texts/<lang>/reason_<rule>.txt``)."""
    if d.rule in _EXPLAINED_RULES:
        return render(mlist.language, f"reason_{d.rule}", texts_dir=mlist.texts_dir).body.strip()
    return d.reason


_EXPLAINED_RULES = frozenset({"moderate_all", "moderate_non_members", "not_addressed"})


async def _tell_poster(db: aiosqlite.Connection, req: Request, template: str, **values: object
                       ) -> bool:
    to = req.sender
    assert to is not None
    msg = compose(req.mlist, to=to, template=template, language=req.language, now=req.now,
                  values=values,   # never her Subject: the sender may be a forged victim
                  in_reply_to=message_id(req.msg))
    return await answer(db, req.mlist, msg, to=to, now=req.now, kind=template,
                        inbox_id=req.item.id)


# -- the moderator's reply -------------------------------------------------------------


async def decide_by_reply(
    db: aiosqlite.Connection, req: Request, row: TokenRow, token: str, decision: Verb | None,
    reason: str,
) -> str:
    """A moderator answered a held-post notice (token and From already checked)."""
    post_id = int(row.data.get("post", 0))
    verb = {Verb.APPROVE: "approved", Verb.CONFIRM: "approved", Verb.REJECT: "rejected",
            Verb.DISCARD: "discarded"}.get(decision) if decision else None
    if verb is None:  # the reader gives a decision or none; "none" is answered before this
        await notify_moderators(db, req, "no_decision_post", token=token, to=[req.sender or ""],
                                **await post_facts(db, post_id))
        return "moderator reply held no decision; asked again"
    changed = await set_decision(db, post_id, verb, by=req.sender or "", reason=reason,
                                 now=req.now)
    await tokens.use(db, row, now=req.now, by=req.sender or "", outcome=verb)
    if not changed:
        return f"post {post_id} was already decided"
    if verb == "rejected":
        await tell_rejected(db, req.mlist, post_id, reason, req.now, req.item.id)
    await _acknowledge_post(db, req, post_id, verb)
    return f"post {post_id} {verb} by {req.sender}"


async def _acknowledge_post(db: aiosqlite.Connection, req: Request, post_id: int, verb: str
                            ) -> None:
    """ "Freigegeben: »Sommerfest« geht an 104 Mitglieder" to the moderator who decided."""
    async with db.execute("SELECT sender, subject FROM posts WHERE id = ?", (post_id,)) as cur:
        post = await cur.fetchone()
    async with db.execute("SELECT count(*) FROM members WHERE list_address = ?"
                          " AND status = 'enabled'", (req.mlist.address,)) as cur:
        counted = await cur.fetchone()
    count = int(counted[0]) if counted else 0
    template = {"approved": "ack_post_approved_one" if count == 1 else "ack_post_approved",
                "rejected": "ack_post_rejected", "discarded": "ack_post_discarded"}[verb]
    await acknowledge(db, req, template, count=count,
                      subject=(post["subject"] if post else "") or "",
                      sender=(post["sender"] if post else "") or "-")


async def post_facts(db: aiosqlite.Connection, post_id: int) -> dict[str, object]:
    """What names a held post in a mail to the coordinator: its subject and sender."""
    async with db.execute("SELECT sender, subject FROM posts WHERE id = ?", (post_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return {"subject": "-", "sender": "-"}
    return {"subject": one_line(row["subject"] or "-", 150), "sender": row["sender"] or "-"}


async def start_join_from_post(db: aiosqlite.Connection, req: Request, row: TokenRow,
                               token: str) -> str:
    """"aufnehmen" on a held post that reads like a join request: the post is not
    published; the sender gets the usual confirmation mail, and her reply adds her
    without a second approval (the coordinator has just given it)."""
    post_id = int(row.data.get("post", 0))
    if not await set_decision(db, post_id, "discarded", by=req.sender or "",
                              reason="als Anmeldung behandelt / treated as a join request",
                              now=req.now):
        await tokens.use(db, row, now=req.now, by=req.sender or "", outcome="join")
        return f"post {post_id} was already decided"
    await tokens.use(db, row, now=req.now, by=req.sender or "", outcome="join started")
    async with db.execute("SELECT sender FROM posts WHERE id = ?", (post_id,)) as cur:
        found = await cur.fetchone()
    address = found["sender"] if found else ""
    if "@" not in address:
        return f"post {post_id}: no sender address to invite"
    result = await start_join(db, req, address, approved_by=req.sender or "")
    return f"post {post_id} taken as a join request by {req.sender}: {result}"


async def set_decision(db: aiosqlite.Connection, post_id: int, state: str, *, by: str,
                       reason: str, now: datetime) -> bool:
    cursor = await db.execute(
        "UPDATE posts SET state = ?, decided_at = ?, decided_by = ?, decision_reason = ?"
        " WHERE id = ? AND state = 'held'", (state, iso(now), by, reason, post_id))
    return cursor.rowcount == 1


async def discard_any(db: aiosqlite.Connection, post_id: int, *, by: str, now: datetime) -> str:
    """Discard a post whatever its state; copies not yet sent are dropped. Returns the old state.

    For the operator's ``held discard``: a parked post (or one approved but
    not yet out) must be removable without a decision path of its own.
    """
    async with db.execute("SELECT state, outgoing_id FROM posts WHERE id = ?",
                          (post_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return "absent"
    await db.execute("UPDATE posts SET state = 'discarded', decided_at = ?, decided_by = ?"
                     " WHERE id = ?", (iso(now), by, post_id))
    if row["outgoing_id"] is not None:
        await db.execute(
            "UPDATE deliveries SET state = 'failed', last_reply = 'discarded by ' || ?"
            " WHERE outgoing_id = ? AND state IN ('pending', 'deferred')",
            (by, row["outgoing_id"]))
        await db.execute("UPDATE outgoing SET fanout_after = NULL WHERE id = ?",
                         (row["outgoing_id"],))  # members not yet queued never will be
    event("post_discarded", post=post_id, was=row["state"], by=by)
    return str(row["state"])


async def tell_rejected(db: aiosqlite.Connection, mlist: ListConfig, post_id: int,
                        reason: str, now: datetime, inbox_id: int | None) -> None:
    """Tell the poster her post was rejected, with the reason (a reply, and so capped).

    Public because the CLI's ``held reject`` tells her the same way.
    """
    async with db.execute("SELECT sender, subject FROM posts WHERE id = ?", (post_id,)) as cur:
        row = await cur.fetchone()
    if row is None or "@" not in row["sender"]:
        return
    msg = compose(mlist, to=row["sender"], template="post_rejected" if reason
                  else "post_rejected_no_reason", language=mlist.language,
                  now=now, values={"reason": reason})
    await answer(db, mlist, msg, to=row["sender"], now=now, kind="post_rejected",
                 inbox_id=inbox_id)


# -- publishing --------------------------------------------------------------------------


# -- timed jobs ------------------------------------------------------------------------------


async def remind_moderators(ctx: Context) -> int:
    """Daily: one mail per list listing posts held for more than a day."""
    now = ctx.clock()
    sent = 0
    for mlist in ctx.config.lists:
        rows = await ctx.store.fetchall(
            "SELECT id, sender, subject, created_at FROM posts WHERE list_address = ?"
            " AND state = 'held' AND created_at < ? ORDER BY id",
            (mlist.address, iso(now - timedelta(days=1))))
        if not rows:
            continue
        zone = ZoneInfo(ctx.config.server.timezone)
        listing = "\n".join(
            f"  - {local_text(from_iso(r['created_at']), zone, mlist.language)}  "
            f"{r['sender']}: »{r['subject'] or '-'}«" for r in rows)
        async with ctx.store.transaction() as db:
            for moderator in mlist.moderators:
                msg = compose(mlist, to=moderator, template="held_reminder",
                              language=mlist.language, now=now, kind="auto-generated",
                              values={"count": len(rows), "posts": listing,
                                      "days": mlist.hold_days})
                await notify(db, mlist, msg, rcpts=[moderator], now=now, kind="held_reminder",
                             inbox_id=None)
            await db.executemany("UPDATE posts SET reminded_at = ? WHERE id = ?",
                                 [(iso(now), r["id"]) for r in rows])
        sent += 1
    ctx.wake_sender()
    return sent


async def expire_held(ctx: Context) -> int:
    """Posts held longer than ``hold_days`` expire; the poster is told."""
    now = ctx.clock()
    expired = 0
    for mlist in ctx.config.lists:
        rows = await ctx.store.fetchall(
            "SELECT id, sender, subject, inbox_id FROM posts WHERE list_address = ?"
            " AND state = 'held' AND created_at < ?",
            (mlist.address, iso(now - timedelta(days=mlist.hold_days))))
        for r in rows:
            async with ctx.store.transaction() as db:
                if not await set_decision(db, r["id"], "expired", by="expiry", reason="",
                                          now=now):
                    continue
                if "@" in r["sender"]:
                    msg = compose(mlist, to=r["sender"], template="post_expired",
                                  language=mlist.language, now=now,
                                  values={"days": mlist.hold_days})
                    await answer(db, mlist, msg, to=r["sender"], now=now, kind="post_expired",
                                 inbox_id=r["inbox_id"])
            event("post_expired", list=mlist.address, post=r["id"])
            expired += 1
    ctx.wake_sender()
    return expired


