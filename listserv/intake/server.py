"""SMTP/LMTP intake: route at RCPT, commit at DATA, then answer.

``Intake`` is one aiosmtpd handler. ``handle_RCPT`` accepts only our own
addresses (``routing.route``); ``handle_DATA`` prepends a Received
header, commits the message to the inbox and only then answers ``250``.
When the store fails the answer is ``451``, so the sending MTA keeps the
message and retries: nothing accepted is ever only in memory.

``IntakeServer`` owns the listening socket and the live sessions: it caps
concurrent connections and, at shutdown, lets transactions in flight end
before it closes the rest with ``421``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime, make_msgid
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from listserv import __version__
from listserv.clock import Clock
from listserv.config import Config
from listserv.errors import ConfigError, StoreError
from listserv.intake import codes
from listserv.intake.routing import Refusal, Role, Route, route
from listserv.intake.screen import screen
from listserv.log import event
from listserv.mail.message import message_id_of
from listserv.store.database import Store
from listserv.store.rows import NewInbound

_UNSAFE = re.compile(r"[^\x21-\x7e]")


def _clean(text: str, limit: int = 100) -> str:
    """A peer-supplied token (HELO name) made safe for a header and a log."""
    return _UNSAFE.sub("", text)[:limit] or "unknown"


def _without_extension(address: str) -> str:
    """``L-confirm+TOKEN@D`` -> ``L-confirm@D``: the token (or VERP address) is stored
    only sealed, in ``inbox.extension`` (``store.seal``), never in the clear."""
    local, _, domain = address.rpartition("@")
    return f"{local.partition('+')[0]}@{domain}"


class Intake:
    """The aiosmtpd handler. Hooks return SMTP status strings (outcomes as values)."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        on_commit: Callable[[], None] = lambda: None,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.on_commit = on_commit
        self.clock = clock
        self.commits_in_flight = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return codes.OK_SENDER

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.config.server.max_recipients:
            return codes.TOO_MANY_RECIPIENTS
        routed = route(address, self.config.lists)
        if isinstance(routed, Refusal):
            event("refused", peer=_peer(session), mail_from=envelope.mail_from,
                  rcpt=address, reply=routed.reply[:9])
            return routed.reply
        if routed.role is Role.CONFIRM and any(
                isinstance(r := route(other, self.config.lists), Route) and r.role is Role.CONFIRM
                for other in envelope.rcpt_tos):
            # A hundred tokens in one DATA would store the message a hundred times.
            event("refused", peer=_peer(session), mail_from=envelope.mail_from,
                  reason="second confirmation address in one message")
            return codes.ONE_CONFIRM_PER_MESSAGE
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return codes.OK_RCPT

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        lmtp = isinstance(server, LMTP)
        raw = envelope.original_content or b""
        now = self.clock()
        refused = await asyncio.to_thread(screen, raw)
        if refused is not None:
            event("refused", reason="too complex", detail=refused, msgid=message_id_of(raw),
                  peer=_peer(session), size=len(raw))
            return _per_recipient(f"{codes.TOO_COMPLEX}: {refused}", envelope, lmtp)
        routes = _unique_routes(envelope.rcpt_tos, self.config)
        received = self._received_header(server, session, envelope, now)
        mail_from = envelope.mail_from or ""
        if mail_from == "<>":
            mail_from = ""
        message_id = message_id_of(raw)
        if not message_id:
            # Every event about this mail is logged under its Message-ID; one
            # that came without gets ours, as an MTA would add it (RFC 5322 3.6.4).
            message_id = make_msgid(domain=self.config.server.hostname)
            received += f"Message-ID: {message_id}\r\n".encode("ascii", "replace")
        full = received + raw
        items = [
            NewInbound(
                received_at=now, peer=_peer(session), helo=_clean(session.host_name or ""),
                mail_from=mail_from, rcpt=_without_extension(r.address),
                list_address=r.mlist.address,
                role=r.role.value, extension=r.extension, message_id=message_id, raw=full,
            )
            for r in routes
        ]
        started = time.perf_counter()
        self.commits_in_flight += 1
        try:
            ids = await self.store.add_inbound(items)
        except StoreError as exc:
            event("store_failed", level="error", peer=_peer(session), msgid=message_id,
                  error=str(exc))
            return _per_recipient(codes.STORE_FAILED, envelope, lmtp)
        finally:
            self.commits_in_flight -= 1
        event("accepted", inbox=",".join(map(str, ids)), msgid=message_id,
              mail_from=mail_from,
              rcpt=",".join(_without_extension(r.address) for r in routes),  # no token in a log
              size=len(full), peer=_peer(session),
              commit_ms=round((time.perf_counter() - started) * 1000, 1))
        self.on_commit()
        return _per_recipient(codes.OK, envelope, lmtp)

    def _received_header(
        self, server: SMTP, session: Session, envelope: Envelope, now: datetime
    ) -> bytes:
        if isinstance(server, LMTP):
            proto = "LMTP"
        else:
            proto = "ESMTP" if session.extended_smtp else "SMTP"
            if session.ssl is not None:
                proto += "S"
        ip = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        for_clause = ""
        if len(envelope.rcpt_tos) == 1:
            for_clause = f"\r\n\tfor <{_clean(envelope.rcpt_tos[0], 300)}>"
        text = (
            f"Received: from {_clean(session.host_name or '')} ([{_clean(ip)}])\r\n"
            f"\tby {self.config.server.hostname} (listserv {__version__}) with {proto}"
            f"{for_clause}; {format_datetime(now)}\r\n"
        )
        return text.encode("ascii", "replace")


