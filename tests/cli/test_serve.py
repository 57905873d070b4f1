"""``listserv serve`` as a real process: signals, graceful stop, restart."""

from __future__ import annotations

import os
import queue
import re
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pgbridge, sealed
from tests.conftest import LIST, ROOT, mail, write_config

#: The environment of every ``listserv`` subprocess: this tree, not an installed copy.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Served:
    """A daemon subprocess whose stderr log lines are collected as they come."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "listserv", "serve", "--config", str(config)],
            stderr=subprocess.PIPE, text=True, cwd=config.parent, env=ENV,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        line = self.wait_line(r"event=listening .*port=(\d+)")
        self.port = int(re.search(r"port=(\d+)", line).group(1))  # type: ignore[union-attr]

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        for line in self.log:
            if re.search(pattern, line):
                return line
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            self.log.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no log line matching {pattern!r}; got:\n{''.join(self.log)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def served(config: Path) -> Iterator[Served]:
    s = Served(config)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


def db_rows(config: Path) -> list[sqlite3.Row]:
    with sealed.connect(config.parent / "var" / "listserv.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT id, message_id, state FROM inbox ORDER BY id").fetchall()


def send(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("anna@example.org", [LIST], mail(subject=subject))


def test_sigterm_mid_data_stores_nothing_half_and_restart_keeps_all(
    served: Served, config: Path
) -> None:
    for i in range(3):
        send(served.port, f"accepted {i}")
    served.wait_line(r"event=processed ")
    # A client stops in the middle of DATA and never finishes.
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    f = sock.makefile("rwb")
    assert f.readline().startswith(b"220")
    for cmd in [b"EHLO c", b"MAIL FROM:<b@example.org>", f"RCPT TO:<{LIST}>".encode(), b"DATA"]:
        f.write(cmd + b"\r\n")
        f.flush()
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                break
    assert line.startswith(b"354")
    f.write(b"Subject: half\r\n\r\nonly the first part of the body\r\n")
    f.flush()
    assert served.stop() == 0
    # The half-sent message got no 250 and is not in the store.
    assert f.read() in (b"", b"421 4.3.2 Service shutting down, try again later\r\n")
    sock.close()
    rows = db_rows(config)
    assert len(rows) == 3
    assert all("half" not in r["message_id"] for r in rows)
    served.wait_line(r"event=stopped")
    # Restart: every accepted message is still there; new mail is taken.
    again = Served(config)
    try:
        send(again.port, "after restart")
        assert len(db_rows(config)) == 4
    finally:
        assert again.stop() == 0


def test_sigterm_lets_a_transaction_in_flight_finish(served: Served, config: Path) -> None:
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    f = sock.makefile("rwb")
    f.readline()
    for cmd in [b"HELO c", b"MAIL FROM:<b@example.org>", f"RCPT TO:<{LIST}>".encode(), b"DATA"]:
        f.write(cmd + b"\r\n")
        f.flush()
        f.readline()
    f.write(b"Subject: in flight\r\n\r\nfirst half\r\n")
    f.flush()
    served.proc.send_signal(signal.SIGTERM)
    # The listening socket closes at once: no new client is accepted …
    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", served.port), timeout=1).close()
        except OSError:
            return True
        return False
    deadline = time.monotonic() + 10
    while not refused():
        assert time.monotonic() < deadline, "daemon kept accepting connections after SIGTERM"
        time.sleep(0.05)
    # … but the client already in DATA may finish and gets its 250.
    f.write(b"second half\r\n.\r\n")
    f.flush()
    assert f.readline().startswith(b"250 2.0.0")
    sock.close()
    assert served.proc.wait(timeout=20) == 0
    assert len(db_rows(config)) == 1


def test_sigint_stops_too(served: Served) -> None:
    assert served.stop(signal.SIGINT) == 0
    served.wait_line(r"event=stopped")


def test_log_lines_carry_no_body(served: Served) -> None:
    secret = "Vertrauliche Falldaten 4711"
    with smtplib.SMTP("127.0.0.1", served.port, timeout=10) as smtp:
        smtp.sendmail("anna@example.org", [LIST], mail(body=secret + "\n"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("anna@example.org", ["victim@example.com"], mail())
    served.wait_line(r"event=processed")
    served.wait_line(r"event=refused .*rcpt=victim@example.com .*reply=\"550 5.7.1\"")
    assert served.stop() == 0
    served.wait_line(r"event=stopped")
    text = "".join(served.log)
    assert "event=accepted" in text
    assert secret not in text
    assert pgbridge.ENABLED or os.path.exists(served.config.parent / "var" / "listserv.sqlite3")
