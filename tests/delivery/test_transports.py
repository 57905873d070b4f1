"""Transports over real loopback sockets: an aiosmtpd relay in the test, a Maildir on disk."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from listserv.config import Config
from listserv.delivery.maildir import MaildirTransport
from listserv.delivery.outcomes import Outcome
from listserv.delivery.sender import Sender
from listserv.delivery.smtp import SmtpSettings, SmtpTransport
from listserv.store.database import Store
from tests.conftest import wait_for
from tests.delivery import test_sender as test_sender
from tests.delivery.test_sender import FakeClock, add_members, list_copy_bytes, post, start

# The sender's fixtures, shared: a fake clock, a store on it, senders stopped at the end.
clock, store, running = test_sender.clock, test_sender.store, test_sender.running

DATA = b"From: a@x.de\r\nTo: b@y.de\r\nSubject: t\r\n\r\nHallo\r\n"


@dataclass
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    tls: bool
    login: str | None


@dataclass
class Relay:
    """A smarthost in the test: records what it accepts, refuses what it is told to."""

    rcpt_reply: Callable[[str], str | None] = lambda rcpt: None
    data_reply: Callable[[], str | None] = lambda: None
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    port: int = 0

    async def handle_MAIL(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        self.commands["MAIL"] += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        reply = self.rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        reply = self.data_reply()
        if reply:
            return reply
        login = session.auth_data.login.decode() if session.authenticated else None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content, session.ssl is not None, login))
        return "250 OK"

    def delivered(self) -> Counter[str]:
        return Counter(r for m in self.messages for r in m.rcpts)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[asyncio.Server] = []

    async def start_relay(relay: Relay, **kwargs: Any) -> Relay:
        def factory() -> SMTP:
            relay.connections += 1
            return SMTP(relay, hostname="relay.test", **kwargs)

        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        servers.append(server)
        relay.port = server.sockets[0].getsockname()[1]
        return relay

    yield start_relay
    for server in servers:
        server.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def client_trust(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def transport(relay: Relay, **kwargs: Any) -> SmtpTransport:
    tls = kwargs.pop("tls_context", None)
    settings = {"host": "127.0.0.1", "port": relay.port, "starttls": "off", **kwargs}
    return SmtpTransport(SmtpSettings(**settings), tls_context=tls)


# -- Maildir --------------------------------------------------------------------


async def test_maildir_writes_one_file_per_recipient_with_the_envelope(tmp_path: Path) -> None:
    maildir = MaildirTransport(tmp_path / "outbox")
    result = await maildir.deliver("l-bounces@d.de", ["a@x.de", "b@y.de"], DATA)
    assert result.of(Outcome.ACCEPTED) == ["a@x.de", "b@y.de"]
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 2 and not list((tmp_path / "outbox" / "tmp").iterdir())
    copies = sorted(f.read_bytes() for f in files)
    assert copies == [b"Return-Path: <l-bounces@d.de>\r\nDelivered-To: " + rcpt + b"\r\n" + DATA
                      for rcpt in (b"a@x.de", b"b@y.de")]


# -- SMTP -------------------------------------------------------------------------


async def test_batches_share_one_reused_connection(serve: Callable[..., Any]) -> None:
    relay = await serve(Relay())
    smtp = transport(relay, max_recipients=2)
    result = await smtp.deliver("l@d.de", ["a@x.de", "b@x.de", "c@x.de"], DATA)
    await smtp.deliver("l@d.de", ["d@x.de"], DATA)
    await smtp.close()
    assert len(result.of(Outcome.ACCEPTED)) == 3
    assert [m.rcpts for m in relay.messages] == [["a@x.de", "b@x.de"], ["c@x.de"], ["d@x.de"]]
    assert relay.connections == 1
    assert relay.messages[0].data == DATA


async def test_a_refused_recipient_fails_alone(serve: Callable[..., Any]) -> None:
    relay = await serve(Relay(rcpt_reply=lambda r: "550 5.1.1 no such user"
                              if r == "gone@x.de" else None))
    smtp = transport(relay)
    result = await smtp.deliver("l@d.de", ["a@x.de", "gone@x.de", "b@y.de"], DATA)
    await smtp.close()
    assert result.outcomes["gone@x.de"].outcome is Outcome.PERMANENT
    assert result.outcomes["gone@x.de"].reply == "550 5.1.1 no such user"
    assert result.of(Outcome.ACCEPTED) == ["a@x.de", "b@y.de"]
    assert relay.delivered() == Counter({"a@x.de": 1, "b@y.de": 1})


async def test_relay_down_is_temporary_for_everyone() -> None:
    smtp = SmtpTransport(SmtpSettings(host="127.0.0.1", port=1, starttls="off", timeout=2))
    result = await smtp.deliver("l@d.de", ["a@x.de", "b@y.de"], DATA)
    assert result.of(Outcome.TEMPORARY) == ["a@x.de", "b@y.de"]


async def test_opportunistic_starttls_encrypts_when_offered(
    serve: Callable[..., Any], ca: trustme.CA
) -> None:
    relay = await serve(Relay(), tls_context=server_tls(ca))
    smtp = transport(relay, starttls="opportunistic")
    result = await smtp.deliver("l@d.de", ["a@x.de"], DATA)
    await smtp.close()
    assert result.of(Outcome.ACCEPTED) == ["a@x.de"]
    assert relay.messages[0].tls


async def test_required_starttls_verifies_the_relay(
    serve: Callable[..., Any], ca: trustme.CA
) -> None:
    relay = await serve(Relay(), tls_context=server_tls(ca))
    trusted = transport(relay, starttls="required", tls_context=client_trust(ca))
    assert (await trusted.deliver("l@d.de", ["a@x.de"], DATA)).of(Outcome.ACCEPTED)
    await trusted.close()
    # A certificate we have no reason to trust: nothing is sent.
    untrusted = transport(relay, starttls="required")
    result = await untrusted.deliver("l@d.de", ["b@x.de"], DATA)
    assert result.of(Outcome.TEMPORARY) == ["b@x.de"]
    assert relay.delivered() == Counter({"a@x.de": 1})


async def test_required_starttls_without_offer_sends_nothing_in_clear(
    serve: Callable[..., Any]
) -> None:
    relay = await serve(Relay())
    smtp = transport(relay, starttls="required")
    result = await smtp.deliver("l@d.de", ["a@x.de", "b@y.de"], DATA)
    assert result.of(Outcome.TEMPORARY) == ["a@x.de", "b@y.de"]
    assert "STARTTLS" in result.outcomes["a@x.de"].text
    assert relay.commands["MAIL"] == 0 and not relay.messages


async def test_auth_with_the_password_from_its_file(
    serve: Callable[..., Any], ca: trustme.CA, tmp_path: Path,
    config_factory: Callable[..., Config],
) -> None:
    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password == b"geheim 123"
        return AuthResult(success=ok, auth_data=data if ok else None)

    relay = await serve(Relay(), tls_context=server_tls(ca), authenticator=authenticator,
                        auth_required=True)
    password = tmp_path / "relay.pw"
    password.write_text("geheim 123\n")
    config = config_factory(delivery={
        "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
        "smtp_starttls": "required", "smtp_username": "listserv",
        "smtp_password_file": str(password)})
    smtp = SmtpTransport.from_config(config, tls_context=client_trust(ca))
    result = await smtp.deliver("l@d.de", ["a@x.de"], DATA)
    await smtp.close()
    assert result.of(Outcome.ACCEPTED) == ["a@x.de"]
    assert relay.messages[0].login == "listserv" and relay.messages[0].tls


# -- the sender over SMTP ---------------------------------------------------------


def smtp_config(config_factory: Callable[..., Config], relay: Relay, **delivery: Any) -> Config:
    table = {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
             "smtp_starttls": "off", "verp": False, **delivery}
    return config_factory(delivery=table)


async def test_relay_answering_451_for_a_while_then_250_delivers_everything_once(
    serve: Callable[..., Any], config_factory: Callable[..., Config], store: Store,
    clock: FakeClock, running: list[Sender],
) -> None:
    down = True
    relay = await serve(Relay(data_reply=lambda: "451 4.3.0 try later" if down else None))
    config = smtp_config(config_factory, relay, max_recipients_per_transaction=3)
    members = [f"m{i}@d{i % 3}.de" for i in range(10)]
    await add_members(store, members)
    sender = await start(running, config, store, clock=clock)
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await wait_for(lambda: sender.deferred == 10)
    clock.advance(minutes=1)
    sender.wake()
    await wait_for(lambda: sender.deferred == 20)
    down = False
    clock.advance(minutes=5)
    sender.wake()
    await wait_for(lambda: sender.sent == 10)
    assert relay.delivered() == Counter({m: 1 for m in members})
    row = await store.fetchone("SELECT min(attempts), max(attempts) FROM deliveries")
    assert (row[0], row[1]) == (3, 3)


async def test_550_for_one_member_raises_her_bounce_score_and_the_rest_arrive(
    serve: Callable[..., Any], config_factory: Callable[..., Config], store: Store,
    clock: FakeClock, running: list[Sender],
) -> None:
    relay = await serve(Relay(rcpt_reply=lambda r: "550 5.1.1 user unknown"
                              if r == "gone@y.de" else None))
    config = smtp_config(config_factory, relay)
    await add_members(store, ["a@x.de", "gone@y.de", "b@y.de"])
    sender = await start(running, config, store, clock=clock)
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await wait_for(lambda: sender.sent == 2 and sender.failed == 1)
    assert relay.delivered() == Counter({"a@x.de": 1, "b@y.de": 1})
    scores = {r[0]: (r[1], r[2]) for r in await store.fetchall(
        "SELECT address, bounce_score, status FROM members")}
    assert scores == {"a@x.de": (0, "enabled"), "gone@y.de": (1, "enabled"),
                      "b@y.de": (0, "enabled")}
    failed = await store.fetchone("SELECT last_reply FROM deliveries WHERE state = 'failed'")
    assert failed[0] == "550 5.1.1 user unknown"


async def test_required_tls_without_offer_leaves_copies_deferred(
    serve: Callable[..., Any], config_factory: Callable[..., Config], store: Store,
    clock: FakeClock, running: list[Sender],
) -> None:
    relay = await serve(Relay())
    config = smtp_config(config_factory, relay, smtp_starttls="required")
    await add_members(store, ["a@x.de", "b@y.de"])
    sender = await start(running, config, store, clock=clock, give_up_after=timedelta(days=5))
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await wait_for(lambda: sender.deferred == 2)
    states = {r[0] for r in await store.fetchall("SELECT state FROM deliveries")}
    assert states == {"deferred"}
    assert relay.commands["MAIL"] == 0 and not relay.messages
