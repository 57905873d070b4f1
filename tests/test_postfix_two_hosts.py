"""deploy/postfix/listserv_transport.two-hosts, proved with a real Postfix.

Two listserv hosts on one PostgreSQL: Postfix's transport entry names both
as a list of LMTP destinations (Postfix 3.5+). The two hosts are stand-in
LMTP servers here (the database behind them is not the point); the private
Postfix instance of tests/test_postfix.py gets the recipe's file with only
the addresses and ports changed. What the operator's README promises:

- host1 refuses connections (daemon stopped): the mail goes to host2;
- host1 answers ``451 4.3.0`` (its database unreachable): the mail goes to host2;
- both fail: the mail stays in Postfix's queue and arrives when one is back.
"""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
from collections.abc import AsyncIterator

import pytest
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from tests import test_postfix
from tests.conftest import LIST, ROOT, wait_for
from tests.delivery.test_transports import Relay
from tests.test_postfix import Postfix, free_port

postfix = test_postfix.postfix  # the private Postfix fixture

RECIPE = ROOT / "deploy" / "postfix" / "listserv_transport.two-hosts"
HOST1, HOST2 = "[10.0.0.11]:8024", "[10.0.0.12]:8024"


class LmtpHost:
    """One listserv host as Postfix sees it: an LMTP server that can be stopped and started."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.relay = Relay()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        def factory() -> SMTP:
            self.relay.connections += 1
            return LMTP(self.relay, hostname="listserv.test")

        self.server = await asyncio.get_running_loop().create_server(
            factory, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    def subjects(self) -> list[str]:
        return [line.split(b": ", 1)[1].decode() for m in self.relay.messages
                for line in m.data.splitlines() if line.startswith(b"Subject: ")]


@pytest.fixture
async def hosts() -> AsyncIterator[tuple[LmtpHost, LmtpHost]]:
    pair = LmtpHost(free_port()), LmtpHost(free_port())
    try:
        yield pair
    finally:
        for host in pair:
            await host.stop()


def post(port: int, subject: str) -> None:
    data = (f"From: anna@example.org\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n\r\nHallo\r\n").encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("anna@example.org", [LIST], data)


async def test_the_second_host_takes_the_mail_when_the_first_is_down_or_answers_451(
    postfix: Postfix, hosts: tuple[LmtpHost, LmtpHost],
) -> None:
    host1, host2 = hosts
    inbound = free_port()
    try:
        await asyncio.to_thread(postfix.configure, inbound=inbound, outbound=free_port(),
                                lmtp=host1.port, sink=free_port())
        two_hosts = RECIPE.read_text().replace(HOST1, f"[127.0.0.1]:{host1.port}") \
                                      .replace(HOST2, f"[127.0.0.1]:{host2.port}")
        (postfix.config / "listserv_transport").write_text(two_hosts)
        await asyncio.to_thread(postfix.run, "postmap",
                                f"hash:{postfix.config / 'listserv_transport'}")
        await asyncio.to_thread(postfix.start)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"a private Postfix instance does not start here: {exc}\n"
                    f"{postfix.log_text()[-2000:]}")

    async def arrives(host: LmtpHost, subject: str) -> None:
        try:
            await wait_for(lambda: subject in host.subjects(), timeout=30)
        except AssertionError:
            raise AssertionError(f"{subject!r} not at port {host.port}; Postfix log:\n"
                                 f"{postfix.log_text()[-3000:]}") from None

    # host1 stopped (connection refused), host2 up.
    await host2.start()
    await asyncio.to_thread(post, inbound, "eins")
    await arrives(host2, "eins")

    # host1 up but its database unreachable: 451 4.3.0 after DATA.
    host1.relay.data_reply = lambda: "451 4.3.0 database unreachable, try again later"
    await host1.start()
    await asyncio.to_thread(post, inbound, "zwei")
    await arrives(host2, "zwei")
    assert host1.relay.connections >= 1, "Postfix did not try host1 first"
    assert host1.relay.messages == []
    assert "said: 451 4.3.0" in postfix.log_text()

    # Both fail: Postfix keeps the mail and delivers it when host2 is back.
    await host2.stop()
    await asyncio.to_thread(post, inbound, "drei")
    await wait_for(lambda: "status=deferred" in postfix.log_text(), timeout=30)  # queued
    assert "drei" not in host2.subjects()
    await host2.start()

    def flushed_and_there() -> bool:
        # As an operator would (postqueue -f): a queue run that found the mail
        # "still being delivered" would otherwise wait for the next backoff.
        postfix.run("postqueue", "-f", check=False)
        return "drei" in host2.subjects()

    try:
        await wait_for(lambda: asyncio.to_thread(flushed_and_there), timeout=60, interval=1)
    except AssertionError:
        raise AssertionError(f"'drei' not at port {host2.port}; Postfix log:\n"
                             f"{postfix.log_text()[-3000:]}") from None
    assert host1.relay.messages == [] and sorted(host2.subjects()) == ["drei", "eins", "zwei"]
