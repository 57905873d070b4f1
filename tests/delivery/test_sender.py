"""The sender with a fake transport: grouping, batching, retries, crash recovery, once only.

The pure decisions (``delivery.next_attempt``, ``plan``, ``classify``) are
called directly; the ``Sender`` runs against a real SQLite file and a
transport that records what it was given and answers from a script.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest

from listserv.bounces import verp
from listserv.commands.tokens import token_hash
from listserv.config import Config
from listserv.delivery import transform
from listserv.delivery.outcomes import ACCEPTED, DeliveryResult, Outcome, RcptOutcome
from listserv.delivery.plan import (
    Claimed,
    Job,
    Outgoing,
    classify,
    next_attempt,
    plan,
    unsubscribe_token,
    verp_sender,
)
from listserv.delivery.sender import Sender
from listserv.delivery.signing import generate_key, public_key_record
from listserv.outbox import queue as outbox
from listserv.store import keys
from listserv.store.database import Store
from tests.conftest import LIST, mail, wait_for

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def verp_key(config: Config) -> bytes:
    return keys.key(config.server.data_dir, keys.VERP_KEY)


BOUNCES = LIST.replace("@", "-bounces@")


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


Script = Callable[[str, str], RcptOutcome]  # (mail_from, rcpt) -> outcome


class FakeTransport:
    """Records every transaction; answers each recipient from ``script``."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or (lambda mail_from, rcpt: ACCEPTED)
        self.calls: list[tuple[str, list[str], bytes]] = []
        self.outcomes: list[tuple[str, Outcome]] = []

    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes, *,
                      before_data: Callable[[], Awaitable[object]] | None = None
                      ) -> DeliveryResult:
        if before_data is not None:
            await before_data()
        self.calls.append((mail_from, list(rcpts), data))
        result = DeliveryResult({r: self.script(mail_from, r) for r in rcpts})
        self.outcomes += [(r, o.outcome) for r, o in result.outcomes.items()]
        return result

    async def close(self) -> None:
        return None

    def accepted(self) -> Counter[str]:
        """How often each recipient was handed over and accepted."""
        return Counter(r for r, o in self.outcomes if o is Outcome.ACCEPTED)


def dkim_config(tmp_path: Path, kind: str = "ed25519") -> tuple[str, bytes]:
    """A fresh key in tmp_path: the [dkim] TOML table and the TXT record to publish."""
    path = tmp_path / f"dkim-{kind}.key"
    key = generate_key(path, kind)  # type: ignore[arg-type]
    table = (f'\n[dkim]\ndomain = "gelsenkirchen.de"\nselector = "test"\n'
             f'private_key = "{path}"\n')
    return table, public_key_record(key).encode()


def verifies(data: bytes, record: bytes) -> bool:
    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"test._domainkey.gelsenkirchen.de."
        return record

    return bool(dkimpy.verify(data, dnsfunc=dns))


def list_copy_bytes(config: Config, *, footer: bool = True, **kwargs: Any) -> bytes:
    msg = message_from_bytes(mail(**kwargs), _class=EmailMessage, policy=default)
    return transform.list_copy(msg, config.lists[0], add_footer=footer).as_bytes()


async def add_members(store: Store, addresses: list[str], list_address: str = LIST) -> None:
    async with store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(list_address, a, "2026-01-01T00:00:00.000000Z") for a in addresses])


async def post(store: Store, config: Config, raw: bytes, *, verp: bool = False,
               personalize: bool = False) -> int:
    async with store.transaction() as db:
        outgoing_id, _ = await outbox.enqueue_post(
            db, now=store.clock(), list_address=LIST, mail_from=BOUNCES, raw=raw,
            message_id="<post@example.org>", inbox_id=None, verp=verp, personalize=personalize)
    return outgoing_id


async def states(store: Store) -> Counter[str]:
    return Counter({r[0]: r[1] for r in await store.fetchall(
        "SELECT state, count(*) FROM deliveries GROUP BY state")})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "var" / "listserv.sqlite3", clock=clock)
    yield s
    await s.close()


@pytest.fixture
async def running() -> AsyncIterator[list[Sender]]:
    """Senders started by a test, stopped at its end."""
    started: list[Sender] = []
    yield started
    for sender in started:
        await sender.stop()


