"""DMARC: the rewrite decision, record parsing, lookup with fallback, cache and failures."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import pytest

from listserv.mail.dmarc import DmarcPolicy, needs_rewrite, organisational_domain, parse_record
from listserv.mail.dmarc_lookup import DmarcLookup


@pytest.mark.parametrize(("mitigation", "policy", "expected"), [
    ("when_needed", DmarcPolicy.REJECT, True),
    ("when_needed", DmarcPolicy.QUARANTINE, True),
    ("when_needed", DmarcPolicy.NONE, False),
    ("when_needed", DmarcPolicy.ABSENT, False),
    ("always", DmarcPolicy.ABSENT, True),
    ("never", DmarcPolicy.REJECT, False),
])
def test_needs_rewrite(mitigation: str, policy: DmarcPolicy, expected: bool) -> None:
    assert needs_rewrite(mitigation, policy) is expected


def test_unknown_mitigation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="sometimes"):
        needs_rewrite("sometimes", DmarcPolicy.REJECT)


@pytest.mark.parametrize(("domain", "org"), [
    ("gelsenkirchen.de", "gelsenkirchen.de"),
    ("mail.schule.gelsenkirchen.de", "gelsenkirchen.de"),
    ("Mail.Example.CO.UK.", "example.co.uk"),
    ("bbc.co.uk", "bbc.co.uk"),
    ("a.b.example.com.au", "example.com.au"),
    ("de", "de"),
    # The Public Suffix List, not a two-label guess: com.de and
    # github.io are public suffixes, so each name below is its own owner.
    ("x.com.de", "x.com.de"),
    ("mail.evil.com.de", "evil.com.de"),
    ("com.de", "com.de"),
    ("someone.github.io", "someone.github.io"),
    ("stadt.gelsenkirchen.nrw.de", "nrw.de"),
])
def test_organisational_domain(domain: str, org: str) -> None:
    assert organisational_domain(domain) == org


@pytest.mark.parametrize(("records", "subdomain", "expected"), [
    (["v=DMARC1; p=reject; rua=mailto:d@example.org"], False, DmarcPolicy.REJECT),
    (["v=DMARC1;p=quarantine;pct=10"], False, DmarcPolicy.QUARANTINE),
    (["v=DMARC1; p=none"], False, DmarcPolicy.NONE),
    (["v=DMARC1; rua=mailto:d@example.org"], False, DmarcPolicy.NONE),
    (["v=DMARC1; p=bogus"], False, DmarcPolicy.NONE),
    (["v=DMARC1; p=reject; sp=none"], True, DmarcPolicy.NONE),
    (["v=DMARC1; p=reject"], True, DmarcPolicy.REJECT),
    (["google-site-verification=abc", "v=DMARC1; P=Reject"], False, DmarcPolicy.REJECT),
    (["v=spf1 -all"], False, None),
    ([], False, None),
    (["v=DMARC1; p=reject", "v=DMARC1; p=none"], False, DmarcPolicy.ABSENT),
])
def test_parse_record(records: list[str], subdomain: bool, expected: DmarcPolicy | None) -> None:
    assert parse_record(records, subdomain=subdomain) == expected


class FakeTxt:
    """A TXT resolver over a dict; a name mapped to an exception raises it."""

    def __init__(self, zone: dict[str, Any]) -> None:
        self.zone = zone
        self.asked: list[str] = []

    async def __call__(self, name: str) -> list[str]:
        self.asked.append(name)
        answer = self.zone.get(name, [])
        if isinstance(answer, BaseException):
            raise answer
        if answer == "hang":
            await asyncio.sleep(60)
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_policy_of_the_exact_domain() -> None:
    lookup = DmarcLookup(FakeTxt({"_dmarc.gmx.de": ["v=DMARC1; p=reject"]}))
    assert await lookup.policy("GMX.de") == DmarcPolicy.REJECT


async def test_subdomain_falls_back_to_organisational_domain_sp() -> None:
    fake = FakeTxt({"_dmarc.example.co.uk": ["v=DMARC1; p=reject; sp=quarantine"]})
    lookup = DmarcLookup(fake)
    assert await lookup.policy("mail.example.co.uk") == DmarcPolicy.QUARANTINE
    assert fake.asked == ["_dmarc.mail.example.co.uk", "_dmarc.example.co.uk"]


async def test_no_record_anywhere_is_absent() -> None:
    lookup = DmarcLookup(FakeTxt({}))
    assert await lookup.policy("schule.gelsenkirchen.de") == DmarcPolicy.ABSENT
    assert await lookup.policy("") == DmarcPolicy.ABSENT


async def test_answers_are_cached_until_they_expire() -> None:
    fake = FakeTxt({"_dmarc.example.org": ["v=DMARC1; p=quarantine"]})
    clock = Clock()
    lookup = DmarcLookup(fake, clock=clock, max_ttl=600)
    assert await lookup.policy("example.org") == DmarcPolicy.QUARANTINE
    fake.zone["_dmarc.example.org"] = ["v=DMARC1; p=none"]
    clock.now += 599
    assert await lookup.policy("example.org") == DmarcPolicy.QUARANTINE
    clock.now += 2
    assert await lookup.policy("example.org") == DmarcPolicy.NONE
    assert fake.asked == ["_dmarc.example.org"] * 2


async def test_dns_failure_is_absent_and_retried_soon() -> None:
    fake = FakeTxt({"_dmarc.example.org": dns.exception.Timeout()})
    clock = Clock()
    lookup = DmarcLookup(fake, clock=clock, error_ttl=30)
    assert await lookup.policy("example.org") == DmarcPolicy.ABSENT
    fake.zone["_dmarc.example.org"] = ["v=DMARC1; p=reject"]
    clock.now += 10
    assert await lookup.policy("example.org") == DmarcPolicy.ABSENT
    clock.now += 21
    assert await lookup.policy("example.org") == DmarcPolicy.REJECT


async def test_a_hanging_resolver_times_out_as_absent() -> None:
    lookup = DmarcLookup(FakeTxt({"_dmarc.slow.example": "hang"}), timeout=0.05)
    assert await asyncio.wait_for(lookup.policy("slow.example"), 2) == DmarcPolicy.ABSENT


# -- the dnspython path ------------------------------------------------------


def txt_answer(name: str, strings: list[list[str]], ttl: int) -> dns.resolver.Answer:
    qname = dns.name.from_text(name)
    response = dns.message.make_response(dns.message.make_query(qname, "TXT"))
    rdatas = [" ".join(f'"{s}"' for s in record) for record in strings]
    rrset = response.find_rrset(response.answer, qname, dns.rdataclass.IN, dns.rdatatype.TXT,
                                create=True)
    rrset.update(dns.rrset.from_text_list(qname, ttl, "IN", "TXT", rdatas))
    return dns.resolver.Answer(qname, dns.rdatatype.TXT, dns.rdataclass.IN, response)


class ZoneResolver(dns.asyncresolver.Resolver):
    """dnspython's resolver with ``resolve`` answered from a table, no network."""

    def __init__(self, zone: dict[str, Any]) -> None:
        super().__init__(configure=False)
        self.zone = zone
        self.asked: list[str] = []

    async def resolve(self, qname: Any, rdtype: Any = "A", *args: Any,  # type: ignore[override]
                      **kwargs: Any) -> dns.resolver.Answer:
        name = str(qname).rstrip(".")
        self.asked.append(name)
        entry = self.zone.get(name)
        if entry is None:
            raise dns.resolver.NXDOMAIN()
        if isinstance(entry, BaseException):
            raise entry
        return txt_answer(name, *entry)


async def test_dnspython_resolver_joins_strings_and_uses_the_ttl() -> None:
    resolver = ZoneResolver({
        "_dmarc.web.de": ([["v=DMARC1; p=qua", "rantine; rua=mailto:x@web.de"]], 120),
    })
    clock = Clock()
    lookup = DmarcLookup(resolver, clock=clock)
    assert await lookup.policy("web.de") == DmarcPolicy.QUARANTINE
    clock.now += 119
    await lookup.policy("web.de")
    clock.now += 2
    await lookup.policy("web.de")
    assert resolver.asked == ["_dmarc.web.de", "_dmarc.web.de"]


async def test_dnspython_nxdomain_falls_back_and_servfail_is_absent() -> None:
    resolver = ZoneResolver({
        "_dmarc.yahoo.com": ([["v=DMARC1; p=reject;"]], 1800),
        "_dmarc.broken.example": dns.resolver.NoNameservers(),
    })
    lookup = DmarcLookup(resolver)
    assert await lookup.policy("mail.yahoo.com") == DmarcPolicy.REJECT
    assert await lookup.policy("broken.example") == DmarcPolicy.ABSENT
