"""The ``listserv`` command line (DESIGN §2).

Exit status: 0 success, 1 a fault found (check/status) or the daemon cannot
start, 2 a configuration error. Every fault an operator can cause (a wrong
key, a port in use, a data_dir that cannot be made, a database that is not
there) is one line on stderr, never a traceback. What is left is a bug: it
too is one line, and ``--log-level DEBUG`` shows its traceback.

``--config`` and ``--log-level`` are accepted before and after the
subcommand (``listserv --config F status`` and ``listserv status --config F``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from listserv import __version__, log
from listserv import config as configuration
from listserv.cli import admin, storing
from listserv.config import Config
from listserv.errors import ConfigError, ListservError, StoreError
from listserv.ops import backup, health, preflight
from listserv.texts.render import override_problems

EXIT_FAULT = 1
EXIT_CONFIG = 2
EXIT_BROKEN_PIPE = 141   # what a shell reports for a program ended by SIGPIPE
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


async def _serve(cfg: Config, args: argparse.Namespace) -> int:
    from listserv.daemon import Daemon

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(cfg)
    await daemon.serve_until(stop)
    return 0


async def _init(cfg: Config, args: argparse.Namespace) -> int:
    from listserv.store import keys
    from listserv.store.backends import open_store

    preflight.make_data_dir(cfg)
    store = await open_store(cfg)   # refuses a second host without the keys
    version = await store.schema_version()
    await store.close()
    print(f"database {cfg.database_name}: schema version {version}")

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
            try:
                signing.generate_key(key)
            except OSError as exc:
                raise ConfigError(f"{cfg.path}: [dkim] private_key: cannot create {key}:"
                                  f" {exc.strerror}") from None
            print(f"DKIM key {key}: created")
        print("Publish this DNS record:")
        print(signing.dns_txt_record(cfg.dkim))
    return 0


async def _check(cfg: Config, args: argparse.Namespace) -> int:
    from listserv.intake.server import tls_context

    problem = preflight.data_dir_problem(cfg)
    if problem is not None:
        raise ConfigError(f"{cfg.path}: [server] data_dir: {problem}")
    tls_context(cfg)  # a key that does not load is a config error (exit 2)
    signed = "unsigned (no [dkim])"
    if cfg.dkim is not None:
        from listserv.delivery import signing

        if not cfg.dkim.private_key.exists():
            raise ConfigError(f"{cfg.path}: [dkim] private_key: {cfg.dkim.private_key} does"
                              " not exist; run 'listserv init' to create it")
        try:
            signing.Signer.from_config(cfg.dkim)
        except (OSError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{cfg.path}: [dkim] private_key: {exc}") from None
        signed = f"signed as {cfg.dkim.selector}._domainkey.{cfg.dkim.domain}"
    for i, mlist in enumerate(cfg.lists):
        problems = override_problems(mlist.texts_dir) if mlist.texts_dir else []
        if problems:
            raise ConfigError(f"{cfg.path}: [lists.{i}] texts_dir: {mlist.texts_dir}/"
                              f"{problems[0]}")
    names = ", ".join(m.address for m in cfg.lists)
    print(f"{cfg.path}: OK ({len(cfg.lists)} list(s): {names}; "
          f"{cfg.server.protocol} on {cfg.server.host}:{cfg.server.port}; "
          f"delivery {cfg.delivery.transport}, {signed})")
    return 0


async def _status(cfg: Config, args: argparse.Namespace) -> int:
    return await health.command(cfg, as_json=args.json)


async def _backup(cfg: Config, args: argparse.Namespace) -> int:
    return await backup.command(cfg)


Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]
COMMANDS: dict[str, tuple[str, Command]] = {
    "serve": ("run the daemon in the foreground until SIGTERM/SIGINT", _serve),
    "init": ("create or migrate the database, create a missing DKIM key", _init),
    "check": ("validate the configuration, data_dir and keys", _check),
    "status": ("queues, held posts, members, next runs; exit 1 when something needs attention",
               _status),
    "backup": ("an online backup of the database into <data_dir>/backups/", _backup),
}


def global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config`` and ``--log-level``, on the main parser and on every subcommand.

    On a subcommand they default to "not given" (SUPPRESS), so that a value
    given before the subcommand is not overwritten by the subcommand's default.
    """
    unset = argparse.SUPPRESS
    parser.add_argument("--config", metavar="PATH", default=None if top else unset,
                        help="TOML file (default: $LISTSERV_CONFIG, else config/listserv.toml)")
    parser.add_argument("--log-level", metavar="LEVEL", type=str.upper, choices=LEVELS,
                        default="INFO" if top else unset,
                        help="DEBUG, INFO, WARNING or ERROR (DEBUG also shows a bug's traceback)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    global_options(common, top=False)
    parser = argparse.ArgumentParser(prog="listserv", description="mailing-list manager daemon")
    parser.add_argument("--version", action="version", version=f"listserv {__version__}")
    global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        if name == "status":
            p.add_argument("--json", action="store_true",
                           help="the same facts as JSON, for a monitoring system")
    admin.add_parsers(sub, common)
    storing.add_parser(sub, common)
    return parser


def _run(args: argparse.Namespace) -> int:
    cfg = configuration.load(configuration.config_path(args.config))
    if args.command in COMMANDS:
        return asyncio.run(COMMANDS[args.command][1](cfg, args))
    if args.command == "store":
        return asyncio.run(storing.run(cfg, args))
    return asyncio.run(admin.run(cfg, args))


def _say(text: str) -> None:
    print(f"listserv: {text}", file=sys.stderr)


def _quiet_stdout() -> None:
    """The reader went away (``listserv status | head``): drop what is left unwritten."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log.setup(args.log_level)
    debug = args.log_level == "DEBUG"
    try:
        code = _run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        _say(f"database: {exc}")
        return EXIT_FAULT
    except ListservError as exc:
        _say(str(exc))
        return EXIT_FAULT
    except (OSError, sqlite3.Error) as exc:
        # Disk full, permissions, a database file that is not one: the operator's to fix.
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _say(f"{where}{what}")
        return EXIT_FAULT
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _say(f"internal error: {type(exc).__name__}: {exc} (a bug; run again with"
             " --log-level DEBUG to see where, and report it)")
        return EXIT_FAULT
    return code
