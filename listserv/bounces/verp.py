"""VERP addresses that cannot be forged: ``L-bounces+user=domain=MAC@D``.

A bounce to a VERP address names the member it is about, so it used to be
trusted at once, and anybody who could write ``L-bounces+anna=schule.de@D``
into an envelope could disable Anna. Now the address carries a MAC: the
first 8 base32 characters (40 bits) of HMAC-SHA256 over the list and the
member's address, keyed by ``<data_dir>/verp.key`` (``store.keys``; never in
the database). Without the key an outsider has to guess 2^40 values, one
mail each, to score one member once a day.

The MAC is lowercase base32 over the lower-cased address, so an MTA that
changes the case of the local part does not break it. It sits last, after
a second ``=``: ``rpartition`` finds it however many ``=`` the user part has.
An old address without a MAC (``user=domain``) fails the check and is not
scored (``member`` returns None). One HMAC per recipient costs about a
microsecond, nothing beside building and sending the copy.

Where ``user=domain=MAC`` would make the local part longer than RFC 5321's
64 octets (most real addresses on a list named
``soziale.arbeit.an.schulen``), the address is opaque instead:
``L-bounces+h`` and 16 base32 characters of another HMAC (80 bits), and the
bounce handler finds the member by computing the tag for each member of the
list. Both forms are accepted, each only with its MAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

MAC_CHARS = 8
LOCAL_PART_LIMIT = 64   # RFC 5321 4.5.3.1.1
_MAC = re.compile(f"[a-z2-7]{{{MAC_CHARS}}}")
_OPAQUE = re.compile(r"h[a-z2-7]{16}")


def mac(key: bytes, list_address: str, member: str) -> str:
    """The short MAC binding ``member`` to ``list_address``."""
    digest = hmac.new(key, f"{list_address.lower()}\0{member.lower()}".encode(),
                      hashlib.sha256).digest()
    return base64.b32encode(digest[:5]).decode("ascii").lower()


def opaque(key: bytes, list_address: str, member: str) -> str:
    """``h`` and 16 base32 characters (80 bits): the member without her address."""
    digest = hmac.new(key, f"opaque\0{list_address.lower()}\0{member.lower()}".encode(),
                      hashlib.sha256).digest()
    return "h" + base64.b32encode(digest[:10]).decode("ascii").lower()


def sender(key: bytes, bounces_address: str, list_address: str, member: str) -> str:
    """``L-bounces@D`` and ``user@dom`` -> ``L-bounces+user=dom=MAC@D``, or, when that
    local part would pass RFC 5321's 64 octets, ``L-bounces+hTAG@D`` (``opaque``)."""
    local, _, domain = bounces_address.rpartition("@")
    full = f"{local}+{member.replace('@', '=')}={mac(key, list_address, member)}"
    if len(full) <= LOCAL_PART_LIMIT:
        return f"{full}@{domain}"
    return f"{local}+{opaque(key, list_address, member)}@{domain}"


def opaque_tag(extension: str) -> str | None:
    """The tag of an opaque VERP extension (the caller finds the member it belongs to)."""
    tag = extension.lower()
    return tag if _OPAQUE.fullmatch(tag) else None


def find(key: bytes, list_address: str, tag: str, members: Iterable[str]) -> str | None:
    """The one of ``members`` whose opaque tag is ``tag``: a HMAC each (a bounce is rare;
    100,000 members take about a tenth of a second)."""
    for candidate in members:
        if hmac.compare_digest(opaque(key, list_address, candidate), tag):
            return candidate
    return None


def member(key: bytes, list_address: str, extension: str) -> str | None:
    """The member a VERP extension names, or None when its MAC is missing or wrong."""
    named, _, tag = extension.rpartition("=")
    user, _, domain = named.rpartition("=")
    if not user or not domain or not _MAC.fullmatch(tag.lower()):
        return None
    address = f"{user}@{domain}"
    if not hmac.compare_digest(mac(key, list_address, address), tag.lower()):
        return None
    return address
