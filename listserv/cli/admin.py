"""``listserv members …``, ``listserv held …`` and ``listserv privacy …``.

These open the database directly (WAL lets them run beside the daemon).
Changes that send mail only queue it; the running daemon's sender and its
``publish_approved`` job pick it up within a minute.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import sys
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from listserv.cli import archiving
from listserv.clock import from_iso, local_text
from listserv.config import Config, ListConfig
from listserv.errors import ConfigError, StoreError
from listserv.mail.message import header_block, normalise_address, parse
from listserv.mail.text import body_text, fresh_lines, header_text
from listserv.membership import erasure
from listserv.membership import members as member_data
from listserv.membership.memberfile import read_members
from listserv.ops.backup import KEEP, backups_dir, existing
from listserv.store.backends import not_ready, open_store
from listserv.store.database import Store

LIST_HELP = ("the list's address; may be left out when only one list is configured")


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``members``, ``held`` and ``privacy``; every positional says what it wants."""
    def leaf(group: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
        return group.add_parser(name, help=text, description=text, parents=[common])

    def addresses(p: argparse.ArgumentParser, text: str) -> None:
        p.add_argument("list", nargs="?", metavar="LIST", help=LIST_HELP)
        p.add_argument("addresses", nargs="+", metavar="ADDRESS", help=text)

    members = sub.add_parser("members", help="manage the members of a list", parents=[common])
    msub = members.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in [("list", "print the members"), ("export", "write members as CSV")]:
        leaf(msub, name, text).add_argument("list", nargs="?", metavar="LIST", help=LIST_HELP)
    addresses(leaf(msub, "add", "add members (no confirmation mail)"), "an address to add")
    addresses(leaf(msub, "remove", "remove members (no mail)"), "an address to remove")
    addresses(leaf(msub, "enable", "deliver again to members disabled for bounces"
                   " (score back to 0)"), "a member's address")
    p = leaf(msub, "import", "import a CSV (Outlook/Excel, ; or ,, cp1252 or UTF-8)")
    p.add_argument("list", nargs="?", metavar="LIST", help=LIST_HELP)
    p.add_argument("file", type=Path, metavar="FILE", help="the CSV file to read")
    # DSGVO, as the membership issue names them (same as "privacy export|erase"):
    leaf(msub, "export-data", "everything stored about one address, as JSON").add_argument(
        "address", metavar="ADDRESS", help="the person's address")
    leaf(msub, "forget", "erase everything stored about one address").add_argument(
        "address", metavar="ADDRESS", help="the person's address")

    held = sub.add_parser("held", help="the moderation queue", parents=[common])
    hsub = held.add_subparsers(dest="action", required=True, metavar="ACTION")
    leaf(hsub, "list", "posts waiting for a decision, and parked ones")
    for name, what in (("show", "show a held or parked post"), ("approve", "approve a held post"),
                       ("discard", "discard a post in any state (unsent copies are dropped)")):
        leaf(hsub, name, what).add_argument(
            "id", type=int, metavar="ID", help="the post's number, as 'held list' shows it")
    p = leaf(hsub, "reject", "reject a held post; the reason goes to the poster")
    p.add_argument("id", type=int, metavar="ID", help="the post's number, as 'held list' shows it")
    p.add_argument("reason", nargs="*", metavar="REASON", help="words the poster is told")

    privacy = sub.add_parser("privacy", help="DSGVO: one person's data", parents=[common])
    psub = privacy.add_subparsers(dest="action", required=True, metavar="ACTION")
    leaf(psub, "export", "print everything stored about an address (JSON)").add_argument(
        "address", metavar="ADDRESS", help="the person's address")
    leaf(psub, "erase", "delete everything stored about an address").add_argument(
        "address", metavar="ADDRESS", help="the person's address")
    archiving.add_parser(sub, common, LIST_HELP)


def _list(cfg: Config, address: str | None) -> ListConfig:
    """The named list; with none named, the only one configured."""
    names = ", ".join(m.address for m in cfg.lists)
    if address is None:
        if len(cfg.lists) == 1:
            return cfg.lists[0]
        raise ConfigError(f"{cfg.path}: {len(cfg.lists)} lists are configured: name one"
                          f" ({names})")
    mlist = cfg.find_list(address)
    if mlist is None:
        raise ConfigError(f"{cfg.path}: no list {address!r} configured (lists: {names})")
    return mlist


def _list_and_addresses(cfg: Config, args: argparse.Namespace) -> tuple[ListConfig, list[str]]:
    """``add [LIST] ADDRESS…``: the first word is the list if it names one.

    With one list configured it may be left out. A first word that is no
    list but looks like a mistyped one is refused rather than added as a
    member: adding on a guess is a wrong action.
    """
    first, rest = args.list, list(args.addresses)
    for word in rest:  # "members add LIST" with the address forgotten: never the list itself
        if cfg.find_list(word) is not None:
            raise ConfigError(f"{cfg.path}: {word} is a list, not a member: name the"
                              f" addresses to {args.action} after it")
    if first is None or cfg.find_list(first) is not None:
        return _list(cfg, first), rest
    close = difflib.get_close_matches(first.lower(), [m.address for m in cfg.lists], n=1,
                                      cutoff=0.8)
    if len(cfg.lists) != 1 or close:
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{cfg.path}: no list {first!r} configured{hint}")
    return cfg.lists[0], [first, *rest]


def _now() -> datetime:
    return datetime.now(UTC)


def _local(cfg: Config, moment: datetime) -> str:
    """Every time the CLI shows: the server's zone, the one format of ``clock.local_text``."""
    return local_text(moment, ZoneInfo(cfg.server.timezone), "de")


def _local_date(cfg: Config, header: str) -> str:
    """A Date header in the same format; a date we cannot read is shown as written."""
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return header
    return _local(cfg, moment)


async def run(cfg: Config, args: argparse.Namespace) -> int:
    problem = await not_ready(cfg)   # never create an empty database (or keys) by accident
    if problem is not None:
        raise StoreError(problem)
    store = await open_store(cfg)
    try:
        if args.command == "archive":
            return await archiving.run(cfg, store, _list(cfg, args.list), args)
        handler = {"members": _members, "held": _held, "privacy": _privacy}[args.command]
        return await handler(cfg, store, args)
    finally:
        await store.close()


async def _members(cfg: Config, store: Store, args: argparse.Namespace) -> int:
    if args.action in ("export-data", "forget"):
        args.action = "export" if args.action == "export-data" else "erase"
        return await _privacy(cfg, store, args)
    if args.action in ("add", "remove", "enable"):
        mlist, args.addresses = _list_and_addresses(cfg, args)
    else:
        mlist = _list(cfg, args.list)
    if args.action in ("list", "export"):
        rows = await member_data.all_members(store, mlist.address)
        if args.action == "list":
            for m in rows:
                flag = "" if m.status == "enabled" else f"  [{m.status}]"
                extra = ", ".join(x for x in (m.role, m.employer_type) if x)
                print(f"{m.as_given}  {m.display_name}{f'  ({extra})' if extra else ''}{flag}"
                      .rstrip())
            print(f"{len(rows)} member(s)", file=sys.stderr)
        else:
            out = csv.writer(sys.stdout, delimiter=";")
            out.writerow(["E-Mail", "Name", "Funktion", "Träger", "Sprache", "Status", "Seit"])
            for m in rows:
                out.writerow([m.as_given, m.display_name, m.role, m.employer_type, m.language,
                              m.status, m.joined_at])
        return 0
    if args.action == "enable":
        return await _enable(store, mlist, args.addresses)
    if args.action == "import":
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
            return 1
        entries, problems = read_members(data)
        pairs = [(e.address, e.name, e.role, e.employer) for e in entries]
        detail = f"imported by the operator from {args.file.name}"
    else:
        pairs = []
        problems = []
        for raw in args.addresses:
            address = normalise_address(raw)
            if address is None:
                print(f"not a valid address: {raw!r}", file=sys.stderr)
                return 1
            pairs.append((address, "", "", ""))
        detail = f"{args.action} by the operator (listserv members {args.action})"
    changed = 0
    now = _now()
    async with store.transaction() as db:
        for address, name, role, employer in pairs:
            if args.action == "remove":
                changed += await member_data.remove(
                    db, list_address=mlist.address, address=address, now=now,
                    event="removed", detail=detail)
            else:
                changed += await member_data.add(
                    db, list_address=mlist.address, address=address, now=now,
                    display_name=name, language=mlist.language, event="added", detail=detail,
                    role=role, employer_type=employer)
    for problem in problems:
        print(f"{getattr(args, 'file', '')}: line {problem.line}: {problem.text}", file=sys.stderr)
    verb = "removed" if args.action == "remove" else "added"
    print(f"{changed} {verb}, {len(pairs) - changed} unchanged, {len(problems)} skipped")
    return 0


async def _enable(store: Store, mlist: ListConfig, addresses: list[str]) -> int:
    """Undo a disable for bounces; the next disable is announced again."""
    now = _now()
    changed = 0
    async with store.transaction() as db:
        for raw in addresses:
            address = normalise_address(raw)
            if address is None:
                print(f"not a valid address: {raw!r}", file=sys.stderr)
                return 1
            cursor = await db.execute(
                "UPDATE members SET status = 'enabled', disabled_reason = '', bounce_score = 0,"
                " disabled_notified_at = NULL WHERE list_address = ? AND address = ?"
                " AND status = 'disabled'", (mlist.address, address))
            if cursor.rowcount:
                changed += 1
                await member_data.log_consent(
                    db, list_address=mlist.address, address=address, event="enabled", now=now,
                    detail="delivery enabled again by the operator (listserv members enable)")
    print(f"{changed} enabled, {len(addresses) - changed} unchanged")
    return 0


async def _held(cfg: Config, store: Store, args: argparse.Namespace) -> int:
    from listserv.moderation import posts

    if args.action == "list":
        rows = await store.fetchall(
            "SELECT id, list_address, sender, subject, reason, created_at, state FROM posts"
            " WHERE state IN ('held', 'parked') ORDER BY id")
        for r in rows:
            mark = "  PARKED" if r["state"] == "parked" else ""
            print(f"{r['id']:>5}  {_local(cfg, from_iso(r['created_at']))}  {r['list_address']}"
                  f"  {r['sender']}  {r['subject'] or '-'}  ({r['reason']}){mark}")
        parked = sum(r["state"] == "parked" for r in rows)
        print(f"{len(rows) - parked} held post(s)"
              + (f", {parked} parked (discard with 'listserv held discard ID')" if parked
                 else ""), file=sys.stderr)
        return 0
    row = await store.fetchone(
        "SELECT p.*, unseal(i.raw) AS raw FROM posts p JOIN inbox i ON i.id = p.inbox_id"
        " WHERE p.id = ?",
        (args.id,))
    if row is None:
        print(f"no post {args.id}", file=sys.stderr)
        return 1
    if args.action == "show" and row["state"] == "parked":
        # Parsing it is what failed: show the first header lines as they came.
        print(f"State: parked  Reason: {row['reason']}  Size: {row['size']}")
        print()
        head = header_block(row["raw"] or b"")[:4000].decode("utf-8", "replace")
        print("\n".join(line[:200] for line in head.splitlines()[:30]))
        return 0
    if args.action == "discard":
        async with store.transaction() as db:
            found = await posts.discard_any(db, args.id, by="cli", now=_now())
        print(f"post {args.id} discarded (was {found})")
        return 0
    if args.action == "show":
        msg = parse(row["raw"] or b"")
        for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID"):
            value = header_text(msg, name)
            if name == "Date":
                value = _local_date(cfg, value)
            print(f"{name}: {value}")
        held_at = from_iso(row["created_at"])
        hold_days = (cfg.find_list(row["list_address"]) or cfg.lists[0]).hold_days
        print(f"Held since: {_local(cfg, held_at)}"
              + (f" (expires {_local(cfg, held_at + timedelta(days=hold_days))})"
                 if row["state"] == "held" else ""))
        print(f"State: {row['state']}  Reason: {row['reason']}  Size: {row['size']}")
        print()
        print("\n".join(fresh_lines(body_text(msg))[:30]))
        return 0
    state = {"approve": "approved", "reject": "rejected", "discard": "discarded"}[args.action]
    reason = " ".join(getattr(args, "reason", []) or [])
    now = _now()
    mlist = _list(cfg, row["list_address"])
    async with store.transaction() as db:
        if not await posts.set_decision(db, args.id, state, by="cli", reason=reason,
                                             now=now):
            print(f"post {args.id} is {row['state']}, not held: nothing changed",
                  file=sys.stderr)
            return 1
        if state == "rejected":
            await posts.tell_rejected(db, mlist, args.id, reason, now, None)
    print(f"post {args.id} {state}"
          + ("; the daemon queues it for the members within a minute" if state == "approved"
             else ""))
    return 0


async def _privacy(cfg: Config, store: Store, args: argparse.Namespace) -> int:
    address = normalise_address(args.address) or args.address.lower()
    if args.action == "export":
        print(json.dumps(await erasure.export(store, address), indent=2, ensure_ascii=False))
        return 0
    delete_lists = frozenset(m.address for m in cfg.lists if m.archive_erasure == "delete")
    counts = await erasure.erase(store, address, _now(), archive_delete=delete_lists)
    print(f"erased {address}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    older = existing(backups_dir(cfg))
    if older:
        print(f"{len(older)} backup(s) taken before still hold it; they are pruned as new"
              f" ones are taken (the newest {KEEP} stay), so it is gone within {KEEP} days",
              file=sys.stderr)
    return 0

