"""Fault-injection helpers: the daemon as a real process, a counting relay, the database.

``Proc`` runs ``python -m listserv serve`` (through ``tests.cli.test_serve.Served``,
which collects its log lines) and can be killed with SIGKILL and restarted
on the same config. ``Sink`` is an aiosmtpd relay in a thread of the test
process that counts, per recipient, every copy it answered ``250`` for; its
``mode`` makes it refuse connections, greet with ``421`` or stall in DATA.
Sizes come from the environment, so CI runs small and the full run is one
command (see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from tests import sealed
from tests.cli.test_serve import Served

#: Members of the fan-out under SIGKILL: 2,000 in CI, 10,000 with LISTSERV_FULL=1.
FULL = os.environ.get("LISTSERV_FULL", "") not in ("", "0")
FANOUT_MEMBERS = int(os.environ.get("LISTSERV_FANOUT_MEMBERS", 10_000 if FULL else 2_000))


def poll(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.01) -> Any:
    """Poll ``condition`` until truthy (never a bare sleep for work); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


def database(config: Path) -> Path:
    return config.parent / "var" / "listserv.sqlite3"


def query(config: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    with contextlib.closing(sealed.connect(database(config), timeout=30)) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql, params).fetchall()


def add_members(config: Path, list_address: str, members: Iterable[str]) -> None:
    """Members straight into the table (the daemon may be running: WAL, busy timeout)."""
    with contextlib.closing(sealed.connect(database(config), timeout=30)) as db, db:
        db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(list_address, m, "2026-01-01T00:00:00.000000Z") for m in members])


class Proc(Served):
    """The daemon as a subprocess; ``kill()`` is SIGKILL: no cleanup of any kind."""

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Sink:
    """A relay that counts each recipient of each ``250``-answered DATA.

    ``mode``: ``"ok"`` accept; ``"421"`` greet every connection with 421 and hang
    up; ``"stall"`` take the data and never answer (until mode changes); ``"down"``
    is done by ``stop()`` (connection refused) and ``start()`` on the same port.
    ``delay`` slows each DATA answer, to keep a fan-out in progress for a while.
    It offers PIPELINING, so the daemon's client sends MAIL/RCPT/DATA at once.
    """

    def __init__(self, port: int = 0, *, delay: float = 0.0) -> None:
        self.port = port
        self.delay = delay
        self.mode = "ok"
        self.counts: Counter[str] = Counter()
        self.transactions = 0
        self.connections = 0
        self.attempts: list[tuple[float, str]] = []  # (monotonic, mode) per connection
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._stall = asyncio.Event()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self.start()

    # -- aiosmtpd hooks --------------------------------------------------------
    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        # Offered so that the daemon's fan-out runs pipelined here (aiosmtpd reads
        # pipelined commands line by line, as any server must).
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        if self.mode == "stall":
            await asyncio.sleep(3600)  # cancelled when the client hangs up
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.counts.update(r.lower() for r in envelope.rcpt_tos)
            self.transactions += 1
        return "250 OK"

    # -- the server ------------------------------------------------------------
    def _factory(self) -> asyncio.Protocol:
        with self._lock:
            self.connections += 1
            self.attempts.append((time.monotonic(), self.mode))
        if self.mode == "421":
            return _Greeter421()
        return SMTP(self, hostname="sink.test", enable_SMTPUTF8=True)

    def start(self) -> None:
        async def go() -> int:
            self._server = await self._loop.create_server(
                self._factory, "127.0.0.1", self.port, reuse_address=True)
            return self._server.sockets[0].getsockname()[1]

        self.port = asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    def stop(self) -> None:
        async def go() -> None:
            assert self._server is not None
            self._server.close()
            self._server.close_clients() if hasattr(self._server, "close_clients") else None
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(10)

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)


class _Greeter421(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"421 4.3.2 relay busy, try again later\r\n")
        transport.close()
