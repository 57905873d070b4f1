"""The processor: takes committed inbox rows in order and hands each to its role.

A row is *claimed* in one commit (new -> processing) before any work, and
*finished* in another (processing -> done). A crash in between leaves it
``processing``; ``Store.recover_claimed`` puts it back to ``new`` at the
next start, so the work is done again rather than lost. Handlers must
therefore be idempotent per inbox row (they record what they did under
the row's id).

Handlers are plain async functions ``(item) -> outcome``, one per
``intake.routing.Role``, given in a table (``roles.table``); a role without
one is only recorded.

Before its handler, each row is read once in the worker process
(``examine.examine_message`` through ``worker.Worker``, with a time and a
memory limit): a mail that does not finish there is *parked* (``park``:
the row ends ``done`` with outcome ``parked: <reason>``; a post also gets
a posts row in state ``parked``) and the processor takes the next row, so
no mail can stall the queue or the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

from listserv.inbox.examine import examine_message
from listserv.inbox.worker import Refused, Unavailable, Worker
from listserv.intake.routing import Role
from listserv.log import event
from listserv.store.database import Store
from listserv.store.rows import InboxItem, InboxState

Handler = Callable[[InboxItem], Awaitable[str]]
Parker = Callable[[InboxItem, str], Awaitable[str]]


async def record_only(item: InboxItem) -> str:
    """The default for a role nobody handles yet: keep the row, note that."""
    return "recorded"


class Processor:
    def __init__(
        self,
        store: Store,
        handlers: Mapping[Role, Handler] | None = None,
        *,
        idle_poll: float = 30.0,
        worker: Worker | None = None,
        park: Mapping[Role, Parker] | None = None,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers or {})
        self.worker = worker
        self.parkers = dict(park or {})
        self.idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._stopping = False
        self.processed = 0

    def wake(self) -> None:
        """Called by intake after each commit: there is new work."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def recover(self) -> None:
        """Before the first claim: take up what a dead process left claimed."""
        requeued, parked = await self.store.recover_claimed()
        if requeued or parked:
            event("recovered", requeued=requeued, parked=parked, level="warning")

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                worked = await self.run_once()
            except Exception as exc:  # e.g. the finishing commit failed: retried after restart
                event("processor_error", level="error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)
                continue
            if worked or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=await self._idle_timeout())

    async def _idle_timeout(self) -> float:
        due = await self.store.next_due()
        if due is None:
            return self.idle_poll
        delta = (due - self.store.clock()).total_seconds()
        return min(self.idle_poll, max(0.01, delta))

    async def run_once(self) -> bool:
        """Process one due row if there is one; True when a row was taken."""
        try:
            item = await self.store.claim_next()
        except Exception as exc:  # the database may be locked or read-only for a while
            event("claim_failed", level="error", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1)
            return False
        if item is None:
            return False
        if self.worker is not None:
            try:
                await self.worker.call(examine_message, item.raw)
            except Refused as exc:
                await self._park(item, str(exc))
                return True
            except Unavailable:
                pass   # logged by the worker; the handlers still parse in a thread
        handler = self.handlers.get(Role(item.role), record_only)
        try:
            outcome = await handler(item)
        except Exception as exc:
            # A fault in our code or a store hiccup: never the end of the daemon.
            error = f"{type(exc).__name__}: {exc}"
            try:
                state = await self.store.fail(item, error)
            except Exception as store_exc:
                event("fail_not_recorded", level="error", inbox=item.id,
                      error=f"{type(store_exc).__name__}: {store_exc}")
                return True
            event("processing_failed", level="error", inbox=item.id, msgid=item.message_id,
                  role=item.role, attempt=item.attempts, error=error,
                  state={InboxState.NEW: "retry", InboxState.DONE: "done before the fault"}
                  .get(state, "failed"))
            return True
        await self.store.finish(item.id, outcome)
        self.processed += 1
        event("processed", inbox=item.id, msgid=item.message_id, role=item.role,
              list=item.list_address, outcome=outcome)
        return True

    async def _park(self, item: InboxItem, reason: str) -> None:
        parker = self.parkers.get(Role(item.role))
        try:
            outcome = await parker(item, reason) if parker is not None else f"parked: {reason}"
            await self.store.finish(item.id, outcome)
        except Exception as exc:  # the store is down: the row is recovered at the next start
            event("park_failed", level="error", inbox=item.id,
                  error=f"{type(exc).__name__}: {exc}")
            return
        event("parked", level="warning", inbox=item.id, msgid=item.message_id,
              role=item.role, list=item.list_address, reason=reason)
