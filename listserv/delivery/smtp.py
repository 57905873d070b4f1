"""Hand copies to a smarthost over SMTP, on a few reused connections, pipelined.

A connection costs a TCP handshake, EHLO, maybe STARTTLS and AUTH: far more
than one transaction. So connections are kept in a small pool (``[delivery]
connections``) and carry many transactions each. A connection that breaks
is dropped; a recipient whose transaction it was gets a *temporary* outcome
and is tried again later, so a relay that is down loses nothing.

aiosmtplib opens each session (EHLO, STARTTLS, AUTH); the transactions then
run on ``pipeline.Session`` (why: its docstring), MAIL/RCPT/DATA in one
write where the relay offers PIPELINING, the body prepared once per
distinct content.

STARTTLS (``smtp_starttls``):

* ``off``: never, even when offered.
* ``opportunistic``: when offered; the certificate is not checked (as
  Postfix's ``may`` level): encryption without authentication still beats
  plain text, and a relay with a self-signed certificate keeps working.
* ``required``: the relay must offer STARTTLS and present a certificate that
  verifies for ``smtp_host``; otherwise nothing is sent and every recipient
  stays temporary, so no copy ever crosses the wire in clear.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from listserv.config import Config
from listserv.delivery.outcomes import DeliveryResult, Outcome, RcptOutcome
from listserv.delivery.pipeline import BeforeData, Session, SessionLost, prepare
from listserv.log import event

IDLE_LIMIT = 30.0  # seconds an idle connection is trusted; relays drop idle ones (Postfix: 300 s)


class TlsRequired(Exception):
    """``smtp_starttls = "required"`` and the relay cannot give us TLS."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    starttls: str = "opportunistic"
    username: str = ""
    password: str = ""
    max_recipients: int = 50
    connections: int = 4
    timeout: float = 60.0
    local_hostname: str | None = None


class _Connection:
    def __init__(self, smtp: aiosmtplib.SMTP, session: Session) -> None:
        self.smtp = smtp  # its EHLO answers only; the line itself is the session's
        self.session = session
        self.pipelining = smtp.supports_extension("pipelining")
        self.last_used = time.monotonic()
        self.used = 0


