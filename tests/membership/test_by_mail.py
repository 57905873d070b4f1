"""Membership by mail, end to end over real SMTP (DESIGN §3, §5)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, SAMPLES, FakeClock, mail
from tests.mailflow import Flow, reply_to, text_of, token_of

REQUEST = LIST.replace("@", "-request@")
LEAVE = LIST.replace("@", "-leave@")
ANNA = "anna.schmidt@schule-gelsenkirchen.de"


@pytest.fixture
def flow(clocked_daemon: Daemon) -> Flow:
    return Flow(clocked_daemon)


async def subscribe_and_confirm(flow: Flow, who: str = ANNA, word: str = "anmelden") -> str:
    """Request, confirm; return the moderator's approval token."""
    await flow.send(mail(sender=who, to=REQUEST, subject=word, body=""), mail_from=who, to=REQUEST)
    confirm = flow.last_to(who)
    await flow.send(reply_to(confirm, sender=who), mail_from=who, to=str(confirm["Reply-To"]))
    return token_of(flow.last_to(MODERATOR))


async def test_confirm_then_approve_in_german(flow: Flow) -> None:
    await flow.send(mail(sender=f"Anna Schmidt <{ANNA}>", to=REQUEST, subject="anmelden",
                         body="Viele Grüße\nAnna"), mail_from=ANNA, to=REQUEST)
    (confirm,) = flow.sent_to(ANNA)
    assert "Bitte bestätigen" in confirm["Subject"]
    assert confirm["Auto-Submitted"] == "auto-replied"
    assert confirm["From"].addresses[0].addr_spec == REQUEST
    assert confirm["In-Reply-To"] and confirm["References"]
    assert "Antworten Sie einfach auf diese Mail" in text_of(confirm)
    assert "simply reply" not in text_of(confirm)   # German only: the list is German
    assert "[" not in confirm["Subject"]            # no raw token in the subject
    assert flow.members() == []
    # A plain reply, quoting the notice, confirms; the coordinator is asked.
    await flow.send(reply_to(confirm, sender=ANNA), mail_from=ANNA, to=str(confirm["Reply-To"]))
    assert flow.members() == []
    notice = flow.last_to(MODERATOR)
    assert ANNA in notice["Subject"] and "freigeben" in notice["Subject"]
    assert "ok" in text_of(notice) and "ablehnen" in text_of(notice)
    assert "Freigabe" in flow.last_to(ANNA)["Subject"]
    # The coordinator replies "ok" as Outlook would: HTML, quote below.
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok", html=True),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    assert flow.members() == [ANNA]
    welcome = flow.last_to(ANNA)
    assert welcome["Subject"] == "Willkommen im Netzwerk Soziale Arbeit an Schulen"
    assert LEAVE in text_of(welcome) and "Datenschutz" in text_of(welcome)
    # The consent proof: requested, confirmed, approved, with tokens and mail ids.
    events = flow.query("SELECT event, token_hash, message_id, peer FROM consent_log"
                        " ORDER BY id")
    assert [e["event"] for e in events] == ["subscribe_requested", "confirmed", "approved"]
    assert all(e["token_hash"] for e in events)
    assert all(e["message_id"] for e in events)
    assert all(e["peer"].startswith("127.0.0.1:") for e in events)   # the SMTP peer


