"""The raw SMTP sink of the Mailman peer, with the proof a skeptic asks for.

Same wire behaviour and command line as ``shared/peers/mailman3/sink.py
--impl raw`` (it accepts everything, offers PIPELINING, finds the end of
DATA with one ``bytes.find``), so both daemons are measured against the
same cheap server. On top it keeps, for list traffic only:

* every recipient's count, so a run can assert that each of the N members
  got exactly one copy (``distinct``, ``duplicates``);
* every ``--sample-every``-th copy's bytes (the first copy always), which are
  verified with dkimpy against ``--dkim-txt`` once the sink is told to stop,
  so that the checking costs nothing inside the measured window.

It runs in the Mailman venv too (bench.py starts it as its sink), so it
imports nothing from listserv.

    verify_sink.py --port 9025 --stats s.json --prefix bench-bounces \
                   [--dkim-txt record.txt] [--sample-every 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter as Tally


class Counter:
    def __init__(self, prefixes: list[str], sample_every: int) -> None:
        self.prefixes = tuple(p.lower() for p in prefixes)
        self.sample_every = max(1, sample_every)
        self.started = time.time()
        self.rcpts = self.msgs = self.bytes = 0
        self.other_rcpts = self.other_msgs = self.connections = 0
        self.first: float | None = None
        self.last: float | None = None
        self.per_rcpt: Tally[str] = Tally()
        self.samples: list[bytes] = []
        self.dkim: dict[str, object] = {}
        self.dirty = True

    def wants_sample(self) -> bool:
        return self.msgs % self.sample_every == 0

    def count(self, mail_from: str, rcpts: list[str], size: int, body: bytes | None) -> None:
        now = time.time()
        if mail_from.lower().startswith(self.prefixes):
            if body is not None:
                self.samples.append(body)
            self.rcpts += len(rcpts)
            self.per_rcpt.update(r.lower() for r in rcpts)
            self.msgs += 1
            self.bytes += size
            if self.first is None:
                self.first = now
            self.last = now
        else:
            self.other_rcpts += len(rcpts)
            self.other_msgs += 1
        self.dirty = True

    def snapshot(self) -> dict[str, object]:
        dup = sum(1 for n in self.per_rcpt.values() if n > 1)
        return dict(pid=os.getpid(), started=self.started, rcpts=self.rcpts, msgs=self.msgs,
                    bytes=self.bytes, first=self.first, last=self.last,
                    other_rcpts=self.other_rcpts, other_msgs=self.other_msgs,
                    connections=self.connections, distinct=len(self.per_rcpt),
                    duplicates=dup, max_copies=max(self.per_rcpt.values(), default=0),
                    sampled=len(self.samples), dkim=self.dkim, written=time.time())

    def write(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as fp:
            json.dump(self.snapshot(), fp)
        os.replace(tmp, path)
        self.dirty = False

    def verify(self, txt_path: str | None) -> None:
        """dkimpy over the sampled copies, the key given as its DNS TXT record."""
        if not txt_path:
            self.dkim = {"checked": 0, "note": "no key given (the sender does not sign)"}
            return
        import dkim  # dkimpy: only here, so a sink without it still counts

        with open(txt_path, "rb") as fh:
            record = fh.read().strip()
        ok = 0
        for body in self.samples:
            if dkim.verify(body, dnsfunc=lambda name, timeout=5: record):
                ok += 1
        self.dkim = {"checked": len(self.samples), "verified": ok}


class RawSMTP(asyncio.Protocol):
    """Accept-everything SMTP with PIPELINING: the peer's raw sink plus recipient lists."""

    def __init__(self, counter: Counter) -> None:
        self.c = counter
        self.buf = bytearray()
        self.in_data = False
        self.scan = 0
        self.mail_from = ""
        self.rcpt_list: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport
        self.c.connections += 1
        transport.write(b"220 sink.localhost ESMTP bench-sink\r\n")

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out: list[bytes] = []
        while True:
            if self.in_data:
                if self.buf.startswith(b".\r\n"):
                    size, consumed = 0, 3
                else:
                    i = self.buf.find(b"\r\n.\r\n", self.scan)
                    if i < 0:
                        self.scan = max(0, len(self.buf) - 4)
                        break
                    size, consumed = i + 2, i + 5
                self.scan = 0
                self.in_data = False
                body = bytes(self.buf[:size]).replace(b"\r\n..", b"\r\n.") \
                    if self.c.wants_sample() else None
                del self.buf[:consumed]
                self.c.count(self.mail_from, self.rcpt_list, size, body)
                self.rcpt_list = []
                out.append(b"250 OK\r\n")
                continue
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                break
            line = bytes(self.buf[:nl])
            del self.buf[:nl + 2]
            verb = line[:4].upper()
            if verb == b"RCPT":
                self.rcpt_list.append(_address(line[8:]))
                out.append(b"250 OK\r\n")
            elif verb == b"MAIL":
                self.mail_from = _address(line[10:])
                self.rcpt_list = []
                out.append(b"250 OK\r\n")
            elif verb == b"DATA":
                self.in_data = True
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"EHLO":
                out.append(b"250-sink.localhost\r\n250-PIPELINING\r\n"
                           b"250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"QUIT":
                out.append(b"221 Bye\r\n")
                self.t.write(b"".join(out))
                self.t.close()
                return
            elif verb == b"RSET":
                self.rcpt_list = []
                out.append(b"250 OK\r\n")
            else:
                out.append(b"250 OK\r\n")
        if out:
            self.t.write(b"".join(out))


def _address(arg: bytes) -> str:
    arg = arg.strip()
    if arg.startswith(b"<"):
        arg = arg[1:arg.find(b">")] if b">" in arg else arg[1:]
    else:
        arg = arg.split(b" ", 1)[0]
    return arg.decode("utf-8", "replace")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9025)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--prefix", action="append", default=[])
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--sample", default=None, help="accepted for sink.py compatibility")
    ap.add_argument("--impl", default="raw", help="accepted for sink.py compatibility")
    ap.add_argument("--dkim-txt", default=os.environ.get("VERIFY_SINK_DKIM_TXT"))
    ap.add_argument("--sample-every", type=int, default=100)
    args = ap.parse_args()
    counter = Counter(args.prefix or [""], args.sample_every)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RawSMTP(counter), host=args.host,
                                      port=args.port, reuse_address=True)
    counter.write(args.stats)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.interval)
        if counter.dirty:
            counter.write(args.stats)
    server.close()
    counter.verify(args.dkim_txt)
    counter.write(args.stats)


if __name__ == "__main__":
    asyncio.run(main())
