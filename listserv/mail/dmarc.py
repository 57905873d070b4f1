"""The poster's DMARC policy, and whether the member copy must rewrite From.

A copy that keeps the poster's From but carries our DKIM signature fails
DMARC at the poster's domain; with ``p=quarantine`` or ``p=reject`` the
members' providers would bin it. ``needs_rewrite`` is the pure decision,
made here; ``dmarc_lookup.DmarcLookup`` finds the policy in DNS.

Choices:

* Organisational domain: the registered domain by the Public Suffix List
  (the ``publicsuffixlist`` package, which ships its own copy of the list:
  no network). Never a "last two labels" guess: ``x.com.de`` and
  ``evil.com.de`` are two owners (``com.de`` is a public suffix), and the
  DKIM proof (``dkim_proof``) relies on telling them apart.
* A record without a valid ``p=`` counts as ``none``; several DMARC records
  at one name count as ``absent`` (RFC 7489 6.6.3). ``pct=`` is ignored:
  a post either passes or not, and DMARCbis drops the tag.
"""

from __future__ import annotations

from enum import StrEnum

from publicsuffixlist import PublicSuffixList


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


_SUFFIXES = PublicSuffixList()   # the bundled list (ICANN and private sections)


def organisational_domain(domain: str) -> str:
    """The registered domain of ``domain`` by the Public Suffix List.

    A name that is itself a public suffix (``com.de``) is its own
    organisational domain, so it aligns with nothing but itself.
    """
    name = domain.lower().strip().rstrip(".")
    try:
        registered = _SUFFIXES.privatesuffix(name)
    except Exception:  # an empty label, a name the list cannot read
        registered = None
    return registered or name


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
