"""``listserv status``: is the daemon healthy, at a glance, from another process.

The CLI does not talk to the daemon: everything here is read from the
database (queues, held posts, members, the last delivery), from the backup
directory, and from the job triggers in ``scheduler.JOBS`` (the next run
of each job is computed from its trigger, as the daemon's scheduler
computes it). So ``status`` works the same whether the daemon runs or not,
and a monitoring system can run it every few minutes: exit status 1 means
something needs a person, with the reasons listed.

Named ``health`` because ``status.py`` holds the SMTP reply codes.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from listserv.config import Config
from listserv.ops import backup as backups
from listserv.ops.scheduler import JOBS
from listserv.store.database import iso
from listserv.store.migrations import MIGRATIONS

# When something needs attention (documented in docs/operations.md):
UNDELIVERED_AFTER = timedelta(hours=1)    # a copy not delivered an hour after queueing
INBOX_STUCK_AFTER = timedelta(minutes=15)  # received, not handled: is the daemon running?
FAILED_WINDOW = timedelta(hours=24)        # inbox rows parked as failed this recently
BACKUP_MAX_AGE = timedelta(days=2)         # the daily backup did not run twice

_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def _parse(text: str | None) -> datetime | None:
    return datetime.strptime(text, _TIME).replace(tzinfo=UTC) if text else None


@dataclass
class ListHealth:
    address: str
    members: dict[str, int]
    held: int
    oldest_held: datetime | None
    hold_days: int


@dataclass
class Report:
    now: datetime
    timezone: ZoneInfo
    database: Path
    inbox: dict[str, int]
    inbox_failed_recent: int
    deliveries: dict[str, int]
    deliveries_failed_recent: int
    last_sent: datetime | None
    lists: list[ListHealth]
    last_backup: Path | None
    last_backup_at: datetime | None
    next_runs: list[tuple[str, datetime | None, str]]
    reasons: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.reasons


def _count_by(db: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()
              ) -> dict[str, int]:
    return {str(k): int(v) for k, v in db.execute(sql, params).fetchall()}


def _scalar(db: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> Any:
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def next_runs(tz_name: str, now: datetime) -> list[tuple[str, datetime | None, str]]:
    """Each job's next run after ``now``, from the same trigger factory the daemon uses."""
    tz = ZoneInfo(tz_name)
    local = now.astimezone(tz)
    runs = []
    for spec in JOBS:
        trigger = spec.trigger(tz_name)
        when = trigger.get_next_fire_time(None, local)
        runs.append((spec.id, when, spec.what))
    return runs


def gather(cfg: Config, now: datetime | None = None) -> Report:
    """Read everything ``status`` shows; raises ``sqlite3.Error`` if the database is unusable."""
    now = now or datetime.now(UTC)
    day_ago = iso(now - FAILED_WINDOW)
    db = sqlite3.connect(f"file:{cfg.database_path}?mode=rw", uri=True, timeout=10)
    try:
        inbox = _count_by(db, "SELECT state, count(*) FROM inbox GROUP BY state")
        inbox_failed = int(_scalar(db, "SELECT count(*) FROM inbox WHERE state = 'failed'"
                                   " AND handled_at >= ?", (day_ago,)) or 0)
        deliveries = _count_by(db, "SELECT state, count(*) FROM deliveries"
                                   " WHERE state IN ('pending', 'sending', 'deferred')"
                                   " GROUP BY state")
        failed = int(_scalar(db, "SELECT count(*) FROM deliveries WHERE state = 'failed'"
                                 " AND updated_at >= ?", (day_ago,)) or 0)
        last_sent = _parse(_scalar(db, "SELECT max(updated_at) FROM deliveries"
                                       " WHERE state = 'sent'"))
        lists = []
        for mlist in cfg.lists:
            members = _count_by(db, "SELECT status, count(*) FROM members"
                                    " WHERE list_address = ? GROUP BY status", (mlist.address,))
            held, oldest = db.execute("SELECT count(*), min(created_at) FROM posts"
                                      " WHERE list_address = ? AND state = 'held'",
                                      (mlist.address,)).fetchone()
            lists.append(ListHealth(mlist.address, members, int(held), _parse(oldest),
                                    mlist.hold_days))
        undelivered = int(_scalar(db, "SELECT count(*) FROM deliveries d"
                                      " JOIN outgoing o ON o.id = d.outgoing_id"
                                      " WHERE d.state IN ('pending', 'sending', 'deferred')"
                                      " AND o.created_at < ?",
                                      (iso(now - UNDELIVERED_AFTER),)) or 0)
        stuck = int(_scalar(db, "SELECT count(*) FROM inbox WHERE state IN ('new', 'processing')"
                                " AND received_at < ?", (iso(now - INBOX_STUCK_AFTER),)) or 0)
        created = _parse(_scalar(db, "SELECT min(applied_at) FROM schema_version"))
    finally:
        db.close()
    found = backups.existing(backups.backups_dir(cfg))
    last_backup = found[-1] if found else None
    report = Report(now, ZoneInfo(cfg.server.timezone), cfg.database_path, inbox, inbox_failed,
                    deliveries, failed, last_sent, lists, last_backup,
                    backups.taken_at(last_backup) if last_backup else None,
                    next_runs(cfg.server.timezone, now))
    report.reasons = _reasons(report, undelivered=undelivered, stuck=stuck, created=created)
    return report


