"""Personalised copies, the CPU-heavy part: a process pool that renders and signs them.

A personalised post needs one DKIM signature per member (about 1 ms of
RSA-2048 each). The sender hands that work to ``SigningPool``, one process
per core, so the signatures do not compete with the event loop that talks
SMTP. Little crosses the process boundary: for copies made from a template
(``plan.PersonalCopies``) only the signature header comes back, and
the sender puts the member's value into the template itself (a cheap
``bytes.replace``). The module-level functions are what the processes run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from concurrent.futures import ProcessPoolExecutor

from listserv.commands.tokens import token_hash
from listserv.config import Config, DkimConfig, ListConfig
from listserv.delivery.plan import Job, Outgoing, PersonalCopies, Slots, fill, render_personal
from listserv.delivery.signing import Signer
from listserv.store.database import Store
from listserv.store.keys import UNSUBSCRIBE_KEY, key

CHUNK = 32  # copies per task sent to a signing process

_signer: Signer | None = None


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
        """All chunks go to the pool at once; copies come back in order, as they are done."""
        await self._store_tokens(jobs, outgoing)
        pending: list[tuple[list[Job], PersonalCopies | None, Awaitable[list[bytes]]]] = []
        for start in range(0, len(jobs), CHUNK):
            part = jobs[start:start + CHUNK]
            members = [j.rcpts[0] for j in part]
            copies = self._for(part[0], outgoing)
            fast = all(copies.fast(m) for m in members)
            if fast and self.dkim is None:
                done: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
                done.set_result([copies.substitute(m) for m in members])
                pending.append((part, None, done))
            elif fast:
                assert copies.template is not None
                pending.append((part, copies, asyncio.ensure_future(self.pool.signature_headers(
                    copies.template, copies.slots, [copies.value(m).encode() for m in members]))))
            else:
                pending.append((part, None, asyncio.ensure_future(self.pool.render(
                    copies.raw, copies.mlist, members, [copies.url(m) for m in members],
                    self.dkim is not None))))
        for part, template, work in pending:
            datas = await work
            if template is not None:  # the pool signed the template: only headers came back
                datas = [h + template.substitute(j.rcpts[0])
                         for h, j in zip(datas, part, strict=True)]
            for job, data in zip(part, datas, strict=True):
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

    async def _store_tokens(self, jobs: list[Job],
                            outgoing: Mapping[int, tuple[Outgoing, bytes | None]]) -> None:
        """Keep the hash of each member's one-click token, for the web endpoint."""
        if self.config.web is None:
            return
        rows = [(token_hash(c.value(j.rcpts[0])), c.mlist.address, j.rcpts[0])
                for j in jobs if (c := self._for(j, outgoing))]
        async with self.store.transaction() as db:
            await db.executemany(
                "UPDATE members SET unsubscribe_token = ?1 WHERE list_address = ?2"
                " AND address = ?3 AND unsubscribe_token IS NOT ?1", rows)

    def forget(self, outgoing_id: int) -> None:
        self._copies.pop(outgoing_id, None)

    def close(self) -> None:
        self.pool.close()


class SigningPool:
    def __init__(self, dkim: DkimConfig | None, workers: int | None = None) -> None:
        # spawn, not fork: the daemon has threads (aiosqlite) and an event loop.
        count = workers or os.cpu_count() or 2
        self._pool = ProcessPoolExecutor(
            count, mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker, initargs=(dkim,))
        # Processes start on submit: start them now, not when the first post comes.
        self._ready = [self._pool.submit(ready) for _ in range(count)]

    async def wait_ready(self) -> None:
        await asyncio.gather(*(asyncio.wrap_future(f) for f in self._ready))

    async def signature_headers(self, template: bytes, slots: Slots,
                                values: list[bytes]) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, sign_filled, template, slots, values)

    async def render(self, raw: bytes, mlist: ListConfig, members: list[str],
                     urls: list[str | None], sign: bool) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, render_and_sign, raw, mlist, members,
                                          urls, sign)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def init_worker(dkim: DkimConfig | None) -> None:
    """Load the key once per process, not once per task."""
    global _signer
    _signer = Signer.from_config(dkim) if dkim is not None else None


def sign_filled(template: bytes, slots: Slots, values: list[bytes]) -> list[bytes]:
    """The DKIM-Signature header of ``template`` with each value in its slots."""
    assert _signer is not None
    return [_signer.signature_header(fill(template, slots, v)) for v in values]


def ready() -> None:
    """A no-op task: submitting one per worker starts the processes before the first post."""


def render_and_sign(raw: bytes, mlist: ListConfig, members: list[str],
                    urls: list[str | None], sign: bool) -> list[bytes]:
    """Whole copies, each rendered from scratch (and signed): the slow, general way."""
    out = []
    for member, url in zip(members, urls, strict=True):
        data = render_personal(raw, mlist, member, url)
        if sign and _signer is not None:
            data = _signer.sign(data)
        out.append(data)
    return out
