"""Property tests (hypothesis) over the pure core: routing, command parsing, the list copy.

``tests/commands/test_parse.py`` already shows that ``parse_commands`` never raises on
text, HTML or raw bytes and never reads a quote; here: what its result may
contain, by context. The rest is new: ``addresses.route`` and
``transform.list_copy`` over generated input.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listserv.commands.parse import Context, Verb, parse_commands
from listserv.commands.reader import Asker, Choice, read_reply
from listserv.commands.requests import Ask, read_request
from listserv.config import ListConfig
from listserv.delivery.transform import list_copy
from listserv.intake import routing as addresses
from listserv.intake.routing import Refusal, Role, Route, route

LISTS = (
    ListConfig(address="soziale.arbeit.an.schulen@gelsenkirchen.de",
               display_name="Netzwerk SAS", moderators=("koordination@gelsenkirchen.de",),
               subject_prefix="[SAS]"),
    ListConfig(address="fachtag@schule.example", display_name="Fachtag",
               moderators=("k@schule.example",), language="en"),
)
OURS = {(m.local_part, m.domain) for m in LISTS}
SUFFIXES = ["", "-request", "-join", "-subscribe", "-leave", "-unsubscribe", "-owner",
            "-confirm", "-bounces", "-admin", "-", "x"]

# Addresses that are nearly ours: the interesting ones for a router.
near = st.builds(
    lambda m, suffix, ext, junk, dom, case: (
        (m.local_part + suffix + ext + junk) + "@" + dom(m)
    ).upper() if case else (m.local_part + suffix + ext + junk) + "@" + dom(m),
    st.sampled_from(LISTS), st.sampled_from(SUFFIXES),
    st.one_of(st.just(""), st.builds(lambda t: "+" + t, st.text(max_size=40))),
    st.one_of(st.just(""), st.text(max_size=5)),
    st.sampled_from([lambda m: m.domain, lambda m: m.domain + ".", lambda m: "x." + m.domain,
                     lambda m: "example.com"]),
    st.booleans(),
)
any_address = st.one_of(near, st.text(max_size=120),
                        st.builds(lambda a: f"<{a}>", near))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(any_address)
def test_route_never_raises_and_accepts_only_our_addresses(rcpt: str) -> None:
    result = route(rcpt, LISTS)
    assert isinstance(result, Route | Refusal)
    if isinstance(result, Refusal):
        assert result.reply[:3] in ("550", "553")
        return
    local, _, domain = result.address.rpartition("@")
    assert result.mlist in LISTS and domain == result.mlist.domain
    assert local == result.mlist.local_part or local.startswith(result.mlist.local_part + "-")
    assert not re.search(r'[\x00-\x20\x7f%!:,;"<>()\[\]\\]', result.address)
    assert result.address.count("@") == 1
    if result.role is Role.CONFIRM:
        assert result.extension
    # Routing is stable: the routed address routes to itself.
    again = route(result.address, LISTS)
    assert isinstance(again, Route) and (again.mlist, again.role) == (result.mlist, result.role)
    assert addresses.is_list_address(result.address, LISTS)


@given(st.sampled_from(LISTS), st.sampled_from(SUFFIXES[:9]))
def test_every_documented_address_is_routed(mlist: ListConfig, suffix: str) -> None:
    ext = "+" + "a" * 32 if suffix == "-confirm" else ""
    assert isinstance(route(f"{mlist.local_part}{suffix}{ext}@{mlist.domain}", LISTS), Route)


LINE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
WORDS = st.sampled_from(["anmelden", "subscribe", "abmelden", "ok", "ablehnen zu lang",
                         "verwerfen", "hilfe", "mitglieder", "einladen a@b.de Anna",
                         "entfernen a@b.de", "confirm " + "a" * 32, "ende", "> ok", "-- "])


def message(subject: str, lines: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject.split())
    msg.set_content("\n".join(lines))
    return msg


@settings(max_examples=300)
@given(subject=LINE, lines=st.lists(st.one_of(WORDS, LINE), max_size=12))
def test_command_results_by_context(subject: str, lines: list[str]) -> None:
    msg = message(subject, lines)
    assert read_request(msg, "a@b.example").ask in set(Ask)
    request = parse_commands(msg, Context.REQUEST, max_lines=5)
    assert len(request) <= 6  # the subject and at most max_lines body lines
    assert len({(c.verb, c.argument) for c in request}) == len(request), "duplicates dropped"
    assert not {c.verb for c in request} & {Verb.APPROVE, Verb.REJECT, Verb.DISCARD}
    assert read_reply(msg, Asker.MODERATOR).choice in set(Choice)
    for c in request:
        assert isinstance(c.verb, Verb) and "\n" not in c.argument and "\r" not in c.argument
    # Pure: the same mail gives the same answer.
    assert parse_commands(msg, Context.REQUEST, max_lines=5) == request


FILENAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@st.composite
def posts(draw: st.DrawFn) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Anna <anna@example.org>"
    msg["To"] = LISTS[0].address
    subject = draw(st.text(max_size=80))
    msg["Subject"] = " ".join(subject.split())
    for _ in range(draw(st.integers(0, 2))):  # stale list headers from elsewhere
        msg["List-Id"] = "<other.list.example>"
    body = draw(TEXT)
    html = draw(st.booleans())
    msg.set_content(body)
    if html:
        msg.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
    for name in draw(st.lists(FILENAME, max_size=3)):
        data = draw(st.binary(max_size=200))
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg


def named(msg: EmailMessage) -> list[EmailMessage]:
    """Attachments with a file name (the list footer is an unnamed inline part)."""
    return sorted((p for p in msg.iter_attachments() if p.get_filename()),
                  key=lambda p: p.get_filename() or "")


def filenames(msg: EmailMessage) -> list[str]:
    return [part.get_filename() or "" for part in named(msg)]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(msg=posts(), mlist=st.sampled_from(LISTS), rewrite=st.booleans())
def test_list_copy_parses_keeps_attachments_and_has_one_list_id(
    msg: EmailMessage, mlist: ListConfig, rewrite: bool
) -> None:
    raw = msg.as_bytes()
    original = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(original, EmailMessage)
    out = list_copy(original, mlist, rewrite_from=rewrite,
                    unsubscribe_url="https://listen.example/u/" + "a" * 32)
    data = out.as_bytes()
    again = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(again, EmailMessage)
    assert not [d for d in again.defects if "Boundary" in type(d).__name__]
    assert again.get_all("List-Id") is not None and len(again.get_all("List-Id")) == 1
    assert mlist.list_id in str(again["List-Id"])
    assert sorted(filenames(again)) == sorted(filenames(original))
    for a, b in zip(named(original), named(again), strict=True):
        assert a.get_content() == b.get_content(), "an attachment's bytes changed"
    subject = str(again["Subject"] or "")
    assert "\n" not in subject and "\r" not in subject
    assert len(again.get_all("X-Loop") or []) >= 1
