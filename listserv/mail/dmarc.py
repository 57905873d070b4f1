"""The poster's DMARC policy, and whether the member copy must rewrite From.

A copy that keeps the poster's From but carries our DKIM signature fails
DMARC at the poster's domain; with ``p=quarantine`` or ``p=reject`` the
members' providers would bin it. ``needs_rewrite`` is the pure decision,
made here; ``dmarc_lookup.DmarcLookup`` finds the policy in DNS.

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
"""

from __future__ import annotations

from enum import StrEnum


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
