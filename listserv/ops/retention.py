"""Retention (DSGVO Art. 5 (1) e): raw mail is kept only as long as it is needed.

A received mail is needed while it is being handled, and a post also while
it waits for the moderator (held) or for publishing (approved, not yet
queued); an outgoing copy while any recipient may still get it. After
that (for a post: after the moderator's decision), ``retention_days`` (per
list, default 30) give the operator time to look into a complaint, and then
the bodies go:

* ``inbox.raw`` of rows handled (``done``/``failed``) before the cut-off is
  set to NULL; the row itself stays (who, when, what became of it: no body);
* ``outgoing.raw`` of messages whose deliveries are all final (``sent``/
  ``failed``) and older than the cut-off is set to NULL, and those
  ``deliveries`` rows are deleted: who received which mail is personal
  data too, and nothing reads it once the copy is final;
* ``reply_log`` rows older than two days go: they only feed the daily cap;
* ``dkim_seen`` rows past their ``expires_at`` go (``store.replay``);
* ``job_runs`` rows older than a week go: a slot is only looked up on its
  own day or hour (``ops.scheduler``), and the table grows by about 55 a day;
* ``consent_log`` is kept: it is the proof of consent (Art. 7 (1)).
* the members' archive is apart from all this: a list's archived posts go
  after its own ``archive_days`` (0, the default: kept), and with the list's
  ``archive = "off"`` nothing is archived in the first place.

On SQLite the purge runs with ``PRAGMA secure_delete`` so the freed pages
are overwritten rather than left readable in the file. PostgreSQL has no
such switch: the same deletes run there, and the dead row versions go with
autovacuum (and ``VACUUM FULL`` in ``Store.scrub`` after an erasure). Backups keep bodies for
as long as a backup is kept (``backup.KEEP`` days), see docs/operations.md.
Every statement is idempotent: a second run finds nothing more to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import aiosqlite

from listserv.archive import records as archive
from listserv.clock import iso
from listserv.config import Config
from listserv.context import Context
from listserv.log import event
from listserv.store import replay

DEFAULT_RETENTION_DAYS = 30   # for rows of a list no longer in the configuration
JOB_RUNS_DAYS = 7             # a slot is only asked about on its own day or hour
REPLY_LOG_DAYS = 2            # the cap counts the last 24 h; a day more for clock skew


def _cutoffs(config: Config, now: datetime) -> Iterator[tuple[str, list[str], str]]:
    """(SQL condition on list_address, its parameters, cut-off time) per list.

    The last entry covers rows of lists that were removed from the
    configuration, with the default retention.
    """
    known = [m.address for m in config.lists]
    for mlist in config.lists:
        yield "list_address = ?", [mlist.address], iso(now - timedelta(days=mlist.retention_days))
    marks = ",".join("?" * len(known)) or "''"
    yield (f"list_address NOT IN ({marks})", known,
           iso(now - timedelta(days=DEFAULT_RETENTION_DAYS)))


async def _purge_inbox(db: aiosqlite.Connection, where: str, params: list[str],
                       cutoff: str) -> int:
    cur = await db.execute(
        "UPDATE inbox SET raw = NULL"
        f" WHERE {where} AND raw IS NOT NULL AND state IN ('done', 'failed')"
        "   AND coalesce(handled_at, received_at) < ?"
        "   AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.inbox_id = inbox.id"
        "                   AND (p.state = 'held'"
        "                        OR (p.state = 'approved' AND p.outgoing_id IS NULL)"
        "                        OR coalesce(p.decided_at, '') >= ?))",
        [*params, cutoff, cutoff],
    )
    return cur.rowcount


# An outgoing message is finished when it is older than the cut-off and no
# recipient is still open or was touched after the cut-off.
_FINISHED = (
    "{where} AND created_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outgoing_id = outgoing.id"
    "                 AND (d.state NOT IN ('sent', 'failed')"
    "                      OR coalesce(d.updated_at, '') >= ?))"
)


async def _purge_outgoing(db: aiosqlite.Connection, where: str, params: list[str],
                          cutoff: str) -> tuple[int, int]:
    finished = _FINISHED.format(where=where)
    deleted = await db.execute(
        f"DELETE FROM deliveries WHERE outgoing_id IN (SELECT id FROM outgoing WHERE {finished})",
        [*params, cutoff, cutoff],
    )
    emptied = await db.execute(
        f"UPDATE outgoing SET raw = NULL WHERE raw IS NOT NULL AND {finished}",
        [*params, cutoff, cutoff],
    )
    return emptied.rowcount, deleted.rowcount


async def purge(ctx: Context) -> dict[str, int]:
    """Remove what retention says is no longer needed; return the non-zero counts.

    The counts are empty when there was nothing to do, so the scheduler's
    log stays quiet on such days.
    """
    now = ctx.clock()
    counts = {"inbox_raw": 0, "outgoing_raw": 0, "deliveries": 0, "reply_log": 0,
              "dkim_seen": 0, "job_runs": 0, "archive": 0}
    sqlite = ctx.store.dialect == "sqlite"
    async with ctx.store.transaction() as db:
        before = 0
        if sqlite:
            async with db.execute("PRAGMA secure_delete") as cur:
                row = await cur.fetchone()
            before = int(row[0]) if row else 0
            await db.execute("PRAGMA secure_delete = ON")
        try:
            for where, params, cutoff in _cutoffs(ctx.config, now):
                counts["inbox_raw"] += await _purge_inbox(db, where, params, cutoff)
                emptied, deleted = await _purge_outgoing(db, where, params, cutoff)
                counts["outgoing_raw"] += emptied
                counts["deliveries"] += deleted
            cur = await db.execute("DELETE FROM reply_log WHERE at < ?",
                                   (iso(now - timedelta(days=REPLY_LOG_DAYS)),))
            counts["reply_log"] = cur.rowcount
            counts["dkim_seen"] = await replay.forget_expired(db, now)
            cur = await db.execute("DELETE FROM job_runs WHERE started_at < ?",
                                   (iso(now - timedelta(days=JOB_RUNS_DAYS)),))
            counts["job_runs"] = cur.rowcount
            for mlist in ctx.config.lists:
                counts["archive"] += await archive.expire(db, mlist.address,
                                                          mlist.archive_days, now)
        finally:
            if sqlite:
                await db.execute(f"PRAGMA secure_delete = {before}")
    done = {k: v for k, v in counts.items() if v}
    if done:
        event("retention_purged", **done)
    return done
