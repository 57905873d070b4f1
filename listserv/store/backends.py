"""Open the store the configuration names: SQLite (default) or PostgreSQL.

Every command and the daemon open the store here, so ``[store] url`` is
read in one place. ``instance`` names this installation (host name and
data_dir): on PostgreSQL a daemon takes back at start only the claims that
its own earlier life left, never those of another daemon that is alive.
"""

from __future__ import annotations

from listserv.clock import Clock, utcnow
from listserv.config import Config
from listserv.errors import ConfigError
from listserv.store.database import Store


def instance_of(cfg: Config) -> str:
    return f"{cfg.server.hostname}:{cfg.server.data_dir}"


async def open_store(cfg: Config, *, clock: Clock = utcnow) -> Store:
    """The store, migrated to this version; ``StoreError`` if it cannot be opened."""
    if not cfg.store.is_postgresql:
        return await Store.open(cfg.database_path, clock=clock, instance=instance_of(cfg))
    from listserv.store.postgres import PgStore  # asyncpg only where it is used

    return await PgStore.connect(
        cfg.store.url, data_dir=cfg.server.data_dir, password=_password(cfg), clock=clock,
        instance=instance_of(cfg), lease=float(cfg.store.lease_seconds),
        pool_size=cfg.store.pool_size)


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
