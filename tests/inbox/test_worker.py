"""The limited worker process: results come back, limits become reasons, the worker recovers."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from listserv.inbox.examine import examine_message
from listserv.inbox.worker import Refused, Unavailable, Worker


@pytest.fixture
async def worker():
    w = Worker(timeout=2.0, memory_bytes=512 * 2**20)
    yield w
    w.close()


async def test_a_call_returns_its_result(worker: Worker) -> None:
    assert await worker.call(len, b"abc") == 3
    examined = await worker.call(examine_message, b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n")
    assert examined.parts == 1


async def test_an_overrun_is_killed_and_the_next_call_gets_a_new_worker(worker: Worker) -> None:
    started = time.monotonic()
    with pytest.raises(Refused, match="took longer than 2 s"):
        await worker.call(time.sleep, 30)
    assert time.monotonic() - started < 5
    assert await worker.call(len, b"ab") == 2
    assert worker.restarts == 1


async def test_memory_beyond_the_limit_is_a_reason_not_a_crash(worker: Worker) -> None:
    with pytest.raises(Refused, match="needs more than 512 MB"):
        await worker.call(bytearray, 2 * 2**30)
    assert await worker.call(len, b"a") == 1


async def test_recursion_and_errors_are_reasons(worker: Worker) -> None:
    with pytest.raises(Refused, match="nested too deeply"):
        await worker.call(json.loads, "[" * 100_000)
    with pytest.raises(Refused, match="ValueError"):
        await worker.call(int, "zwölf")


async def test_the_event_loop_runs_while_the_worker_works(worker: Worker) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(tick())
    await worker.call(time.sleep, 0.5)
    task.cancel()
    assert ticks >= 20


async def test_a_worker_that_cannot_start_is_unavailable_not_refused(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_processes(self: Worker) -> None:
        raise OSError("fork not permitted")

    monkeypatch.setattr(Worker, "_start", no_processes)
    with pytest.raises(Unavailable, match="fork not permitted"):
        await worker.call(len, b"x")