async def test_confirm_then_approve_in_english(flow: Flow) -> None:
    await flow.send(mail(sender=ANNA, to=REQUEST, subject="", body="subscribe\n-- \nAnna"),
                    mail_from=ANNA, to=REQUEST)
    confirm = flow.last_to(ANNA)
    assert confirm["Subject"].startswith("Please confirm")
    await flow.send(reply_to(confirm, sender=ANNA, body="yes"), mail_from=ANNA,
                    to=str(confirm["Reply-To"]))
    assert flow.last_to(ANNA)["Subject"].startswith("Your subscription")
    notice = flow.last_to(MODERATOR)   # the coordinator always gets German
    await flow.send(reply_to(notice, sender=MODERATOR, body="Ja"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert flow.members() == [ANNA]
    assert flow.last_to(ANNA)["Subject"] == "Welcome to Netzwerk Soziale Arbeit an Schulen"
    assert flow.query("SELECT language FROM members")[0]["language"] == "en"


async def test_outlook_free_text_to_the_list_address_is_a_subscribe(flow: Flow) -> None:
    path = SAMPLES / "01-outlook-freetext-join.eml"
    if not path.exists():
        pytest.skip(f"{path} absent")
    await flow.send(path.read_bytes(), mail_from="sabine.kowalski@gelsenkirchen.de", to=LIST)
    confirm = flow.last_to("sabine.kowalski@gelsenkirchen.de")
    assert "Bitte bestätigen" in confirm["Subject"]
    row = flow.query("SELECT outcome FROM inbox")[0]
    assert row["outcome"] == "confirmation sent"


async def test_an_auto_reply_quoting_the_token_does_not_confirm(flow: Flow) -> None:
    await flow.send(mail(sender=ANNA, to=REQUEST, subject="anmelden"), mail_from=ANNA, to=REQUEST)
    confirm = flow.last_to(ANNA)
    sample = SAMPLES / "10-out-of-office.eml"
    raw = (sample.read_bytes() if sample.exists() else
           reply_to(confirm, sender=ANNA, body="Ich bin nicht im Dienst.",
                    headers={"Auto-Submitted": "auto-replied"}))
    await flow.send(raw, mail_from=ANNA, to=str(confirm["Reply-To"]))
    assert flow.sent_to(MODERATOR) == []
    assert len(flow.sent_to(ANNA)) == 1           # and it gets no answer either
    assert "ignored automatic mail" in flow.query("SELECT outcome FROM inbox ORDER BY id")[-1][0]
    # The token still works for the person.
    await flow.send(reply_to(confirm, sender=ANNA), mail_from=ANNA, to=str(confirm["Reply-To"]))
    assert len(flow.sent_to(MODERATOR)) == 1


async def test_wrong_reused_and_expired_tokens(flow: Flow, clock: FakeClock) -> None:
    bogus = LIST.replace("@", "-confirm+" + "a" * 32 + "@")
    await flow.send(mail(sender=ANNA, to=bogus, subject="Re: x", body=""), mail_from=ANNA,
                    to=bogus)
    assert "nicht möglich" in flow.last_to(ANNA)["Subject"]
    approval = await subscribe_and_confirm(flow)
    notice = flow.last_to(MODERATOR)
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    assert flow.members() == [ANNA]
    # The same decision again: "already done by … at …", nothing changes.
    await flow.send(reply_to(notice, sender=MODERATOR, body="ablehnen doch nicht"),
                    mail_from=MODERATOR, to=str(notice["Reply-To"]))
    again = flow.last_to(MODERATOR)
    assert again["Subject"].startswith("Bereits erledigt")
    assert MODERATOR in text_of(again) and "25.11.2026, 10:00 Uhr" in text_of(again)
    assert flow.members() == [ANNA]
    assert approval
    # An expired confirmation changes nothing and says so.
    bob = "bob@example.org"
    await flow.send(mail(sender=bob, to=REQUEST, subject="subscribe"), mail_from=bob, to=REQUEST)
    confirm = flow.last_to(bob)
    clock.advance(days=8)
    await flow.send(reply_to(confirm, sender=bob), mail_from=bob, to=str(confirm["Reply-To"]))
    assert "abgelaufen" in flow.last_to(bob)["Subject"] or "expired" in flow.last_to(bob)[
        "Subject"]
    # approval request, acknowledgement, "already done": none for bob
    assert len(flow.sent_to(MODERATOR)) == 3


async def test_a_non_moderator_cannot_approve(flow: Flow) -> None:
    await subscribe_and_confirm(flow)
    notice = flow.last_to(MODERATOR)
    forger = "mallory@example.net"
    await flow.send(reply_to(notice, sender=forger, body="ok"), mail_from=forger,
                    to=str(notice["Reply-To"]))
    assert flow.members() == []
    assert flow.sent_to(forger) == []
    # Even with the moderator's address in From but the wrong token: nothing.
    bogus = LIST.replace("@", "-confirm+" + "b" * 32 + "@")
    await flow.send(mail(sender=MODERATOR, to=bogus, subject="AW: x", body="ok"),
                    mail_from=MODERATOR, to=bogus)
    assert flow.members() == []


async def test_an_invalid_address_gets_a_clear_answer_and_no_state(flow: Flow) -> None:
    await flow.send(mail(sender="anna@@example..org", to=REQUEST, subject="anmelden"),
                    mail_from="anna@example.org", to=REQUEST)
    answer = flow.last_to("anna@example.org")
    assert "nicht verwenden" in answer["Subject"]
    assert flow.query("SELECT * FROM tokens") == []
    assert flow.members() == []


async def test_the_reply_rate_limit_holds(flow: Flow) -> None:
    victim = "victim@example.org"
    for i in range(9):
        await flow.send(mail(sender=victim, to=REQUEST, subject="anmelden", body=f"#{i}"),
                        mail_from=victim, to=REQUEST)
    assert len(flow.sent_to(victim)) == 5   # replies_per_address_per_day
    outcomes = [r[0] for r in flow.query("SELECT outcome FROM inbox ORDER BY id")]
    assert outcomes.count("dropped (rate limit)") == 4


async def test_unsubscribe_with_confirmation(flow: Flow) -> None:
    token = await subscribe_and_confirm(flow)
    approve = mail(sender=MODERATOR, to=LIST.replace("@", f"-confirm+{token}@"),
                   subject="AW: Freigabe", body="ok")
    await flow.send(approve, mail_from=MODERATOR, to=LIST.replace("@", f"-confirm+{token}@"))
    assert flow.members() == [ANNA]
    await flow.send(mail(sender=ANNA, to=LEAVE, subject="tschüss", body="Danke für alles"),
                    mail_from=ANNA, to=LEAVE)
    confirm = flow.last_to(ANNA)
    assert "Abmeldung" in confirm["Subject"]
    assert flow.members() == [ANNA]
    await flow.send(reply_to(confirm, sender=ANNA), mail_from=ANNA, to=str(confirm["Reply-To"]))
    assert flow.members() == []
    assert "abgemeldet" in flow.last_to(ANNA)["Subject"]
    assert flow.query("SELECT event FROM consent_log ORDER BY id")[-1][0] == "unsubscribed"


async def test_leave_request_from_a_non_member_reveals_nothing(flow: Flow) -> None:
    await flow.send(mail(sender="bob@example.org", to=REQUEST, subject="abmelden"),
                    mail_from="bob@example.org", to=REQUEST)
    answer = flow.last_to("bob@example.org")
    assert "Falls" in text_of(answer) or "Ist die Adresse" in text_of(answer)
    assert flow.query("SELECT * FROM tokens") == []


async def test_duplicate_subscribe_says_already_a_member(flow: Flow) -> None:
    token = await subscribe_and_confirm(flow)
    confirm_addr = LIST.replace("@", f"-confirm+{token}@")
    await flow.send(mail(sender=MODERATOR, to=confirm_addr, subject="AW: x", body="ok"),
                    mail_from=MODERATOR, to=confirm_addr)
    welcomes = len([m for m in flow.sent_to(ANNA) if "Willkommen" in m["Subject"]])
    await flow.send(mail(sender=ANNA, to=REQUEST, subject="anmelden"), mail_from=ANNA,
                    to=REQUEST)
    assert "bereits Mitglied" in flow.last_to(ANNA)["Subject"]
    assert len([m for m in flow.sent_to(ANNA) if "Willkommen" in m["Subject"]]) == welcomes == 1


async def test_moderator_invites_a_colleague(flow: Flow) -> None:
    colleague = "carla.neu@schule.example"
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="",
                         body=f"einladen {colleague} Carla Neu"),
                    mail_from=MODERATOR, to=REQUEST)
    confirm = flow.last_to(MODERATOR)
    assert colleague in confirm["Subject"]
    assert flow.sent_to(colleague) == []
    await flow.send(reply_to(confirm, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(confirm["Reply-To"]))
    invitation = flow.last_to(colleague)
    assert "Einladung" in invitation["Subject"]
    await flow.send(reply_to(invitation, sender=colleague), mail_from=colleague,
                    to=str(invitation["Reply-To"]))
    assert flow.members() == [colleague]
    assert "Willkommen" in flow.last_to(colleague)["Subject"]
    events = [r[0] for r in flow.query("SELECT event FROM consent_log WHERE address = ?",
                                       (colleague,))]
    assert events == ["invited", "invitation_accepted"]


async def test_a_forged_moderator_invitation_changes_nothing(flow: Flow) -> None:
    colleague = "carla.neu@schule.example"
    # Mallory forges the coordinator's From: the confirmation goes to the real
    # coordinator, who never answers it.
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="",
                         body=f"einladen {colleague}"), mail_from="mallory@example.net",
                    to=REQUEST)
    assert flow.sent_to(colleague) == []
    assert flow.sent_to("mallory@example.net") == []
    # Mallory guesses at the confirm address with her own From: refused silently.
    (row,) = flow.query("SELECT action FROM tokens")
    assert row["action"] == "invite_request"
    bogus = LIST.replace("@", "-confirm+" + "c" * 32 + "@")
    await flow.send(mail(sender="mallory@example.net", to=bogus, subject="Re", body="ok"),
                    mail_from="mallory@example.net", to=bogus)
    assert flow.members() == []
    assert flow.sent_to(colleague) == []


