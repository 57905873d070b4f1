"""Hand copies to a smarthost over SMTP (aiosmtplib), on a few reused connections.

A connection costs a TCP handshake, EHLO, maybe STARTTLS and AUTH: far more
than one transaction. So connections are kept in a small pool (``[delivery]
connections``) and carry many transactions each. A connection that breaks
is dropped; a recipient whose transaction it was gets a *temporary* outcome
and is tried again later, so a relay that is down loses nothing.

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
import contextlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from listserv.config import Config
from listserv.delivery.outcomes import (
    ACCEPTED,
    DeliveryResult,
    Outcome,
    RcptOutcome,
    outcome_for_code,
)
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
    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp
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

    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> DeliveryResult:
        result = DeliveryResult({})
        step = self.settings.max_recipients
        for start in range(0, len(rcpts), step):
            result = result.merged(await self._deliver_one(mail_from, rcpts[start:start + step],
                                                           data))
        return result

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _quit(conn)
        self._open -= len(idle)

    # -- one transaction -----------------------------------------------------

    async def _deliver_one(self, mail_from: str, rcpts: list[str], data: bytes) -> DeliveryResult:
        for attempt in (1, 2):
            try:
                conn, fresh = await self._acquire()
            except TlsRequired as exc:
                return DeliveryResult.temporary(rcpts, 421, f"4.7.0 {exc}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return DeliveryResult.temporary(rcpts, 421, f"4.4.1 {_describe(exc)}")
            try:
                result = await self._transaction(conn.smtp, mail_from, rcpts, data)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                self._discard(conn)
                if attempt == 1 and not fresh:
                    continue  # the relay closed an idle connection: once more, on a new one
                return DeliveryResult.temporary(rcpts, 421, f"4.4.2 {_describe(exc)}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                self._discard(conn)
                return DeliveryResult.temporary(rcpts, 421, f"4.4.2 {_describe(exc)}")
            self.transactions += 1
            await self._release(conn)
            return result
        raise AssertionError("unreachable")

    async def _transaction(
        self, smtp: aiosmtplib.SMTP, mail_from: str, rcpts: list[str], data: bytes
    ) -> DeliveryResult:
        """MAIL, RCPT each, DATA. A refusal is an outcome; a broken line raises."""
        options = []
        utf8 = not (mail_from.isascii() and all(r.isascii() for r in rcpts))
        if utf8:
            if not smtp.supports_extension("smtputf8"):
                return DeliveryResult.every(rcpts, RcptOutcome(
                    Outcome.PERMANENT, 553, "5.6.7 relay lacks SMTPUTF8"))
            options.append("SMTPUTF8")
        if not data.isascii() and smtp.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        encoding = "utf-8" if utf8 else "ascii"
        try:
            await smtp.mail(mail_from, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            await _reset(smtp)
            return DeliveryResult.every(rcpts, outcome_for_code(exc.code, exc.message))
        outcomes: dict[str, RcptOutcome] = {}
        accepted: list[str] = []
        for rcpt in rcpts:
            try:
                await smtp.rcpt(rcpt, encoding=encoding)
            except aiosmtplib.SMTPResponseException as exc:
                outcomes[rcpt] = outcome_for_code(exc.code, exc.message)
                continue
            accepted.append(rcpt)
        if not accepted:
            await _reset(smtp)
            return DeliveryResult(outcomes)
        try:
            response = await smtp.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the relay is going away: the line is dead
                raise aiosmtplib.SMTPServerDisconnected(exc.message) from exc
            outcome = outcome_for_code(exc.code, exc.message)
        else:
            outcome = (ACCEPTED if response.code == 250
                       else outcome_for_code(response.code, response.message))
        for rcpt in accepted:
            outcomes[rcpt] = outcome
        return DeliveryResult(outcomes)

    # -- the pool ------------------------------------------------------------

    async def _acquire(self) -> tuple[_Connection, bool]:
        async with self._available:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if time.monotonic() - conn.last_used < IDLE_LIMIT and conn.smtp.is_connected:
                        return conn, False
                    self._open -= 1
                    asyncio.get_running_loop().create_task(_quit(conn))
                if self._open < self.settings.connections:
                    self._open += 1
                    break
                await self._available.wait()
        try:
            return _Connection(await self._connect()), True
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
        conn.smtp.close()

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


async def _reset(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPResponseException):
        await smtp.rset()


async def _quit(conn: _Connection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.smtp.quit(), timeout=5)
    conn.smtp.close()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
