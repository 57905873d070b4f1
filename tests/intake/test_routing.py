"""Address routing, DESIGN §4: our addresses are accepted, everything else refused."""

from __future__ import annotations

import pytest

from listserv.bounces import verp
from listserv.config import Config
from listserv.intake import codes as status
from listserv.intake.routing import Refusal, Role, Route, route

L = "soziale.arbeit.an.schulen"
D = "gelsenkirchen.de"
TOKEN = "abcdefghijklmnopqrstuvwxyz234567"


@pytest.mark.parametrize(
    ("rcpt", "role", "extension"),
    [
        (f"{L}@{D}", Role.POST, ""),
        (f"<{L}@{D}>", Role.POST, ""),
        (f"{L.upper()}@{D.upper()}", Role.POST, ""),
        (f"{L}-request@{D}", Role.REQUEST, ""),
        (f"{L}-join@{D}", Role.JOIN, ""),
        (f"{L}-subscribe@{D}", Role.JOIN, ""),
        (f"{L}-leave@{D}", Role.LEAVE, ""),
        (f"{L}-unsubscribe@{D}", Role.LEAVE, ""),
        (f"{L}-owner@{D}", Role.OWNER, ""),
        (f"{L}-confirm+{TOKEN}@{D}", Role.CONFIRM, TOKEN),
        (f"{L}-bounces@{D}", Role.BOUNCES, ""),
        (f"{L}-bounces+Anna.Schmidt=example.org@{D}", Role.BOUNCES, "Anna.Schmidt=example.org"),
    ],
)
def test_our_addresses_route(cfg: Config, rcpt: str, role: Role, extension: str) -> None:
    result = route(rcpt, cfg.lists)
    assert isinstance(result, Route)
    assert result.role is role
    assert result.extension == extension
    assert result.mlist.address == f"{L}@{D}"


@pytest.mark.parametrize(
    ("rcpt", "reply"),
    [
        ("someone@example.org", status.RELAY_DENIED),
        (f"{L}@{D}.evil.example", status.RELAY_DENIED),
        (f"{L}@sub.{D}", status.RELAY_DENIED),
        (f"postmaster@{D}", status.UNKNOWN_USER),
        (f"{L}-admin@{D}", status.UNKNOWN_USER),
        (f"{L}-confirm@{D}", status.UNKNOWN_USER),          # confirm needs a token
        (f"{L}-request+x@{D}", status.UNKNOWN_USER),       # only confirm/bounces take +
        (f"{L}x@{D}", status.UNKNOWN_USER),
        (f"victim%example.org@{D}", status.BAD_RECIPIENT_SYNTAX),   # %-hack
        (f"@{D}:victim@example.org", status.BAD_RECIPIENT_SYNTAX),  # source route
        (f"example.org!victim@{D}", status.BAD_RECIPIENT_SYNTAX),   # bang path
        (f'"{L}@{D}"@example.org', status.BAD_RECIPIENT_SYNTAX),    # quoted local part
        (f"{L}@{D}\r\nRCPT TO:<x@example.org>", status.BAD_RECIPIENT_SYNTAX),
        (f"{L}\x00@{D}", status.BAD_RECIPIENT_SYNTAX),
        ("", status.BAD_RECIPIENT_SYNTAX),
        ("no-at-sign", status.BAD_RECIPIENT_SYNTAX),
    ],
)
def test_everything_else_is_refused(cfg: Config, rcpt: str, reply: str) -> None:
    result = route(rcpt, cfg.lists)
    assert isinstance(result, Refusal)
    assert result.reply == reply


def test_verp_round_trip(cfg: Config) -> None:
    (mlist,) = cfg.lists
    key = b"k" * 32
    address = verp.sender(key, mlist.bounces_address, mlist.address, "Anna.Schmidt+x@example.org")
    result = route(address, cfg.lists)
    assert isinstance(result, Route)
    assert result.role is Role.BOUNCES
    # The extension keeps its case; the MAC is checked by the bounce handler, not at RCPT.
    # This address is too long for user=domain=MAC within 64 octets: the opaque form.
    tag = verp.opaque_tag(result.extension)
    assert tag is not None and len(address.partition("@")[0]) <= 64
    assert verp.find(key, mlist.address, tag, ["anna.schmidt+x@example.org"]) == \
        "anna.schmidt+x@example.org"
    assert verp.find(b"x" * 32, mlist.address, tag, ["anna.schmidt+x@example.org"]) is None


def test_refusal_codes_are_the_contract() -> None:
    assert status.RELAY_DENIED.startswith("550 5.7.1")
    assert status.UNKNOWN_USER.startswith("550 5.1.1")
