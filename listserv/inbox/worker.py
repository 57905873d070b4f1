"""A worker process with a time and a memory limit, for work on hostile mail.

Parsing a mail, decoding its headers, walking its MIME tree and building
the list copy are pure Python over bytes a stranger chose. Run on the
event loop, one bad mail would stop SMTP answering; run in a thread, it
could still take minutes and gigabytes, and a thread cannot be stopped.
So such work runs here: one long-lived child process (started from the
``forkserver``, so it never inherits the daemon's threads or sockets),
with ``RLIMIT_AS`` set to ``memory_bytes`` in the child and ``timeout``
seconds per call. A call that overruns kills the child (the next call
starts a new one) and raises ``Refused`` with a reason a person can read;
so does a ``MemoryError``, a ``RecursionError`` or any other exception in
the called function.

Functions are passed by reference (pickled by module and name), so only
module-level functions can be called; their arguments and result must be
picklable. One call at a time: the processor and the publisher take turns.
When no process can be started at all (``Unavailable``), callers do the
work in a thread instead: a host fault must not park every mail.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
from collections.abc import Callable
from typing import Any, TypeVar

from listserv.log import event

T = TypeVar("T")

TIMEOUT = 20.0
MEMORY_BYTES = 1024 * 1024 * 1024
_PRELOAD = ["listserv.inbox.examine", "listserv.delivery.transform"]


class Refused(Exception):
    """The work did not finish within the limits; ``str(exc)`` says why."""


class Unavailable(Exception):
    """No worker process could be started (a fault of the host, not of the mail)."""


def _serve(conn: multiprocessing.connection.Connection, memory_bytes: int) -> None:
    """The child's loop: take a call, answer ``("ok", result)`` or ``("error", reason)``."""
    import resource
    import sys

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    sys.setrecursionlimit(4000)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply = ("error", f"needs more than {memory_bytes // 2**20} MB")
        except RecursionError:
            reply = ("error", "nested too deeply")
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send(("error", f"result not returned: {type(exc).__name__}"))


class Worker:
    """One child process; ``await call(fn, *args)``. Build one per daemon."""

    def __init__(self, *, timeout: float = TIMEOUT, memory_bytes: int = MEMORY_BYTES) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self._lock = asyncio.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self.restarts = 0

    def _start(self) -> multiprocessing.connection.Connection:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child, self.memory_bytes),
                                  name="listserv-worker", daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent
        return parent

    def _kill(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.kill()
            self._process.join(5)
        self._process = self._conn = None
        self.restarts += 1

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the child; raises ``Refused`` when a limit was hit."""
        async with self._lock:
            conn = self._conn
            if conn is None:
                try:
                    conn = await asyncio.to_thread(self._start)
                except Exception as exc:
                    event("worker_unavailable", level="error",
                          error=f"{type(exc).__name__}: {exc}")
                    raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
            try:
                await asyncio.to_thread(conn.send, (fn, args))
                ready = await asyncio.to_thread(conn.poll, self.timeout)
                if not ready:
                    self._kill()
                    raise Refused(f"took longer than {self.timeout:g} s")
                status, value = await asyncio.to_thread(conn.recv)
            except (EOFError, OSError, BrokenPipeError) as exc:
                code = self._process.exitcode if self._process is not None else None
                self._kill()
                raise Refused(f"the worker died ({type(exc).__name__}, exit {code})") from None
            if status != "ok":
                raise Refused(str(value))
            return value  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._process is not None:
            self._kill()
            self.restarts -= 1
            event("worker_stopped")
