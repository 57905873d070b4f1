"""Intake throughput: listserv (durable commits) against a bare aiosmtpd handler.

    python bench/intake.py [-n 3000] [-k 20] [--size 5000]

Both servers run as their own process on loopback; the same client (K
concurrent aiosmtplib connections, N messages in all, one transaction per
message) is pointed at each in turn. listserv commits every message to
SQLite (WAL, synchronous=FULL) before its 250; the bare handler only
counts. Prints messages/s of each and the ratio, and checks that every
message listserv acknowledged is in its database.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import LIST, write_config  # noqa: E402

BARE = r'''
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: SMTP(Count(), enable_SMTPUTF8=True), "127.0.0.1", 0)
    print(f"port={srv.sockets[0].getsockname()[1]}", file=sys.stderr, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
'''


def start(cmd: list[str], cwd: Path, ready: str) -> tuple[subprocess.Popen, int]:
    """Start a server process and read its port from the first stderr line matching ``ready``."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=cwd)
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(ready, line)
        if match:
            # Keep draining the log (a line per message) so the server never blocks on it.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(match.group(1))
    raise SystemExit(f"server did not start: {' '.join(cmd)}")


def message(i: int, size: int) -> bytes:
    body = ("Liebe Kolleginnen und Kollegen, der Fachtag findet statt.\r\n") * (size // 58 + 1)
    return (f"From: anna@example.org\r\nTo: {LIST}\r\nSubject: Bench {i}\r\n"
            f"Message-ID: <bench-{i}@example.org>\r\n\r\n{body[:size]}\r\n").encode()


async def drive(port: int, n: int, k: int, size: int) -> tuple[float, int]:
    counter = iter(range(n))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
        await smtp.connect()
        for i in counter:
            errors, _ = await smtp.sendmail("anna@example.org", [LIST], message(i, size))
            ok += not errors
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(k)))
    return time.perf_counter() - started, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="messages per run")
    parser.add_argument("-k", type=int, default=20, help="concurrent SMTP clients")
    parser.add_argument("--size", type=int, default=5000, help="message size in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"bare aiosmtpd": [], "listserv": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        cfg = write_config(tmpdir)
        bare, bare_port = start([sys.executable, "-c", BARE], tmpdir, r"port=(\d+)")
        ls, ls_port = start([sys.executable, "-m", "listserv", "serve", "--config", str(cfg)],
                            tmpdir, r"event=listening .*port=(\d+)")
        try:
            acked = 0
            for _ in range(args.rounds):   # alternate, so machine noise hits both alike
                seconds, _ok = asyncio.run(drive(bare_port, args.n, args.k, args.size))
                results["bare aiosmtpd"].append(args.n / seconds)
                seconds, ok = asyncio.run(drive(ls_port, args.n, args.k, args.size))
                results["listserv"].append(args.n / seconds)
                acked += ok
        finally:
            ls.terminate()
            ls.wait(timeout=60)
            bare.terminate()
            bare.wait(timeout=10)
        with sqlite3.connect(tmpdir / "var" / "listserv.sqlite3") as db:
            stored = db.execute("SELECT count(*) FROM inbox").fetchone()[0]
    print(f"N={args.n} messages x {args.rounds} rounds, K={args.k} clients, "
          f"{args.size} bytes each")
    for name, rates in results.items():
        each = ", ".join(f"{r:.0f}" for r in rates)
        print(f"  {name:14s} {max(rates):8.0f} msg/s best, "
              f"{sorted(rates)[len(rates) // 2]:8.0f} median  ({each})")
    ratio = sorted(results["listserv"])[args.rounds // 2] / sorted(
        results["bare aiosmtpd"])[args.rounds // 2]
    print(f"  ratio listserv/bare (medians): {ratio:.2f}")
    print(f"  acknowledged {acked}, stored {stored}: {'OK' if stored == acked else 'LOST MAIL'}")
    if stored != acked:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
