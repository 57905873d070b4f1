"""Online backups of the SQLite database, while the daemon runs.

``sqlite3.Connection.backup`` copies the database page by page through
SQLite itself, so the copy is one consistent snapshot even while the
daemon commits: in WAL mode the copy is a reader and never blocks the
daemon's writes. Copying a live file with ``cp`` could catch it half way
through a commit (and miss the ``-wal`` file altogether).

The copy is written under a temporary name, checked with ``PRAGMA
integrity_check``, switched to a single self-contained file (journal mode
DELETE), flushed to disk and only then renamed to
``listserv-YYYYmmddTHHMMSSZ.sqlite3`` (UTC): a file with the final name is
always a complete, checked backup. The newest ``KEEP`` are kept.

``KEEP`` is a constant rather than a config key: one backup a day for a
week covers "something went wrong last Tuesday", and backups hold raw mail
for that much longer than ``retention_days`` (docs/operations.md). Restoring
is described in docs/operations.md and tested in tests/ops/test_backup.py.

On PostgreSQL (``[store] url = "postgresql://…"``) listserv makes no backups:
the server's own ``pg_dump`` does (deploy/postgresql,
docs/operating-postgresql.md); ``listserv backup`` says so and exits 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from listserv.config import Config
from listserv.context import Context
from listserv.errors import StoreError
from listserv.log import event
from listserv.store import keys

KEEP = 7
PREFIX = "listserv-"
SUFFIX = ".sqlite3"
STAMP = "%Y%m%dT%H%M%SZ"


def backups_dir(config: Config) -> Path:
    return config.server.data_dir / "backups"


def existing(directory: Path) -> list[Path]:
    """Finished backups, oldest first (the UTC stamp in the name sorts by time)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())


def taken_at(path: Path) -> datetime | None:
    """The time in a backup's name, or None for a name we did not write."""
    stamp = path.name.removeprefix(PREFIX).removesuffix(SUFFIX)
    try:
        return datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def backup(db_path: Path, backups: Path, keep: int = KEEP, *,
           now: datetime | None = None) -> Path:
    """Copy ``db_path`` into ``backups``; return the new file. Blocking: run it in a thread.

    Raises ``StoreError`` when the database cannot be read or the copy is
    not sound; then no file with a final name is left behind.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    if not db_path.is_file():
        raise StoreError(f"{db_path}: no database to back up (run 'listserv init')")
    keys.private_dir(backups)
    final = backups / f"{PREFIX}{moment.strftime(STAMP)}{SUFFIX}"
    temp = backups / f".{final.name}.tmp"
    temp.unlink(missing_ok=True)
    try:
        keys.private_file(temp)   # 0600 before SQLite writes into it, whatever the umask
        _copy(db_path, temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_dir(backups)
    except (sqlite3.Error, OSError) as exc:
        temp.unlink(missing_ok=True)
        raise StoreError(f"backup of {db_path} failed: {exc}") from exc
    removed = prune(backups, keep)
    event("backup_done", file=str(final), bytes=final.stat().st_size, removed=len(removed))
    return final


def _copy(db_path: Path, temp: Path) -> None:
    # mode=rw: never create an empty database where the real one is missing.
    source = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=30)
    try:
        target = sqlite3.connect(temp)
        try:
            source.backup(target)   # all pages in one step: one consistent snapshot
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            result = [row[0] for row in target.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise sqlite3.DatabaseError("integrity_check: " + "; ".join(result[:5]))
        finally:
            target.close()
    finally:
        source.close()


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def prune(backups: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; return the deleted.

    A temp file a day old is a copy that crashed half way; a younger one
    may be another process's backup in progress and is left alone.
    """
    for stale in backups.glob(f".{PREFIX}*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > 86400:
                stale.unlink()
    files = existing(backups)
    doomed = files[:-keep] if keep > 0 else files
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


async def backup_job(ctx: Context) -> str:
    """The daily scheduler job: the copy runs in a thread, the daemon goes on.

    On PostgreSQL there is nothing for listserv to copy: the operator's
    ``pg_dump`` (deploy/postgresql) backs the database up, and one daemon's
    file copy would be a partial view of a database several daemons share.
    The job then logs that once a day and returns nothing (no ``job_done``).
    """
    if ctx.config.store.is_postgresql:
        event("backup_skipped", why="postgresql: backups are the operator's pg_dump")
        return ""
    path = await asyncio.to_thread(backup, ctx.config.database_path, backups_dir(ctx.config),
                                   KEEP, now=ctx.clock())
    return path.name


EXIT_NOT_HERE = 2   # the configuration names PostgreSQL: this command does not apply


async def command(cfg: Config) -> int:
    """``listserv backup``: one backup now, next to the daily ones.

    On PostgreSQL: one line on stderr saying that pg_dump makes the backups,
    and exit status 2 (the configuration makes the command inapplicable), so
    a forgotten nightly ``listserv backup`` in cron fails loudly instead of
    seeming to back up.
    """
    if cfg.store.is_postgresql:
        print(f"listserv backup: the database is PostgreSQL ({cfg.database_name}): back it up"
              " with pg_dump (deploy/postgresql); nothing was written", file=sys.stderr)
        return EXIT_NOT_HERE
    path = await asyncio.to_thread(backup, cfg.database_path, backups_dir(cfg), KEEP)
    print(path)
    return 0
