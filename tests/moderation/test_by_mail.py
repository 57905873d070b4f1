"""Moderation by reply-mail, end to end over real SMTP with the Maildir outbox."""

from __future__ import annotations

import json
import re

import pytest

from listserv.clock import iso
from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, SAMPLES, FakeClock, FakeDns, mail
from tests.mailflow import Flow, reply_to, text_of, token_of

OWNER = LIST.replace("@", "-owner@")
ANNA = "anna.schmidt@schule-gelsenkirchen.de"
MEMBERS = [ANNA, "bernd@example.org", "carla@example.net"]


@pytest.fixture
async def flow(clocked_daemon: Daemon, clock: FakeClock) -> Flow:
    assert clocked_daemon.store is not None
    # Through the daemon's own connection: a second writer on this event loop
    # would wait for a commit that needs this very loop to finish.
    async with clocked_daemon.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, m, iso(clock.now)) for m in MEMBERS])
    return Flow(clocked_daemon)


async def post(flow: Flow, subject: str = "Fachtag am 3. Dezember", sender: str = ANNA,
               **kwargs: object) -> None:
    await flow.send(mail(sender=sender, subject=subject, **kwargs), mail_from=sender, to=LIST)


def copies(flow: Flow, subject_part: str) -> dict[str, object]:
    """The list copies delivered, by member."""
    return {m: msg for m in MEMBERS for msg in flow.sent_to(m)
            if subject_part in str(msg["Subject"]) and msg["List-Id"]}


