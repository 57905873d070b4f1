"""VERP addresses with a MAC (issue 12, class 4): they round-trip, and nothing else passes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from listserv.bounces import verp
from listserv.intake.routing import Role, Route, route
from tests.conftest import LIST

BOUNCES = LIST.replace("@", "-bounces@")
KEY = b"0123456789abcdef0123456789abcdef"

local = st.text(st.sampled_from("abcXYZ019.+-_="), min_size=1, max_size=30).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
domain = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}\.(de|org|example)",
                       fullmatch=True)


@given(local, domain)
def test_a_member_round_trips_through_routing(user: str, host: str) -> None:
    member = f"{user}@{host}"
    address = verp.sender(KEY, BOUNCES, LIST, member)
    routed = route(address, [_list()])
    assert isinstance(routed, Route) and routed.role is Role.BOUNCES
    assert len(address.rpartition("@")[0]) <= verp.LOCAL_PART_LIMIT   # RFC 5321
    tag = verp.opaque_tag(routed.extension)
    if tag is None:
        assert verp.member(KEY, LIST, routed.extension) == member
        # An MTA that changes the case of the local part does not break it.
        assert verp.member(KEY, LIST, routed.extension.upper()) == member.upper()
        assert verp.member(KEY, LIST, routed.extension.lower()) == member.lower()
    else:   # too long for user=domain=MAC: the handler finds her among the members
        # Other members, never her own address in another case (hypothesis found X0).
        others = [o for i in range(5) if (o := f"x{i}@{host}") != member.lower()]
        assert verp.find(KEY, LIST, verp.opaque_tag(routed.extension.upper()) or "",
                         [*others, member.lower()]) == member.lower()
        assert verp.find(KEY, LIST, tag, others) is None
        assert verp.find(b"another key" * 3, LIST, tag, [member]) is None


@given(local, domain, st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"),
                              min_size=8, max_size=8))
def test_a_forged_mac_another_key_or_the_old_form_names_nobody(
    user: str, host: str, guess: str
) -> None:
    member = f"{user}@{host}"
    mac = verp.mac(KEY, LIST, member)
    named = member.replace("@", "=")
    extension = f"{named}={mac}"   # the long form is accepted in any length
    if guess != mac:
        assert verp.member(KEY, LIST, f"{named}={guess}") is None
    assert verp.member(b"another key" * 3, LIST, extension) is None
    assert verp.member(KEY, "andere.liste@gelsenkirchen.de", extension) is None
    assert verp.member(KEY, LIST, named) is None   # the old form without a MAC


def test_the_mac_is_short() -> None:
    tag = verp.mac(KEY, LIST, "anna@schule.example")
    assert len(tag) == verp.MAC_CHARS == 8 and tag.islower()


def _list():  # the configured list, without reading a file
    from listserv.config import ListConfig

    return ListConfig(address=LIST, display_name="SAS", moderators=("k@gelsenkirchen.de",))