async def test_entfernen_removes_after_the_moderators_confirmation(flow: Flow) -> None:
    token = await subscribe_and_confirm(flow)
    addr = LIST.replace("@", f"-confirm+{token}@")
    await flow.send(mail(sender=MODERATOR, to=addr, subject="AW", body="ok"),
                    mail_from=MODERATOR, to=addr)
    assert flow.members() == [ANNA]
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="", body=f"entfernen {ANNA}"),
                    mail_from=MODERATOR, to=REQUEST)
    assert flow.members() == [ANNA]
    confirm = flow.last_to(MODERATOR)
    await flow.send(reply_to(confirm, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(confirm["Reply-To"]))
    assert flow.members() == []
    assert "ausgetragen" in flow.last_to(ANNA)["Subject"]


async def test_who_goes_only_to_the_moderator(flow: Flow) -> None:
    token = await subscribe_and_confirm(flow)
    addr = LIST.replace("@", f"-confirm+{token}@")
    await flow.send(mail(sender=MODERATOR, to=addr, subject="AW", body="ok"),
                    mail_from=MODERATOR, to=addr)
    await flow.send(mail(sender=ANNA, to=REQUEST, subject="mitglieder"), mail_from=ANNA,
                    to=REQUEST)
    refusal: EmailMessage = flow.last_to(ANNA)
    assert "Nur für die Koordination" in refusal["Subject"]
    assert ANNA not in text_of(refusal)
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="mitglieder"),
                    mail_from="someone@example.net", to=REQUEST)
    listing = flow.last_to(MODERATOR)
    assert "Mitglieder" in listing["Subject"] and ANNA in text_of(listing)
    assert flow.sent_to("someone@example.net") == []


