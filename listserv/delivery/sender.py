"""The sender: takes due deliveries rows, hands copies to the transport, records outcomes.

Three tasks share one queue:

* the *producer* claims due rows in one commit (pending, or deferred whose
  time has come: ``-> sending``), a page at a time so that a 100,000-member
  post is never in memory whole; cuts them into transactions
  (``delivery.plan``); builds and signs the bytes; and queues the jobs;
* ``connections`` *workers* hand jobs to the transport, in parallel; a
  worker's next body leaves only once its previous outcome is committed
  (its envelope may go before: ``Transport.deliver``'s ``before_data``);
* the *recorder* writes the outcomes back (``delivery.record``), all that
  arrived while the last commit ran in one commit (sent, deferred with its
  next attempt, failed), and counts 5xx bounces.

A copy is signed once per distinct content: a bulk or VERP post is signed
once (the bytes are cached by outgoing id), a personalised post once per
member, in signing processes (``personal``) so that signing uses every
core while this process talks SMTP. The producer sleeps until ``wake()`` (called after an
enqueue commits) or the next deferred row falls due; it never polls.

A crash leaves rows ``sending``; ``start`` puts them back to ``pending``, so
the transactions that were in flight (and not yet recorded) may be sent
again: that is the bound DESIGN §6 allows. Nothing claimed is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

from listserv.clock import Clock, from_iso, iso, utcnow
from listserv.config import Config, DkimConfig
from listserv.delivery import record
from listserv.delivery.outcomes import DeliveryResult
from listserv.delivery.personal import PersonalCopyMaker
from listserv.delivery.plan import (
    GIVE_UP_AFTER,
    REMOVED,
    RETRY_SCHEDULE,
    Claimed,
    Job,
    Outgoing,
    plan,
)
from listserv.delivery.signing import Signer
from listserv.delivery.transports import Transport, make_transport
from listserv.log import event
from listserv.store import keys
from listserv.store.database import Store

_SENTINEL = None
# Claimed in order: new rows, due retries, (PostgreSQL) rows of a daemon that died.
CLAIMS = (("state = 'pending' AND next_attempt IS NULL", "outgoing_id, domain"),
          ("state = 'deferred' AND next_attempt <= :now", "next_attempt"),
          ("state = 'sending' AND lease_until < :now AND claimed_by <> :me", "id"))


class Sender:
    def __init__(
        self,
        config: Config,
        store: Store,
        transport: Transport | None = None,
        *,
        clock: Clock = utcnow,
        sign: bool = True,
        batch_size: int = 1000,
        flush_rows: int = 500,
        flush_interval: float = 0.05,
        schedule: tuple[timedelta, ...] = RETRY_SCHEDULE,
        give_up_after: timedelta = GIVE_UP_AFTER,
        idle_poll: float = 300.0,
        sign_workers: int | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.transport = transport or make_transport(config)
        self.clock = clock
        self.dkim: DkimConfig | None = config.dkim if sign else None
        self.signer = Signer.from_config(self.dkim) if self.dkim else None
        self.batch_size, self.flush_rows = batch_size, flush_rows
        self.flush_interval = flush_interval
        self.schedule, self.give_up_after, self.idle_poll = schedule, give_up_after, idle_poll
        self.sign_workers = sign_workers or os.cpu_count() or 2
        self.workers = max(1, config.delivery.connections)
        self._queue: asyncio.Queue[tuple[Job, bytes] | None] = asyncio.Queue(batch_size)
        self._wake = asyncio.Event()
        self._claiming = asyncio.Event()  # a claim holds the store since the last wake
        self._flush_now = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._claimed: dict[int, Claimed] = {}
        self._results: list[tuple[Job, DeliveryResult]] = []
        self._unsent: list[Job] = []
        self._busy = 0  # workers in the middle of a transaction
        # Seconds a flush waits for the other connections' outcomes. 0: outcomes that
        # arrive during a commit go into the next one anyway (group commit), and a wait
        # here delays every connection's next body (measured: 1 ms cost up to 40 %).
        self.coalesce = 0.0
        self._recorded: list[asyncio.Event] = []  # workers waiting for their outcome's commit
        self._unrecorded = 0
        self._outgoing: OrderedDict[int, tuple[Outgoing, bytes | None]] = OrderedDict()
        self._signed: OrderedDict[int, bytes] = OrderedDict()
        self._personal: PersonalCopyMaker | None = None
        self.sent = self.deferred = self.failed = self.commits = 0
        self.verp_key = keys.key(config.server.data_dir, keys.VERP_KEY)  # bounces.verp

    # -- life cycle ----------------------------------------------------------

    async def start(self) -> None:
        if requeued := await self.store.release_sending():
            event("recovered_deliveries", level="warning", requeued=requeued)
        if self.config.delivery.personalize:  # start the processes before the first post
            self._maker()
        self._tasks = [asyncio.create_task(self._produce(), name="sender")]
        self._tasks += [asyncio.create_task(self._work(), name=f"sender-{i}")
                        for i in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._record(), name="sender-recorder"))

    def wake(self) -> None:
        """There are new rows: the enqueuer calls this after its commit."""
        self._wake.set()
        self._claiming.clear()

    async def claiming(self, timeout: float = 0.1) -> None:
        """Return once a claim after the last ``wake`` holds the store (at most ``timeout``).

        Publishing waits here between a post's first chunk and the rest: the
        claim then runs before the next long write, not behind it.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._claiming.wait(), timeout)

    async def stop(self) -> None:
        """Finish the transactions in flight, record them; queued ones go back to pending."""
        self._stopping = True
        self._wake.set()
        producer, *workers, recorder = self._tasks or [None, None]
        for task in [producer, *workers]:
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        self._flush_now.set()
        if recorder is not None:
            with contextlib.suppress(Exception):
                await recorder
        await self.transport.close()
        if self._personal is not None:
            self._personal.close()

    # -- producer ------------------------------------------------------------

    async def _produce(self) -> None:
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    claimed = await self.run_once()
                except Exception as exc:  # a locked database, a bad row: never the end
                    event("sender_error", level="error", error=f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(1)
                    continue
                if claimed or self._stopping:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=await self._idle_timeout())
        finally:
            for _ in range(self.workers):
                await self._queue.put(_SENTINEL)

    async def run_once(self) -> int:
        """Claim one page of due rows and queue their jobs; the number of rows."""
        rows = await self._claim()
        if not rows:
            return 0
        for row in rows:
            self._claimed[row.id] = row
        await self._load_outgoing({r.outgoing_id for r in rows})
        jobs: list[Job] = []
        for job in plan(rows, {k: v[0] for k, v in self._outgoing.items()},
                        self.config.delivery.max_recipients_per_transaction,
                        verp_key=self.verp_key):
            if self._outgoing[job.outgoing_id][1] is None:
                self._results.append((job, DeliveryResult.every(job.rcpts, REMOVED)))
            else:
                jobs.append(job)
        queued: set[Job] = set()
        try:
            for job in jobs:
                if not job.personal:
                    await self._put(job, self._shared_bytes(job.outgoing_id), queued)
            if personal := [j for j in jobs if j.personal]:
                await self._queue_personal(personal, queued)
        except Exception as exc:  # whatever was claimed and not queued is retried later
            error = f"4.3.0 {type(exc).__name__}: {exc}"
            self._results += [(j, DeliveryResult.temporary(j.rcpts, 451, error))
                              for j in jobs if j not in queued]
            raise
        return len(rows)

    async def _put(self, job: Job, data: bytes, queued: set[Job]) -> None:
        await self._queue.put((job, data))
        queued.add(job)

    async def _claim(self) -> list[Claimed]:
        now = iso(self.clock())
        rows: list[Claimed] = []
        # A claim a crash leaves 'sending' is given back at start (release_sending)
        # or, on PostgreSQL, taken over by another daemon once its lease ran out.
        async with self.store.transaction() as db:
            self._claiming.set()
            for where, order in CLAIMS[: 3 if self.store.shared else 2]:
                limit = self.batch_size - len(rows)
                if limit <= 0:
                    break
                async with db.execute(
                    "UPDATE deliveries SET state = 'sending', updated_at = :now,"
                    " claimed_by = :me, lease_until = :lease"
                    f" WHERE id IN (SELECT id FROM deliveries WHERE {where}"
                    f"              ORDER BY {order} LIMIT :limit{self.store.skip_locked})"
                    " RETURNING id, outgoing_id, rcpt, domain, attempts",
                    {"now": now, "limit": limit, "me": self.store.claimer,
                     "lease": iso(self.clock() + self.store.lease)},
                ) as cur:
                    rows += [Claimed(*r) for r in await cur.fetchall()]
        rows.sort(key=lambda r: (r.outgoing_id, r.domain, r.id))
        return rows

    async def _load_outgoing(self, ids: set[int]) -> None:
        missing = [i for i in ids if i not in self._outgoing]
        for i in ids - set(missing):
            self._outgoing.move_to_end(i)
        if missing:
            marks = ",".join("?" * len(missing))
            for r in await self.store.fetchall(
                "SELECT id, kind, list_address, mail_from, message_id, created_at, verp,"
                f" personalize, unseal(raw) AS raw FROM outgoing WHERE id IN ({marks})", missing,
            ):
                created = from_iso(r["created_at"])
                info = Outgoing(r["id"], r["kind"], r["list_address"], r["mail_from"],
                                r["message_id"], created, bool(r["verp"]),
                                bool(r["personalize"]))
                self._outgoing[r["id"]] = (info, r["raw"])
        while len(self._outgoing) > 64:
            gone, _ = self._outgoing.popitem(last=False)
            self._signed.pop(gone, None)
            if self._personal is not None:
                self._personal.forget(gone)

    def _shared_bytes(self, outgoing_id: int) -> bytes:
        """The one signed copy of a reply, notice or bulk/VERP post."""
        data = self._signed.get(outgoing_id)
        if data is None:
            raw = self._outgoing[outgoing_id][1]
            assert raw is not None
            data = self.signer.sign(raw) if self.signer is not None else raw
            self._signed[outgoing_id] = data
        return data

    async def _queue_personal(self, jobs: list[Job], queued: set[Job]) -> None:
        outgoing = {j.outgoing_id: self._outgoing[j.outgoing_id] for j in jobs}
        async for job, data in self._maker().copies(jobs, outgoing):
            await self._put(job, data, queued)

    def _maker(self) -> PersonalCopyMaker:
        if self._personal is None:
            self._personal = PersonalCopyMaker(self.config, self.store, self.dkim,
                                               self.sign_workers)
        return self._personal

    async def _idle_timeout(self) -> float:
        due = await self.store.next_delivery_due()  # a retry, or a dead daemon's claims
        if due is None:
            return self.idle_poll
        return min(self.idle_poll, max(0.01, (due - self.clock()).total_seconds()))

    # -- workers ---------------------------------------------------------------

    async def _work(self) -> None:
        recorded: asyncio.Event | None = None  # this worker's last outcome is committed
        while (item := await self._queue.get()) is not _SENTINEL:
            job, data = item
            if self._stopping:
                self._unsent.append(job)
                continue
            self._busy += 1
            try:
                # The body goes out only once the previous outcome is committed (the
                # recorder commits all workers' outcomes at once), so a crash repeats at
                # most one transaction per connection: the bound of DESIGN §6. The
                # envelope's round trip meanwhile overlaps that commit.
                result = await self.transport.deliver(
                    job.mail_from, list(job.rcpts), data,
                    before_data=recorded.wait if recorded is not None else None)
            except Exception as exc:  # a bug in a transport must not lose the rows
                result = DeliveryResult.temporary(job.rcpts, 451, f"4.3.0 {type(exc).__name__}")
            finally:
                self._busy -= 1
            self._results.append((job, result))
            self._unrecorded += len(job.rcpts)
            recorded = asyncio.Event()
            self._recorded.append(recorded)
            self._flush_now.set()

    # -- recorder --------------------------------------------------------------

    async def _record(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), timeout=self.flush_interval)
            self._flush_now.clear()
            if self.coalesce and self._busy and not self._stopping:
                await asyncio.sleep(self.coalesce)
            try:
                await self.flush()
            except Exception as exc:  # retried at the next flush; rows stay 'sending'
                event("record_failed", level="error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            done = all(t.done() for t in self._tasks[:-1])
            if self._stopping and done and not self._results and not self._unsent:
                return

    async def flush(self) -> None:
        """Write the outcomes collected so far in one commit, then log them."""
        results, self._results = self._results, []
        unsent, self._unsent = self._unsent, []
        recorded, self._recorded = self._recorded, []
        self._unrecorded = 0
        if not results and not unsent:
            for waiter in recorded:
                waiter.set()
            return
        try:
            logs = await self._write(results, unsent)
        except BaseException:
            self._results[:0], self._unsent[:0] = results, unsent
            self._recorded[:0] = recorded
            raise
        for waiter in recorded:
            waiter.set()
        for job, _ in results:
            for row_id in job.ids:
                self._claimed.pop(row_id, None)
        for job in unsent:
            for row_id in job.ids:
                self._claimed.pop(row_id, None)
        for line in logs:
            line()

    async def _write(self, results: list[tuple[Job, DeliveryResult]], unsent: list[Job]
                     ) -> list[Callable[[], None]]:
        # Only the rows in these results: _claimed holds every row in flight.
        attempts = {i: self._claimed[i].attempts for job, _ in results for i in job.ids
                    if i in self._claimed}
        rec, lines = await record.write(
            self.store, self.config, results, unsent, attempts=attempts,
            outgoing={k: v[0] for k, v in self._outgoing.items()}, now=self.clock(),
            schedule=self.schedule, give_up_after=self.give_up_after)
        if rec.deferred or unsent:  # the producer's sleep may now be too long
            self._wake.set()
        self.commits += 1
        self.sent += len(rec.sent)
        self.deferred += len(rec.deferred)
        self.failed += len(rec.failed)
        return lines
