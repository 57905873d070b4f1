"""Publishing: an approved post becomes one list copy, queued for every member.

Apart from deciding (``posts.py``) because it is the one step that builds
bytes from a stranger's mail: the copy is built in the worker process
(``copies.build_copy``, time and memory limited), and a post that cannot be
built is parked with its reason so the posts after it still go out. The copy
is archived (``archive.records.record``) in the commit that queues it.
"""

from __future__ import annotations

from listserv.archive import records as archive
from listserv.clock import iso
from listserv.config import ListConfig
from listserv.context import Context
from listserv.log import event
from listserv.mail.dmarc import needs_rewrite
from listserv.moderation.copies import build_copy
from listserv.outbox.queue import CHUNK, FIRST_CHUNK, enqueue_post, queue_more


async def publish_approved(ctx: Context) -> int:
    """Queue every approved post that is not queued yet; return how many.

    Each copy is built in the worker process (``copies.build_copy``, time and
    memory limited). A post that cannot be built is parked with the reason
    (``listserv status``, ``held list``) and the next post goes on: one
    hostile post never stops the ones after it.
    """
    await finish_fanouts(ctx)  # a fan-out a crash interrupted goes on at its cursor
    rows = await ctx.store.fetchall(
        "SELECT p.id, p.list_address, p.inbox_id, p.sender, unseal(i.raw) AS raw FROM posts p"
        " JOIN inbox i ON i.id = p.inbox_id"
        " WHERE p.state = 'approved' AND p.outgoing_id IS NULL ORDER BY p.id")
    done = 0
    for row in rows:
        mlist = ctx.config.find_list(row["list_address"])
        if mlist is None or row["raw"] is None:
            continue
        rewrite = await _needs_dmarc_rewrite(ctx, mlist, row["sender"])
        personalize = ctx.config.delivery.personalize
        try:
            built = await ctx.in_worker(build_copy, row["raw"], mlist, rewrite, not personalize)
        except Exception as exc:  # Refused by the worker's limits, or the copy cannot be written
            await park_post(ctx, row["id"], f"list copy not built: {exc}", state="approved")
            continue
        now = ctx.clock()
        async with ctx.store.transaction() as db:
            # Locks the post's row (two daemons on PostgreSQL may publish it at once).
            async with db.execute("UPDATE posts SET outgoing_id = outgoing_id WHERE id = ?"
                                  " RETURNING outgoing_id, state", (row["id"],)) as cur:
                current = await cur.fetchone()
            if current is None or current[0] is not None or current[1] != "approved":
                continue  # queued or discarded meanwhile
            outgoing_id, count = await enqueue_post(
                db, now=now, list_address=mlist.address, mail_from=mlist.bounces_address,
                raw=built.raw, message_id=built.message_id, inbox_id=row["inbox_id"],
                verp=ctx.config.delivery.verp, personalize=personalize,
                first_chunk=FIRST_CHUNK)
            await db.execute("UPDATE posts SET outgoing_id = ? WHERE id = ?",
                             (outgoing_id, row["id"]))
            number = None
            if built.archived is not None:   # archived in the same commit as it is queued
                number = await archive.record(
                    db, list_address=mlist.address, raw=built.raw, found=built.archived,
                    now=now, source="published", post_id=row["id"])
        if number is not None:
            event("post_archived", list=mlist.address, post=row["id"], number=number,
                  msgid=built.message_id)
        elif mlist.archive != "off":
            event("post_not_archived", level="warning", list=mlist.address, post=row["id"],
                  msgid=built.message_id, reason="copy not readable")
        ctx.wake_sender()  # the first chunk is committed: the first copies leave now
        await ctx.sender_claiming()
        count += await queue_rest(ctx, outgoing_id)
        event("post_queued", list=mlist.address, post=row["id"], outgoing=outgoing_id,
              recipients=count, msgid=built.message_id, dmarc_rewrite=rewrite)
        done += 1
    return done


async def queue_rest(ctx: Context, outgoing_id: int) -> int:
    """Queue a post's remaining members, a chunk per transaction; how many were queued.

    The chunks start small and double up to ``CHUNK``: the sender, woken by
    the first chunk's commit, waits for the store behind at most a short
    transaction before it claims, so the first copies leave at once; the
    later, large chunks keep the commits few.
    """
    total, limit = 0, FIRST_CHUNK
    while True:
        limit = min(2 * limit, CHUNK)
        async with ctx.store.transaction() as db:
            count, done = await queue_more(db, outgoing_id, limit)
        total += count
        if count:
            ctx.wake_sender()
        if done:
            return total


async def finish_fanouts(ctx: Context) -> None:
    """Posts whose recipients were not all queued when the daemon stopped or died."""
    for row in await ctx.store.fetchall(
            "SELECT id, message_id FROM outgoing WHERE fanout_after IS NOT NULL ORDER BY id"):
        count = await queue_rest(ctx, row["id"])
        event("fanout_resumed", outgoing=row["id"], msgid=row["message_id"], recipients=count)


async def park_post(ctx: Context, post_id: int, reason: str, *, state: str) -> bool:
    """A post that cannot be handled: state ``parked`` with ``reason``, for a person to see."""
    async with ctx.store.transaction() as db:
        cursor = await db.execute(
            "UPDATE posts SET state = 'parked', reason = ?, decided_at = ?"
            " WHERE id = ? AND state = ? AND outgoing_id IS NULL",
            (reason[:300], iso(ctx.clock()), post_id, state))
    event("post_parked", level="warning", post=post_id, reason=reason[:300])
    return cursor.rowcount == 1


async def _needs_dmarc_rewrite(ctx: Context, mlist: ListConfig, sender: str) -> bool:
    if mlist.dmarc_mitigation == "never":
        return False
    if mlist.dmarc_mitigation == "always":
        return True
    if "@" not in sender:
        return False
    policy = await ctx.dmarc_lookup().policy(sender.rpartition("@")[2])
    return needs_rewrite(mlist.dmarc_mitigation, policy)