async def start(running: list[Sender], *args: Any, **kwargs: Any) -> Sender:
    sender = Sender(*args, **kwargs)
    await sender.start()
    running.append(sender)
    return sender


# -- pure decisions -------------------------------------------------------------


def test_retry_schedule_grows_then_repeats_and_gives_up() -> None:
    waits = [next_attempt(n, T0, T0, give_up_after=timedelta(days=30)) - T0  # type: ignore[operator]
             for n in range(1, 8)]
    assert waits == [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                     timedelta(hours=2), timedelta(hours=4), timedelta(hours=4),
                     timedelta(hours=4)]
    # The give-up age counts from the enqueue, not from the last try.
    assert next_attempt(9, T0, T0 + timedelta(days=4, hours=19)) is not None
    assert next_attempt(9, T0, T0 + timedelta(days=4, hours=21)) is None


def outgoing(**kwargs: Any) -> Outgoing:
    fields = {"id": 1, "kind": "post", "list_address": LIST, "mail_from": BOUNCES,
              "message_id": "<m@x>", "created_at": T0, "verp": False, "personalize": False}
    fields.update(kwargs)
    return Outgoing(**fields)


def rows(*rcpts: str, outgoing_id: int = 1) -> list[Claimed]:
    return [Claimed(i, outgoing_id, r, r.split("@")[1], 0) for i, r in enumerate(rcpts, 1)]


def test_bulk_is_grouped_by_domain_and_cut_at_the_transaction_limit() -> None:
    claimed = rows("a@x.de", "b@y.de", "c@x.de", "d@x.de", "e@y.de")
    jobs = plan(claimed, {1: outgoing()}, max_recipients=2)
    assert sorted(j.rcpts for j in jobs) == [("a@x.de", "c@x.de"), ("b@y.de", "e@y.de"),
                                             ("d@x.de",)]
    assert {j.mail_from for j in jobs} == {BOUNCES}


def test_verp_is_one_transaction_per_member_with_its_own_envelope_sender() -> None:
    key = b"k" * 32
    jobs = plan(rows("a@x.de", "b@y.de"), {1: outgoing(verp=True)}, max_recipients=50,
                verp_key=key)
    assert [(j.mail_from, j.rcpts) for j in jobs] == [
        (f"soziale.arbeit.an.schulen-bounces+a=x.de={verp.mac(key, LIST, 'a@x.de')}"
         "@gelsenkirchen.de", ("a@x.de",)),
        (f"soziale.arbeit.an.schulen-bounces+b=y.de={verp.mac(key, LIST, 'b@y.de')}"
         "@gelsenkirchen.de", ("b@y.de",)),
    ]
    address = verp_sender(key, BOUNCES, LIST, "x.y+z@a.de")
    assert address.startswith("soziale.arbeit.an.schulen-bounces+x.y+z=a.de=")
    assert len(address.partition("@")[0]) == len("soziale.arbeit.an.schulen-bounces+x.y+z=a.de=")\
        + verp.MAC_CHARS
    # Replies and notices are never VERPed, whatever the flag says.
    notice = plan(rows("m@x.de"), {1: outgoing(kind="notice", verp=True, mail_from="n@x")}, 50)
    assert notice == [Job(1, "n@x", ("m@x.de",), (1,), answer=True)]


def test_classify_defers_fails_and_counts_bounces_of_posts_only() -> None:
    job = Job(1, BOUNCES, ("ok@x.de", "later@x.de", "gone@x.de"), (1, 2, 3))
    result = DeliveryResult({
        "ok@x.de": ACCEPTED,
        "later@x.de": RcptOutcome(Outcome.TEMPORARY, 451, "4.7.1 greylisted"),
        "gone@x.de": RcptOutcome(Outcome.PERMANENT, 550, "5.1.1 no such user"),
    })
    rec = classify([(job, result)], {2: 1}, {1: outgoing()}, T0)
    assert rec.sent == [("250 OK", 1)]
    assert rec.deferred == [(T0 + timedelta(minutes=5), "451 4.7.1 greylisted", 2)]
    assert rec.failed == [("550 5.1.1 no such user", 3)]
    assert rec.bounced == {LIST: ["gone@x.de"]}
    notice = classify([(job, result)], {}, {1: outgoing(kind="notice")}, T0)
    assert notice.bounced == {}
    late = classify([(job, result)], {2: 20}, {1: outgoing()}, T0 + timedelta(days=5))
    assert [i for _, i in late.failed] == [2, 3] and late.deferred == []


