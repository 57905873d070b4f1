"""Finding a domain's DMARC policy in DNS, with a timeout and a cache.

The resolver is passed in: a plain ``async (name) -> list[str]`` in tests,
dnspython in the field. A DNS failure or timeout counts as ``absent`` (we
cannot tell, and most domains have no strict policy) but is cached for
``error_ttl`` seconds only; answers are cached for their TTL, clamped to
[min_ttl, max_ttl]. What a record means is decided in ``dmarc.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import dns.asyncresolver
import dns.resolver

from listserv.mail.dmarc import DmarcPolicy, organisational_domain, parse_record

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
