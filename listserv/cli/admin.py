"""``listserv members …``, ``listserv held …`` and ``listserv privacy …``.

These open the database directly (WAL lets them run beside the daemon).
Changes that send mail only queue it; the running daemon's sender and its
``publish_approved`` job pick it up within a minute.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from listserv.config import Config, ListConfig
from listserv.errors import ConfigError
from listserv.mail.message import normalise_address, parse
from listserv.mail.text import body_text, fresh_lines, header_text
from listserv.membership import erasure
from listserv.membership import members as member_data
from listserv.membership.memberfile import read_members
from listserv.ops.backup import KEEP, backups_dir, existing
from listserv.store.database import Store


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    members = sub.add_parser("members", help="manage the members of a list")
    msub = members.add_subparsers(dest="action", required=True)
    for name, text in [("list", "print the members"), ("export", "write members as CSV")]:
        p = msub.add_parser(name, help=text, parents=[common])
        p.add_argument("list")
    p = msub.add_parser("add", help="add members (no confirmation mail)", parents=[common])
    p.add_argument("list")
    p.add_argument("addresses", nargs="+")
    p = msub.add_parser("remove", help="remove members (no mail)", parents=[common])
    p.add_argument("list")
    p.add_argument("addresses", nargs="+")
    p = msub.add_parser("enable", help="deliver again to members disabled for bounces"
                        " (score back to 0)", parents=[common])
    p.add_argument("list")
    p.add_argument("addresses", nargs="+")
    p = msub.add_parser("import", help="import a CSV (Outlook/Excel, ; or ,, cp1252 or UTF-8)",
                        parents=[common])
    p.add_argument("list")
    p.add_argument("file", type=Path)
    # DSGVO, as the membership issue names them (same as "privacy export|erase"):
    p = msub.add_parser("export-data", help="everything stored about one address, as JSON",
                        parents=[common])
    p.add_argument("address")
    p = msub.add_parser("forget", help="erase everything stored about one address",
                        parents=[common])
    p.add_argument("address")

    held = sub.add_parser("held", help="the moderation queue")
    hsub = held.add_subparsers(dest="action", required=True)
    hsub.add_parser("list", help="posts waiting for a decision", parents=[common])
    for name in ("show", "approve", "discard"):
        p = hsub.add_parser(name, help=f"{name} a held post", parents=[common])
        p.add_argument("id", type=int)
    p = hsub.add_parser("reject", help="reject a held post; the reason goes to the poster",
                        parents=[common])
    p.add_argument("id", type=int)
    p.add_argument("reason", nargs="*")

    privacy = sub.add_parser("privacy", help="DSGVO: one person's data")
    psub = privacy.add_subparsers(dest="action", required=True)
    p = psub.add_parser("export", help="print everything stored about an address (JSON)",
                        parents=[common])
    p.add_argument("address")
    p = psub.add_parser("erase", help="delete everything stored about an address",
                        parents=[common])
    p.add_argument("address")


def _list(cfg: Config, address: str) -> ListConfig:
    mlist = cfg.find_list(address)
    if mlist is None:
        names = ", ".join(m.address for m in cfg.lists)
        raise ConfigError(f"{cfg.path}: no list {address!r} configured (lists: {names})")
    return mlist


def _now() -> datetime:
    return datetime.now(UTC)


async def run(cfg: Config, args: argparse.Namespace) -> int:
    store = await Store.open(cfg.database_path)
    try:
        handler = {"members": _members, "held": _held, "privacy": _privacy}[args.command]
        return await handler(cfg, store, args)
    finally:
        await store.close()


async def _members(cfg: Config, store: Store, args: argparse.Namespace) -> int:
    if args.action in ("export-data", "forget"):
        args.action = "export" if args.action == "export-data" else "erase"
        return await _privacy(cfg, store, args)
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
            "SELECT id, list_address, sender, subject, reason, created_at FROM posts"
            " WHERE state = 'held' ORDER BY id")
        for r in rows:
            print(f"{r['id']:>5}  {r['created_at'][:16].replace('T', ' ')}  {r['list_address']}"
                  f"  {r['sender']}  {r['subject'] or '-'}  ({r['reason']})")
        print(f"{len(rows)} held post(s)", file=sys.stderr)
        return 0
    row = await store.fetchone(
        "SELECT p.*, unseal(i.raw) AS raw FROM posts p JOIN inbox i ON i.id = p.inbox_id"
        " WHERE p.id = ?",
        (args.id,))
    if row is None:
        print(f"no post {args.id}", file=sys.stderr)
        return 1
    if args.action == "show":
        msg = parse(row["raw"] or b"")
        for name in ("From", "To", "Cc", "Subject", "Date", "Message-ID"):
            print(f"{name}: {header_text(msg, name)}")
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
    counts = await erasure.erase(store, address, _now())
    print(f"erased {address}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    older = existing(backups_dir(cfg))
    if older:
        print(f"{len(older)} backup(s) taken before still hold it; they are pruned as new"
              f" ones are taken (the newest {KEEP} stay), so it is gone within {KEEP} days",
              file=sys.stderr)
    return 0

