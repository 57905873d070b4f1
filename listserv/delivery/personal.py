"""Personalised copies, the CPU-heavy part: signing processes, one per core.

A personalised post needs one DKIM signature per member (about 0.35 ms of
RSA-2048 each, plus hashing). The sender hands that work to ``SigningPool``:
one process per core, so the signatures do not compete with the event loop
that talks SMTP. Little crosses the process boundary: for copies made from a
template (``plan.PersonalCopies``) the template goes to each process once
per post (``template_signing``: the process keeps it and what all copies
share, hashed), then only the members' values go in (32 a task) and only
their signature fields come back; the sender puts the member's value into
the template itself (``plan.fill``, a join of slices). Copies that no
template can make exactly are rendered and signed whole in the processes
(``render_and_sign``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from listserv.commands.tokens import token_hash
from listserv.config import Config, DkimConfig, ListConfig
from listserv.delivery import template_signing
from listserv.delivery.plan import Job, Outgoing, PersonalCopies, fill
from listserv.store.database import Store
from listserv.store.keys import UNSUBSCRIBE_KEY, key

CHUNK = 32  # copies per task sent to a signing process

#: A personal job with its copies' maker, the member and the member's value.
Item = tuple[Job, PersonalCopies, str, str]


class PersonalCopyMaker:
    """Turns claimed personal jobs into (job, signed bytes), a chunk at a time."""

    def __init__(self, config: Config, store: Store, dkim: DkimConfig | None,
                 workers: int | None = None) -> None:
        self.config, self.store, self.dkim = config, store, dkim
        self.pool = SigningPool(dkim, workers)
        self._copies: dict[int, PersonalCopies] = {}
        self._secret: bytes | None = None

    async def copies(
        self, jobs: list[Job], outgoing: Mapping[int, tuple[Outgoing, bytes | None]]
    ) -> AsyncIterator[tuple[Job, bytes]]:
        """All chunks go to the pool at once; copies come back in order, as they are done.

        A chunk holds one post's copies only: each post has its own template.
        """
        items: list[Item] = []
        for job in jobs:
            copies = self._for(job, outgoing)
            items.append((job, copies, job.rcpts[0], copies.value(job.rcpts[0])))
        await self._store_tokens(items)
        pending: list[tuple[list[Item], bool, Awaitable[list[bytes]]]] = []
        for _, group in itertools.groupby(items, key=lambda item: item[0].outgoing_id):
            same_post = list(group)
            copies = same_post[0][1]
            for start in range(0, len(same_post), CHUNK):
                part = same_post[start:start + CHUNK]
                if not all(copies.fits(value) for _, _, _, value in part):
                    pending.append((part, False, asyncio.ensure_future(self.pool.render(
                        copies.raw, copies.mlist, [m for _, _, m, _ in part],
                        [copies.url(m) for _, _, m, _ in part], self.dkim is not None))))
                elif self.dkim is None:
                    done: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
                    done.set_result([b""] * len(part))
                    pending.append((part, True, done))
                else:
                    pending.append((part, True, asyncio.ensure_future(self.pool.signatures(
                        copies, [v.encode() for _, _, _, v in part]))))
        for part, templated, work in pending:
            datas = await work
            for (job, copies, _, value), data in zip(part, datas, strict=True):
                if templated:  # only the signature field came back: the copy is made here
                    assert copies.template is not None
                    data += fill(copies.template, copies.slots, value.encode())
                yield job, data

    def _for(self, job: Job, outgoing: Mapping[int, tuple[Outgoing, bytes | None]]
             ) -> PersonalCopies:
        copies = self._copies.get(job.outgoing_id)
        if copies is None:
            info, raw = outgoing[job.outgoing_id]
            mlist = self.config.find_list(info.list_address)
            if mlist is None:
                raise LookupError(f"list {info.list_address} is no longer configured")
            if self._secret is None:
                self._secret = key(self.config.server.data_dir, UNSUBSCRIBE_KEY)
            assert raw is not None
            web = self.config.web
            copies = PersonalCopies(raw, mlist, secret=self._secret, sample_member=job.rcpts[0],
                                    base_url=web.base_url if web else None)
            self._copies[job.outgoing_id] = copies
        return copies

    async def _store_tokens(self, items: list[Item]) -> None:
        """Keep the hash of each member's one-click token, for the web endpoint."""
        if self.config.web is None:
            return
        rows = [(token_hash(value), copies.mlist.address, member)
                for _, copies, member, value in items]
        async with self.store.transaction() as db:
            await db.executemany(
                "UPDATE members SET unsubscribe_token = ?1 WHERE list_address = ?2"
                " AND address = ?3 AND unsubscribe_token IS NOT ?1", rows)

    def forget(self, outgoing_id: int) -> None:
        copies = self._copies.pop(outgoing_id, None)
        if copies is not None:
            self.pool.forget(copies)

    def close(self) -> None:
        self.pool.close()


