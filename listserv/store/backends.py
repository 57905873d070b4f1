"""Open the store the configuration names: SQLite (default) or PostgreSQL.

Every command and the daemon open the store here, so ``[store] url`` is
read in one place. ``instance`` names this installation (host name and
data_dir): on PostgreSQL a daemon takes back at start only the claims that
its own earlier life left, never those of another daemon that is alive.
"""

from __future__ import annotations

import contextlib

from listserv.clock import Clock, utcnow
from listserv.config import Config
from listserv.errors import ConfigError, StoreError
from listserv.store import keys
from listserv.store.database import Store


def instance_of(cfg: Config) -> str:
    return f"{cfg.server.hostname}:{cfg.server.data_dir}"


async def open_store(cfg: Config, *, clock: Clock = utcnow) -> Store:
    """The store, migrated to this version; ``StoreError`` if it cannot be opened."""
    if not cfg.store.is_postgresql:
        return await Store.open(cfg.database_path, clock=clock, instance=instance_of(cfg))
    from listserv.store.postgres import PgStore  # asyncpg only where it is used

    missing = keys_missing(cfg)
    if missing is not None and await stored_version(cfg) is not None:
        # A database in use and no key here: a new key would make every mail the
        # other hosts stored unreadable on this one. The operator copies the keys.
        raise StoreError(f"{cfg.database_name} is in use already; {missing}")

    return await PgStore.connect(
        cfg.store.url, data_dir=cfg.server.data_dir, password=_password(cfg), clock=clock,
        instance=instance_of(cfg), lease=float(cfg.store.lease_seconds),
        pool_size=cfg.store.pool_size)


def keys_missing(cfg: Config) -> str | None:
    """On PostgreSQL, what to copy when data_dir has no ``mail.key``; else None.

    Opening would make a new key, and the mail the other hosts stored would be
    unreadable here: ``open_store``, ``init`` and the reading commands refuse.
    """
    if cfg.store.is_postgresql and not (cfg.server.data_dir / keys.MAIL_KEY).is_file():
        return (f"no {keys.MAIL_KEY} in {cfg.server.data_dir}: copy {keys.MAIL_KEY},"
                f" {keys.VERP_KEY} and {keys.UNSUBSCRIBE_KEY} from a host that has them")
    return None


def _password(cfg: Config) -> str | None:
    """The first line of ``password_file``, or None (then libpq's PG* variables apply)."""
    if not cfg.store.password_file:
        return None
    try:
        with open(cfg.store.password_file, encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{cfg.path}: [store] password_file: cannot read"
                          f" {cfg.store.password_file}: {exc.strerror}") from None


async def stored_version(cfg: Config) -> int | None:
    """The schema version in the database, read without migrating it; None: no database.

    ``listserv status`` and ``store migrate-to`` look before they open: opening
    migrates, and neither may change a database the operator did not ask to
    change (nor create an SQLite file where there is none). ``StoreError``
    when a PostgreSQL server cannot be reached.
    """
    if not cfg.store.is_postgresql:
        import sqlite3

        if not cfg.database_path.is_file():
            return None
        try:
            with contextlib.closing(sqlite3.connect(
                    f"file:{cfg.database_path}?mode=ro", uri=True, timeout=10)) as db:
                row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return None   # a file without our schema_version table: nothing of ours
        return int(row[0] or 0)
    import asyncpg

    try:
        conn = await asyncpg.connect(cfg.store.url, password=_password(cfg), timeout=10)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError,
            ValueError) as exc:
        raise StoreError(f"{cfg.database_name}: cannot connect: {exc}") from None
    try:
        if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
            return None
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StoreError(f"{cfg.database_name}: {exc}") from None
    finally:
        await conn.close()


async def not_ready(cfg: Config) -> str | None:
    """Why a command that reads must not open the store yet, or None (``why_not_ready``)."""
    return why_not_ready(cfg, await stored_version(cfg))


def why_not_ready(cfg: Config, version: int | None) -> str | None:
    """``not_ready`` for a schema version the caller has read already.

    No database (opening would make an empty one on SQLite, or fill an empty
    PostgreSQL database with tables the operator did not ask for), or, on
    PostgreSQL, no ``mail.key`` in data_dir: opening would make a new key,
    and the mail other hosts stored would be unreadable here.
    """
    if version is None:
        if cfg.store.is_postgresql:
            return (f"no database at {cfg.database_name} yet: it has no listserv tables"
                    " (run 'listserv init')")
        return f"no database at {cfg.database_path} (run 'listserv init')"
    missing = keys_missing(cfg)
    return None if missing is None else f"{missing} (or run 'listserv init' on the first host)"
