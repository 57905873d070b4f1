"""``listserv status``: is the daemon healthy, at a glance, from another process.

The CLI does not talk to the daemon: everything here is read from the
database (queues, held posts, members, the last delivery), from the backup
directory, and from the job triggers in ``scheduler.JOBS`` (the next run
of each job is computed from its trigger, as the daemon's scheduler
computes it). So ``status`` works the same whether the daemon runs or not,
and a monitoring system can run it every few minutes: exit status 1 means
something needs a person, with the reasons listed.

What the facts mean (thresholds, reasons, the printed block, the JSON) is
decided in ``report.py``; this module reads them. ``snapshot`` is the one
function behind both ``listserv status --json`` and the web endpoint's
``GET /healthz``, so a monitoring system gets the same answer from either.

The reads go through the ``Store`` interface, so they are the same on
SQLite and PostgreSQL: the CLI opens the store the configuration names
(``store.backends.open_store``) after looking, without migrating, that there
is a database at this version (``status`` creates and changes nothing);
``/healthz`` reads through the daemon's own store. On PostgreSQL the backups
are the operator's ``pg_dump``, which listserv cannot see: the report says
so instead of counting backup files.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from listserv.bounces.analyse import ANALYSIS_FAILED
from listserv.clock import from_iso, iso
from listserv.config import Config
from listserv.errors import StoreError
from listserv.ops import backup as backups
from listserv.ops import preflight
from listserv.ops.report import (
    FAILED_WINDOW,
    INBOX_STUCK_AFTER,
    UNDELIVERED_AFTER,
    Delivery,
    ListHealth,
    Report,
    facts,
    reasons_for,
    render,
)
from listserv.ops.scheduler import JOBS
from listserv.store.backends import open_store, stored_version, why_not_ready
from listserv.store.database import Store
from listserv.store.migrations import MIGRATIONS


def _parse(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


async def _count_by(store: Store, sql: str, params: tuple[object, ...] = ()
                    ) -> dict[str, int]:
    return {str(k): int(v) for k, v in await store.fetchall(sql, params)}


async def _scalar(store: Store, sql: str, params: tuple[object, ...] = ()) -> Any:
    row = await store.fetchone(sql, params)
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


def delivery_of(cfg: Config) -> Delivery:
    """Where mail goes and whether it is signed, as ``serve`` says it in its first lines."""
    if cfg.delivery.transport == "maildir":
        to = str(cfg.server.data_dir / "outbox" / "new")
    else:
        to = f"{cfg.delivery.smtp_host}:{cfg.delivery.smtp_port}"
    if cfg.dkim is None:
        return Delivery(cfg.delivery.transport, to, None)
    return Delivery(cfg.delivery.transport, to, cfg.dkim.selector, cfg.dkim.domain)


async def gather(store: Store, cfg: Config, now: datetime | None = None) -> Report:
    """Read everything ``status`` shows; ``StoreError`` if the database cannot be read."""
    now = now or datetime.now(UTC)
    day_ago = iso(now - FAILED_WINDOW)
    inbox = await _count_by(store, "SELECT state, count(*) FROM inbox GROUP BY state")
    inbox_failed = int(await _scalar(store, "SELECT count(*) FROM inbox WHERE state = 'failed'"
                                     " AND handled_at >= ?", (day_ago,)) or 0)
    deliveries = await _count_by(store, "SELECT state, count(*) FROM deliveries"
                                        " WHERE state IN ('pending', 'sending', 'deferred')"
                                        " GROUP BY state")
    failed = int(await _scalar(store, "SELECT count(*) FROM deliveries WHERE state = 'failed'"
                                      " AND updated_at >= ?", (day_ago,)) or 0)
    last_sent = _parse(await _scalar(store, "SELECT max(updated_at) FROM deliveries"
                                            " WHERE state = 'sent'"))
    oldest_due = _parse(await _scalar(
        store, "SELECT min(o.created_at) FROM deliveries d JOIN outgoing o ON o.id = d.outgoing_id"
               " WHERE d.state IN ('pending', 'deferred')"
               " AND (d.next_attempt IS NULL OR d.next_attempt <= ?)", (iso(now),)))
    lists = []
    for mlist in cfg.lists:
        members = await _count_by(store, "SELECT status, count(*) FROM members"
                                         " WHERE list_address = ? GROUP BY status",
                                  (mlist.address,))
        row = await store.fetchone("SELECT count(*), min(created_at) FROM posts"
                                   " WHERE list_address = ? AND state = 'held'",
                                   (mlist.address,))
        held, oldest = (row[0], row[1]) if row else (0, None)
        parked = int(await _scalar(store, "SELECT count(*) FROM posts WHERE list_address = ?"
                                          " AND state = 'parked'", (mlist.address,)) or 0)
        lists.append(ListHealth(mlist.address, members, int(held), _parse(oldest),
                                mlist.hold_days, parked))
    undelivered = int(await _scalar(store, "SELECT count(*) FROM deliveries d"
                                           " JOIN outgoing o ON o.id = d.outgoing_id"
                                           " WHERE d.state IN ('pending', 'sending', 'deferred')"
                                           " AND o.created_at < ?",
                                    (iso(now - UNDELIVERED_AFTER),)) or 0)
    stuck = int(await _scalar(store, "SELECT count(*) FROM inbox"
                                     " WHERE state IN ('new', 'processing') AND received_at < ?",
                              (iso(now - INBOX_STUCK_AFTER),)) or 0)
    inbox_parked = int(await _scalar(store, "SELECT count(*) FROM inbox"
                                            " WHERE outcome LIKE 'parked:%' AND handled_at >= ?",
                                     (day_ago,)) or 0)
    bounce_errors = int(await _scalar(store, "SELECT count(*) FROM inbox WHERE role = 'bounces'"
                                             " AND outcome LIKE ? AND handled_at >= ?",
                                      (f"{ANALYSIS_FAILED}%", day_ago)) or 0)
    created = _parse(await _scalar(store, "SELECT min(applied_at) FROM schema_version"))
    found = backups.existing(backups.backups_dir(cfg))
    last_backup = found[-1] if found else None
    report = Report(now, ZoneInfo(cfg.server.timezone), cfg.database_name, inbox, inbox_failed,
                    deliveries, failed, last_sent, lists, last_backup,
                    backups.taken_at(last_backup) if last_backup else None,
                    next_runs(cfg.server.timezone, now), delivery_of(cfg), oldest_due,
                    inbox_parked_recent=inbox_parked, bounce_errors_recent=bounce_errors,
                    web_url=cfg.web.base_url if cfg.web is not None else None,
                    backups_elsewhere=cfg.store.is_postgresql)
    report.reasons = reasons_for(report, undelivered=undelivered, stuck=stuck, created=created)
    return report


async def database_problem(cfg: Config) -> str | None:
    """Why there is nothing to gather yet (no data_dir, no database, an old schema), or None.

    Looks without opening the store: opening migrates, and ``status`` changes
    nothing. An unreachable PostgreSQL server is ``StoreError``.
    """
    unusable = preflight.data_dir_problem(cfg)
    if unusable is not None:
        return f"{cfg.path}: [server] data_dir: {unusable}"
    have = await stored_version(cfg)   # read once: the checks below all need it
    missing = why_not_ready(cfg, have)
    if missing is not None:
        return missing
    want = MIGRATIONS[-1][0]
    if (have or 0) < want:
        return (f"database {cfg.database_name} has schema version {have}, this listserv"
                f" needs {want}: run 'listserv init' (or start the daemon) to migrate it")
    return None


async def _read(cfg: Config, now: datetime | None) -> Report | str:
    """The report from a store opened for this read, or why there is none (one line)."""
    try:
        problem = await database_problem(cfg)
        if problem is not None:
            return problem
        store = await open_store(cfg)
        try:
            return await gather(store, cfg, now)
        finally:
            await store.close()
    except (StoreError, sqlite3.Error) as exc:
        text = str(exc)
        return text if cfg.database_name in text else f"database {cfg.database_name}: {text}"


async def snapshot(cfg: Config, now: datetime | None = None, *,
                   store: Store | None = None) -> dict[str, Any]:
    """The facts as a dict: ``status --json``, and ``GET /healthz`` with the daemon's store."""
    if store is not None:
        try:
            return facts(await gather(store, cfg, now))
        except (StoreError, sqlite3.Error) as exc:
            problem = f"database {cfg.database_name}: {exc}"
    else:
        found = await _read(cfg, now)
        if isinstance(found, Report):
            return facts(found)
        problem = found
    return {"healthy": False, "reasons": [problem], "now": iso(now or datetime.now(UTC))}


async def command(cfg: Config, *, as_json: bool = False) -> int:
    """``listserv status``: print the block (or JSON); exit 1 when something needs attention."""
    if as_json:
        found = await snapshot(cfg)
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return 0 if found["healthy"] else 1
    report = await _read(cfg, None)
    if not isinstance(report, Report):
        print(f"listserv status: {report}")
        return 1
    print(render(report))
    return 0 if report.healthy else 1
