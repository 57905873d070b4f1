"""``daemon.Daemon``: a start that fails half way leaves nothing running behind it."""

from __future__ import annotations

import dataclasses
import socket
import threading

import pytest

from listserv.config import Config
from listserv.ops import preflight
from listserv.ops.preflight import CannotStart
from tests.conftest import FakeDns, make_daemon, wait_for


async def test_a_port_taken_after_the_check_stops_what_was_started(
    cfg: Config, dns: FakeDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the preflight cannot close: the port goes between the check and the bind.

    Before issue 13 the process then lived on without a socket (the workers'
    threads kept it alive); now every started part is stopped and the lock
    released, so ``listserv serve`` ends with its one line.
    """
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    monkeypatch.setattr(preflight, "port_problem", lambda host, port: None)
    taken = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, port=port))
    def keeping_alive() -> list[str]:
        """Threads that would keep the process alive (the loop's own executor ends with it)."""
        return [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon
                and t is not threading.main_thread() and not t.name.startswith("asyncio")]

    before = keeping_alive()
    daemon = make_daemon(taken, dns)
    try:
        with pytest.raises(CannotStart, match=rf"cannot listen on 127\.0\.0\.1:{port} \(SMTP\):"
                                              " address already in use"):
            await daemon.start()
        # The store's thread ends just after its close: nothing keeps the process alive.
        await wait_for(lambda: keeping_alive() == before, timeout=5)
        assert all(task.done() for task in daemon._tasks)
        # The lock went with it: a daemon on the same data_dir starts.
        again = make_daemon(cfg, dns)
        await again.start()
        await again.stop()
    finally:
        holder.close()
