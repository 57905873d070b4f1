"""The ``listserv`` command line (DESIGN §2).

Exit status: 0 success, 1 a fault found (check/status), 2 a configuration
error, reported as one line on stderr and never as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from listserv import __version__, log
from listserv import config as configuration
from listserv.cli import admin
from listserv.config import Config
from listserv.errors import ConfigError, StoreError
from listserv.ops import backup, health

EXIT_FAULT = 1
EXIT_CONFIG = 2


def _load(args: argparse.Namespace) -> Config:
    return configuration.load(configuration.config_path(args.config))


async def _serve(cfg: Config) -> int:
    from listserv.daemon import Daemon

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(cfg)
    await daemon.serve_until(stop)
    return 0


async def _init(cfg: Config) -> int:
    from listserv.store.database import Store

    store = await Store.open(cfg.database_path)   # makes data_dir 0700 and the database 0600
    version = await store.schema_version()
    await store.close()
    print(f"database {cfg.database_path}: schema version {version}")
    from listserv.store import keys

    for name in (keys.MAIL_KEY, keys.VERP_KEY, keys.UNSUBSCRIBE_KEY):
        keys.key(cfg.server.data_dir, name)
    print(f"keys in {cfg.server.data_dir}: {keys.MAIL_KEY}, {keys.VERP_KEY}, "
          f"{keys.UNSUBSCRIBE_KEY} (mode 0600; keep a copy apart from the database backups)")
    if cfg.dkim is not None:
        from listserv.delivery import signing

        key = cfg.dkim.private_key
        if key.exists():
            print(f"DKIM key {key}: present")
        else:
            signing.generate_key(key)
            print(f"DKIM key {key}: created")
        print("Publish this DNS record:")
        print(signing.dns_txt_record(cfg.dkim))
    return 0


async def _check(cfg: Config) -> int:
    from listserv.intake.server import tls_context

    tls_context(cfg)  # a key that does not load is a config error (exit 2)
    if cfg.dkim is not None:
        from listserv.delivery import signing

        try:
            signing.Signer.from_config(cfg.dkim)
        except (OSError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{cfg.path}: [dkim] private_key: {exc}") from None
    names = ", ".join(m.address for m in cfg.lists)
    print(f"{cfg.path}: OK ({len(cfg.lists)} list(s): {names}; "
          f"{cfg.server.protocol} on {cfg.server.host}:{cfg.server.port}; "
          f"delivery {cfg.delivery.transport})")
    return 0


COMMANDS: dict[str, tuple[str, Callable[[Config], Coroutine[Any, Any, int]]]] = {
    "serve": ("run the daemon in the foreground until SIGTERM/SIGINT", _serve),
    "init": ("create or migrate the database, create a missing DKIM key", _init),
    "check": ("validate the configuration and keys", _check),
    "status": ("queues, held posts, members, next runs; exit 1 when something needs attention",
               health.command),
    "backup": ("an online backup of the database into <data_dir>/backups/", backup.command),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML file (default: $LISTSERV_CONFIG, "
                                         "else config/listserv.toml)")
    common.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser = argparse.ArgumentParser(prog="listserv", description="mailing-list manager daemon")
    parser.add_argument("--version", action="version", version=f"listserv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, parents=[common])
    admin.add_parsers(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.setup(args.log_level)
    try:
        cfg = _load(args)
        if args.command in COMMANDS:
            return asyncio.run(COMMANDS[args.command][1](cfg))
        return asyncio.run(admin.run(cfg, args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"listserv: database: {exc}", file=sys.stderr)
        return EXIT_FAULT
    except KeyboardInterrupt:
        return 130
