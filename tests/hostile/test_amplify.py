"""Class 5 of issue 12: nothing amplified, nothing reflected.

* A stranger who forges a victim's envelope sender must not make us send
  the victim her text or links under our name: no answer to a non-member
  quotes the Subject, the body or the From of the mail it answers.
* A flood of requests must not become a flood of mail to the coordinator.
* Many ``-confirm`` addresses in one message store it once (test_abuse).
* One peer cannot take every connection slot.
* The one-click pages answer members and strangers alike, in time too.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from string import Template

import aiohttp
import pytest

from listserv.config import Config
from listserv.texts.compose import MESSAGE_ID_SYNTAX
from listserv.texts.render import LANGUAGES, template_text
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail, make_daemon
from tests.hostile.conftest import MEMBERS, list_table
from tests.mailflow import Flow, text_of

L, D = LIST.split("@")
VICTIM = "opfer@example.org"
BAIT = "http://evil.example/win"

#: Templates that can go to someone who is not (yet) a member and not a moderator, and
#: the placeholders they may use: ours, or the recipient's own address.
TO_STRANGERS = {
    "confirm_subscribe", "help", "invitation", "leave_not_member", "moderators_only",
    "not_understood", "pending_approval", "post_expired", "post_held", "post_rejected",
    "refused", "token_expired", "token_unknown", "token_used", "unknown_command",
    "invalid_address", "already_member", "not_a_member", "colleague_forwarded",
    "request_declined",
}
OURS = {"list_name", "list_address", "request_address", "join_address", "leave_address",
        "owner_address", "confirm_address", "token", "days", "address", "reason", "by",
        "outcome", "at", "list_in", "list_into", "list_from", "about"}
# reason: the moderator's words (never the stranger's); by/outcome/at: who used a token
# and when (ours); list_in/into/from: the list's name in German grammar (ours); about: the
# address a token was mailed to (the replier holds that token, so it is her own address).


@pytest.mark.parametrize("name", sorted(TO_STRANGERS))
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_text_for_strangers_has_a_slot_for_their_words(name: str, language: str) -> None:
    used = {m.group("named") or m.group("braced")
            for m in Template.pattern.finditer(template_text(language, name))
            if m.group("named") or m.group("braced")}
    assert used <= OURS, f"{language}/{name}.txt quotes {used - OURS}"


async def test_a_forged_envelope_sender_gets_none_of_the_forgers_text(hostile: Flow) -> None:
    subject = f"Gewinn! {BAIT}"
    name = f"Klick {BAIT}"
    body = f"{BAIT}\n{BAIT}/2\nunsinn {BAIT}\n"
    junk_id = f"<{BAIT}/x@evil.example> click here"
    for to in (LIST, f"{L}-request@{D}", f"{L}-join@{D}", f"{L}-leave@{D}"):
        raw = mail(sender=f'"{name}" <{VICTIM}>', to=to, subject=subject, body=body,
                   headers={"In-Reply-To": junk_id, "References": junk_id})
        await hostile.send(raw, mail_from=VICTIM, to=to)
    got = hostile.sent_to(VICTIM)
    assert len(got) >= 3   # post held, help/unknown command, confirmation, leave answer
    for msg in got:
        # What a mail client shows: no word of the forger's. (In-Reply-To/References keep
        # a Message-ID for threading, only when it has Message-ID syntax: shown nowhere.)
        shown = "\n".join([str(msg[h] or "") for h in ("From", "To", "Reply-To", "Subject")]
                          + [text_of(msg)])
        for bait in ("evil.example", "Gewinn", "Klick", "unsinn"):
            assert bait not in shown, (bait, shown)
        assert "click here" not in msg.as_string()


@pytest.mark.parametrize("hostile", [[list_table(
    notices_per_day=5, notices_per_kind_per_day=3, subscription_policy="approve")]],
    indirect=True)
async def test_a_flood_reaches_the_coordinator_capped_and_summarised(
    hostile: Flow, clock: FakeClock,
) -> None:
    for i in range(6):   # six held posts from strangers: three notices, three held back
        await hostile.send(mail(sender=f"p{i}@flood.example", subject=f"Post {i}"),
                           mail_from=f"p{i}@flood.example", to=LIST)
    for i in range(4):   # four join requests: two fit under the total of five
        await hostile.send(mail(sender=f"j{i}@flood.example", subject="anmelden"),
                           mail_from=f"j{i}@flood.example", to=f"{L}-join@{D}")
    notices = hostile.sent_to(MODERATOR)
    kinds = [str(m["Subject"]) for m in notices]
    assert len(notices) == 5, kinds
    assert sum("Freigabe" in k or "Beitrag" in k for k in kinds) == 3, kinds
    # Nothing is lost: all six posts are held, all four requests are open.
    assert hostile.query("SELECT count(*) FROM posts WHERE state = 'held'")[0][0] == 6
    scheduler = hostile.daemon.scheduler
    assert scheduler is not None
    assert await scheduler.run_now("summarise_notices") == 1
    await hostile.settled()
    summary = hostile.last_to(MODERATOR)
    assert str(summary["Subject"]).startswith("5 weitere Mitteilungen")
    text = text_of(summary)
    assert "3 × zurückgehaltene Beiträge" in text and "2 × Aufnahmeanfragen" in text
    assert "listserv held list" in text
    assert await scheduler.run_now("summarise_notices") == 0   # summarised once
    clock.advance(days=1, minutes=1)   # a new day: single notices again
    await hostile.send(mail(sender="late@flood.example", subject="Spaet"),
                       mail_from="late@flood.example", to=LIST)
    assert len(hostile.sent_to(MODERATOR)) == 7


async def idle(port: int, local: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    return reader, writer, await asyncio.wait_for(reader.readline(), 5)


async def test_idle_connections_are_capped_per_peer_as_well_as_in_total(
    config_factory: Callable[..., Config], dns: FakeDns,
) -> None:
    config = config_factory(server={"max_connections": 6, "max_connections_per_peer": 3})
    daemon = make_daemon(config, dns)
    port = (await daemon.start())[1]
    opened = []
    try:
        for _ in range(3):
            opened.append(await idle(port, "127.0.0.1"))
        assert all(greeting.startswith(b"220") for *_, greeting in opened)
        *_, refused = await idle(port, "127.0.0.1")
        assert refused.startswith(b"421 4.7.0 Too many connections from your address")
        # Another peer still gets in, until the total is reached.
        for _ in range(3):
            opened.append(await idle(port, "127.0.0.2"))
        assert all(greeting.startswith(b"220") for *_, greeting in opened)
        *_, full = await idle(port, "127.0.0.3")
        assert full.startswith(b"421 4.7.0 Too many connections,")
        # A slot freed is a slot for that peer again.
        opened[0][1].close()
        await opened[0][1].wait_closed()
        await asyncio.sleep(0.1)
        *_, again = await idle(port, "127.0.0.1")
        assert again.startswith(b"220")
    finally:
        for _, writer, _ in opened:
            writer.close()
        await daemon.stop()


WEB = '\n[web]\nhost = "127.0.0.1"\nport = 0\nbase_url = "https://listen.example"\n'


async def test_one_click_pages_answer_members_and_strangers_alike_and_in_the_same_time(
    config_factory: Callable[..., Config], dns: FakeDns, clock: FakeClock,
) -> None:
    daemon = make_daemon(config_factory(extra=WEB), dns, clock=clock)
    await daemon.start()
    try:
        assert daemon.web is not None and daemon.web.address is not None and daemon.store
        daemon.web.min_answer = 0.15
        async with daemon.store.transaction() as db:
            await db.executemany(
                "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
                [(LIST, m, "2026-11-25T00:00:00.000000Z") for m in MEMBERS])
        host, port = daemon.web.address
        list_id = daemon.config.lists[0].list_id
        url = f"http://{host}:{port}/l/{list_id}"

        def counts() -> dict[str, int]:
            tables = [r[0] for r in Flow(daemon).query(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public'" if daemon.store.shared else
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: Flow(daemon).query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}

        before = counts()
        times: dict[str, list[float]] = {"member": [], "stranger": []}
        pages: dict[str, set[str]] = {"member": set(), "stranger": set()}
        async with aiohttp.ClientSession() as http:
            for i in range(6):
                for who, address in (("stranger", f"fremd{i}@example.org"),
                                     ("member", MEMBERS[i % 2])):
                    started = time.monotonic()
                    async with http.post(url, data={"address": address}) as resp:
                        page = await resp.text()
                        assert resp.status == 200
                    times[who].append(time.monotonic() - started)
                    pages[who].add(page.replace(address, "X"))
                await daemon.web.drain()
                if i == 0:   # strangers leave no row behind; members get their mail
                    after = counts()
            for token in ("a" * 32, "b" * 32):   # unknown one-click tokens: no row either
                async with http.post(f"http://{host}:{port}/u/{token}",
                                     data={"List-Unsubscribe": "One-Click"}) as resp:
                    assert resp.status == 404
        assert pages["member"] == pages["stranger"] and len(pages["member"]) == 1
        gap = abs(statistics.median(times["member"]) - statistics.median(times["stranger"]))
        assert gap < 0.05, times
        assert min(times["stranger"]) >= 0.15
        grown = {t: after[t] - before[t] for t in before if after[t] != before[t]}
        # Only the one member's confirmation: a token, its answer log, the queued mail.
        assert set(grown) <= {"tokens", "reply_log", "outgoing", "deliveries"}, grown
        assert grown.get("tokens") == 1
        stranger_rows = Flow(daemon).query(
            "SELECT count(*) FROM reply_log WHERE address LIKE 'fremd%'")[0][0]
        assert stranger_rows == 0
    finally:
        await daemon.stop()


def test_no_token_or_address_syntax_slips_into_a_message_id_we_echo() -> None:
    assert MESSAGE_ID_SYNTAX.fullmatch("<abc.123@example.org>")
    for bad in ("<a b@x>", "<http://evil.example/x@y> click", "no brackets", "<<x@y>>",
                "<" + "a" * 300 + "@x>"):
        assert not MESSAGE_ID_SYNTAX.fullmatch(bad), bad
