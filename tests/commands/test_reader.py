"""The reader of replies (commands/reader.py): what a person or a moderator meant.

The corpus (test_corpus.py) scores whole mails; these tests pin the rules one by one.
"""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from listserv.commands.reader import Asker, Choice, Reading, read_reply
from tests.builders import arrived

MOD, PERSON = Asker.MODERATOR, Asker.PERSON


def mail(text: str | None = None, *, subject: str = "", html: str | None = None) -> EmailMessage:
    return arrived(text, html=html, subject=subject)


def choice(text: str | None, asker: Asker = MOD, *, html: str | None = None,
           wish: str = "join") -> Choice:
    return read_reply(mail(text, html=html), asker, wish=wish).choice


def test_moderator_decision_words_with_punctuation() -> None:
    for text, expected in {
        "ok": Choice.YES, "OK.": Choice.YES, "Ja!": Choice.YES, "yes": Choice.YES,
        "approve": Choice.YES, "Freigeben": Choice.YES, "o.k.": Choice.YES,
        "Ja, passt.": Choice.YES, "Bitte freigeben, danke!": Choice.YES,
        "verwerfen": Choice.DISCARD, "Discard.": Choice.DISCARD, "reject": Choice.NO,
        "Nein": Choice.NO, "Aufnehmen": Choice.JOIN,
        "aufnehmen bitte": Choice.JOIN,
    }.items():
        assert choice(f"{text}\n") is expected, text


def test_moderator_empty_thanks_emoji_prose_and_questions_act_on_nothing() -> None:
    for text in ("", "\n\nVon meinem iPhone gesendet\n", "Danke!", "👍", "Kann raus.",
                 "Verwerfen?", "ablehnen ?", "Löschen??",
                 "Das muss ich erst prüfen.\nok\n", "ok?", "Mit freundlichen Grüßen\nK.\n"):
        assert choice(text) is Choice.NONE, text


def test_moderator_negations_and_conditions_are_never_a_yes() -> None:
    for text in ("nicht freigeben", "Bitte nicht veröffentlichen.", "keine Aufnahme",
                 "nicht aufnehmen", "don't approve", "Ok, aber erst am Montag.",
                 "ja, wenn sie Mitglied ist"):
        assert choice(text) is Choice.NONE, text


def test_reject_reason_forms() -> None:
    def reading(text: str) -> Reading:
        return read_reply(mail(text), MOD)

    assert reading("Ablehnen: Bitte nicht über den Verteiler werben.\n\nMfG\n").reason == (
        "Bitte nicht über den Verteiler werben.")
    assert reading("Ablehnen\nWerbung.\n").reason == "Werbung."
    assert reading("ablehnen\n\nLG Sabine\n").reason == ""
    assert reading("Nein, das ist Werbung\n") == Reading(Choice.NO, "decision word")


def test_person_anything_but_a_no_confirms() -> None:
    for text in ("", "Danke schön!", "Super, danke", "👍", "ok", "Ja, das war ich.",
                 "Mit freundlichen Grüßen\n\nClaudia Brandt\n", "Hiermit bestätige ich.",
                 "Danke, kein Problem."):
        assert choice(text, PERSON) is Choice.YES, text


def test_person_no_declines_and_doubt_is_asked_again() -> None:
    for text in ("Nein", "nein danke", "Das war ich nicht.", "Ich habe mich nicht angemeldet!",
                 "Bitte löschen Sie meine Adresse.", "abmelden"):
        assert choice(text, PERSON) is Choice.NO, text
    assert choice("Nein, ich will nicht abgemeldet werden", PERSON, wish="leave") is Choice.NO
    assert choice("Ja bitte abmelden", PERSON, wish="leave") is Choice.YES
    assert choice("Was ist das für ein Verteiler?", PERSON) is Choice.NONE
    assert choice("Ja.\nAber ich war das nicht.", PERSON) is Choice.NONE


def test_out_of_office_text_is_ignored_without_headers() -> None:
    for text in ("Vielen Dank für Ihre Nachricht. Ich bin bis zum 30.11. nicht im Dienst.",
                 "Ich bin bis einschließlich 4.12. nicht im Büro.",
                 "I am out of the office until December 4th with limited access to email."):
        assert choice(text, PERSON) is Choice.IGNORE, text
        assert choice(text, MOD) is Choice.IGNORE, text