async def test_help(flow: Flow) -> None:
    await flow.send(mail(sender=ANNA, to=REQUEST, subject="hilfe"), mail_from=ANNA, to=REQUEST)
    assert flow.last_to(ANNA)["Subject"].startswith("Hilfe")


async def test_a_dkim_verified_moderator_invites_at_once(flow: Flow, dns, tmp_path) -> None:
    from listserv.delivery import signing as ourdkim

    key = tmp_path / "gk.key"
    ourdkim.generate_key(key, kind="ed25519")
    private = ourdkim.load_private_key(key)
    dns.txt["mail._domainkey.gelsenkirchen.de"] = [ourdkim.public_key_record(private)]
    signer = ourdkim.Signer("gelsenkirchen.de", "mail", private)
    colleague = "dora@schule.example"
    request = signer.sign(mail(sender=MODERATOR, to=REQUEST, subject="",
                               body=f"einladen {colleague} Dora"))
    await flow.send(request, mail_from=MODERATOR, to=REQUEST)
    assert "Einladung" in flow.last_to(colleague)["Subject"]
    assert flow.last_to(MODERATOR)["Subject"].startswith("Eingeladen: ")
    # The same text unsigned needs the token round trip: no invitation yet.
    other = "emil@schule.example"
    await flow.send(mail(sender=MODERATOR, to=REQUEST, subject="", body=f"einladen {other}"),
                    mail_from=MODERATOR, to=REQUEST)
    assert flow.sent_to(other) == []


