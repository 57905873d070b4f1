"""Fan-out: one 20 KB post, DKIM-signed (RSA-2048), to N members, through a loopback sink.

    python bench/fanout.py [--members 1000 10000] [--modes bulk verp personalize]
                           [--capacity]

For each (N, mode) three processes run: the raw SMTP sink of the Mailman
baseline (``shared/peers/mailman3/sink.py --impl raw``, which counts list
traffic and stamps the first and last message), a listserv daemon (this
script with ``--child``: a real ``Daemon`` with the SMTP transport pointed at
the sink, N members inserted straight into its database), and this driver.

t0 is the moment the post's ``outbox.enqueue_post`` transaction has
committed (the daemon is then woken as the POST handler wakes it). With
``--from-250`` the post is instead sent over SMTP to the daemon of an open
list (``post_policy = "open"``, the poster a member) and t0 is the moment
its ``250`` arrives: that adds intake, the processor, the policy and the
list copy (DMARC answers come from a stub, as from a warm cache).

``--defer-every K`` is the retry pass: the sink (aiosmtpd, in its own
process) answers ``451`` to the first attempt of every K-th recipient; the
daemon's clock is moved past the first retry time once the first pass is
through, and the report gives both passes next to the same sink without
deferrals, so the cost of retries can be compared with their share.

Reported: recipients/s over
t0 -> last copy at the sink, first and last copy after t0, the time until
every row is recorded ``sent``, the daemon's peak RSS (VmHWM; the signing
processes separately), and with ``--capacity`` the sink's own ceiling for
the same transaction shape (``sink_capacity.py --impl raw``: one plain
client, so a lower bound for a sink that our 4 connections share).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS = ROOT.parent / "shared" / "peers" / "mailman3"
LIST = "bench@example.com"
BOUNCES_PREFIX = "bench-bounces"
MM3_PYTHON = Path("/tmp/mm3/venv/bin/python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def post_bytes(size: int = 20 * 1024) -> bytes:
    head = (f"From: Anna Beispiel <member000000@example.org>\r\nTo: {LIST}\r\n"
            "Subject: Einladung zum Fachtag Schulsozialarbeit\r\n"
            "Date: Wed, 25 Nov 2026 10:00:00 +0100\r\nMessage-ID: <fanout@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode()
    line = "Liebe Kolleginnen und Kollegen, herzliche Einladung zum Fachtag im März.\r\n"
    body = (line * (size // len(line.encode()) + 1)).encode()
    return head + body[: size - len(head)]


# -- the daemon side (--child) ------------------------------------------------------


async def child(args: argparse.Namespace) -> dict[str, object]:
    from email import message_from_bytes
    from email.message import EmailMessage
    from email.policy import default

    from listserv import config as configuration
    from listserv.daemon import Daemon
    from listserv.delivery import transform
    from listserv.delivery.plan import RETRY_SCHEDULE
    from listserv.delivery.signing import generate_key, load_private_key, public_key_record
    from listserv.mail.dmarc_lookup import DmarcLookup
    from listserv.outbox import queue as outbox
    from tests.conftest import write_config

    work = Path(args.dir)
    key = work / "dkim.key"
    generate_key(key, "rsa", 2048)
    # The verifying sink checks its sample against this record once it stops.
    (work / "dkim.txt").write_text(public_key_record(load_private_key(key)))
    personalize = args.mode == "personalize"
    extra = (f'\n[dkim]\ndomain = "example.com"\nselector = "bench"\nprivate_key = "{key}"\n'
             '\n[web]\nbase_url = "https://lists.example.com"\n')
    path = write_config(work, delivery={
        "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": args.port,
        "smtp_starttls": "off", "verp": args.mode != "bulk", "personalize": personalize,
    }, lists=[{"address": LIST, "display_name": "Bench", "moderators": ["mod@example.com"],
               "subject_prefix": "[Bench]"}], extra=extra)
    if args.from_250:
        path.write_text(path.read_text().replace('subject_prefix = "[Bench]"',
                                                 'subject_prefix = "[Bench]"\n'
                                                 'post_policy = "open"'))
    config = configuration.load(path)

    async def no_dmarc_record(name: str) -> list[str]:
        return []

    clock = OffsetClock()
    daemon = Daemon(config, clock=clock, dmarc=DmarcLookup(no_dmarc_record))
    await daemon.start()
    assert daemon.store is not None and daemon.sender is not None
    store, sender = daemon.store, daemon.sender
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            ((LIST, f"member{i:06d}@example.org", "2026-01-01T00:00:00.000000Z")
             for i in range(args.members)))
    mlist = config.lists[0]
    msg = message_from_bytes(post_bytes(), _class=EmailMessage, policy=default)
    raw = transform.list_copy(msg, mlist, add_footer=not personalize).as_bytes()
    if sender._personal is not None:  # a daemon that runs has its signing processes up
        await sender._personal.pool.wait_ready()
    # A running daemon started its worker process with its first mail; the post here
    # is the first, so start it now (forkserver start ~0.3 s here), as it would be.
    await daemon.worker.call(len, b"")
    rss_idle = vm_hwm_kib()
    if args.from_250:
        assert daemon.address is not None
        smtp = aiosmtplib.SMTP(hostname=daemon.address[0], port=daemon.address[1],
                               start_tls=False)
        await smtp.connect()
        await smtp.sendmail("member000000@example.org", [LIST], post_bytes())
        t0 = time.time()
        await smtp.quit()
    else:
        async with store.transaction() as db:
            await outbox.enqueue_post(db, now=store.clock(), list_address=LIST,
                                      mail_from=mlist.bounces_address, raw=raw,
                                      message_id="<fanout@example.org>", inbox_id=None,
                                      verp=args.mode != "bulk", personalize=personalize)
        t0 = time.time()
        sender.wake()
    first_pass_s = None
    if args.defer_every:
        deferred_expected = args.members // args.defer_every
        while sender.sent + sender.failed < args.members - deferred_expected:
            await asyncio.sleep(0.005)
        first_pass_s = round(time.time() - t0, 3)
        while sender.deferred < deferred_expected:
            await asyncio.sleep(0.005)
        clock.offset += RETRY_SCHEDULE[0].total_seconds() + 1
        t_retry = time.time()
        sender.wake()
    while sender.sent + sender.failed < args.members:
        await asyncio.sleep(0.005)
    t_recorded = time.time() - t0
    pool_pids: list[int] = []
    if sender._personal is not None:
        pool_pids = sender._personal.pool.pids()
    pool_rss = [vm_hwm_kib(pid) for pid in pool_pids]
    result = {"t0": t0, "recorded_s": round(t_recorded, 3), "sent": sender.sent,
              "first_pass_s": first_pass_s,
              "retry_pass_s": round(time.time() - t_retry, 3) if args.defer_every else None,
              "failed": sender.failed, "deferred_attempts": sender.deferred,
              "commits": sender.commits,
              "rss_peak_mib": round(vm_hwm_kib() / 1024, 1),
              "rss_before_post_mib": round(rss_idle / 1024, 1),
              "pool_rss_mib": [round(k / 1024, 1) for k in pool_rss],
              "cpu_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 2),
              "copy_bytes": len(raw)}
    await daemon.stop()
    return result


# -- the driver ----------------------------------------------------------------------


class OffsetClock:
    """Wall time plus an offset the bench moves to make retries due at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)


