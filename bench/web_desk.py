"""The coordinator's desk at 100,000 members: latency of its pages, p50 and p99.

    python bench/web_desk.py [--members 100000] [--held 30] [--requests 400]

A real ``Daemon`` with ``[web]`` on a loopback port runs in this process; the
members (and ``--held`` held posts, each with its inbox row and token, and
ten pending membership requests) are inserted straight into its database.
A moderator session is opened as a used login link would open it. Then an
aiohttp client (in the same process, so it shares the event loop and the
CPU with the server: the figures include its cost) asks, one request at a
time, for each page ``--requests`` times:

- ``members``: ``/desk/members?page=P`` for a random page P of 50;
- ``search``: ``/desk/members?q=W`` for a word W that matches a few hundred;
- ``overview``: ``/desk/`` (held posts, pending requests, the member count);
- ``post``: ``/desk/post/N`` for a random held post (parsed and shown).

It prints one line per page: requests, p50, p99 and max in milliseconds.
Target: p99 < 50 ms for the members page and the held-post page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from listserv import config as configuration  # noqa: E402
from listserv.clock import iso  # noqa: E402
from listserv.daemon import Daemon  # noqa: E402
from listserv.mail.dmarc_lookup import DmarcLookup  # noqa: E402
from listserv.web import sessions  # noqa: E402

LIST = "bench@example.com"
MODERATOR = "koordination@example.com"


def write_config(directory: Path) -> Path:
    path = directory / "listserv.toml"
    path.write_text(f"""
[server]
host = "127.0.0.1"
port = 0
data_dir = "{directory / 'var'}"

[web]
host = "127.0.0.1"
port = 0
base_url = "https://listen.example"

[[lists]]
address = "{LIST}"
display_name = "Bench"
moderators = ["{MODERATOR}"]
""", encoding="utf-8")
    return path


def fill(db_path: Path, members: int, held: int) -> None:
    """Members, held posts with their mail and token, pending requests: straight SQL."""
    now = datetime.now(UTC)
    words = ["schule", "kita", "jugend", "stadt", "amt", "netz", "hilfe", "beratung"]
    with sqlite3.connect(db_path) as db:
        db.executemany(
            "INSERT INTO members (list_address, address, address_as_given, display_name,"
            " role, language, joined_at) VALUES (?, ?, ?, ?, ?, 'de', ?)",
            ((LIST, f"m{i:06d}@{words[i % 8]}{i % 500}.example",
              f"m{i:06d}@{words[i % 8]}{i % 500}.example", f"Person {i} {words[i % 7]}",
              "SchuSo", iso(now)) for i in range(members)))
        body = ("Liebe Kolleginnen und Kollegen,\n\n" + "ein Absatz Text. " * 200 + "\n")
        for n in range(held):
            raw = (f"From: Poster {n} <poster{n}@schule.example>\r\nTo: {LIST}\r\n"
                   f"Subject: Beitrag {n}\r\nMessage-ID: <p{n}@schule.example>\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()
            cur = db.execute(
                "INSERT INTO inbox (received_at, peer, mail_from, rcpt, list_address, role,"
                " message_id, size, raw, state) VALUES (?, '127.0.0.1', ?, ?, ?, 'post', ?,"
                " ?, ?, 'done')",
                (iso(now), f"poster{n}@schule.example", LIST, LIST, f"<p{n}@schule.example>",
                 len(raw), raw))
            post = db.execute(
                "INSERT INTO posts (inbox_id, list_address, sender, subject, size, rule, reason,"
                " created_at, state) VALUES (?, ?, ?, ?, ?, 'moderate_all', 'all', ?, 'held')",
                (cur.lastrowid, LIST, f"poster{n}@schule.example", f"Beitrag {n}", len(raw),
                 iso(now))).lastrowid
            db.execute(
                "INSERT INTO tokens (token_hash, action, list_address, address, data,"
                " created_at, expires_at) VALUES (?, 'moderate_post', ?, ?, ?, ?, ?)",
                (f"h{n}", LIST, f"poster{n}@schule.example", json.dumps({"post": post}),
                 iso(now), iso(now + timedelta(days=14))))
        for n in range(10):
            db.execute(
                "INSERT INTO tokens (token_hash, action, list_address, address, data,"
                " created_at, expires_at) VALUES (?, 'approve_member', ?, ?, ?, ?, ?)",
                (f"r{n}", LIST, f"new{n}@schule.example", json.dumps({"name": f"Neu {n}"}),
                 iso(now), iso(now + timedelta(days=7))))


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = configuration.load(write_config(Path(tmp)))
        daemon = Daemon(cfg, dmarc=DmarcLookup(lambda name: asyncio.sleep(0, [])))
        await daemon.start()
        try:
            assert daemon.store is not None and daemon.web is not None
            started = time.perf_counter()
            await asyncio.to_thread(fill, daemon.store.path, args.members, args.held)
            print(f"filled {args.members} members, {args.held} held posts in"
                  f" {time.perf_counter() - started:.1f} s")
            session_id, _ = await sessions.open_session(daemon.store, MODERATOR,
                                                        daemon.clock(), 600)
            host, port = daemon.web.address or ("127.0.0.1", 0)
            base = f"http://{host}:{port}"
            posts = [r["id"] for r in await daemon.store.fetchall("SELECT id FROM posts")]
            pages = {
                "members": lambda: f"/desk/members?page={random.randint(1, args.members // 50)}",
                "search": lambda: f"/desk/members?q=kita{random.randint(0, 499)}",
                "overview": lambda: "/desk/",
                "post": lambda: f"/desk/post/{random.choice(posts)}",
            }
            async with aiohttp.ClientSession(
                    cookies={sessions.COOKIE: session_id}) as http:
                for name, path in pages.items():
                    times = []
                    for _ in range(args.requests):
                        t0 = time.perf_counter()
                        async with http.get(base + path()) as resp:
                            await resp.read()
                            assert resp.status == 200, (name, resp.status)
                        times.append((time.perf_counter() - t0) * 1000)
                    times.sort()
                    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
                    print(f"{name:9} n={len(times)}  p50 {statistics.median(times):6.1f} ms"
                          f"  p99 {p99:6.1f} ms  max {times[-1]:6.1f} ms")
        finally:
            await daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--held", type=int, default=30)
    parser.add_argument("--requests", type=int, default=400)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