async def test_an_outlook_html_request_with_signature_and_quote(flow: Flow) -> None:
    """HTML only, "AW:" subject, Outlook signature and its unquoted "Von:" block."""
    html = (
        "<html><head><style>p{margin:0}</style></head><body>"
        "<p>Hallo,</p><p>bitte nehmen Sie mich in den Verteiler auf.</p>"
        "<p>Mit freundlichen Grüßen</p><p>Jana Beispiel<br>Schulsozialarbeit | "
        "Gesamtschule Buer<br>Tel. 0209 169-0000</p>"
        "<div style='border:none;border-top:solid #E1E1E1 1.0pt'>"
        "<p><b>Von:</b> Netzwerk SAS &lt;soziale.arbeit.an.schulen@gelsenkirchen.de&gt;<br>"
        "<b>Gesendet:</b> Montag, 23. November 2026 09:00<br><b>Betreff:</b> Fachtag</p></div>"
        "<p>abmelden: eine Mail an soziale.arbeit.an.schulen-leave@gelsenkirchen.de</p>"
        "</body></html>")
    msg = EmailMessage()
    msg["From"] = "Jana Beispiel <jana.beispiel@schule.example>"
    msg["To"] = REQUEST
    msg["Subject"] = "AW: Fachtag"
    msg["Message-ID"] = "<outlook-html@schule.example>"
    msg.set_content(html, subtype="html")
    await flow.send(msg.as_bytes(), mail_from="jana.beispiel@schule.example", to=REQUEST)
    confirm = flow.last_to("jana.beispiel@schule.example")
    assert "Bitte bestätigen" in confirm["Subject"]
    assert flow.query("SELECT outcome FROM inbox")[0][0] == "confirmation sent"


async def test_the_address_is_kept_as_written(flow: Flow) -> None:
    """Local part as given, domain lower-cased; compared without case."""
    written = "Anna.Schmidt@Schule-Gelsenkirchen.DE"
    token = await subscribe_and_confirm(flow, who=written)
    addr = LIST.replace("@", f"-confirm+{token}@")
    await flow.send(mail(sender=MODERATOR, to=addr, subject="AW", body="ok"),
                    mail_from=MODERATOR, to=addr)
    (row,) = flow.query("SELECT address, address_as_given FROM members")
    assert tuple(row) == ("anna.schmidt@schule-gelsenkirchen.de",
                          "Anna.Schmidt@schule-gelsenkirchen.de")
    await flow.send(mail(sender=written.lower(), to=REQUEST, subject="anmelden"),
                    mail_from=written.lower(), to=REQUEST)
    assert "bereits Mitglied" in flow.last_to(written.lower())["Subject"]
