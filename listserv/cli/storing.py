"""``listserv store migrate-to URL``: move an SQLite installation into PostgreSQL.

The command checks before it writes anything, and refuses with one line
and exit status 1 when the copy would not be sound:

* the configuration already names PostgreSQL (there is no SQLite to copy);
* the URL holds a password (it would stand in the shell's history and in
  ``ps``: the password comes from ``[store] password_file`` or ``PG*``);
* the SQLite database is missing, or its schema is older than this
  listserv (``listserv init`` migrates it first: both sides must be at the
  same version, and opening the source must change nothing);
* the daemon runs (it holds ``data_dir/listserv.lock``): a copy of a
  database still being written to is not the database. The command holds
  that lock itself while it copies, so the daemon cannot start meanwhile;
* the target database has rows (``store.copy``).

Then ``store.copy.copy_all`` copies, compares the counts and this prints
them. The source is left as it was: going back is pointing ``[store] url``
at it again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from listserv.config import Config
from listserv.errors import StoreError
from listserv.ops.preflight import CannotStart, DataDirLock
from listserv.store import copy
from listserv.store.backends import open_store, stored_version
from listserv.store.migrations import MIGRATIONS

EXIT_REFUSED = 1


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    store = sub.add_parser("store", help="the database: move it to PostgreSQL",
                           parents=[common])
    ssub = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    text = ("copy this SQLite installation into an empty PostgreSQL database and verify"
            " the counts (stop the daemon first)")
    p = ssub.add_parser("migrate-to", help=text, description=text, parents=[common])
    p.add_argument("url", metavar="URL",
                   help="postgresql://USER@HOST/DATABASE (the password from [store]"
                        " password_file or PGPASSWORD/~/.pgpass, never in the URL)")


def _refuse(text: str) -> int:
    print(f"listserv store migrate-to: {text}", file=sys.stderr)
    return EXIT_REFUSED


def _has_password(url: str) -> bool:
    credentials = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    return ":" in credentials or "password=" in url.lower()


def _progress(table: str, rows: int) -> None:
    """On a terminal, which table is done (a large archive takes a while); else quiet."""
    if sys.stderr.isatty():
        print(f"\rcopied {table}: {rows} rows\033[K", end="", file=sys.stderr, flush=True)


async def run(cfg: Config, args: argparse.Namespace) -> int:
    url: str = args.url
    if cfg.store.is_postgresql:
        return _refuse(f"{cfg.path}: [store] url already names PostgreSQL; migrate-to copies"
                       " an SQLite installation")
    if not url.startswith(("postgresql://", "postgres://")):
        return _refuse("URL must start with postgresql://")
    if _has_password(url):
        return _refuse("URL must not hold the password: put it in [store] password_file"
                       " (or PGPASSWORD, ~/.pgpass)")
    have = await stored_version(cfg)
    want = MIGRATIONS[-1][0]
    if have is None:
        return _refuse(f"no database at {cfg.database_path} (run 'listserv init')")
    if have < want:
        return _refuse(f"database {cfg.database_path} has schema version {have}, this listserv"
                       f" needs {want}: run 'listserv init' first")
    lock = DataDirLock(cfg.server.data_dir)
    try:
        lock.acquire()
    except CannotStart:
        return _refuse(f"the daemon is running (it holds {lock.path}); stop it, then copy")
    try:
        return await _copy(cfg, url)
    finally:
        lock.release()


async def _copy(cfg: Config, url: str) -> int:
    target_cfg = dataclasses.replace(cfg, store=dataclasses.replace(cfg.store, url=url))
    source = await open_store(cfg)
    try:
        try:
            target = await open_store(target_cfg)
        except StoreError as exc:
            return _refuse(str(exc))
        try:
            counted = await copy.copy_all(source, target, progress=_progress)  # type: ignore[arg-type]
        except StoreError as exc:
            return _refuse(f"{url}: {exc}")
        finally:
            await target.close()
    finally:
        await source.close()
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"copied {cfg.database_path} into {url}:")
    print(copy.render(counted))
    print(f"counts equal in all {len(counted)} tables; {cfg.database_path.name} is unchanged.")
    print(f"next: set [store] url = \"{url}\" in {cfg.path};")
    print(f"copy mail.key, verp.key and unsubscribe.key from {cfg.server.data_dir} to the"
          " data_dir of every host; start the daemons.")
    return 0
