"""Idle and slow-loris connections: the daemon keeps answering other clients.

``[server] max_connections`` caps the sessions (beyond it: ``421`` at once),
``[server] timeout`` closes a session whose next command does not arrive in
time, however slowly its bytes trickle in.
"""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from listserv.intake import codes as status
from tests.conftest import LIST, mail, write_config
from tests.faults.helpers import Proc, poll

TIMEOUT, MAX = 2, 6


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(write_config(tmp_path, server={"timeout": TIMEOUT, "max_connections": MAX}))
    yield p
    p.close()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(0.05)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def good_client(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("anna@example.org", [LIST], mail())


def test_over_max_connections_gets_421_and_idle_ones_time_out(served: Proc) -> None:
    idle = [connect(served.port) for _ in range(MAX)]
    for s in idle:
        assert s.recv(512).startswith(b"220")
    extra = connect(served.port)
    assert extra.recv(512).decode().strip() == status.TOO_MANY_CONNECTIONS
    started = time.monotonic()
    poll(lambda: all(closed_by_peer(s) for s in idle), timeout=TIMEOUT + 5)
    assert time.monotonic() - started <= TIMEOUT + 3
    good_client(served.port)  # the slots are free again


@pytest.mark.parametrize("phase", ["command", "data"])
def test_slow_loris_trickling_bytes_is_cut_off_at_the_timeout(served: Proc, phase: str) -> None:
    stop = threading.Event()
    cut: list[float] = []

    def loris() -> None:
        s = connect(served.port)
        began = time.monotonic()
        try:
            s.recv(512)
            if phase == "data":
                for cmd in (b"EHLO loris\r\n", b"MAIL FROM:<l@example.org>\r\n",
                            f"RCPT TO:<{LIST}>\r\n".encode(), b"DATA\r\n"):
                    s.sendall(cmd)
                    s.recv(4096)
            began = time.monotonic()
            # (A loris refused with 421 before it got a slot counts as cut at once.)
            while not stop.is_set():
                s.sendall(b"X")  # one byte, never a whole line
                stop.wait(0.2)
        except OSError:
            cut.append(time.monotonic() - began)
        finally:
            s.close()

    threads = [threading.Thread(target=loris) for _ in range(MAX)]
    for t in threads:
        t.start()
    try:
        # While every slot is held, a good client is refused with 421 or served once a
        # slot is cut free; within the timeout (plus slack) it must be served.
        deadline = time.monotonic() + TIMEOUT + 6
        while True:
            try:
                good_client(served.port)
                break
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError):
                assert time.monotonic() < deadline, "a slow-loris client held the daemon"
                time.sleep(0.1)  # a client's reconnect pace, not a wait for work
        poll(lambda: len(cut) == MAX, timeout=TIMEOUT + 6)
        assert max(cut) <= TIMEOUT + 3, cut
    finally:
        stop.set()
        for t in threads:
            t.join(10)