class SigningPool:
    """One single-process executor per core, so the sender knows which process has which
    template: each gets a post's template once, with its first chunk of that post."""

    def __init__(self, dkim: DkimConfig | None, workers: int | None = None) -> None:
        self.dkim = dkim
        count = workers or os.cpu_count() or 2
        self._procs = [self._start() for _ in range(count)]
        self._load = [0] * count  # chunks submitted and not yet done, per process
        self._has: list[OrderedDict[object, None]] = [OrderedDict() for _ in range(count)]
        # Processes start on submit: start them now, not when the first post comes.
        self._ready = [proc.submit(template_signing.ready) for proc in self._procs]

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the daemon has threads (aiosqlite) and an event loop.
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=template_signing.init_worker,
                                   initargs=(self.dkim,))

    async def wait_ready(self) -> None:
        await asyncio.gather(*(asyncio.wrap_future(f) for f in self._ready))

    def pids(self) -> list[int]:
        """The signing processes (for measuring their memory)."""
        return [pid for proc in self._procs
                for pid in getattr(proc, "_processes", None) or {}]

    async def signatures(self, copies: PersonalCopies, values: list[bytes]) -> list[bytes]:
        """The signature fields of the template copies with ``values`` (CRLF line ends)."""
        assert copies.template is not None
        key = copies.key
        template = (copies.template, copies.slots, copies.placeholder.encode())
        i = min(range(len(self._procs)), key=self._load.__getitem__)
        first = key not in self._has[i]
        self._has[i][key] = None
        self._has[i].move_to_end(key)
        while len(self._has[i]) > template_signing.KEEP:
            self._has[i].popitem(last=False)
        try:
            return await self._run(i, template_signing.sign_chunk, key,
                                   template if first else None, values)
        except template_signing.TemplateMissing:  # the process forgot it (or was new)
            return await self._run(i, template_signing.sign_chunk, key, template, values)

    async def render(self, raw: bytes, mlist: ListConfig, members: list[str],
                     urls: list[str | None], sign: bool) -> list[bytes]:
        i = min(range(len(self._procs)), key=self._load.__getitem__)
        return await self._run(i, template_signing.render_and_sign, raw, mlist, members,
                               urls, sign)

    async def _run(self, i: int, fn: Callable[..., list[bytes]], *args: object
                   ) -> list[bytes]:
        self._load[i] += 1
        proc = self._procs[i]
        try:
            return await asyncio.wrap_future(proc.submit(fn, *args))
        except BrokenProcessPool:  # the process died (killed, out of memory): a new one
            if self._procs[i] is proc:
                self._procs[i], self._has[i] = self._start(), OrderedDict()
                proc.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            self._load[i] -= 1

    def forget(self, copies: PersonalCopies) -> None:
        """A post's copies are made: the processes that have its template drop it."""
        for proc, has in zip(self._procs, self._has, strict=True):
            if has.pop(copies.key, None) is not None:
                with contextlib.suppress(RuntimeError):  # shut down, or broken
                    proc.submit(template_signing.forget, copies.key)

    def close(self) -> None:
        for proc in self._procs:
            proc.shutdown(wait=True, cancel_futures=True)
