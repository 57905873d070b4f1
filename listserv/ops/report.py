"""What ``listserv status`` makes of the facts: thresholds, reasons, the printed block.

Pure: a ``Report`` of counts and times in, lines of text (``render``) or a
JSON-able dict (``facts``: ``status --json`` and ``GET /healthz``) out. The
facts are gathered from the database by ``health.py``; the reasons are the
same whichever way they are shown, so a monitoring system and a person
never disagree about "healthy".

Times for people are ``clock.local_text`` in the server's zone; times for
machines (the JSON) are ISO 8601 in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from listserv.clock import iso, local_text

# When something needs attention (documented in docs/operations.md):
UNDELIVERED_AFTER = timedelta(hours=1)    # a copy not delivered an hour after queueing
INBOX_STUCK_AFTER = timedelta(minutes=15)  # received, not handled: is the daemon running?
FAILED_WINDOW = timedelta(hours=24)        # inbox rows parked as failed this recently
BACKUP_MAX_AGE = timedelta(days=2)         # the daily backup did not run twice


@dataclass
class ListHealth:
    address: str
    members: dict[str, int]
    held: int
    oldest_held: datetime | None
    hold_days: int
    parked: int = 0                # posts the worker could not read or build


@dataclass(frozen=True)
class Delivery:
    """Where mail goes and whether it is signed (from the config, not the database)."""

    transport: str          # "maildir" or "smtp"
    to: str                 # the Maildir's new/ directory, or "host:port" of the relay
    selector: str | None    # DKIM s=, None when unsigned
    domain: str | None = None   # DKIM d=

    @property
    def unsigned_relay(self) -> bool:
        return self.transport != "maildir" and self.selector is None


@dataclass
class Report:
    now: datetime
    timezone: ZoneInfo
    database: Path | str            # the SQLite file, or the PostgreSQL URL (no password)
    inbox: dict[str, int]
    inbox_failed_recent: int
    deliveries: dict[str, int]
    deliveries_failed_recent: int
    last_sent: datetime | None
    lists: list[ListHealth]
    last_backup: Path | None
    last_backup_at: datetime | None
    next_runs: list[tuple[str, datetime | None, str]]
    delivery: Delivery | None = None
    oldest_due: datetime | None = None   # queued time of the oldest delivery due now
    reasons: list[str] = field(default_factory=list)
    inbox_parked_recent: int = 0    # mails parked by the worker in the last 24 h (any role)
    bounce_errors_recent: int = 0   # bounces our own reader failed on in the last 24 h
    web_url: str | None = None      # the web face's public URL ([web] base_url), None when off
    backups_elsewhere: bool = False  # PostgreSQL: pg_dump's backups, which listserv cannot see

    @property
    def healthy(self) -> bool:
        return not self.reasons


def reasons_for(r: Report, *, undelivered: int, stuck: int, created: datetime | None
                ) -> list[str]:
    """Why a person is needed, one line each; none means healthy."""
    reasons = []
    if r.delivery is not None and r.delivery.unsigned_relay:
        reasons.append(f"mail goes to the relay {r.delivery.to} unsigned: add a [dkim] table"
                       " and run 'listserv init' (receivers junk or refuse unsigned list mail)")
    if undelivered:
        reasons.append(f"{undelivered} deliveries still not done an hour after queueing"
                       " (relay down or refusing? see 'event=deferred' in the log)")
    if stuck:
        reasons.append(f"{stuck} received mails not handled after 15 minutes"
                       " (is the daemon running?)")
    if r.inbox_failed_recent:
        reasons.append(f"{r.inbox_failed_recent} received mails failed in the last 24 h"
                       " (SELECT id, outcome FROM inbox WHERE state = 'failed')")
    if r.bounce_errors_recent:
        reasons.append(f"{r.bounce_errors_recent} bounces could not be read in the last 24 h"
                       " (a fault in listserv: see 'event=bounce_analysis_failed' in the log)")
    for lh in r.lists:
        if lh.parked:
            reasons.append(f"{lh.address}: {lh.parked} parked posts could not be read or built"
                           " ('listserv held list'; remove with 'listserv held discard ID')")
        if lh.oldest_held and r.now - lh.oldest_held > timedelta(days=lh.hold_days - 1):
            reasons.append(f"{lh.address}: held posts expire within a day"
                           f" (after {lh.hold_days} days); the coordinator should decide")
    if r.backups_elsewhere:
        pass     # the operator's pg_dump (deploy/postgresql) is watched by the operator
    elif r.last_backup_at is not None:
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
        return local_text(moment, r.timezone, "de")

    lines = [f"listserv status at {local(r.now)} ({r.timezone.key})",
             f"database    {r.database}"]
    if r.delivery is not None:
        lines.append(f"mail to     {r.delivery.transport} {r.delivery.to}, "
                     + (f"signed (s={r.delivery.selector}, d={r.delivery.domain})"
                           if r.delivery.selector
                        else "UNSIGNED"))
    lines.append("web         " + (f"{r.web_url}/ (join form, /login, /desk/)" if r.web_url
                                   else "off (no [web] table)"))
    lines += [
             f"inbox       {_counts(r.inbox, ('new', 'processing', 'failed'))}"
             f" ({r.inbox_failed_recent} in the last 24 h);"
             f" parked in the last 24 h: {r.inbox_parked_recent};"
             f" unreadable bounces: {r.bounce_errors_recent}",
             f"deliveries  {_counts(r.deliveries, ('pending', 'sending', 'deferred'))};"
             f" failed in the last 24 h: {r.deliveries_failed_recent}",
             "oldest due  " + (f"{local(r.oldest_due)} ({_age(r.now - r.oldest_due)} ago)"
                               if r.oldest_due else "-"),
             "last sent   " + (f"{local(r.last_sent)} ({_age(r.now - r.last_sent)} ago)"
                               if r.last_sent else "-"),
             "backup      " + ("pg_dump, by the operator (deploy/postgresql)"
                               if r.backups_elsewhere
                               else f"{r.last_backup.name} ({_age(r.now - r.last_backup_at)} ago)"
                               if r.last_backup and r.last_backup_at else "none")]
    for lh in r.lists:
        lines += ["", f"list {lh.address}",
                  f"  members   {_counts(lh.members, ('enabled', 'disabled'))}",
                  f"  held      {lh.held}" + (f", oldest {_age(r.now - lh.oldest_held)} old"
                                              f" (expires after {lh.hold_days} days)"
                                              if lh.oldest_held else "")
                  + (f"; parked {lh.parked}" if lh.parked else "")]
    lines += ["", "next runs"]
    width = max(len(job) for job, _, _ in r.next_runs)
    soonest = sorted(r.next_runs, key=lambda run: (run[1] is None, run[1] or r.now))
    for job, when, what in soonest:
        lines.append(f"  {local(when) if when else '-':21}  {job:{width}}  {what}")
    lines.append("")
    if r.healthy:
        lines.append("OK: nothing needs attention")
    else:
        lines.append("NEEDS ATTENTION:")
        lines += [f"  - {reason}" for reason in r.reasons]
    return "\n".join(lines)


def _when(moment: datetime | None, now: datetime) -> dict[str, Any] | None:
    if moment is None:
        return None
    return {"at": iso(moment), "age_seconds": max(0, int((now - moment).total_seconds()))}


def facts(r: Report) -> dict[str, Any]:
    """The same facts for a monitoring system: ``status --json`` and ``GET /healthz``."""
    deliveries = {k: r.deliveries.get(k, 0) for k in ("pending", "sending", "deferred")}
    return {
        "healthy": r.healthy,
        "reasons": list(r.reasons),
        "now": iso(r.now),
        "timezone": r.timezone.key,
        "delivery": None if r.delivery is None else {
            "transport": r.delivery.transport, "to": r.delivery.to,
            "signed": r.delivery.selector is not None, "selector": r.delivery.selector,
            "domain": r.delivery.domain},
        "web": r.web_url,
        "inbox": {**{k: r.inbox.get(k, 0) for k in ("new", "processing", "failed")},
                  "failed_last_24h": r.inbox_failed_recent},
        "deliveries": {**deliveries, "failed_last_24h": r.deliveries_failed_recent},
        "oldest_due_delivery": _when(r.oldest_due, r.now),
        "last_sent": _when(r.last_sent, r.now),
        "lists": [{"address": lh.address, "members": dict(lh.members), "held": lh.held,
                   "oldest_held": _when(lh.oldest_held, r.now), "hold_days": lh.hold_days}
                  for lh in r.lists],
        "last_backup": None if r.last_backup is None else {
            "file": r.last_backup.name, **(_when(r.last_backup_at, r.now) or {})},
        "next_runs": {job: iso(when) if when else None for job, when, _ in r.next_runs},
    }