DEFER_SINK = r'''
import asyncio, json, sys, time
from aiosmtpd.smtp import SMTP

every, port, stats = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
seen, count = set(), {"rcpts": 0, "msgs": 0, "first": None, "last": None, "refused": 0}

class Sink:
    async def handle_RCPT(self, server, session, envelope, address, options):
        number = int(address[6:12]) if address.startswith("member") else 0
        if every and number % every == 0 and address not in seen:
            seen.add(address)
            count["refused"] += 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        count["first"] = count["first"] or now
        count["last"] = now
        count["rcpts"] += len(envelope.rcpt_tos)
        count["msgs"] += 1
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(Sink()), "127.0.0.1", port)
    while True:
        with open(stats + ".tmp", "w") as fh:
            json.dump(count, fh)
        import os; os.replace(stats + ".tmp", stats)
        await asyncio.sleep(0.05)

asyncio.run(main())
'''


def run_one(n: int, mode: str, *, from_250: bool = False, defer_every: int | None = None,
            sink_script: Path | None = None) -> dict[str, object]:
    """One daemon, one post; ``sink_script`` (bench/verify_sink.py) also proves every copy."""
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        port = free_port()
        stats = Path(tmp) / "sink.json"
        if defer_every is not None:  # 0: the same aiosmtpd sink without deferrals
            sink_cmd = [sys.executable, "-c", DEFER_SINK, str(defer_every), str(port),
                        str(stats)]
        elif sink_script is not None:
            sink_cmd = [sys.executable, str(sink_script), "--port", str(port), "--stats",
                        str(stats), "--prefix", BOUNCES_PREFIX,
                        "--dkim-txt", str(Path(tmp) / "dkim.txt")]
        else:
            sink_cmd = [sys.executable, str(PEERS / "sink.py"), "--impl", "raw", "--port",
                        str(port), "--stats", str(stats), "--prefix", BOUNCES_PREFIX]
        sink = subprocess.Popen(sink_cmd)
        try:
            for _ in range(200):
                if stats.exists():
                    break
                time.sleep(0.02)
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--members", str(n), "--mode", mode,
                 "--port", str(port), "--dir", tmp,
                 *(["--from-250"] if from_250 else []),
                 *(["--defer-every", str(defer_every)] if defer_every else [])],
                capture_output=True, text=True, check=False, timeout=3600)
            if out.returncode != 0:
                raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            time.sleep(0.2)  # the sink writes its counters every 50 ms
            sink.terminate()
            sink.wait(10)
        counted = json.loads(stats.read_text())
    t0 = result["t0"]
    last = counted["last"] - t0
    return {
        "members": n, "mode": mode, "delivered": counted["rcpts"],
        "transactions": counted["msgs"], "seconds": round(last, 3),
        "first_to_last_s": round(counted["last"] - counted["first"], 3),
        "sink": counted,
        "rcpt_per_s": round(n / last), "first_ms": round((counted["first"] - t0) * 1000, 1),
        **{k: v for k, v in result.items() if k != "t0"},
    }