async def test_a_members_post_is_held_and_ok_publishes_it(flow: Flow) -> None:
    await post(flow)
    notice = flow.last_to(MODERATOR)
    assert notice["Subject"] == "Freigabe nötig: Fachtag am 3. Dezember"   # no raw token
    body = text_of(notice)
    assert ANNA in body and "Liebe Kolleginnen" in body and "ablehnen" in body
    attached = [p for p in notice.iter_attachments()]
    assert [p.get_content_type() for p in attached] == ["message/rfc822"]
    assert "Freigabe" in flow.last_to(ANNA)["Subject"]          # "wartet auf Freigabe"
    assert copies(flow, "Fachtag") == {}
    # The coordinator answers "ok" from Outlook: HTML, German quote header, notice below.
    await flow.send(reply_to(notice, sender=f"Koordination <{MODERATOR}>", body="ok", html=True),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    delivered = copies(flow, "Fachtag")
    assert sorted(delivered) == sorted(MEMBERS)
    copy = delivered[ANNA]
    assert copy["Subject"] == "[SAS] Fachtag am 3. Dezember"  # type: ignore[index]
    list_id = '"Netzwerk Soziale Arbeit an Schulen" <soziale.arbeit.an.schulen.gelsenkirchen.de>'
    assert copy["List-Id"] == list_id  # type: ignore[index]
    (state,) = flow.query("SELECT state, decided_by FROM posts")
    assert tuple(state) == ("approved", MODERATOR)


async def test_ablehnen_sends_the_reason_to_the_poster(flow: Flow) -> None:
    await post(flow, subject="Werbung")
    notice = flow.last_to(MODERATOR)
    decision = "ablehnen Bitte über den Träger schicken"
    await flow.send(reply_to(notice, sender=MODERATOR, body=decision),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    answer = flow.last_to(ANNA)
    assert "nicht verschickt" in answer["Subject"]
    assert "Bitte über den Träger schicken" in text_of(answer)
    assert copies(flow, "Werbung") == {}
    assert flow.query("SELECT state FROM posts")[0][0] == "rejected"


async def test_verwerfen_sends_nothing(flow: Flow) -> None:
    await post(flow, subject="Gewinnspiel")
    before = len(flow.sent_to(ANNA))
    notice = flow.last_to(MODERATOR)
    await flow.send(reply_to(notice, sender=MODERATOR, body="verwerfen"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert len(flow.sent_to(ANNA)) == before
    assert copies(flow, "Gewinnspiel") == {}
    assert flow.query("SELECT state FROM posts")[0][0] == "discarded"


async def test_forged_and_wrong_replies_change_nothing(flow: Flow) -> None:
    await post(flow, subject="Termine")
    notice = flow.last_to(MODERATOR)
    # Right token, From not a moderator.
    await flow.send(reply_to(notice, sender="mallory@example.net", body="ok"),
                    mail_from="mallory@example.net", to=str(notice["Reply-To"]))
    # Moderator From, wrong token.
    wrong = LIST.replace("@", "-confirm+" + "d" * 32 + "@")
    await flow.send(mail(sender=MODERATOR, to=wrong, subject="AW: Termine", body="ok"),
                    mail_from=MODERATOR, to=wrong)
    # An auto-reply to the notice from the moderator's own mailbox.
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok",
                             headers={"Auto-Submitted": "auto-replied"}),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    assert flow.query("SELECT state FROM posts")[0][0] == "held"
    assert copies(flow, "Termine") == {}
    assert flow.sent_to("mallory@example.net") == []
    # The real decision still works, once; a second one is told it is done.
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert sorted(copies(flow, "Termine")) == sorted(MEMBERS)
    await flow.send(reply_to(notice, sender=MODERATOR, body="verwerfen"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    done = flow.last_to(MODERATOR)
    assert done["Subject"].startswith("Bereits erledigt")
    assert "25.11.2026" in text_of(done) and MODERATOR in text_of(done)
    assert flow.query("SELECT state FROM posts")[0][0] == "approved"


async def test_a_loop_is_discarded(flow: Flow) -> None:
    await post(flow, subject="Schleife", headers={
        "List-Id": "<soziale.arbeit.an.schulen.gelsenkirchen.de>"})
    assert flow.sent_to(MODERATOR) == []
    assert flow.query("SELECT outcome FROM inbox")[0][0].startswith("discarded")


async def test_bcc_post_is_held_with_that_reason(flow: Flow) -> None:
    await flow.send(mail(sender=ANNA, to="kollegen@example.org", subject="Bcc"),
                    mail_from=ANNA, to=LIST)
    (row,) = flow.query("SELECT state, rule FROM posts")
    assert tuple(row) == ("held", "not_addressed")


@pytest.mark.parametrize("sample", ["05", "06", "07", "08"])
async def test_moderator_replies_from_the_samples(flow: Flow, sample: str) -> None:
    paths = sorted(SAMPLES.glob(f"{sample}-*.eml"))
    if not paths:
        pytest.skip(f"sample {sample} not found in {SAMPLES}")
    expected = json.loads((SAMPLES / "expected.json").read_text())[paths[0].name]["intent"]
    await post(flow, subject=f"Sample {sample}")
    token = token_of(flow.last_to(MODERATOR))
    raw = re.sub(rb"Q2xhcmEtMTIzNDU2Nzg5MGFiY2RlZg", token.encode(), paths[0].read_bytes())
    await flow.send(raw, mail_from=MODERATOR, to=LIST.replace("@", f"-confirm+{token}@"))
    state = flow.query("SELECT state FROM posts")[0][0]
    assert state == {"approve": "approved", "reject": "rejected", "discard": "discarded"}[expected]
    if expected == "reject":
        assert "Bitte nicht über den Verteiler werben." in text_of(flow.last_to(ANNA))


async def test_a_dkim_verified_coordinator_post_passes(flow: Flow, dns: FakeDns, tmp_path) -> None:
    from listserv.delivery import signing as ourdkim

    key = tmp_path / "gk.key"
    ourdkim.generate_key(key, kind="ed25519")
    signer = ourdkim.Signer("gelsenkirchen.de", "mail", ourdkim.load_private_key(key))
    dns.txt["mail._domainkey.gelsenkirchen.de"] = [
        ourdkim.public_key_record(ourdkim.load_private_key(key))]
    signed = signer.sign(mail(sender=MODERATOR, subject="Einladung Fachtag"))
    await flow.send(signed, mail_from=MODERATOR, to=LIST)
    assert sorted(copies(flow, "Einladung Fachtag")) == sorted(MEMBERS)
    assert flow.query("SELECT rule FROM posts")[0][0] == "moderator_verified"
    # The same mail with a forged From and no valid signature is held.
    await post(flow, subject="Gefälscht", sender=MODERATOR)
    assert flow.query("SELECT state FROM posts ORDER BY id")[-1][0] == "held"


async def test_owner_mail_reaches_moderators_only(flow: Flow) -> None:
    await flow.send(mail(sender="eltern@example.org", to=OWNER, subject="Frage"),
                    mail_from="eltern@example.org", to=OWNER)
    forward = flow.last_to(MODERATOR)
    assert "Frage" in forward["Subject"]
    assert [p.get_content_type() for p in forward.iter_attachments()] == ["message/rfc822"]
    assert all(flow.sent_to(m) == [] for m in MEMBERS)
    # An auto-reply to the owner address is dropped.
    await flow.send(mail(sender="x@example.org", to=OWNER, subject="Out of office",
                         headers={"Auto-Submitted": "auto-replied"}),
                    mail_from="x@example.org", to=OWNER)
    assert len(flow.sent_to(MODERATOR)) == 1
    # Forwards are capped per sender and day.
    for i in range(7):
        await flow.send(mail(sender="spam@example.org", to=OWNER, subject=f"#{i}"),
                        mail_from="spam@example.org", to=OWNER)
    assert len(flow.sent_to(MODERATOR)) == 1 + 5


async def test_reminder_and_expiry_as_scheduled_jobs(
    flow: Flow, clocked_daemon: Daemon, clock: FakeClock
) -> None:
    assert clocked_daemon.scheduler is not None
    jobs = clocked_daemon.scheduler.next_runs()
    assert {"remind_moderators", "expire_held", "publish_approved"} <= set(jobs)
    await post(flow, subject="Alt")
    await clocked_daemon.scheduler.run_now("remind_moderators")
    await flow.settled()
    assert not any("Erinnerung" in m["Subject"] for m in flow.sent_to(MODERATOR))
    clock.advance(days=2)
    await clocked_daemon.scheduler.run_now("remind_moderators")
    await flow.settled()
    reminder = flow.last_to(MODERATOR)
    assert reminder["Subject"] == "Erinnerung: Beiträge warten auf Ihre Freigabe (1)"
    assert "»Alt" in text_of(reminder) and "25.11.2026, 10:00 Uhr" in text_of(reminder)
    clock.advance(days=13)
    assert await clocked_daemon.scheduler.run_now("expire_held") == 1
    await flow.settled()
    assert flow.query("SELECT state FROM posts")[0][0] == "expired"
    assert "nicht verschickt" in flow.last_to(ANNA)["Subject"]
    # Running it again does nothing more.
    assert await clocked_daemon.scheduler.run_now("expire_held") == 0


async def test_mail_from_any_of_our_own_addresses_is_discarded(flow: Flow) -> None:
    own = LIST.replace("@", "-join@")
    await post(flow, subject="Echo", sender=own)
    assert flow.sent_to(MODERATOR) == []
    assert flow.query("SELECT outcome FROM inbox")[0][0].startswith("discarded")
