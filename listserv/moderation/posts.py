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

from datetime import datetime, timedelta
from email.message import EmailMessage

import aiosqlite

from listserv.clock import iso
from listserv.commands import tokens
from listserv.commands.parse import Verb
from listserv.commands.tokens import Action, TokenRow
from listserv.config import ListConfig
from listserv.context import Context
from listserv.delivery.transform import list_copy
from listserv.inbox.automatic import automatic_reason
from listserv.inbox.request import Request
from listserv.log import event
from listserv.mail.dkim_proof import verified_aligned_async
from listserv.mail.dmarc import needs_rewrite
from listserv.mail.message import (
    message_id,
    message_id_of,
    parse,
    recipients_in_headers,
    sender_of,
    subject,
)
from listserv.mail.text import header_text
from listserv.membership.actions import notify_moderators
from listserv.moderation.notices import held_notice
from listserv.moderation.policy import Action as PolicyAction
from listserv.moderation.policy import Decision, Facts, decide
from listserv.outbox.queue import enqueue_post
from listserv.outbox.respond import answer, notify, notify_raw
from listserv.texts.compose import compose


async def gather_facts(ctx: Context, req: Request) -> Facts:
    mlist, sender = req.mlist, req.sender
    is_member = False
    if sender is not None:
        row = await ctx.store.fetchone(
            "SELECT 1 FROM members WHERE list_address = ? AND address = ? AND status = 'enabled'",
            (mlist.address, sender))
        is_member = row is not None
    is_moderator = sender is not None and sender in mlist.moderators
    aligned = False
    if is_moderator and sender is not None:
        aligned = await verified_aligned_async(req.item.raw, sender.rpartition("@")[2],
                                               ctx.dkim_dns)
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


async def handle_post(ctx: Context, req: Request) -> str:
    facts = await gather_facts(ctx, req)
    decision = decide(facts, req.mlist)
    async with ctx.store.transaction() as db:
        outcome = await _apply(db, ctx, req, decision)
        await ctx.store.finish_in(db, req.item.id, outcome)
    event(f"post_{decision.action}", list=req.mlist.address, inbox=req.item.id,
          msgid=req.item.message_id, sender=req.sender, rule=decision.rule)
    ctx.wake_sender()
    if decision.action is PolicyAction.ACCEPT:
        await publish_approved(ctx)
    return outcome


async def _apply(db: aiosqlite.Connection, ctx: Context, req: Request, d: Decision) -> str:
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
                               requester=req.sender or "", data={"post": post_id})
    for moderator in mlist.moderators:
        raw = held_notice(mlist, to=moderator, original=req.msg, raw=req.item.raw,
                          reason=_reason_text(d), token=token, now=req.now)
        await notify_raw(db, mlist, raw, rcpts=[moderator], now=req.now, kind="held_notice",
                         inbox_id=req.item.id, message_id=message_id_of(raw))
    if req.sender:
        await _tell_poster(db, req, "post_held")
    return f"held ({d.rule}), post {post_id}"


def _reason_text(d: Decision) -> str:
    german = {
        "moderate_all": "alle Beiträge werden vor dem Versand geprüft",
        "moderate_non_members": "der Absender ist kein Mitglied",
        "not_addressed": "die Liste steht nicht in An/Cc (Blindkopie)",
    }
    return german.get(d.rule, d.reason)


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
    if verb is None:
        await notify_moderators(db, req, "not_understood_moderator", token=token,
                                to=[req.sender or ""])
        return "moderator reply not understood; instructions sent again"
    changed = await set_decision(db, post_id, verb, by=req.sender or "", reason=reason,
                                 now=req.now)
    await tokens.use(db, row, now=req.now, by=req.sender or "", outcome=verb)
    if not changed:
        return f"post {post_id} was already decided"
    if verb == "rejected":
        await tell_rejected(db, req.mlist, post_id, reason, req.now, req.item.id)
    return f"post {post_id} {verb} by {req.sender}"


async def set_decision(db: aiosqlite.Connection, post_id: int, state: str, *, by: str,
                       reason: str, now: datetime) -> bool:
    cursor = await db.execute(
        "UPDATE posts SET state = ?, decided_at = ?, decided_by = ?, decision_reason = ?"
        " WHERE id = ? AND state = 'held'", (state, iso(now), by, reason, post_id))
    return cursor.rowcount == 1


async def tell_rejected(db: aiosqlite.Connection, mlist: ListConfig, post_id: int,
                        reason: str, now: datetime, inbox_id: int | None) -> None:
    """Tell the poster her post was rejected, with the reason (a reply, and so capped).

    Public because the CLI's ``held reject`` tells her the same way.
    """
    async with db.execute("SELECT sender, subject FROM posts WHERE id = ?", (post_id,)) as cur:
        row = await cur.fetchone()
    if row is None or "@" not in row["sender"]:
        return
    msg = compose(mlist, to=row["sender"], template="post_rejected", language=mlist.language,
                  now=now, values={"reason": reason or "ohne Angabe / none given"})
    await answer(db, mlist, msg, to=row["sender"], now=now, kind="post_rejected",
                 inbox_id=inbox_id)


# -- publishing --------------------------------------------------------------------------


async def publish_approved(ctx: Context) -> int:
    """Queue every approved post that is not queued yet; return how many."""
    rows = await ctx.store.fetchall(
        "SELECT p.id, p.list_address, p.inbox_id, unseal(i.raw) AS raw, i.mail_from FROM posts p"
        " JOIN inbox i ON i.id = p.inbox_id"
        " WHERE p.state = 'approved' AND p.outgoing_id IS NULL ORDER BY p.id")
    done = 0
    for row in rows:
        mlist = ctx.config.find_list(row["list_address"])
        if mlist is None or row["raw"] is None:
            continue
        msg = parse(row["raw"])
        rewrite = await _needs_dmarc_rewrite(ctx, mlist, msg)
        personalize = ctx.config.delivery.personalize
        copy = list_copy(msg, mlist, rewrite_from=rewrite, add_footer=not personalize)
        data = copy.as_bytes()
        now = ctx.clock()
        async with ctx.store.transaction() as db:
            async with db.execute("SELECT outgoing_id FROM posts WHERE id = ?",
                                  (row["id"],)) as cur:
                current = await cur.fetchone()
            if current is None or current[0] is not None:
                continue  # queued meanwhile
            outgoing_id, count = await enqueue_post(
                db, now=now, list_address=mlist.address, mail_from=mlist.bounces_address,
                raw=data, message_id=message_id(msg), inbox_id=row["inbox_id"],
                verp=ctx.config.delivery.verp, personalize=personalize)
            await db.execute("UPDATE posts SET outgoing_id = ? WHERE id = ?",
                             (outgoing_id, row["id"]))
        event("post_queued", list=mlist.address, post=row["id"], outgoing=outgoing_id,
              recipients=count, msgid=message_id(msg), dmarc_rewrite=rewrite)
        ctx.wake_sender()
        done += 1
    return done


async def _needs_dmarc_rewrite(ctx: Context, mlist: ListConfig, msg: EmailMessage) -> bool:
    if mlist.dmarc_mitigation == "never":
        return False
    if mlist.dmarc_mitigation == "always":
        return True
    sender = sender_of(msg).address
    if sender is None:
        return False
    policy = await ctx.dmarc_lookup().policy(sender.rpartition("@")[2])
    return needs_rewrite(mlist.dmarc_mitigation, policy)


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
        listing = "\n".join(f"  - {r['created_at'][:10]}  {r['sender']}: {r['subject'] or '-'}"
                            for r in rows)
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


