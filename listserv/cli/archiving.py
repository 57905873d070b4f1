"""``listserv archive import MBOX [LIST]``: seed a list's archive from a mailbox file.

Progress goes to stderr on one line (rewritten in place on a terminal, one
line per 10 % otherwise); the result is one line on stdout with the number
imported and each reason for skipping with its count.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from listserv.archive.mbox import import_mbox
from listserv.config import Config, ListConfig
from listserv.errors import ListservError
from listserv.store.database import Store


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
               list_help: str) -> None:
    archive = sub.add_parser("archive", help="seed and manage the members' archive",
                             parents=[common])
    asub = archive.add_subparsers(dest="action", required=True, metavar="ACTION")
    text = "archive the list's posts found in a mailbox file (mbox), e.g. a sent folder"
    p = asub.add_parser("import", help=text, description=text, parents=[common])
    p.add_argument("mbox", type=Path, metavar="MBOX", help="the mailbox file (mbox format)")
    p.add_argument("list", nargs="?", metavar="LIST", help=list_help)


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\rread {done} of {total} mails", end="" if done < total else "\n",
              file=sys.stderr, flush=True)
    elif total and (done == total or done % max(total // 10, 100) == 0):
        print(f"read {done} of {total} mails", file=sys.stderr, flush=True)


async def run(cfg: Config, store: Store, mlist: ListConfig, args: argparse.Namespace) -> int:
    if mlist.archive == "off":
        raise ListservError(f"{mlist.address}: archive = \"off\" for this list; nothing imported")
    imported, skipped = await import_mbox(store, mlist, args.mbox, datetime.now(UTC),
                                          progress=_progress)
    why = ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))
    print(f"{args.mbox}: {imported} post(s) imported into the archive of {mlist.address};"
          f" {sum(skipped.values())} skipped" + (f" ({why})" if why else ""))
    return 0
