"""What the shell hands to every inbox handler, scheduled job and web page.

One small bag of the daemon's live parts (configuration, the store, the
clock, the sender's wake-up, the DNS lookups), built once in
``daemon.Daemon.start`` and passed in. Nothing reaches for a global: a test
builds a ``Context`` with a temporary store and a fake clock and calls the
handler directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from listserv.clock import Clock
from listserv.config import Config
from listserv.inbox.worker import Unavailable, Worker
from listserv.mail.dkim_proof import DnsFunc
from listserv.mail.dmarc_lookup import DmarcLookup
from listserv.store.database import Store

T = TypeVar("T")


async def _nothing() -> None:
    """No sender (tests that build a Context): nothing to wait for."""


@dataclass
class Context:
    """What every inbox handler needs from the shell, passed in."""

    config: Config
    store: Store
    clock: Clock
    wake_sender: Callable[[], None] = lambda: None
    #: After ``wake_sender``: returns once the sender holds the store for its claim (or
    #: soon), so that a long write after a post's first chunk does not delay its first copy.
    sender_claiming: Callable[[], Awaitable[None]] = lambda: _nothing()
    dmarc: DmarcLookup | None = None          # None: real DNS (built on first use)
    dkim_dns: DnsFunc | None = None           # None: dkimpy's own DNS lookup
    worker: Worker | None = None              # None: a thread (tests that build a Context)

    def dmarc_lookup(self) -> DmarcLookup:
        if self.dmarc is None:
            self.dmarc = DmarcLookup()
        return self.dmarc

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` off the event loop: in the limited worker process when there is one."""
        if self.worker is not None:
            try:
                return await self.worker.call(fn, *args)
            except Unavailable:
                pass   # no process could be started: a thread, without the limits
        return await asyncio.to_thread(fn, *args)
