"""Publishing a post: the list copy members get, DMARC mitigation, first-copy path."""

from __future__ import annotations

import dataclasses

import pytest

from listserv.clock import iso
from listserv.config import Config
from listserv.daemon import Daemon
from tests.conftest import LIST, FakeClock, FakeDns, mail, make_daemon
from tests.mailflow import Flow

MEMBERS = ["m1@example.org", "m2@example.net"]


@pytest.fixture
async def open_flow(cfg: Config, dns: FakeDns, clock: FakeClock):
    open_list = dataclasses.replace(cfg.lists[0], post_policy="open")
    d: Daemon = make_daemon(dataclasses.replace(cfg, lists=(open_list,)), dns, clock=clock)
    await d.start()
    assert d.store is not None
    async with d.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, m, iso(clock.now)) for m in MEMBERS])
    try:
        yield Flow(d)
    finally:
        await d.stop()


async def test_open_list_post_reaches_every_member_once(open_flow: Flow) -> None:
    await open_flow.send(mail(sender="m1@example.org", subject="Hallo"), mail_from="m1@example.org",
                         to=LIST)
    for member in MEMBERS:
        (copy,) = open_flow.sent_to(member)
        assert copy["Subject"] == "[SAS] Hallo"
        assert copy["List-Unsubscribe"] == f"<mailto:{LIST.replace('@', '-leave@')}>"
        assert copy["Precedence"] == "list"
        assert str(copy["Return-Path"]).startswith("<soziale.arbeit.an.schulen-bounces")


@pytest.mark.parametrize(("policy", "rewritten"), [("reject", True), ("quarantine", True),
                                                   ("none", False), (None, False)])
async def test_dmarc_mitigation_when_needed(
    open_flow: Flow, dns: FakeDns, policy: str | None, rewritten: bool
) -> None:
    poster = "lehrer@strict.example"
    if policy is not None:
        dns.txt["_dmarc.strict.example"] = [f"v=DMARC1; p={policy}; rua=mailto:x@strict.example"]
    await open_flow.send(mail(sender=f"Herr Lehrer <{poster}>", subject="DMARC"),
                         mail_from=poster, to=LIST)
    copy = open_flow.sent_to(MEMBERS[0])[-1]
    sender = copy["From"].addresses[0]
    if rewritten:
        assert sender.addr_spec == LIST
        assert "Herr Lehrer via Netzwerk Soziale Arbeit an Schulen" in sender.display_name
        assert copy["Reply-To"].addresses[0].addr_spec == poster
    else:
        assert sender.addr_spec == poster
        assert copy["Reply-To"] is None


async def test_dmarc_org_domain_fallback(open_flow: Flow, dns: FakeDns) -> None:
    dns.txt["_dmarc.gmx.example"] = ["v=DMARC1; p=reject"]
    await open_flow.send(mail(sender="x@mail.gmx.example", subject="Sub"),
                         mail_from="x@mail.gmx.example", to=LIST)
    assert open_flow.sent_to(MEMBERS[1])[-1]["From"].addresses[0].addr_spec == LIST
