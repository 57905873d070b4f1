"""The store backends side by side: intake msg/s and VERP fan-out rcpt/s (issue 15).

    python bench/store.py [--rounds 3] [-n 1000] [-k 20] [--members 5000]

Three setups, in one run, measured in alternating rounds (sqlite, pg1, pg2,
sqlite, …) so that the noise of the shared machine falls on all of them:

* ``sqlite``: one daemon, SQLite (WAL, ``synchronous = FULL``);
* ``pg1``: one daemon on PostgreSQL;
* ``pg2``: two daemons (two data_dirs, the same keys) on one PostgreSQL
  database; the bench sends half of its SMTP clients to each, as Postfix
  spreads mail over two LMTP destinations.

Every daemon is a ``listserv serve`` process relaying to one sink (the raw
sink of the Mailman comparison, ``shared/peers/mailman3/sink.py --impl raw``,
which counts the list's envelope senders). PostgreSQL is a throwaway cluster
made with ``tests/pg.py`` (unix socket), but with ``fsync = on``: SQLite's
``synchronous = FULL`` and PostgreSQL's ``synchronous_commit = on`` then
both wait for the disk before a ``250``, a fair comparison.

Intake: N messages of 5 KB from K concurrent aiosmtplib clients to a
moderated list (each one is held and gets a moderator notice meanwhile, as
in bench/intake.py). Fan-out: one post over SMTP to an open list of
``--members`` members with VERP (one envelope a member, unsigned); t0 is
its ``250``, the end the last copy at the sink. Before each measurement the
bench waits until the setup is idle (inbox handled, deliveries sent), so
one measurement's leftover work does not slow the next. Prints medians and
ratios; the raw figures go to bench/results/store-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import aiosmtplib
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.fanout import PEERS, free_port  # noqa: E402
from bench.intake import message, start  # noqa: E402
from listserv.store import keys  # noqa: E402
from tests import pg  # noqa: E402
from tests.conftest import toml_value, write_config  # noqa: E402

INTAKE_LIST = "intake@example.com"
FANOUT_LIST = "bench@example.com"
POSTER = "member000000@example.org"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Setup:
    """One, or two, daemons on one store; where to reach them and how to ask the store."""

    def __init__(self, name: str, base: Path, sink_port: int, url: str, daemons: int,
                 members: int) -> None:
        self.name, self.url, self.members = name, url, members
        extra = f"\n[store]\nurl = {toml_value(url)}\n" if url else ""
        lists = [{"address": INTAKE_LIST, "display_name": "Intake", "moderators":
                  ["mod@example.com"]},
                 {"address": FANOUT_LIST, "display_name": "Bench", "moderators":
                  ["mod@example.com"], "post_policy": "open", "dmarc_mitigation": "never"}]
        self.configs = []
        for host in "ab"[:daemons]:
            (base / name / host).mkdir(parents=True)
            self.configs.append(write_config(base / name / host, lists=lists, delivery={
                "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": sink_port,
                "smtp_starttls": "off", "verp": True}, extra=extra))
        subprocess.run([sys.executable, "-m", "listserv", "init", "--config",
                        str(self.configs[0])], env=ENV, check=True, capture_output=True)
        first = self.configs[0].parent / "var"
        for other in self.configs[1:]:   # the second host gets the first one's keys
            keys.private_dir(other.parent / "var")
            for name_ in (keys.MAIL_KEY, keys.VERP_KEY, keys.UNSUBSCRIBE_KEY):
                shutil.copy2(first / name_, other.parent / "var" / name_)
        rows = [(FANOUT_LIST, f"member{i:06d}@example.org", "2026-01-01T00:00:00.000000Z")
                for i in range(members)]
        if url:
            asyncio.run(self._pg("copy", rows))
        else:
            with contextlib.closing(sqlite3.connect(first / "listserv.sqlite3")) as db, db:
                db.executemany("INSERT INTO members (list_address, address, joined_at)"
                               " VALUES (?, ?, ?)", rows)
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        for config in self.configs:
            proc, port = start([sys.executable, "-m", "listserv", "serve", "--config",
                                str(config)], config.parent, r"event=listening .*port=(\d+)")
            self.procs.append(proc)
            self.ports.append(port)

    async def _pg(self, what: str, rows: list[tuple[str, str, str]] | None = None) -> int:
        conn = await asyncpg.connect(self.url)
        try:
            if what == "copy":
                await conn.copy_records_to_table(
                    "members", columns=["list_address", "address", "joined_at"], records=rows)
                return 0
            return int(await conn.fetchval(BUSY))
        finally:
            await conn.close()

    def busy(self) -> int:
        """Inbox rows not handled plus deliveries not done: 0 when the setup is idle."""
        if self.url:
            return asyncio.run(self._pg("busy"))
        path = self.configs[0].parent / "var" / "listserv.sqlite3"
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            return int(db.execute(BUSY).fetchone()[0])

    def settle(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: still busy after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=60)


BUSY = ("SELECT (SELECT count(*) FROM inbox WHERE state IN ('new', 'processing'))"
        " + (SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending'))")


async def intake(ports: list[int], n: int, k: int, offset: int) -> tuple[float, int]:
    """N messages from K clients, client i to ``ports[i % len(ports)]``: (msg/s, acked)."""
    counter = iter(range(offset, offset + n))
    ok = 0

    async def client(port: int) -> None:
        nonlocal ok
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        for i in counter:
            errors, _ = await smtp.sendmail("anna@example.org", [INTAKE_LIST],
                                            message(i, 5000))
            ok += not errors
        await smtp.quit()

    began = time.perf_counter()
    await asyncio.gather(*(client(ports[i % len(ports)]) for i in range(k)))
    return n / (time.perf_counter() - began), ok


def sink_stats(path: Path) -> dict[str, float]:
    for _ in range(100):
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text())
        time.sleep(0.01)
    raise SystemExit(f"cannot read the sink's counters at {path}")


def fanout(setup: Setup, stats: Path, tag: str) -> float:
    """One post to the open list through the first daemon; rcpt/s from its 250 to the last copy."""
    before = sink_stats(stats)["rcpts"]
    raw = (f"From: {POSTER}\r\nTo: {FANOUT_LIST}\r\nSubject: Fachtag {tag}\r\n"
           f"Message-ID: <store-{tag}@example.org>\r\nDate: Mon, 30 Nov 2026 17:00:00 +0100\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n"
           + "Liebe Kolleginnen und Kollegen, herzliche Einladung zum Fachtag.\r\n" * 300
           ).encode()

    async def post() -> float:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=setup.ports[0], start_tls=False)
        await smtp.connect()
        await smtp.sendmail(POSTER, [FANOUT_LIST], raw)
        t0 = time.time()
        await smtp.quit()
        return t0

    t0 = asyncio.run(post())
    deadline = time.monotonic() + 600
    while (got := sink_stats(stats))["rcpts"] < before + setup.members:
        if time.monotonic() > deadline:
            raise SystemExit(f"{setup.name}: fan-out incomplete after 600 s")
        time.sleep(0.02)
    return setup.members / (float(got["last"]) - t0)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="intake: messages per round")
    parser.add_argument("-k", type=int, default=20, help="intake: concurrent SMTP clients")
    parser.add_argument("--members", type=int, default=5000, help="fan-out: members")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    bin_dir = pg.find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    server = pg.start_server(bin_dir)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    setups: list[Setup] = []
    sink = None
    try:
        # Durable like production: fsync on (tests/pg.py turns it off for the tests).
        server.psql("ALTER SYSTEM SET fsync = on", "SELECT pg_reload_conf()")
        settings = {name: server.psql(f"SHOW {name}").stdout.strip() for name in
                    ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                     "wal_sync_method")}
        assert settings["fsync"] == "on" and settings["synchronous_commit"] == "on", settings
        stats = tmp / "sink.json"
        port = free_port()
        sink = subprocess.Popen([sys.executable, str(PEERS / "sink.py"), "--impl", "raw",
                                 "--port", str(port), "--stats", str(stats),
                                 "--prefix", "bench-bounces"])
        sink_stats(stats)
        setups = [Setup("sqlite", tmp, port, "", 1, args.members),
                  Setup("pg1", tmp, port, server.url(server.create_database()), 1,
                        args.members),
                  Setup("pg2", tmp, port, server.url(server.create_database()), 2,
                        args.members)]
        load_before = loadavg()
        figures: dict[str, dict[str, list[float]]] = {
            s.name: {"intake_msg_s": [], "fanout_rcpt_s": []} for s in setups}
        acked = 0
        for r in range(args.rounds):
            for s in setups:
                s.settle()
                rate, ok = asyncio.run(intake(s.ports, args.n, args.k, r * args.n))
                figures[s.name]["intake_msg_s"].append(round(rate, 1))
                acked += ok
                s.settle()
                figures[s.name]["fanout_rcpt_s"].append(
                    round(fanout(s, stats, f"{s.name}-{r}"), 1))
                print(f"round {r + 1} {s.name}: intake {rate:.0f} msg/s,"
                      f" fan-out {figures[s.name]['fanout_rcpt_s'][-1]:.0f} rcpt/s", flush=True)
        load_after = loadavg()
    finally:
        for s in setups:
            s.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    medians = {name: {k: median(v) for k, v in f.items()} for name, f in figures.items()}
    ratios = {f"{a}/{b}": {k: round(medians[a][k] / medians[b][k], 2) for k in medians[a]}
              for a, b in (("pg1", "sqlite"), ("pg2", "sqlite"), ("pg2", "pg1"))}
    when = datetime.now(UTC)
    report = {
        "when": when.isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "load_before": load_before, "load_after": load_after,
        "postgresql": settings, "sqlite": "WAL, synchronous=FULL",
        "intake": {"messages": args.n, "clients": args.k, "bytes": 5000},
        "fanout": {"members": args.members, "mode": "verp, unsigned",
                   "connections_per_daemon": 4},
        "rounds": args.rounds, "figures": figures, "medians": medians, "ratios": ratios,
        "acknowledged": acked}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"store-{when:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\nload average {load_before} -> {load_after}; PostgreSQL {settings}")
    print(f"{'setup':8s} {'intake msg/s':>14s} {'fan-out rcpt/s':>16s}   (medians of"
          f" {args.rounds})")
    for name, m in medians.items():
        print(f"{name:8s} {m['intake_msg_s']:14.0f} {m['fanout_rcpt_s']:16.0f}"
              f"   {figures[name]}")
    for pair, r in ratios.items():
        print(f"{pair:12s} intake {r['intake_msg_s']:.2f}  fan-out {r['fanout_rcpt_s']:.2f}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
