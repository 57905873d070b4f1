"""Class 3: no input stalls the daemon. A real daemon process, hostile mail, a second client.

The daemon runs as ``python3 -m listserv serve`` in its own process, so
its resident memory can be read from /proc while each hostile mail is
sent and handled. Meanwhile a second client connects every 50 ms and
must get its ``220`` greeting within a second. Each mail must reach a
defined outcome (refused at DATA, or parked with a reason) in bounded
time, and a normal post sent right after must be handled as usual.

Set ``LISTSERV_STALL_TABLE=path`` to have the measured table written
there (docs/reliability.md shows one such run).
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import sealed
from tests.conftest import LIST, ROOT, write_config

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

GREETING_WITHIN = 1.0
RSS_LIMIT_MB = 500
OUTCOME_WITHIN = 60.0


def folded_subject(words: int, word: str = "=?utf-8?q?Gr=C3=BC=C3=9Fe?=") -> str:
    lines, line = [], []
    for _ in range(words):
        line.append(word)
        if len(line) == 3:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\r\n ".join(lines)


def mail(subject: str, body: str = "Hallo\r\n", headers: str = "",
         msgid: str = "<x@example.org>") -> bytes:
    return (f"From: angreifer@example.org\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
            f"Message-ID: {msgid}\r\nDate: Mon, 30 Nov 2026 10:00:00 +0100\r\n"
            f"{headers}\r\n{body}").encode()


def many_parts(count: int, part_headers: str = "") -> bytes:
    body = "".join(f"--b\r\nContent-Type: text/plain\r\n{part_headers}\r\nx\r\n"
                   for _ in range(count)) + "--b--\r\n"
    return mail("Teile", body, "MIME-Version: 1.0\r\n"
                "Content-Type: multipart/mixed; boundary=\"b\"\r\n", f"<parts{count}@example.org>")


def nested(depth: int) -> bytes:
    body = "".join(f"--n{i}\r\nContent-Type: multipart/mixed; boundary=\"n{i + 1}\"\r\n\r\n"
                   for i in range(depth))
    body += f"--n{depth}\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    body += "".join(f"--n{i}--\r\n" for i in reversed(range(depth + 1)))
    return mail("Tief", body, "MIME-Version: 1.0\r\n"
                "Content-Type: multipart/mixed; boundary=\"n0\"\r\n", f"<deep{depth}@example.org>")


@dataclass
class Attack:
    name: str
    raw: Callable[[], bytes]
    expect: str   # "refused" (5xx at DATA) or "parked"


ATTACKS = [
    Attack("Subject of 20,000 encoded words",
           lambda: mail(folded_subject(20_000, "=?a?q?b?="), msgid="<ew20k@example.org>"),
           "refused"),
    Attack("Subject of 50,000 encoded words",
           lambda: mail(folded_subject(50_000), msgid="<ew50k@example.org>"), "refused"),
    Attack("100,000 MIME parts", lambda: many_parts(100_000), "refused"),
    Attack("250-deep MIME nesting", lambda: nested(250), "refused"),
    Attack("100,000 header lines",
           lambda: mail("Kopf", headers="X-A: b\r\n" * 100_000, msgid="<hdr@example.org>"),
           "refused"),
    Attack("400 parts, each with 1,500 encoded words in a header",
           lambda: many_parts(400, f"X-Note: {folded_subject(1_500, '=?a?q?b?=')}\r\n"),
           "parked"),
]


class Daemon:
    """``python3 -m listserv serve`` in a child process; its port read from the log."""

    def __init__(self, config: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "listserv", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=config.parent)
        self.port = 0
        self.log: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in iter(self.proc.stderr.readline, b""):
                text = line.decode("utf-8", "replace")
                self.log.append(text)
                found = re.search(r"event=listening .*port=(\d+)", text)
                if found:
                    self.port = int(found.group(1))
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30):
            self.proc.kill()
            raise AssertionError("daemon did not start:\n" + "".join(self.log[-20:]))

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else 0.0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    config = write_config(tmp_path, server={"worker_timeout": 5, "shutdown_grace": 2})
    daemon = Daemon(config)
    try:
        yield daemon, tmp_path / "var" / "listserv.sqlite3"
    finally:
        daemon.stop()


def greeting_time(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        banner = sock.recv(512)
        elapsed = time.monotonic() - started
        sock.sendall(b"QUIT\r\n")
    assert banner.startswith(b"220"), banner
    return elapsed


def send(port: int, raw: bytes) -> str:
    """The server's answer to DATA, as ``"250 …"`` or ``"554 …"``."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.sendmail("angreifer@example.org", [LIST], raw)
    except smtplib.SMTPDataError as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
    return "250"