def _peer(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _unique_routes(rcpts: list[str], config: Config) -> list[Route]:
    seen: dict[str, Route] = {}
    for rcpt in rcpts:
        routed = route(rcpt, config.lists)
        if isinstance(routed, Route) and routed.address not in seen:
            seen[routed.address] = routed
    return list(seen.values())


def _per_recipient(reply: str, envelope: Envelope, lmtp: bool) -> str:
    """LMTP answers once per accepted recipient (RFC 2033 4.2); SMTP once."""
    if not lmtp:
        return reply
    return "\r\n".join([reply] * max(1, len(envelope.rcpt_tos)))


# -- the server ---------------------------------------------------------------


class _Sessions:
    """The live SMTP sessions, so the server can cap (in total, per peer) and drain them."""

    def __init__(self) -> None:
        self.live: set[SMTP] = set()
        self.by_peer: dict[str, set[SMTP]] = {}
        self.empty = asyncio.Event()
        self.empty.set()

    def add(self, proto: SMTP) -> None:
        self.live.add(proto)
        self.empty.clear()

    def admit(self, proto: SMTP, peer: str, limit: int) -> bool:
        """Count ``proto`` against its peer; False when the peer has ``limit`` already."""
        mine = self.by_peer.setdefault(peer, set())
        if limit and len(mine) >= limit:
            return False
        mine.add(proto)
        return True

    def discard(self, proto: SMTP) -> None:
        self.live.discard(proto)
        for peer, protos in list(self.by_peer.items()):
            protos.discard(proto)
            if not protos:
                del self.by_peer[peer]
        if not self.live:
            self.empty.set()


class ListservSMTP(SMTP):
    """Our changes to aiosmtpd's protocol: enhanced status codes and session tracking."""

    sessions: _Sessions
    # RFC 5321 allows 998 octets a line, but real mail (CR-only line ends,
    # long HTML lines) breaks that; Postfix takes such lines too. Refusing
    # would bounce a colleague's post, so accept up to 64 KiB a line.
    line_length_limit = 64 * 1024

    async def push(self, status_line: AnyStr) -> None:
        if isinstance(status_line, str):
            await super().push(codes.AIOSMTPD_REWRITES.get(status_line, status_line))
        else:
            await super().push(status_line)

    per_peer: int = 0
    _refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again after STARTTLS (self.transport is set then): count only the first.
        if self.transport is None:
            name = transport.get_extra_info("peername")
            peer = str(name[0]) if isinstance(name, tuple) else str(name)
            if not self.sessions.admit(self, peer, self.per_peer):
                # Idle sessions from one peer must not take every slot from the others.
                event("refused", reason="too_many_connections_from_peer", peer=peer,
                      level="warning")
                self._refused = True
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(f"{codes.TOO_MANY_FROM_PEER}\r\n".encode())
                transport.close()
                return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._refused:
            super().connection_lost(error)
        self.sessions.discard(self)


class ListservLMTP(ListservSMTP, LMTP):
    """LMTP (LHLO, a reply per recipient) with the same changes."""


class _Refuser(asyncio.Protocol):
    """Answers a connection over the limit with 421 and hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(f"{codes.TOO_MANY_CONNECTIONS}\r\n".encode())
        transport.close()


class IntakeServer:
    def __init__(self, config: Config, intake: Intake) -> None:
        self.config = config
        self.intake = intake
        self.sessions = _Sessions()
        self._server: asyncio.Server | None = None
        self.tls_context = tls_context(config)

    def _make_protocol(self) -> asyncio.Protocol:
        server = self.config.server
        if len(self.sessions.live) >= server.max_connections:
            event("refused", reason="too_many_connections", level="warning")
            return _Refuser()
        cls = ListservLMTP if server.protocol == "lmtp" else ListservSMTP
        kwargs: dict[str, Any] = {
            "data_size_limit": server.max_message_bytes,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "hostname": server.hostname,
            "ident": f"listserv {__version__}",
            "timeout": server.timeout,
        }
        if self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context, require_starttls=False)
        proto = cls(self.intake, **kwargs)
        proto.sessions = self.sessions
        proto.per_peer = server.max_connections_per_peer
        self.sessions.add(proto)
        return proto

    async def start(self) -> tuple[str, int]:
        server = self.config.server
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._make_protocol, host=server.host, port=server.port
        )
        sock = self._server.sockets[0].getsockname()
        return sock[0], sock[1]

    async def stop(self) -> None:
        """Stop listening; let transactions in flight end; close the rest with 421."""
        if self._server is None:
            return
        self._server.close()
        deadline = time.monotonic() + self.config.server.shutdown_grace
        while time.monotonic() < deadline and any(
            _in_transaction(p) for p in self.sessions.live
        ):
            await asyncio.sleep(0.05)
        for proto in list(self.sessions.live):
            transport = proto.transport
            if isinstance(transport, asyncio.Transport) and not transport.is_closing():
                if not _in_transaction(proto):
                    transport.write(f"{codes.SHUTTING_DOWN}\r\n".encode())
                transport.close()
        # A commit that has started finishes and its 250 is written first.
        while self.intake.commits_in_flight:
            await asyncio.sleep(0.01)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sessions.empty.wait(), timeout=2)
        await self._server.wait_closed()


def _in_transaction(proto: SMTP) -> bool:
    envelope = getattr(proto, "envelope", None)
    return envelope is not None and envelope.mail_from is not None


def tls_context(config: Config) -> ssl.SSLContext | None:
    server = config.server
    if not (server.tls_cert and server.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(server.tls_cert, server.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{config.path}: [server] tls_cert, tls_key: cannot load: {exc}"
        ) from None
    return context