def test_personal_token_is_stable_and_secret_bound() -> None:
    a = unsubscribe_token(b"k1", LIST, "Anna@X.de")
    assert a == unsubscribe_token(b"k1", LIST, "anna@x.de") and len(a) == 32
    assert a != unsubscribe_token(b"k2", LIST, "anna@x.de")


# -- the sender against a real database -----------------------------------------------


async def test_bulk_post_signed_once_grouped_and_recorded(
    tmp_path: Path, config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    table, record = dkim_config(tmp_path)
    config = config_factory(delivery={"verp": False, "max_recipients_per_transaction": 2},
                            extra=table)
    members = ["a@x.de", "b@x.de", "c@x.de", "d@y.de", "e@y.de"]
    await add_members(store, members)
    transport = FakeTransport()
    sender = await start(running, config, store, transport, clock=clock)
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await wait_for(lambda: sender.sent == 5)
    assert sorted(tuple(c[1]) for c in transport.calls) == [
        ("a@x.de", "b@x.de"), ("c@x.de",), ("d@y.de", "e@y.de")]
    datas = {c[2] for c in transport.calls}
    assert len(datas) == 1, "one signature for every copy of a bulk post"
    assert verifies(datas.pop(), record)
    await wait_for(lambda: states(store), timeout=2)
    assert await states(store) == Counter(sent=5)
    row = await store.fetchone("SELECT attempts, last_reply FROM deliveries LIMIT 1")
    assert (row[0], row[1]) == (1, "250 OK")


async def test_verp_copies_share_signed_bytes_and_differ_in_envelope(
    tmp_path: Path, config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    table, record = dkim_config(tmp_path)
    config = config_factory(extra=table)
    await add_members(store, ["a@x.de", "b@y.de", "c@z.de"])
    transport = FakeTransport()
    sender = await start(running, config, store, transport, clock=clock)
    await post(store, config, list_copy_bytes(config), verp=True)
    sender.wake()
    await wait_for(lambda: sender.sent == 3)
    assert sorted((c[0], tuple(c[1])) for c in transport.calls) == [
        (verp_sender(verp_key(config), BOUNCES, LIST, r), (r,))
        for r in ["a@x.de", "b@y.de", "c@z.de"]]
    assert len({c[2] for c in transport.calls}) == 1
    assert verifies(transport.calls[0][2], record)


async def test_temporary_failure_is_retried_on_schedule_and_delivered_once(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    config = config_factory()
    await add_members(store, ["a@x.de", "b@y.de"])
    down = {"b@y.de"}
    transport = FakeTransport(lambda f, r: RcptOutcome(Outcome.TEMPORARY, 451, "4.3.0 later")
                              if r in down else ACCEPTED)
    sender = await start(running, config, store, transport, clock=clock)
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await wait_for(lambda: sender.sent == 1 and sender.deferred == 1)
    row = await store.fetchone("SELECT state, attempts, next_attempt FROM deliveries"
                               " WHERE rcpt = 'b@y.de'")
    assert (row[0], row[1], row[2]) == ("deferred", 1, "2026-11-25T12:01:00.000000Z")
    clock.advance(seconds=30)
    sender.wake()
    await asyncio.sleep(0.1)  # not yet due: nothing may be tried
    assert len(transport.calls) == 2
    down.clear()
    clock.advance(seconds=31)
    sender.wake()
    await wait_for(lambda: sender.sent == 2)
    assert transport.accepted() == Counter({"a@x.de": 1, "b@y.de": 1})
    assert await states(store) == Counter(sent=2)


async def test_gives_up_after_the_give_up_age(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    config = config_factory()
    await add_members(store, ["a@x.de"])
    transport = FakeTransport(lambda f, r: RcptOutcome(Outcome.TEMPORARY, 421, "4.4.2 down"))
    sender = await start(running, config, store, transport, clock=clock,
                         give_up_after=timedelta(minutes=10))
    await post(store, config, list_copy_bytes(config))
    for n, step in enumerate((0, 1, 5)):  # tries at 0, +1 min, +6 min; next would be +36
        clock.advance(minutes=step)
        sender.wake()
        await wait_for(lambda n=n: sender.deferred + sender.failed > n)
    await wait_for(lambda: sender.failed == 1)
    row = await store.fetchone("SELECT state, attempts, last_reply FROM deliveries")
    assert (row[0], row[1]) == ("failed", 3)
    assert row[2].startswith("421 gave up after 3 attempts")
    # A temporary failure that ran out is no bounce: the score is untouched.
    score = await store.fetchone("SELECT bounce_score FROM members")
    assert score[0] == 0


async def test_rows_left_sending_by_a_crash_are_sent_after_restart(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    config = config_factory()
    await add_members(store, ["a@x.de", "b@y.de", "c@z.de"])
    await post(store, config, list_copy_bytes(config))
    async with store.transaction() as db:  # as a dead process left them
        await db.execute("UPDATE deliveries SET state = 'sending' WHERE rcpt != 'c@z.de'")
        await db.execute("UPDATE deliveries SET state = 'sent' WHERE rcpt = 'c@z.de'")
    transport = FakeTransport()
    sender = await start(running, config, store, transport, clock=clock)
    await wait_for(lambda: sender.sent == 2)
    assert transport.accepted() == Counter({"a@x.de": 1, "b@y.de": 1})
    assert await states(store) == Counter(sent=3)


async def test_a_large_post_is_paged_and_every_member_gets_it_once(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    config = config_factory(delivery={"verp": False, "max_recipients_per_transaction": 7})
    members = [f"m{i:04d}@d{i % 13}.example" for i in range(1000)]
    await add_members(store, members)
    transport = FakeTransport()
    claims: list[int] = []
    sender = await start(running, config, store, transport, clock=clock, batch_size=100)
    original = sender._claim

    async def spy() -> list[Claimed]:
        got = await original()
        claims.append(len(got))
        return got

    sender._claim = spy  # type: ignore[method-assign]
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await wait_for(lambda: sender.sent == 1000, timeout=20)
    assert max(claims) == 100
    assert transport.accepted() == Counter({m: 1 for m in members})
    assert all(len(c[1]) <= 7 and len({r.split("@")[1] for r in c[1]}) == 1
               for c in transport.calls)
    assert await states(store) == Counter(sent=1000)


async def test_stop_puts_queued_rows_back_to_pending(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
) -> None:
    config = config_factory()
    await add_members(store, [f"m{i}@x.de" for i in range(50)])
    gate = asyncio.Event()

    class Slow(FakeTransport):
        async def deliver(self, mail_from: str, rcpts: list[str], data: bytes, *,
                          before_data: Callable[[], Awaitable[object]] | None = None
                          ) -> DeliveryResult:
            await gate.wait()
            return await super().deliver(mail_from, rcpts, data, before_data=before_data)

    transport = Slow()
    sender = Sender(config, store, transport, clock=clock)
    await sender.start()
    await post(store, config, list_copy_bytes(config), verp=True)
    sender.wake()
    await wait_for(lambda: sender._queue.qsize() > 0)
    stopping = asyncio.create_task(sender.stop())
    await asyncio.sleep(0.05)
    gate.set()
    await stopping
    counts = await states(store)
    assert counts["sending"] == 0
    assert counts["sent"] == len(transport.calls) <= 4  # only what was in flight
    assert counts["pending"] == 50 - counts["sent"]


async def test_replies_and_notices_go_out_signed_with_their_own_envelope(
    tmp_path: Path, config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    table, record = dkim_config(tmp_path)
    config = config_factory(extra=table)
    transport = FakeTransport()
    sender = await start(running, config, store, transport, clock=clock)
    async with store.transaction() as db:
        await outbox.enqueue(db, now=clock(), kind="notice", list_address=LIST,
                             mail_from=BOUNCES, rcpts=["koordination@gelsenkirchen.de"],
                             raw=mail(sender=LIST, to="koordination@gelsenkirchen.de"))
    sender.wake()
    await wait_for(lambda: sender.sent == 1)
    ((mail_from, rcpts, data),) = transport.calls
    assert (mail_from, rcpts) == (BOUNCES, ["koordination@gelsenkirchen.de"])
    assert verifies(data, record)


@pytest.mark.parametrize("web", [True, False])
async def test_personalized_copies_carry_their_member_and_their_own_signature(
    web: bool, tmp_path: Path, config_factory: Callable[..., Config], store: Store,
    clock: FakeClock, running: list[Sender],
) -> None:
    table, record = dkim_config(tmp_path)
    if web:
        table += '\n[web]\nbase_url = "https://listen.gelsenkirchen.de"\n'
    config = config_factory(delivery={"personalize": True}, extra=table)
    members = ["anna@x.de", "bernd@y.de", "weird&name@z.de"]
    await add_members(store, members)
    transport = FakeTransport()
    sender = await start(running, config, store, transport, clock=clock, sign_workers=1)
    await post(store, config, list_copy_bytes(config, footer=False), verp=True,
               personalize=True)
    sender.wake()
    await wait_for(lambda: sender.sent == 3, timeout=30)
    secret = (config.server.data_dir / "unsubscribe.key").read_bytes()
    for mail_from, (rcpt,), data in transport.calls:
        assert mail_from == verp_sender(verp_key(config), BOUNCES, LIST, rcpt)
        assert verifies(data, record), rcpt
        text = message_from_bytes(data, policy=default)
        body = text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert body.count("\n______") == 1, "one footer"
        if web:
            url = f"https://listen.gelsenkirchen.de/u/{unsubscribe_token(secret, LIST, rcpt)}"
            assert url in body and url in str(text["List-Unsubscribe"])
            assert text["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        else:
            assert rcpt in body
    if web:
        stored = {r[0]: r[1] for r in await store.fetchall(
            "SELECT address, unsubscribe_token FROM members")}
        assert stored == {m: token_hash(unsubscribe_token(secret, LIST, m)) for m in members}


@pytest.mark.parametrize("base_url", ["https://listen.gelsenkirchen.de", None])
def test_personal_copies_from_one_template_equal_rendering_each(
    base_url: str | None, config_factory: Callable[..., Config]
) -> None:
    """Umlauts make the footer quoted-printable; a token may straddle a soft line break."""
    from listserv.delivery.plan import PersonalCopies

    config = config_factory()
    raw = list_copy_bytes(config, footer=False,
                          body="Liebe Kolleginnen und Kollegen, bis März.\n" * 3)
    copies = PersonalCopies(raw, config.lists[0], base_url=base_url, secret=b"k",
                            sample_member="anna@x.de")
    members = ["anna@x.de", "b@y.de", "ein.sehr.langer.name+liste@schule.example"]
    if base_url is None:  # an address changes line lengths: no template for a QP body
        assert copies.template is None
        return
    assert copies.template is not None and any(brk for _, _, brk in copies.slots)
    for member in members:
        assert copies.fast(member)
        assert copies.substitute(member) == copies.render(member)


async def test_claiming_returns_once_the_claim_holds_the_store(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    """Publishing waits on it between a post's first chunk and the rest: a write that
    starts after it runs after the claim, so the first copies do not wait for it."""
    config = config_factory()
    await add_members(store, ["anna@x.de", "bernd@y.de"])
    gate = asyncio.Event()

    class Held(FakeTransport):  # keeps the claimed rows 'sending' while the test looks
        async def deliver(self, mail_from: str, rcpts: list[str], data: bytes, *,
                          before_data: Callable[[], Awaitable[object]] | None = None
                          ) -> DeliveryResult:
            await gate.wait()
            return await super().deliver(mail_from, rcpts, data, before_data=before_data)

    sender = await start(running, config, store, Held(), clock=clock)
    await post(store, config, list_copy_bytes(config))
    sender.wake()
    await sender.claiming()
    async with store.transaction() as db:  # queued behind the claim's transaction
        cur = await db.execute("SELECT state, count(*) FROM deliveries GROUP BY state")
        assert dict(await cur.fetchall()) == {"sending": 2}  # type: ignore[arg-type]
    gate.set()
    await wait_for(lambda: sender.sent == 2)


async def test_claiming_does_not_wait_long_for_a_sender_with_nothing_to_claim(
    config_factory: Callable[..., Config], store: Store, clock: FakeClock,
    running: list[Sender],
) -> None:
    sender = await start(running, config_factory(), store, FakeTransport(), clock=clock)
    await sender.claiming()  # no wake: at most its timeout, never forever
    sender.wake()
    await asyncio.wait_for(sender.claiming(), timeout=5)
