"""Load: K concurrent SMTP clients for T seconds while a fan-out runs.

    python bench/load.py [--clients 20] [--seconds 10] [--members 2000]

Three processes: the raw SMTP sink of the Mailman baseline
(``shared/peers/mailman3/sink.py --impl raw``) as the relay, a listserv daemon
(``python -m listserv serve``, SMTP transport to the sink, N members inserted
straight into its database, ``post_policy = "moderate_non_members"``), and
this driver. A member's post starts the fan-out to N members; at the same
moment K clients (non-members, one connection each, a new transaction as
soon as the last one is answered) send posts, which are held for the
moderator, for T seconds.

Printed: accepted messages/s, the 50th and 99th percentile of the time from
the end of DATA to the server's answer, refusals (4xx/5xx), and the check
that every message answered 250 is in the store (lost must be 0); then the
fan-out's copies at the sink. Exit status 1 when anything accepted is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SINK = ROOT.parent / "shared" / "peers" / "mailman3" / "sink.py"
LIST = "bench@example.com"
MODERATOR = "mod@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(data_dir: Path, sink_port: int) -> str:
    return f"""[server]
host = "127.0.0.1"
port = 0
data_dir = "{data_dir}"
max_connections = 500
hostname = "bench.example.com"

[delivery]
transport = "smtp"
smtp_host = "127.0.0.1"
smtp_port = {sink_port}
smtp_starttls = "off"
verp = false

[[lists]]
address = "{LIST}"
display_name = "Bench"
moderators = ["{MODERATOR}"]
post_policy = "moderate_non_members"
dmarc_mitigation = "never"
replies_per_address_per_day = 5
"""


def message(sender: str, msgid: str, size: int = 2000) -> bytes:
    body = ("Liebe Kolleginnen und Kollegen, " * (size // 32 + 1))[:size]
    return (f"From: {sender}\r\nTo: {LIST}\r\nSubject: Last {msgid}\r\n"
            f"Message-ID: {msgid}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


async def client(k: int, port: int, until: float, accepted: list[str],
                 times: list[float], refused: list[str]) -> None:
    import aiosmtplib

    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
    await smtp.connect()
    await smtp.ehlo()
    i = 0
    while time.monotonic() < until:
        i += 1
        msgid = f"<load-{k}-{i}@bench.example>"
        await smtp.mail(f"c{k}@clients.example")
        await smtp.rcpt(LIST)
        started = time.perf_counter()
        try:
            # DATA, the content and the final dot: the answer time is commit time.
            await smtp.data(message(f"c{k}@clients.example", msgid))
        except aiosmtplib.SMTPResponseException as exc:
            refused.append(f"{exc.code} {exc.message}")
            continue
        times.append(time.perf_counter() - started)
        accepted.append(msgid)
    await smtp.quit()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--members", type=int, default=2000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="listserv-load-"))
    sink_port = free_port()
    stats = work / "sink.json"
    sink = subprocess.Popen([sys.executable, str(SINK), "--impl", "raw", "--port",
                             str(sink_port), "--stats", str(stats), "--prefix", "bench-bounces"])
    config = work / "listserv.toml"
    config.write_text(config_text(work / "var", sink_port))
    daemon = subprocess.Popen([sys.executable, "-m", "listserv", "serve", "--config",
                               str(config)], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert daemon.stderr is not None
        port = 0
        for line in daemon.stderr:
            if m := re.search(r"event=listening .*port=(\d+)", line):
                port = int(m.group(1))
                break
        # The log keeps coming: drain it in the background so the daemon never blocks.
        import threading

        threading.Thread(target=lambda: [None for _ in daemon.stderr or []],
                         daemon=True).start()
        db_path = work / "var" / "listserv.sqlite3"
        members = [f"member{i:06d}@example.org" for i in range(args.members)]
        with sqlite3.connect(db_path, timeout=30) as db:
            db.executemany("INSERT INTO members (list_address, address, joined_at)"
                           " VALUES (?, ?, '2026-01-01T00:00:00.000000Z')",
                           [(LIST, m) for m in members])
        import smtplib

        with smtplib.SMTP("127.0.0.1", port) as smtp:  # a member's post: the fan-out
            smtp.sendmail(members[0], [LIST], message(members[0], "<fanout@bench.example>"))
        accepted: list[str] = []
        times: list[float] = []
        refused: list[str] = []
        started = time.monotonic()
        until = started + args.seconds

        async def run() -> None:
            await asyncio.gather(*(client(k, port, until, accepted, times, refused)
                                   for k in range(args.clients)))

        asyncio.run(run())
        elapsed = time.monotonic() - started
        with sqlite3.connect(db_path, timeout=30) as db:
            stored = {r[0] for r in db.execute("SELECT message_id FROM inbox")}
        lost = [m for m in accepted if m not in stored]
        # Let the fan-out finish, then read the sink's counters.
        deadline = time.monotonic() + 120
        fanout_sent = 0
        while time.monotonic() < deadline:
            with sqlite3.connect(db_path, timeout=30) as db:
                left = db.execute("SELECT count(*) FROM deliveries d JOIN outgoing o"
                                  " ON o.id = d.outgoing_id WHERE o.kind = 'post'"
                                  " AND d.state != 'sent'").fetchone()[0]
            if not left:
                fanout_sent = db.execute(
                    "SELECT count(*) FROM deliveries d JOIN outgoing o ON o.id = d.outgoing_id"
                    " WHERE o.kind = 'post' AND d.state = 'sent'").fetchone()[0]
                break
            time.sleep(0.2)  # a driver polling a state, not a wait for the daemon's work
        time.sleep(0.3)  # the sink writes its stats file every 0.05 s
        sink_stats = json.loads(stats.read_text()) if stats.exists() else {}
        result = {
            "clients": args.clients, "seconds": round(elapsed, 2), "members": args.members,
            "accepted": len(accepted), "accepted_per_s": round(len(accepted) / elapsed, 1),
            "answer_p50_ms": round(percentile(times, 0.50) * 1000, 1),
            "answer_p99_ms": round(percentile(times, 0.99) * 1000, 1),
            "refused": len(refused), "lost": len(lost),
            "fanout_sent": fanout_sent,
            "sink_rcpts_total": sink_stats.get("rcpts"),  # post + held notices + answers
        }
        print(json.dumps(result))
        return 1 if lost else 0
    finally:
        daemon.terminate()
        daemon.wait(30)
        sink.terminate()
        sink.wait(10)


if __name__ == "__main__":
    sys.exit(main())
