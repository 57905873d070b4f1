"""The poster's DMARC policy, and whether the member copy must rewrite From.

A copy that keeps the poster's From but carries our DKIM signature fails
DMARC at the poster's domain; with ``p=quarantine`` or ``p=reject`` the
members' providers would bin it. ``needs_rewrite`` is the pure decision;
``DmarcLookup`` finds the policy in DNS, through a resolver passed in (a
plain ``async (name) -> list[str]`` in tests, dnspython in the field).

Choices:

* Organisational domain: no public suffix list is bundled. The last two
  labels are taken, or the last three when the last two are a known
  two-level suffix (``co.uk``, ``com.au``, ...; ``_TWO_LEVEL``). A suffix we
  do not know makes us ask ``_dmarc.<suffix>``, which has no record, so the
  error is "no rewrite" for a subdomain of such a registry, never a wrong
  rewrite. German domains (``.de``) need no list.
* A record without a valid ``p=`` counts as ``none``; several DMARC records
  at one name count as ``absent`` (RFC 7489 6.6.3). ``pct=`` is ignored:
  a post either passes or not, and DMARCbis drops the tag.
* A DNS failure or timeout counts as ``absent`` (we cannot tell, and most
  domains have no strict policy) but is cached for ``error_ttl`` seconds
  only; answers are cached for their TTL, clamped to [min_ttl, max_ttl].
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

import dns.asyncresolver
import dns.resolver


class DmarcPolicy(StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    ABSENT = "absent"


MITIGATIONS = ("when_needed", "always", "never")


def needs_rewrite(mitigation: str, policy: DmarcPolicy) -> bool:
    """``dmarc_mitigation`` of the list against the poster's policy."""
    if mitigation == "always":
        return True
    if mitigation == "never":
        return False
    if mitigation == "when_needed":
        return policy in (DmarcPolicy.QUARANTINE, DmarcPolicy.REJECT)
    raise ValueError(f"unknown dmarc_mitigation {mitigation!r} (known: {', '.join(MITIGATIONS)})")


_TWO_LEVEL = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "sch.uk",
    "nhs.uk", "co.at", "or.at", "ac.at", "gv.at", "com.au", "net.au", "org.au", "edu.au",
    "gov.au", "co.nz", "org.nz", "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "com.br",
    "com.cn", "com.tr", "co.za", "co.in", "com.mx", "co.il", "com.ar", "com.pl", "co.kr",
    "com.es", "com.gr", "com.ua", "com.ru", "co.th", "com.sg", "com.hk", "com.tw",
})


def organisational_domain(domain: str) -> str:
    """The registered domain of ``domain`` by the heuristic described above."""
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _TWO_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def parse_record(records: list[str], *, subdomain: bool = False) -> DmarcPolicy | None:
    """The policy in the TXT strings found at one ``_dmarc`` name.

    None when there is no DMARC record there (look further up); ``sp=`` wins
    over ``p=`` when the record is the organisational domain's
    (``subdomain=True``).
    """
    dmarc = [r for r in records if r.strip().lower().replace(" ", "").startswith("v=dmarc1")]
    if len(dmarc) != 1:
        return None if not dmarc else DmarcPolicy.ABSENT
    tags: dict[str, str] = {}
    for part in dmarc[0].split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags.setdefault(key.strip().lower(), value.strip().lower())
    value = tags.get("sp") if subdomain and "sp" in tags else tags.get("p")
    if value in ("quarantine", "reject", "none"):
        return DmarcPolicy(value)
    return DmarcPolicy.NONE


TxtResolver = Callable[[str], Awaitable[list[str]]]


class DmarcLookup:
    """Finds and caches DMARC policies. Build one per process and share it."""

    def __init__(
        self,
        resolver: TxtResolver | dns.asyncresolver.Resolver | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
        min_ttl: float = 60.0,
        max_ttl: float = 3600.0,
        error_ttl: float = 30.0,
    ) -> None:
        if resolver is None:
            resolver = dns.asyncresolver.Resolver()
        self._resolver = resolver
        self._clock = clock
        self._timeout = timeout
        self._min_ttl, self._max_ttl, self._error_ttl = min_ttl, max_ttl, error_ttl
        self._cache: dict[str, tuple[float, list[str] | None]] = {}

    async def policy(self, domain: str) -> DmarcPolicy:
        """The policy a receiver applies to mail From ``domain``."""
        domain = domain.lower().strip().rstrip(".")
        if not domain or "." not in domain:
            return DmarcPolicy.ABSENT
        records = await self._txt(f"_dmarc.{domain}")
        if records is None:
            return DmarcPolicy.ABSENT
        found = parse_record(records)
        if found is not None:
            return found
        org = organisational_domain(domain)
        if org == domain:
            return DmarcPolicy.ABSENT
        records = await self._txt(f"_dmarc.{org}")
        if records is None:
            return DmarcPolicy.ABSENT
        return parse_record(records, subdomain=True) or DmarcPolicy.ABSENT

    async def _txt(self, name: str) -> list[str] | None:
        """TXT strings at ``name`` ([] if none), or None when DNS failed."""
        now = self._clock()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        records: list[str] | None
        try:
            async with asyncio.timeout(self._timeout):
                records, ttl = await self._query(name)
            ttl = min(max(ttl, self._min_ttl), self._max_ttl)
        except Exception:  # timeout, SERVFAIL, no nameservers, a broken resolver
            records, ttl = None, self._error_ttl
        self._cache[name] = (now + ttl, records)
        return records

    async def _query(self, name: str) -> tuple[list[str], float]:
        resolver = self._resolver
        if not isinstance(resolver, dns.asyncresolver.Resolver):
            return list(await resolver(name)), self._max_ttl
        try:
            answer = await resolver.resolve(name, "TXT", lifetime=self._timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], self._max_ttl
        texts = [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
        return texts, float(answer.rrset.ttl if answer.rrset is not None else self._min_ttl)
