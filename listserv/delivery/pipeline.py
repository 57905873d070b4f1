"""One SMTP transaction on an open session, pipelined (RFC 2920) when the relay allows it.

Why not aiosmtplib for this part: its protocol keeps one reply waiter and
drops whatever arrives while no command is waiting (``data_received``:
"ignore it so it can't be mis-paired"), so MAIL, RCPT… and DATA written at
once lose their replies; and ``data()`` re-normalises line endings and
dot-stuffs the same 20 KB for every transaction (two regex passes). So
aiosmtplib still opens the session (connect, EHLO, STARTTLS, AUTH: the
parts with certificates and passwords), and then its transport is handed
to ``Session``, which reads replies in the order the commands were sent.

A transaction is two round trips however many recipients it has: MAIL,
every RCPT and DATA in one write; then, if the relay said ``354`` and took
at least one recipient, the body, prepared once per distinct content
(``prepare``: CRLF, dot-stuffing, the final dot). A relay that does not
offer PIPELINING gets the same commands one at a time. Each recipient's
outcome is its own RCPT reply unless that was a 2xx, in which case it is
the reply to the body (or to MAIL/DATA when those failed), so a 4xx for one
recipient in the middle of a batch defers that one and a 5xx fails that
one, and the others are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from listserv.delivery.outcomes import (
    ACCEPTED,
    DeliveryResult,
    Outcome,
    RcptOutcome,
    outcome_for_code,
)

_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_REPLY = 64 * 1024

BeforeData = Callable[[], Awaitable[object]]


class SessionLost(ConnectionError):
    """The relay closed the line, or answered 421 (it is going away)."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str


def prepare(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends, leading dots doubled, ``.`` line at the end."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _LINE_ENDINGS.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    return data + b".\r\n"


class Session(asyncio.Protocol):
    """Replies of an SMTP session, matched to commands in the order they were written."""

    def __init__(self, transport: asyncio.Transport, *, timeout: float) -> None:
        self.transport = transport
        self.timeout = timeout
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._waiting: deque[asyncio.Future[Reply]] = deque()
        self.lost: BaseException | None = None
        self.payload_sent = False  # of the current transaction: then it is never repeated

    @classmethod
    def take_over(cls, transport: asyncio.BaseTransport, *, timeout: float) -> Session:
        """Become the protocol of a session another client opened (its replies all read)."""
        assert isinstance(transport, asyncio.Transport)
        session = cls(transport, timeout=timeout)
        transport.set_protocol(session)
        return session

    @property
    def alive(self) -> bool:
        return self.lost is None and not self.transport.is_closing()

    # -- asyncio.Protocol --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end + 1])
            del self._buffer[:end + 1]
            self._lines.append(line)
            if line[3:4] == b"-":
                continue
            lines, self._lines = self._lines, []
            try:
                code = int(lines[-1][:3])
            except ValueError:
                self._fail(SessionLost(f"malformed reply {lines[-1][:60]!r}"))
                self.transport.close()
                return
            text = "\n".join(x[4:].strip().decode("utf-8", "replace") for x in lines)
            if self._waiting:
                waiter = self._waiting.popleft()
                if not waiter.done():
                    waiter.set_result(Reply(code, text))
            # A reply nobody asked for (a 421 before closing) is dropped; the close follows.
        if len(self._buffer) > MAX_REPLY:
            self._fail(SessionLost("reply too long"))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SessionLost(f"connection lost: {exc}" if exc else "connection closed"))

    def eof_received(self) -> bool:
        self._fail(SessionLost("connection closed by the relay"))
        return False

    def _fail(self, exc: BaseException) -> None:
        self.lost = self.lost or exc
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: nobody may await a later one

    # -- commands ------------------------------------------------------------------

    def send(self, *lines: bytes) -> list[asyncio.Future[Reply]]:
        """Write commands (or a body) at once; one future per reply expected."""
        if self.lost is not None:
            raise SessionLost(str(self.lost))
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in lines]
        self._waiting.extend(futures)
        self.transport.write(b"".join(lines))
        return futures

    async def reply(self, future: asyncio.Future[Reply]) -> Reply:
        try:
            answer = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            self.close()
            raise
        if answer.code == 421:
            self.close()
            raise SessionLost(f"421 {answer.text}")
        return answer

    async def command(self, line: bytes) -> Reply:
        (future,) = self.send(line)
        return await self.reply(future)

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.command(b"QUIT\r\n"), timeout=5)
        self.close()

    def close(self) -> None:
        self._fail(SessionLost("closed"))
        self.transport.close()

    # -- the transaction -----------------------------------------------------------

    async def transaction(self, mail_from: str, options: list[str], rcpts: list[str],
                          payload: bytes, *, pipelining: bool, encoding: str,
                          before_data: BeforeData | None = None) -> DeliveryResult:
        """MAIL, RCPT each, DATA, body (``payload`` from ``prepare``). Raises SessionLost.

        ``before_data`` is awaited after the ``354`` and before the body (see
        ``transports.Transport.deliver``).
        """
        outcomes: dict[str, RcptOutcome] = {}
        sendable = []
        for rcpt in rcpts:
            if _CONTROL.search(rcpt):  # never a second command smuggled into ours
                outcomes[rcpt] = RcptOutcome(Outcome.PERMANENT, 553,
                                             "5.1.3 control character in the address")
            else:
                sendable.append(rcpt)
        if not sendable:
            return DeliveryResult(outcomes)
        mail = b" ".join([f"MAIL FROM:<{mail_from}>".encode(encoding),
                          *(o.encode("ascii") for o in options)]) + b"\r\n"
        commands = [mail, *(f"RCPT TO:<{r}>\r\n".encode(encoding) for r in sendable),
                    b"DATA\r\n"]
        self.payload_sent = False
        if pipelining:
            futures = self.send(*commands)
            replies = [await self.reply(f) for f in futures]
            mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
        else:  # one at a time, and nothing more after a refused MAIL or no recipient taken
            mail_reply, rcpt_replies = await self.command(mail), []
            data_reply = Reply(503, "5.5.1 DATA not sent")
            if mail_reply.code < 300:
                rcpt_replies = [await self.command(line) for line in commands[1:-1]]
                if any(r.code < 300 for r in rcpt_replies):
                    data_reply = await self.command(b"DATA\r\n")
        if mail_reply.code >= 300:
            await self._reset(data_reply)
            return DeliveryResult({**outcomes, **DeliveryResult.every(
                sendable, outcome_for_code(mail_reply.code, mail_reply.text)).outcomes})
        accepted = []
        for rcpt, answer in zip(sendable, rcpt_replies, strict=True):
            if answer.code < 300:
                accepted.append(rcpt)
            else:
                outcomes[rcpt] = outcome_for_code(answer.code, answer.text)
        if not accepted:
            await self._reset(data_reply)
            return DeliveryResult(outcomes)
        if data_reply.code != 354:
            final = data_reply
            await self._reset(data_reply)
        else:
            if before_data is not None:
                await before_data()
            self.payload_sent = True  # from here a lost line may have delivered it
            final = await self.command(payload)
        outcome = ACCEPTED if final.code == 250 else outcome_for_code(final.code, final.text)
        for rcpt in accepted:
            outcomes[rcpt] = outcome
        return DeliveryResult(outcomes)

    async def _reset(self, data_reply: Reply) -> None:
        """Leave the session clean for the next transaction."""
        if data_reply.code == 354:  # DATA accepted with no recipient: an empty message ends it
            await self.command(b".\r\n")
        await self.command(b"RSET\r\n")
