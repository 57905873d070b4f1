"""Which list, and which of its addresses, a recipient names (DESIGN §4).

Pure: a recipient string and the configured lists in, a ``Route`` or a
``Refusal`` out. Intake calls this at RCPT time, so everything that is not
one of our own addresses is refused before any data is accepted; that is
what keeps listserv from ever being an open relay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from listserv.config import ListConfig
from listserv.intake import codes


class Role(StrEnum):
    POST = "post"
    REQUEST = "request"
    JOIN = "join"
    LEAVE = "leave"
    OWNER = "owner"
    CONFIRM = "confirm"
    BOUNCES = "bounces"


# Sub-address suffix -> role. "subscribe"/"unsubscribe" are aliases that
# people type from memory; Mailman knows them too.
_SUFFIXES: dict[str, Role] = {
    "request": Role.REQUEST,
    "join": Role.JOIN,
    "subscribe": Role.JOIN,
    "leave": Role.LEAVE,
    "unsubscribe": Role.LEAVE,
    "owner": Role.OWNER,
    "confirm": Role.CONFIRM,
    "bounces": Role.BOUNCES,
}
_NEEDS_EXTENSION = {Role.CONFIRM}
_ALLOWS_EXTENSION = {Role.CONFIRM, Role.BOUNCES}

TOKEN_RE = re.compile(r"[a-z2-7]{32}")
# Characters that have no business in an address we route: they are how
# relay tricks (%-hack, source routes, UUCP bang paths) and header injection
# are attempted. Quoted local parts are refused for the same reason.
_FORBIDDEN = re.compile(r'[\x00-\x20\x7f%!:,;"<>()\[\]\\]')


@dataclass(frozen=True)
class Route:
    """An accepted recipient: the list, the role, and the ``+extension``."""

    address: str
    mlist: ListConfig
    role: Role
    extension: str = ""

    @property
    def token(self) -> str | None:
        return self.extension if self.role is Role.CONFIRM else None


@dataclass(frozen=True)
class Refusal:
    reply: str


def route(recipient: str, lists: Iterable[ListConfig]) -> Route | Refusal:
    """Route one RCPT TO address; never raises."""
    address = recipient.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if not address or _FORBIDDEN.search(address) or address.count("@") != 1:
        return Refusal(codes.BAD_RECIPIENT_SYNTAX)
    local, domain = address.rsplit("@", 1)
    local_l, domain_l = local.lower(), domain.lower().rstrip(".")
    lists = tuple(lists)
    ours = [m for m in lists if m.domain == domain_l]
    if not ours:
        return Refusal(codes.RELAY_DENIED)
    for mlist in ours:
        if local_l == mlist.local_part:
            return Route(f"{local_l}@{domain_l}", mlist, Role.POST)
        prefix = mlist.local_part + "-"
        if not local_l.startswith(prefix):
            continue
        suffix, plus, extension = local_l[len(prefix):].partition("+")
        role = _SUFFIXES.get(suffix)
        if role is None:
            continue
        if plus and (role not in _ALLOWS_EXTENSION or not extension):
            continue
        if role in _NEEDS_EXTENSION and not plus:
            continue
        # The VERP extension keeps its case: it encodes a member address.
        if role is Role.BOUNCES:
            extension = local[len(prefix) + len(suffix) + 1:] if plus else ""
        return Route(f"{local_l}@{domain_l}", mlist, role, extension)
    return Refusal(codes.UNKNOWN_USER)


def is_list_address(address: str, lists: Iterable[ListConfig]) -> bool:
    """True for any of our own addresses: mail from them is never answered."""
    return isinstance(route(address, lists), Route)