def capacity(msgs: int, rcpts: int) -> dict[str, object] | None:
    if not MM3_PYTHON.exists():  # sink_capacity.py needs psutil, which the Mailman venv has
        return None
    out = subprocess.run([str(MM3_PYTHON), str(PEERS / "sink_capacity.py"), "--impl", "raw",
                          "--msgs", str(msgs), "--rcpts", str(rcpts), "--port",
                          str(free_port())], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--modes", nargs="+", default=["bulk", "verp", "personalize"])
    parser.add_argument("--capacity", action="store_true", help="also measure the sink alone")
    parser.add_argument("--from-250", action="store_true",
                        help="send the post over SMTP to an open list; t0 = its 250")
    parser.add_argument("--defer-every", type=int, default=None,
                        help="retry pass: 451 to the first attempt of every K-th recipient")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.members = args.members[0]
        print(json.dumps(asyncio.run(child(args))))
        return
    for n in args.members:
        for mode in args.modes:
            if args.defer_every:
                base = run_one(n, mode, defer_every=0)
                print(json.dumps({"sink": "aiosmtpd, no deferrals", **base}), flush=True)
            row = run_one(n, mode, from_250=args.from_250, defer_every=args.defer_every)
            if args.capacity:
                shape = (n // 50, 50) if mode == "bulk" else (n, 1)
                cap = capacity(*shape)
                if cap is not None:
                    row["sink_ceiling_rcpt_per_s"] = cap["rcpt_per_s"]
                    row["of_ceiling"] = round(row["rcpt_per_s"] / cap["rcpt_per_s"], 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