class SmtpTransport:
    def __init__(
        self, settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self._verified_tls = tls_context
        self._idle: list[_Connection] = []
        self._open = 0
        self._available = asyncio.Condition()
        self.transactions = 0
        self._payloads: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()

    @classmethod
    def from_config(
        cls, config: Config, *, tls_context: ssl.SSLContext | None = None
    ) -> SmtpTransport:
        d = config.delivery
        password = ""
        if d.smtp_password_file:
            password = Path(d.smtp_password_file).read_text(encoding="utf-8").strip("\r\n")
        return cls(SmtpSettings(
            host=d.smtp_host, port=d.smtp_port, starttls=d.smtp_starttls,
            username=d.smtp_username, password=password,
            max_recipients=d.max_recipients_per_transaction, connections=d.connections,
            local_hostname=config.server.hostname or None,
        ), tls_context=tls_context)

    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes, *,
                      before_data: BeforeData | None = None) -> DeliveryResult:
        result = DeliveryResult({})
        step = self.settings.max_recipients
        payload = self._payload(data)
        for start in range(0, len(rcpts), step):
            result = result.merged(await self._deliver_one(mail_from, rcpts[start:start + step],
                                                           data, payload, before_data))
        return result

    def _payload(self, data: bytes) -> bytes:
        """The DATA payload of ``data``, prepared once per distinct content (the same object)."""
        hit = self._payloads.get(id(data))
        if hit is not None and hit[0] is data:
            self._payloads.move_to_end(id(data))
            return hit[1]
        payload = prepare(data)
        self._payloads[id(data)] = (data, payload)
        while len(self._payloads) > 8:
            self._payloads.popitem(last=False)
        return payload

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.session.quit()
        self._open -= len(idle)

    # -- one transaction -----------------------------------------------------

    async def _deliver_one(self, mail_from: str, rcpts: list[str], data: bytes,
                           payload: bytes, before_data: BeforeData | None) -> DeliveryResult:
        for attempt in (1, 2):
            try:
                conn, fresh = await self._acquire()
            except TlsRequired as exc:
                return DeliveryResult.temporary(rcpts, 421, f"4.7.0 {exc}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return DeliveryResult.temporary(rcpts, 421, f"4.4.1 {_describe(exc)}")
            try:
                result = await self._transaction(conn, mail_from, rcpts, data, payload,
                                                 before_data)
            except (SessionLost, OSError, TimeoutError) as exc:
                self._discard(conn)
                if attempt == 1 and not fresh and not conn.session.payload_sent:
                    continue  # the relay closed an idle connection: once more, on a new one
                return DeliveryResult.temporary(rcpts, 421, f"4.4.2 {_describe(exc)}")
            self.transactions += 1
            await self._release(conn)
            return result
        raise AssertionError("unreachable")

    async def _transaction(self, conn: _Connection, mail_from: str, rcpts: list[str],
                           data: bytes, payload: bytes, before_data: BeforeData | None
                           ) -> DeliveryResult:
        """MAIL, RCPT each, DATA. A refusal is an outcome; a broken line raises."""
        options = []
        utf8 = not (mail_from.isascii() and all(r.isascii() for r in rcpts))
        if utf8:
            if not conn.smtp.supports_extension("smtputf8"):
                return DeliveryResult.every(rcpts, RcptOutcome(
                    Outcome.PERMANENT, 553, "5.6.7 relay lacks SMTPUTF8"))
            options.append("SMTPUTF8")
        if not data.isascii() and conn.smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        return await conn.session.transaction(
            mail_from, options, rcpts, payload, pipelining=conn.pipelining,
            encoding="utf-8" if utf8 else "ascii", before_data=before_data)

    # -- the pool ------------------------------------------------------------

    async def _acquire(self) -> tuple[_Connection, bool]:
        async with self._available:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if time.monotonic() - conn.last_used < IDLE_LIMIT and conn.session.alive:
                        return conn, False
                    self._open -= 1
                    asyncio.get_running_loop().create_task(conn.session.quit())
                if self._open < self.settings.connections:
                    self._open += 1
                    break
                await self._available.wait()
        try:
            smtp = await self._connect()
            assert smtp.transport is not None
            return _Connection(smtp, Session.take_over(smtp.transport,
                                                       timeout=self.settings.timeout)), True
        except BaseException:
            async with self._available:
                self._open -= 1
                self._available.notify()
            raise

    async def _release(self, conn: _Connection) -> None:
        conn.last_used = time.monotonic()
        conn.used += 1
        async with self._available:
            self._idle.append(conn)
            self._available.notify()

    def _discard(self, conn: _Connection) -> None:
        conn.session.close()

        async def release_slot() -> None:
            async with self._available:
                self._open -= 1
                self._available.notify()

        asyncio.get_running_loop().create_task(release_slot())

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, start_tls=False, timeout=s.timeout,
                               local_hostname=s.local_hostname)
        await smtp.connect()
        tls = False
        try:
            await smtp.ehlo()
            if s.starttls != "off":
                if smtp.supports_extension("starttls"):
                    await smtp.starttls(tls_context=self._tls_context(), server_hostname=s.host)
                    await smtp.ehlo()  # RFC 3207: what the relay offers is asked again
                    tls = True
                elif s.starttls == "required":
                    raise TlsRequired(f"{s.host}:{s.port} offers no STARTTLS; nothing sent")
            if s.username:
                await smtp.login(s.username, s.password)
        except BaseException:
            smtp.close()
            raise
        event("smtp_connected", host=s.host, port=s.port, tls=tls, auth=bool(s.username))
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        if self.settings.starttls == "required":
            return self._verified_tls or ssl.create_default_context()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