def test_quotes_are_never_read() -> None:
    outlook_html = (
        "<html><body><p class=MsoNormal>verwerfen</p><div><div style='border:none;"
        "border-top:solid #E1E1E1 1.0pt'><p><b>Von:</b> Netzwerk<br><b>Gesendet:</b> Montag"
        "</p></div></div><p>ok / ablehnen</p></body></html>")
    assert choice(None, html=outlook_html) is Choice.DISCARD
    assert choice("Ja\n\nVon: Netzwerk <l@d>\nGesendet: Montag\nAn: K\n\nablehnen\n") is (
        Choice.YES)
    gmail = ('<div dir="ltr">Freigeben</div><div class="gmail_quote"><div class="gmail_attr">'
             'Am Mo. schrieb X</div><blockquote>ablehnen</blockquote></div>')
    assert choice(None, html=gmail) is Choice.YES
    assert choice("OK\n\nGesendet von meinem iPhone\n\n> Am 23.11. schrieb X:\n> ablehnen\n") is (
        Choice.YES)
    assert choice("discard\n\nOn 11/23/26 09:20, Netzwerk wrote:\n> approve?\n") is (
        Choice.DISCARD)
    empty = '<div dir="ltr"><br></div><div class="gmail_quote"><blockquote>ok</blockquote></div>'
    assert choice(None, html=empty) is Choice.NONE
    assert choice(None, PERSON, html=empty) is Choice.YES


def test_a_bottom_post_is_read_when_nothing_stands_above() -> None:
    text = "Am 23.11.26 um 09:20 schrieb Netzwerk:\n> Freigabe erbeten\n> ok\n\nablehnen\n"
    assert choice(text) is Choice.NO
    assert choice("\n> Freigabe erbeten\n> ok / ablehnen\nverwerfen\n-- \nSabine\n") is (
        Choice.DISCARD)
    assert choice(text.replace("ablehnen", "nein"), PERSON) is Choice.NO
    # Above the quote wins; a signature below the quote is no answer.
    assert choice("ok\n\nAm 23.11.26 schrieb N:\n> x\n\nverwerfen\n") is Choice.YES
    assert choice("Am 23.11.26 schrieb N:\n> x\n\n-- \nSabine\n") is Choice.NONE


def test_the_subject_is_not_read() -> None:
    msg = mail("\n", subject="Re: ok")
    assert read_reply(msg, MOD).choice is Choice.NONE


LINE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
QUOTED = st.sampled_from(["ok", "ja", "ablehnen Spam", "verwerfen", "aufnehmen", "Freigeben"])
MARKER = st.sampled_from([
    "Am 23.11.2026 um 09:20 schrieb Netzwerk:", "-----Ursprüngliche Nachricht-----",
    "Von: Netzwerk <l@d>\nGesendet: Montag, 23. November 2026 09:20",
    "From: List <l@d>\nSent: Monday\nTo: k@d", "Gesendet von meinem iPhone", "-- ",
    "On Mon, Nov 23, 2026 at 9:15 AM Netzwerk <l@d> wrote:"])


@settings(max_examples=200)
@given(filler=st.sampled_from(["Termin am Montag", "Raum 204", "siehe unten"]), marker=MARKER,
       quoted=st.lists(QUOTED, min_size=1, max_size=4), prefix=st.sampled_from(["> ", ""]))
def test_words_below_a_marker_after_fresh_text_never_decide(
        filler: str, marker: str, quoted: list[str], prefix: str) -> None:
    body = "\n".join([filler, marker, *(prefix + q for q in quoted)]) + "\n"
    assert read_reply(mail(body), MOD).choice is Choice.NONE


@settings(max_examples=200)
@given(body=LINE, raw=st.binary(max_size=400), asker=st.sampled_from(list(Asker)))
def test_never_raises(body: str, raw: bytes, asker: Asker) -> None:
    assert isinstance(read_reply(mail(body), asker), Reading)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(read_reply(msg, asker), Reading)  # type: ignore[arg-type]


def test_hostile_long_lines_stay_cheap() -> None:
    for line in ("-" * 999, "Am 1 " + "schrieb x " * 99, "nicht " * 160, "> " * 490,
                 "<blockquote>" * 300):
        msg = EmailMessage()
        msg.set_content((line + "\n") * 1000)
        started = time.perf_counter()
        for asker in Asker:
            read_reply(msg, asker)
        assert time.perf_counter() - started < 3.0, line[:20]


NEGATED = st.sampled_from([
    "nicht freigeben", "bitte nicht veröffentlichen", "keine Aufnahme", "nicht aufnehmen",
    "don't approve", "do not approve", "Bitte NICHT freigeben!", "ok, aber nicht heute",
    "ja, aber erst nach Rücksprache", "Nicht verschicken"])


@settings(max_examples=150)
@given(negated=NEGATED, greeting=st.sampled_from(["", "Hallo,\n", "Liebe Sabine,\n\n"]),
       tail=st.sampled_from(["", "\nLG", "\n\nVon meinem iPhone gesendet",
                             "\n\nAm 1.12. schrieb N:\n> ok"]))
def test_a_negated_or_conditional_word_is_never_a_yes_for_anyone(
        negated: str, greeting: str, tail: str) -> None:
    body = f"{greeting}{negated}{tail}\n"
    assert read_reply(mail(body), MOD).choice is Choice.NONE
    assert read_reply(mail(body), PERSON).choice in (Choice.NO, Choice.NONE)