def _reasons(r: Report, *, undelivered: int, stuck: int, created: datetime | None) -> list[str]:
    reasons = []
    if undelivered:
        reasons.append(f"{undelivered} deliveries still not done an hour after queueing"
                       " (relay down or refusing? see 'event=deferred' in the log)")
    if stuck:
        reasons.append(f"{stuck} received mails not handled after 15 minutes"
                       " (is the daemon running?)")
    if r.inbox_failed_recent:
        reasons.append(f"{r.inbox_failed_recent} received mails failed in the last 24 h"
                       " (SELECT id, outcome FROM inbox WHERE state = 'failed')")
    for lh in r.lists:
        if lh.oldest_held and r.now - lh.oldest_held > timedelta(days=lh.hold_days - 1):
            reasons.append(f"{lh.address}: held posts expire within a day"
                           f" (after {lh.hold_days} days); the coordinator should decide")
    if r.last_backup_at is not None:
        if r.now - r.last_backup_at > BACKUP_MAX_AGE:
            reasons.append(f"last backup is {_age(r.now - r.last_backup_at)} old")
    elif created is not None and r.now - created > BACKUP_MAX_AGE:
        reasons.append("no backup yet (run 'listserv backup'; the daemon makes one daily)")
    return reasons


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _counts(counts: dict[str, int], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in keys)


def render(r: Report) -> str:
    """The readable block ``listserv status`` prints."""
    def local(moment: datetime) -> str:
        return moment.astimezone(r.timezone).strftime("%Y-%m-%d %H:%M")

    lines = [f"listserv status at {local(r.now)} ({r.timezone.key})",
             f"database    {r.database}",
             f"inbox       {_counts(r.inbox, ('new', 'processing', 'failed'))}"
             f" ({r.inbox_failed_recent} in the last 24 h)",
             f"deliveries  {_counts(r.deliveries, ('pending', 'sending', 'deferred'))};"
             f" failed in the last 24 h: {r.deliveries_failed_recent}",
             "last sent   " + (f"{local(r.last_sent)} ({_age(r.now - r.last_sent)} ago)"
                               if r.last_sent else "-"),
             "backup      " + (f"{r.last_backup.name} ({_age(r.now - r.last_backup_at)} ago)"
                               if r.last_backup and r.last_backup_at else "none")]
    for lh in r.lists:
        lines += ["", f"list {lh.address}",
                  f"  members   {_counts(lh.members, ('enabled', 'disabled'))}",
                  f"  held      {lh.held}" + (f", oldest {_age(r.now - lh.oldest_held)} old"
                                              f" (expires after {lh.hold_days} days)"
                                              if lh.oldest_held else "")]
    lines += ["", "next runs"]
    width = max(len(job) for job, _, _ in r.next_runs)
    soonest = sorted(r.next_runs, key=lambda run: (run[1] is None, run[1] or r.now))
    for job, when, what in soonest:
        lines.append(f"  {local(when) if when else '-':16}  {job:{width}}  {what}")
    lines.append("")
    if r.healthy:
        lines.append("OK: nothing needs attention")
    else:
        lines.append("NEEDS ATTENTION:")
        lines += [f"  - {reason}" for reason in r.reasons]
    return "\n".join(lines)


async def command(cfg: Config) -> int:
    """``listserv status``: print the block; exit status 1 when something needs attention."""
    if not cfg.database_path.is_file():
        print(f"listserv status: no database at {cfg.database_path} (run 'listserv init')")
        return 1
    try:
        with sqlite3.connect(f"file:{cfg.database_path}?mode=ro", uri=True) as db:
            have = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
        want = MIGRATIONS[-1][0]
        if have < want:
            print(f"listserv status: database {cfg.database_path} has schema version {have},"
                  f" this listserv needs {want}: run 'listserv init' (or start the daemon)"
                  " to migrate it", file=sys.stderr)
            return 1
        report = gather(cfg)
    except sqlite3.Error as exc:
        print(f"listserv status: database {cfg.database_path}: {exc}", file=sys.stderr)
        return 1
    print(render(report))
    return 0 if report.healthy else 1
