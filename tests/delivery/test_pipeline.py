"""The pipelined SMTP client over loopback: scripted relays, the bench's raw sink.

aiosmtpd does not offer PIPELINING, so the tests in ``test_transports.py``
cover the one-at-a-time path; here a scripted relay offers it and holds
every reply until it has read the DATA line, which a client that waits for
each reply would never send (it would time out instead). Postfix, which
offers it, is in ``tests/test_postfix.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from listserv.delivery.outcomes import Outcome
from listserv.delivery.pipeline import prepare
from listserv.delivery.smtp import SmtpSettings, SmtpTransport
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
DATA = b"From: a@x.de\r\nTo: b@y.de\r\nSubject: t\r\n\r\nHallo\r\n"


@dataclass
class Script:
    """What the relay answers and what it saw."""

    pipelining: bool = True
    mail_reply: bytes = b"250 OK"
    rcpt_reply: Callable[[str], bytes | None] = lambda rcpt: None
    data_reply: bytes = b"250 OK"
    close_after_421: bool = True
    connections: int = 0
    batched: int = 0  # command lines that came in the same read as an unanswered one
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


class Scripted(asyncio.Protocol):
    def __init__(self, script: Script) -> None:
        self.s = script
        self.buf = bytearray()
        self.in_data = False
        self.mail_from = ""
        self.rcpts: list[str] = []
        self.held: list[bytes] = []
        self.in_mail = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.t = transport
        self.s.connections += 1
        transport.write(b"220 relay.test ESMTP\r\n")

    def reply(self, line: bytes, hold: bool = False) -> None:
        self.held.append(line + b"\r\n")
        if not hold:
            self.t.write(b"".join(self.held))
            self.held = []
        if line.startswith(b"421") and self.s.close_after_421:
            self.t.close()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        lines_in_read = 0
        while not self.t.is_closing():
            if self.in_data:
                end = self.buf.find(b"\r\n.\r\n")
                if self.buf.startswith(b".\r\n"):
                    body, consumed = b"", 3
                elif end < 0:
                    return
                else:
                    body, consumed = bytes(self.buf[:end + 2]), end + 5
                del self.buf[:consumed]
                self.in_data = False
                body = body.replace(b"\r\n..", b"\r\n.")
                body = body[1:] if body.startswith(b"..") else body
                if self.s.data_reply.startswith(b"250"):
                    self.s.messages.append((self.mail_from, self.rcpts, body))
                self.rcpts = []
                self.reply(self.s.data_reply)
                continue
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                return
            line = bytes(self.buf[:nl]).decode()
            del self.buf[:nl + 2]
            lines_in_read += 1
            if lines_in_read > 1 and not self.held and not self.s.pipelining:
                self.s.batched += 1
            verb = line[:4].upper()
            self.s.commands.append(verb)
            if verb == "EHLO":
                extra = b"250-PIPELINING\r\n" if self.s.pipelining else b""
                self.reply(b"250-relay.test\r\n" + extra + b"250 8BITMIME")
            elif verb == "MAIL":
                self.mail_from, self.rcpts = line[11:line.index(">")], []
                self.in_mail = self.s.mail_reply.startswith(b"250")
                self.reply(self.s.mail_reply, hold=self.s.pipelining)
            elif verb == "RCPT":
                rcpt = line[9:line.index(">")]
                answer = self.s.rcpt_reply(rcpt) if self.in_mail else b"503 5.5.1 MAIL first"
                if answer is None:
                    self.rcpts.append(rcpt)
                self.reply(answer or b"250 OK", hold=self.s.pipelining)
                if answer and answer.startswith(b"421"):
                    return
            elif verb == "DATA":
                if self.rcpts:
                    self.in_data = True
                    self.reply(b"354 go ahead")
                else:
                    self.reply(b"554 5.5.1 no valid recipients")
            elif verb == "RSET":
                self.rcpts = []
                self.reply(b"250 OK")
            elif verb == "QUIT":
                self.reply(b"221 bye")
                self.t.close()
            else:
                self.reply(b"250 OK")


@pytest.fixture
async def relay() -> AsyncIterator[Callable[[Script], Any]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> int:
        server = await asyncio.get_running_loop().create_server(
            lambda: Scripted(script), "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


def client(port: int, **kwargs: Any) -> SmtpTransport:
    return SmtpTransport(SmtpSettings(host="127.0.0.1", port=port, starttls="off", timeout=5,
                                      **kwargs))


def mixed(rcpt: str) -> bytes | None:
    return {"b@x.de": b"451 4.2.0 try later", "d@x.de": b"550 5.1.1 no such user"}.get(rcpt)


RCPTS = ["a@x.de", "b@x.de", "c@x.de", "d@x.de", "e@x.de"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_4xx_and_5xx_in_the_middle_of_a_batch_touch_only_their_recipient(
    relay: Callable[[Script], Any], pipelining: bool
) -> None:
    script = Script(pipelining=pipelining, rcpt_reply=mixed)
    smtp = client(await relay(script))
    result = await smtp.deliver("l@d.de", RCPTS, DATA)
    again = await smtp.deliver("l@d.de", ["f@x.de"], DATA)
    await smtp.close()
    assert result.of(Outcome.ACCEPTED) == ["a@x.de", "c@x.de", "e@x.de"]
    assert result.of(Outcome.TEMPORARY) == ["b@x.de"]
    assert result.of(Outcome.PERMANENT) == ["d@x.de"]
    assert result.outcomes["d@x.de"].reply == "550 5.1.1 no such user"
    assert again.of(Outcome.ACCEPTED) == ["f@x.de"]
    assert [m[1] for m in script.messages] == [["a@x.de", "c@x.de", "e@x.de"], ["f@x.de"]]
    assert script.messages[0][2] == DATA
    assert script.connections == 1
    assert script.batched == 0  # a relay without PIPELINING never got two commands at once


async def test_a_pipelining_relay_gets_mail_rcpt_and_data_in_one_write(
    relay: Callable[[Script], Any]
) -> None:
    # The relay holds the replies to MAIL and RCPT until it has read DATA: a client
    # that waited for each reply would never send DATA and time out.
    script = Script()
    smtp = client(await relay(script))
    result = await smtp.deliver("l@d.de", RCPTS, DATA)
    await smtp.close()
    assert result.of(Outcome.ACCEPTED) == RCPTS
    assert script.messages == [("l@d.de", RCPTS, DATA)]


async def test_mail_refused_is_every_recipients_outcome_and_the_line_stays_usable(
    relay: Callable[[Script], Any]
) -> None:
    script = Script(mail_reply=b"452 4.3.1 out of storage")
    smtp = client(await relay(script))
    first = await smtp.deliver("l@d.de", ["a@x.de", "b@x.de"], DATA)
    script.mail_reply = b"250 OK"
    second = await smtp.deliver("l@d.de", ["c@x.de"], DATA)
    await smtp.close()
    assert first.of(Outcome.TEMPORARY) == ["a@x.de", "b@x.de"]
    assert first.outcomes["a@x.de"].code == 452
    assert second.of(Outcome.ACCEPTED) == ["c@x.de"]
    assert [m[1] for m in script.messages] == [["c@x.de"]]
    assert script.connections == 1
    assert "RSET" in script.commands


async def test_no_recipient_taken_sends_no_body(relay: Callable[[Script], Any]) -> None:
    script = Script(rcpt_reply=lambda r: b"550 5.1.1 unknown")
    smtp = client(await relay(script))
    result = await smtp.deliver("l@d.de", ["a@x.de", "b@x.de"], DATA)
    await smtp.close()
    assert result.of(Outcome.PERMANENT) == ["a@x.de", "b@x.de"]
    assert script.messages == []


async def test_data_refused_after_the_body_is_the_accepted_recipients_outcome(
    relay: Callable[[Script], Any]
) -> None:
    script = Script(rcpt_reply=mixed, data_reply=b"554 5.7.1 spam")
    smtp = client(await relay(script))
    result = await smtp.deliver("l@d.de", RCPTS, DATA)
    await smtp.close()
    assert sorted(result.of(Outcome.PERMANENT)) == ["a@x.de", "c@x.de", "d@x.de", "e@x.de"]
    assert result.outcomes["a@x.de"].reply == "554 5.7.1 spam"
    assert result.of(Outcome.TEMPORARY) == ["b@x.de"]


async def test_421_in_the_middle_of_a_batch_defers_all_and_the_next_uses_a_new_line(
    relay: Callable[[Script], Any]
) -> None:
    script = Script(rcpt_reply=lambda r: b"421 4.3.2 going away" if r == "c@x.de" else None)
    smtp = client(await relay(script))
    result = await smtp.deliver("l@d.de", RCPTS, DATA)
    script.rcpt_reply = lambda r: None
    after = await smtp.deliver("l@d.de", ["f@x.de"], DATA)
    await smtp.close()
    assert result.of(Outcome.TEMPORARY) == RCPTS
    assert script.messages == [("l@d.de", ["f@x.de"], DATA)]
    assert after.of(Outcome.ACCEPTED) == ["f@x.de"]
    assert script.connections == 2


async def test_an_address_with_a_line_break_is_refused_here_and_never_sent(
    relay: Callable[[Script], Any]
) -> None:
    script = Script()
    smtp = client(await relay(script))
    result = await smtp.deliver("l@d.de", ["a@x.de", "b@x.de>\r\nRCPT TO:<evil@x.de"], DATA)
    await smtp.close()
    assert result.of(Outcome.ACCEPTED) == ["a@x.de"]
    assert result.of(Outcome.PERMANENT) == ["b@x.de>\r\nRCPT TO:<evil@x.de"]
    assert [m[1] for m in script.messages] == [["a@x.de"]]


async def test_the_body_is_prepared_once_per_content_and_arrives_intact(
    relay: Callable[[Script], Any]
) -> None:
    data = b"Subject: t\n\n.hidden line\nplain\r\n..two dots\n"
    script = Script()
    smtp = client(await relay(script), max_recipients=2)
    assert smtp._payload(data) is smtp._payload(data)
    await smtp.deliver("l@d.de", RCPTS, data)
    await smtp.close()
    expected = b"Subject: t\r\n\r\n.hidden line\r\nplain\r\n..two dots\r\n"
    assert [m[2] for m in script.messages] == [expected] * 3  # 5 recipients by 2


def test_prepare_normalises_line_ends_and_doubles_leading_dots() -> None:
    assert prepare(b"a\n.b\r\nc") == b"a\r\n..b\r\nc\r\n.\r\n"
    assert prepare(b".x\r\n") == b"..x\r\n.\r\n"
    assert prepare(b"a\rb\r\n") == b"a\r\nb\r\n.\r\n"
    clean = b"Subject: t\r\n\r\nHallo\r\n"
    assert prepare(clean) == clean + b".\r\n"


async def test_the_bench_raw_sink_counts_every_recipient_once(tmp_path: Path) -> None:
    stats = tmp_path / "sink.json"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "verify_sink.py"),
                             "--port", str(port), "--stats", str(stats), "--prefix", "l"])
    try:
        await wait_for(stats.exists, timeout=10)
        smtp = client(port, connections=4)
        rcpts = [f"m{i}@x.de" for i in range(300)]
        results = await asyncio.gather(*(smtp.deliver("l@d.de", [r], DATA) for r in rcpts))
        await smtp.close()
        assert all(r.of(Outcome.ACCEPTED) == [rcpt] for r, rcpt in zip(results, rcpts,
                                                                        strict=True))
        await wait_for(lambda: json.loads(stats.read_text())["msgs"] >= 300, timeout=10)
    finally:
        sink.terminate()
        sink.wait(10)
    counted = json.loads(stats.read_text())
    assert (counted["rcpts"], counted["distinct"], counted["duplicates"]) == (300, 300, 0)
    assert counted["connections"] <= 4


async def test_the_body_waits_for_before_data_and_the_envelope_does_not(
    relay: Callable[[Script], Any],
) -> None:
    """The sender's hook: the envelope is answered while the previous outcome is still
    being committed; no byte of the body leaves before the hook returns."""
    script = Script()
    transport = client(await relay(script))
    committed = asyncio.Event()
    waited: list[int] = []

    async def previous_outcome_committed() -> None:
        waited.append(script.commands.count("DATA"))
        await committed.wait()

    task = asyncio.create_task(transport.deliver(
        "list-bounces@x.de", ["a@x.de"], DATA, before_data=previous_outcome_committed))
    await wait_for(lambda: waited == [1])  # MAIL, RCPT, DATA sent and DATA answered 354
    assert script.messages == [] and not task.done()
    committed.set()
    result = await task
    assert result.outcomes["a@x.de"].outcome is Outcome.ACCEPTED
    assert [m[2] for m in script.messages] == [DATA]
    await transport.close()


async def test_before_data_is_not_awaited_when_no_recipient_is_taken(
    relay: Callable[[Script], Any],
) -> None:
    script = Script(rcpt_reply=lambda rcpt: b"550 5.1.1 no such user")
    transport = client(await relay(script))

    async def never() -> None:
        raise AssertionError("no body, so nothing to wait for")

    result = await transport.deliver("list-bounces@x.de", ["a@x.de"], DATA, before_data=never)
    assert result.outcomes["a@x.de"].outcome is Outcome.PERMANENT
    await transport.close()