def inbox_outcome(db_path: Path, msgid: str) -> str | None:
    with sealed.connect(db_path, timeout=10) as db:
        row = db.execute("SELECT state, outcome FROM inbox WHERE message_id = ?",
                         (msgid,)).fetchone()
    if row is None or row[0] in ("new", "processing"):
        return None
    return f"{row[0]}: {row[1]}"


@dataclass
class Result:
    attack: str
    outcome: str
    seconds: float
    worst_greeting: float
    peak_rss: float


def run_attack(daemon: Daemon, db_path: Path, attack: Attack) -> Result:
    raw = attack.raw()
    msgid = re.search(rb"Message-ID: (<[^>]+>)", raw).group(1).decode()  # type: ignore[union-attr]
    reply: list[str] = []
    started = time.monotonic()
    sender = threading.Thread(target=lambda: reply.append(send(daemon.port, raw)))
    sender.start()
    greetings, peak, outcome = [], daemon.rss_mb(), None
    while time.monotonic() - started < OUTCOME_WITHIN:
        greetings.append(greeting_time(daemon.port))
        peak = max(peak, daemon.rss_mb())
        if not sender.is_alive():
            if reply and not reply[0].startswith("250"):
                code, _, why = reply[0].partition(": ")
                outcome = f"{code[:9]} at DATA: {why or code}"
            else:
                outcome = inbox_outcome(db_path, msgid)
            if outcome is not None:
                break
        time.sleep(0.05)
    sender.join(5)
    return Result(attack.name, outcome or "no outcome", time.monotonic() - started,
                  max(greetings), peak)


def table(results: list[Result]) -> str:
    lines = ["| attack | outcome | time to outcome | slowest 220 | peak daemon RSS |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.attack} | {r.outcome.replace('|', '/')} | {r.seconds:.1f} s |"
              f" {r.worst_greeting * 1000:.0f} ms | {r.peak_rss:.0f} MB |" for r in results]
    return "\n".join(lines)


def test_no_hostile_mail_stalls_the_daemon_or_the_queue(served: tuple[Daemon, Path]) -> None:
    daemon, db_path = served
    results = [run_attack(daemon, db_path, attack) for attack in ATTACKS]
    report = table(results)
    print("\n" + report)
    if os.environ.get("LISTSERV_STALL_TABLE"):
        Path(os.environ["LISTSERV_STALL_TABLE"]).write_text(report + "\n", encoding="utf-8")
    for attack, result in zip(ATTACKS, results, strict=True):
        assert result.worst_greeting < GREETING_WITHIN, result
        assert result.peak_rss < RSS_LIMIT_MB, result
        if attack.expect == "refused":
            assert result.outcome.startswith("554 5.6.0 at DATA: "), result
        else:
            assert result.outcome.startswith("done: parked:"), result
    # The parked post is where the coordinator looks, and the queue goes on behind it.
    with sealed.connect(db_path) as db:
        parked = db.execute("SELECT state, reason FROM posts").fetchall()
    assert [state for state, _ in parked] == ["parked"]
    assert "took longer than 5 s" in parked[0][1]
    assert send(daemon.port, mail("Fachtag", msgid="<normal@example.org>")) == "250"
    deadline = time.monotonic() + 30
    while inbox_outcome(db_path, "<normal@example.org>") is None:
        assert time.monotonic() < deadline, "the normal post was not handled"
        time.sleep(0.05)
    assert inbox_outcome(db_path, "<normal@example.org>") == "done: held (moderate_all), post 2"
