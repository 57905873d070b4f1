"""Does an inbound mail carry a valid DKIM signature of the From's domain?

Used for the one shortcut in moderation: the coordinator's own post, or
her ``einladen``/``entfernen``, need no token round trip when her mail is
provably hers. "Provably" means a signature that dkimpy verifies against
DNS and whose ``d=`` is the From domain or its organisational domain
(DMARC relaxed alignment). A forged From has no such signature.

The DNS lookup is injectable (``dnsfunc(name: bytes) -> bytes``, dkimpy's
own signature) so tests use a stub; dkimpy's verification is synchronous,
so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dkim

from listserv.mail.dmarc import organisational_domain

DnsFunc = Callable[..., bytes]


def _aligned(signing_domain: str, from_domain: str) -> bool:
    signing_domain, from_domain = signing_domain.lower(), from_domain.lower()
    return signing_domain == from_domain or (
        organisational_domain(signing_domain) == organisational_domain(from_domain)
    )


def verified_aligned(raw: bytes, from_domain: str, dnsfunc: DnsFunc | None = None) -> bool:
    """True when some DKIM signature verifies and aligns with ``from_domain``."""
    try:
        verifier = dkim.DKIM(raw)
        count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
        for index in range(min(count, 5)):
            kwargs = {"dnsfunc": dnsfunc} if dnsfunc is not None else {}
            if verifier.verify(idx=index, **kwargs):
                domain = (verifier.domain or b"").decode("ascii", "replace")
                if _aligned(domain, from_domain):
                    return True
    except Exception:  # malformed signature, DNS failure: not verified
        return False
    return False


async def verified_aligned_async(
    raw: bytes, from_domain: str, dnsfunc: DnsFunc | None = None
) -> bool:
    return await asyncio.to_thread(verified_aligned, raw, from_domain, dnsfunc)
