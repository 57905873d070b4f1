"""Commands by mail (DESIGN §5), read from mails as the network's clients write them."""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from listserv.commands.parse import Command, Context, Verb, find_token, parse_commands
from tests.builders import arrived

TOKEN = "abcdefghijklmnopqrstuvwxyz234567"
POST, REQUEST, REPLY = Context.POST, Context.REQUEST, Context.REPLY


def mail(text: str | None = None, *, subject: str = "", html: str | None = None) -> EmailMessage:
    return arrived(text, html=html, subject=subject)


def verbs(msg: EmailMessage, context: Context) -> list[Verb]:
    return [command.verb for command in parse_commands(msg, context)]


# --- REQUEST: L-request@D ------------------------------------------------------------------


def test_every_word_of_the_table_in_request() -> None:
    table = {
        Verb.SUBSCRIBE: ["subscribe", "join", "anmelden", "eintragen", "abonnieren"],
        Verb.UNSUBSCRIBE: ["unsubscribe", "leave", "abmelden", "austragen"],
        Verb.HELP: ["help", "hilfe", "HILFE", "Hilfe!"],
        Verb.WHO: ["who", "mitglieder", "Mitglieder?"],
    }
    for verb, words in table.items():
        for word in words:
            assert verbs(mail(f"{word}\n"), REQUEST) == [verb], word


def test_subject_is_read_first_and_duplicates_dropped() -> None:
    assert parse_commands(mail("anmelden\n", subject="anmelden"), REQUEST) == [
        Command(Verb.SUBSCRIBE)
    ]
    assert verbs(mail("who\n", subject="Hilfe"), REQUEST) == [Verb.HELP, Verb.WHO]


def test_subject_prefixes_are_stripped() -> None:
    assert verbs(mail("", subject="AW: [SAS] WG: Re: anmelden"), REQUEST) == [Verb.SUBSCRIBE]


def test_one_command_a_line_up_to_max_lines() -> None:
    body = "hilfe\nwho\nanmelden\nabmelden\nconfirm " + TOKEN + "\n"
    assert verbs(mail(body), REQUEST) == [
        Verb.HELP,
        Verb.WHO,
        Verb.SUBSCRIBE,
        Verb.UNSUBSCRIBE,
        Verb.CONFIRM,
    ]
    assert len(parse_commands(mail(body), REQUEST, max_lines=2)) == 2


def test_ende_stops_reading() -> None:
    assert verbs(mail("hilfe\nende\nabmelden\n"), REQUEST) == [Verb.HELP]
    assert verbs(mail("who\nEND\nanmelden\n"), REQUEST) == [Verb.WHO]


def test_signature_after_dash_dash_space_is_ignored() -> None:
    assert verbs(mail("subscribe\n\n-- \nJohn Doe\nunsubscribe\n"), REQUEST) == [Verb.SUBSCRIBE]


def test_confirm_with_token_in_body_and_subject() -> None:
    assert parse_commands(mail(f"confirm {TOKEN}\n"), REQUEST) == [Command(Verb.CONFIRM, TOKEN)]
    assert parse_commands(mail(f"Bestätigen {TOKEN.upper()}\n"), REQUEST) == [
        Command(Verb.CONFIRM, TOKEN)
    ]
    assert parse_commands(mail(f"bestaetigen {TOKEN}\n"), REQUEST) == [Command(Verb.CONFIRM, TOKEN)]
    assert parse_commands(mail("", subject=f"Re: confirm {TOKEN}"), REQUEST) == [
        Command(Verb.CONFIRM, TOKEN)
    ]


def test_invite_and_remove_carry_address_and_name() -> None:
    assert parse_commands(mail("einladen max@example.de Max Muster\n"), REQUEST) == [
        Command(Verb.INVITE, "max@example.de Max Muster")
    ]
    assert parse_commands(mail("invite Max Muster <max@example.de>\n"), REQUEST) == [
        Command(Verb.INVITE, "max@example.de Max Muster")
    ]
    assert parse_commands(mail("entfernen: p.nowak@caritas-ge.example\n"), REQUEST) == [
        Command(Verb.REMOVE, "p.nowak@caritas-ge.example")
    ]
    assert parse_commands(mail("Bitte entfernen Sie x@y.de<mailto:x@y.de>\n"), REQUEST) == [
        Command(Verb.REMOVE, "x@y.de")
    ]


def test_entfernen_without_address_is_a_leave_request() -> None:
    msg = mail("Bitte entfernen Sie mich aus dem Verteiler.\n")
    assert verbs(msg, REQUEST) == [Verb.UNSUBSCRIBE]


def test_free_text_requests_count_in_request() -> None:
    assert verbs(mail("Ich möchte mich gerne anmelden.\n"), REQUEST) == [Verb.SUBSCRIBE]
    assert verbs(mail("Bitte melden Sie mich ab.\n"), REQUEST) == [Verb.UNSUBSCRIBE]
    assert verbs(mail("", subject="Abmeldung"), REQUEST) == [Verb.UNSUBSCRIBE]
    assert verbs(mail("please remove me from the list\n"), REQUEST) == [Verb.UNSUBSCRIBE]


def test_command_words_win_over_prose_in_the_subject() -> None:
    assert verbs(mail("abmelden\n", subject="Re: Ihre Anmeldung"), REQUEST) == [Verb.UNSUBSCRIBE]


def test_greeting_is_skipped() -> None:
    assert verbs(mail("Hallo,\nanmelden\n"), REQUEST) == [Verb.SUBSCRIBE]
    assert verbs(mail("Hallo, anmelden bitte\n"), REQUEST) == [Verb.SUBSCRIBE]
    assert verbs(mail("Sehr geehrte Damen und Herren,\n\nabmelden\n"), REQUEST) == [
        Verb.UNSUBSCRIBE
    ]


def test_unknown_line_comes_back_once_when_nothing_was_understood() -> None:
    msg = mail("Wann ist das nächste Treffen?\nUnd wo?\n", subject="Frage")
    assert parse_commands(msg, REQUEST) == [Command(Verb.UNKNOWN, "Wann ist das nächste Treffen?")]


def test_no_unknown_next_to_a_real_command() -> None:
    assert verbs(mail("anmelden\nIch arbeite an der Gesamtschule.\n"), REQUEST) == [Verb.SUBSCRIBE]


def test_empty_request_is_empty() -> None:
    assert parse_commands(mail(""), REQUEST) == []


def test_moderator_decisions_are_not_read_in_request() -> None:
    assert verbs(mail("ok\n"), REQUEST) == [Verb.UNKNOWN]
    assert verbs(mail("ablehnen\n"), REQUEST) == [Verb.UNKNOWN]


def test_html_only_request_from_outlook() -> None:
    html = (
        "<html><head><style>p.MsoNormal{margin:0}</style></head><body>"
        '<p class="MsoNormal">Guten Tag,<o:p></o:p></p>'
        '<p class="MsoNormal">abmelden<o:p></o:p></p>'
        '<p class="MsoNormal">Mit freundlichen Gr&uuml;&szlig;en<o:p></o:p></p></body></html>'
    )
    assert verbs(mail(html=html), REQUEST) == [Verb.UNSUBSCRIBE]


# --- POST: L@D -----------------------------------------------------------------------------


def test_post_with_command_subject() -> None:
    assert verbs(mail("Danke!\n", subject="anmelden"), POST) == [Verb.SUBSCRIBE]
    assert verbs(mail("", subject="Bitte abmelden!"), POST) == [Verb.UNSUBSCRIBE]
    assert verbs(mail("", subject="Aufnahme in den Verteiler"), POST) == [Verb.SUBSCRIBE]


def test_post_with_free_text_first_line() -> None:
    msg = mail("Hallo,\n\nbitte nehmen Sie mich in den Verteiler auf.\n\nGruß\nPeter\n")
    assert verbs(msg, POST) == [Verb.SUBSCRIBE]
    msg = mail("Liebe Frau Kowalski,\nbitte streichen Sie mich aus dem Verteiler.\n")
    assert verbs(msg, POST) == [Verb.UNSUBSCRIBE]
    msg = mail("Ich möchte mich vom E-Mail-Verteiler abmelden.\n", subject="Verteiler")
    assert verbs(msg, POST) == [Verb.UNSUBSCRIBE]


def test_post_free_text_variants() -> None:
    assert verbs(mail("Bitte setzen Sie mich auf den Verteiler.\n"), POST) == [Verb.SUBSCRIBE]
    assert verbs(mail("Please add me to your mailing list.\n"), POST) == [Verb.SUBSCRIBE]
    assert verbs(mail("Please remove me from the list.\n"), POST) == [Verb.UNSUBSCRIBE]
    assert verbs(mail("", subject="Abmeldung vom Verteiler"), POST) == [Verb.UNSUBSCRIBE]


def test_post_naming_the_verteiler_without_asking_stays_a_post() -> None:
    for first_line, subject in (
        ("Ich habe diese Info aus dem Verteiler der Stadt bekommen.", "Info"),
        ("Wer in den Verteiler aufgenommen werden möchte, schreibt an die Koordination.", "X"),
        ("Anbei das Programm.", "Fachtag: Anmeldung bis 3.12. – Verteiler bitte weitergeben"),
        ("Bitte leiten Sie die Einladung an Ihren Verteiler weiter.", "Einladung"),
    ):
        assert parse_commands(mail(first_line + "\n", subject=subject), POST) == [], first_line


def test_post_mentioning_anmelden_later_stays_a_post() -> None:
    body = (
        "Liebe Kolleginnen und Kollegen,\n\n"
        "anbei die Einladung zum Fachtag am 4.12.\n"
        "Bitte melden Sie sich bis Freitag an. Wer nicht mehr im Verteiler sein will,\n"
        "kann sich abmelden.\n\nViele Grüße\nSabine\n"
    )
    assert parse_commands(mail(body, subject="Fachtag Kinderschutz"), POST) == []


def test_post_subject_about_meeting_registration_stays_a_post() -> None:
    msg = mail("Bitte bis 3.12. anmelden.\n", subject="Anmeldung Netzwerktreffen")
    assert parse_commands(msg, POST) == []


def test_post_first_line_anmelden_for_an_event_stays_a_post() -> None:
    msg = mail("Bitte beim Veranstalter bis Freitag anmelden.\n", subject="Fachtag")
    assert parse_commands(msg, POST) == []


def test_post_never_returns_unknown_or_moderator_words() -> None:
    assert parse_commands(mail("ok\n", subject="Hilfe"), POST) == []


# --- REPLY: L-confirm+TOKEN@D ----------------------------------------------------------------


def test_decision_words_with_punctuation() -> None:
    cases = {
        "ok": Verb.APPROVE,
        "OK.": Verb.APPROVE,
        "Ja!": Verb.APPROVE,
        "ja": Verb.APPROVE,
        "yes": Verb.APPROVE,
        "approve": Verb.APPROVE,
        "Freigeben": Verb.APPROVE,
        "o.k.": Verb.APPROVE,
        "Ja, passt.": Verb.APPROVE,
        "verwerfen": Verb.DISCARD,
        "Discard.": Verb.DISCARD,
        "reject": Verb.REJECT,
        "bestätigen": Verb.CONFIRM,
        "confirm": Verb.CONFIRM,
        "Hiermit bestätige ich meine Anmeldung.": Verb.CONFIRM,
        "hilfe": Verb.HELP,
    }
    for text, verb in cases.items():
        assert verbs(mail(f"{text}\n"), REPLY) == [verb], text


def test_reject_reason_after_colon() -> None:
    msg = mail("Ablehnen: Bitte nicht über den Verteiler werben.\n\nMit freundlichen Grüßen\n")
    assert parse_commands(msg, REPLY) == [
        Command(Verb.REJECT, "Bitte nicht über den Verteiler werben.")
    ]


def test_reject_reason_hard_wrapped_by_thunderbird() -> None:
    text = (
        "ablehnen Das ist eine Werbung für eine kostenpflichtige Fortbildung und\n"
        "gehört nicht in den Verteiler.\n\n"
        "Am 23.11.26 um 09:20 schrieb Netzwerk:\n> ok\n"
    )
    assert parse_commands(mail(text), REPLY) == [
        Command(
            Verb.REJECT,
            "Das ist eine Werbung für eine kostenpflichtige Fortbildung und "
            "gehört nicht in den Verteiler.",
        )
    ]


def test_reject_alone_takes_the_next_line_as_reason() -> None:
    assert parse_commands(mail("Ablehnen\nWerbung.\n"), REPLY) == [Command(Verb.REJECT, "Werbung.")]
    assert parse_commands(mail("ablehnen\n\nLG Sabine\n"), REPLY) == [Command(Verb.REJECT)]


def test_empty_reply_confirms() -> None:
    msg = mail("\n\nAm 24.11.2026 um 10:00 schrieb Netzwerk <l@d>:\n> Bitte bestätigen Sie.\n")
    assert parse_commands(msg, REPLY) == [Command(Verb.CONFIRM)]
    assert parse_commands(mail(""), REPLY) == [Command(Verb.CONFIRM)]


def test_outlook_signature_only_reply_confirms() -> None:
    text = (
        "\n\nMit freundlichen Grüßen\n\nSabine Kowalski\nSchulsozialarbeit\n\n"
        "-----Ursprüngliche Nachricht-----\nVon: Netzwerk\nGesendet: Montag\n"
        "Betreff: Bitte bestätigen\n\nAntworten Sie mit ablehnen oder ok.\n"
    )
    assert parse_commands(mail(text), REPLY) == [Command(Verb.CONFIRM)]


def test_outlook_html_reply_with_von_gesendet_block() -> None:
    html = (
        "<html><head><style>p{margin:0}</style></head><body><div class=WordSection1>"
        "<p class=MsoNormal>verwerfen<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
        "<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm'>"
        "<p class=MsoNormal><b>Von:</b> Netzwerk &lt;l-owner@d&gt;<br><b>Gesendet:</b> "
        "Montag, 23. November 2026 09:20<br><b>An:</b> Koordination<br><b>Betreff:</b> "
        "Freigabe erbeten</p></div></div><p class=MsoNormal>ok / ablehnen</p></div></body></html>"
    )
    assert verbs(mail(html=html), REPLY) == [Verb.DISCARD]


def test_outlook_plain_header_block_without_separator() -> None:
    text = (
        "Ja\n\nVon: Netzwerk <l@d>\nGesendet: Montag, 23. November 2026 09:20\nAn: K\n\nablehnen\n"
    )
    assert verbs(mail(text), REPLY) == [Verb.APPROVE]


def test_gmail_html_reply_with_blockquote() -> None:
    html = (
        '<div dir="ltr">Freigeben</div><br><div class="gmail_quote">'
        '<div dir="ltr" class="gmail_attr">Am Mo., 23. Nov. 2026 um 09:15 Uhr schrieb X</div>'
        '<blockquote class="gmail_quote">ablehnen</blockquote></div>'
    )
    assert verbs(mail("Freigeben\n\nAm Mo. schrieb X:\n> ablehnen\n", html=html), REPLY) == [
        Verb.APPROVE
    ]
    assert verbs(mail(html=html), REPLY) == [Verb.APPROVE]


def test_empty_gmail_html_reply_confirms() -> None:
    html = '<div dir="ltr"><br></div><div class="gmail_quote"><blockquote>ok</blockquote></div>'
    assert parse_commands(mail(html=html), REPLY) == [Command(Verb.CONFIRM)]


def test_apple_mail_attribution_wrapped_on_two_lines() -> None:
    text = (
        "\n\nAm 24.11.2026 um 10:00 schrieb Netzwerk Soziale Arbeit an Schulen\n"
        "<soziale.arbeit.an.schulen-owner@gelsenkirchen.de>:\n\n> ablehnen\n>\n"
    )
    assert parse_commands(mail(text), REPLY) == [Command(Verb.CONFIRM)]
    text = (
        "verwerfen\n\nAm 24.11.2026 um 10:00 schrieb Netzwerk Soziale Arbeit an Schulen\n"
        "<soziale.arbeit.an.schulen-owner@gelsenkirchen.de>:\n\nok\n"
    )
    assert verbs(mail(text), REPLY) == [Verb.DISCARD]


def test_iphone_reply_with_mobile_signature() -> None:
    text = "OK\n\nGesendet von meinem iPhone\n\n> Am 23.11.2026 um 09:20 schrieb X:\n> ablehnen\n"
    assert verbs(mail(text), REPLY) == [Verb.APPROVE]


def test_english_thunderbird_reply() -> None:
    text = "discard\n\nOn 11/23/26 09:20, Netzwerk wrote:\n> approve?\n"
    assert verbs(mail(text), REPLY) == [Verb.DISCARD]


def test_bottom_post_is_not_read_and_not_a_confirmation() -> None:
    text = "Am 23.11.26 um 09:20 schrieb Netzwerk:\n> Freigabe erbeten\n\nablehnen\n"
    assert parse_commands(mail(text), REPLY) == [Command(Verb.UNKNOWN)]
    text = "\n> Freigabe erbeten\n> ok / ablehnen\nablehnen\n-- \nSabine\n"
    assert parse_commands(mail(text), REPLY) == [Command(Verb.UNKNOWN)]


def test_only_the_first_line_decides() -> None:
    assert verbs(mail("Das muss ich erst prüfen.\nok\n"), REPLY) == [Verb.UNKNOWN]
    assert verbs(mail("Hallo Sabine,\n\nok\n"), REPLY) == [Verb.APPROVE]


def test_out_of_office_is_never_a_decision() -> None:
    for text in (
        "Vielen Dank für Ihre Nachricht. Ich bin bis zum 30.11. nicht im Dienst.\n",
        "Ich bin bis einschließlich 4.12. nicht im Büro. Ihre Mail wird nicht weitergeleitet.\n",
        "I am out of the office until December 4th with limited access to email.\n",
        "Ich bestätige nicht, dass ich da bin.\n",
    ):
        assert verbs(mail(text, subject="Automatische Antwort: ok"), REPLY) == [Verb.UNKNOWN]


def test_reply_does_not_read_the_subject() -> None:
    msg = mail("Vielen Dank, ich bin im Urlaub.\n", subject="Re: Bitte bestätigen Sie")
    assert verbs(msg, REPLY) == [Verb.UNKNOWN]


def test_confirm_with_token_in_reply_body() -> None:
    assert parse_commands(mail(f"confirm {TOKEN}\n"), REPLY) == [Command(Verb.CONFIRM, TOKEN)]


# --- find_token ----------------------------------------------------------------------------


def test_find_token() -> None:
    assert find_token(f"confirm {TOKEN}") == TOKEN
    assert find_token(f"Re: Bestätigung {TOKEN.upper()} bitte") == TOKEN
    assert find_token(f"<l-confirm+{TOKEN}@d>") == TOKEN
    assert find_token("x" * 31) is None
    assert find_token(TOKEN + "a") is None  # 33 characters is not a token
    assert find_token(TOKEN[:-1] + "1") is None  # 1 is not base32
    assert find_token("") is None


# --- properties ----------------------------------------------------------------------------

LINE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=200)
@given(body=LINE, subject=LINE, context=st.sampled_from(list(Context)))
def test_never_raises_on_text(body: str, subject: str, context: Context) -> None:
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject.split())
    msg.set_content(body)
    assert isinstance(parse_commands(msg, context), list)


@settings(max_examples=200)
@given(html=st.text(), context=st.sampled_from(list(Context)))
def test_never_raises_on_html(html: str, context: Context) -> None:
    msg = EmailMessage()
    msg.set_content(html, subtype="html")
    assert isinstance(parse_commands(msg, context), list)


@settings(max_examples=200)
@given(raw=st.binary(max_size=600), context=st.sampled_from(list(Context)))
def test_never_raises_on_raw_bytes(raw: bytes, context: Context) -> None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parse_commands(msg, context), list)  # type: ignore[arg-type]


COMMAND_WORDS = [
    "anmelden",
    "abmelden",
    "subscribe",
    "unsubscribe",
    "hilfe",
    "ok",
    "ja",
    "ablehnen Spam",
    "verwerfen",
    f"confirm {TOKEN}",
    "who",
    "einladen a@b.de",
]
FILLER = st.sampled_from(["Termin am Montag", "Raum 204", "Danke für die Info", "siehe unten"])
QUOTE_START = st.sampled_from(
    [
        "> Am 23.11.2026 um 09:20 schrieb Netzwerk:",
        "Am 23.11.2026 um 09:20 schrieb Netzwerk:",
        "Am 24.11.2026 um 10:00 schrieb Max Mustermann\n<max@example.de>:",
        "On Mon, Nov 23, 2026 at 9:15 AM Netzwerk <l@d> wrote:",
        "> ",
        "-----Ursprüngliche Nachricht-----",
        "-----Original Message-----",
        "Von: Netzwerk <l@d>\nGesendet: Montag, 23. November 2026 09:20",
        "From: List <l@d>\nSent: Monday\nTo: k@d",
        "________________________________",
        "Gesendet von meinem iPhone",
        "-- ",
    ]
)


@given(
    fresh=st.lists(FILLER, min_size=1, max_size=3),
    marker=QUOTE_START,
    quoted=st.lists(st.sampled_from(COMMAND_WORDS), min_size=1, max_size=5),
    quote_prefix=st.sampled_from(["> ", ""]),
    context=st.sampled_from([POST, REQUEST]),
)
def test_commands_in_a_quote_are_never_read(
    fresh: list[str], marker: str, quoted: list[str], quote_prefix: str, context: Context
) -> None:
    body = "\n".join([*fresh, marker, *(quote_prefix + q for q in quoted)]) + "\n"
    found = parse_commands(mail(body, subject="Termine"), context)
    assert all(c.verb is Verb.UNKNOWN for c in found), found


@given(
    fresh=st.lists(FILLER, min_size=1, max_size=3),
    marker=QUOTE_START,
    quoted=st.lists(st.sampled_from(COMMAND_WORDS), min_size=1, max_size=5),
)
def test_reply_with_words_only_below_the_marker_decides_nothing(
    fresh: list[str], marker: str, quoted: list[str]
) -> None:
    body = "\n".join([*fresh, marker, *("> " + q for q in quoted)]) + "\n"
    assert verbs(mail(body), REPLY) == [Verb.UNKNOWN]


HOSTILE_LINES = [
    "-" * 999,
    "Am 1 " + "schrieb x " * 99,
    "Gruß" + "!" * 990 + "x",
    "einladen " + "a@" * 495,
    "bitte mich in " + "a" * 980,
    "mich ab " * 124,
]


def test_hostile_long_lines_stay_cheap() -> None:
    """A 10 MB body of crafted lines must not stall the processor (regex backtracking)."""
    for line in HOSTILE_LINES:
        msg = EmailMessage()
        msg["Subject"] = line[:900]
        msg.set_content((line + "\n") * 1000)
        started = time.perf_counter()
        for context in Context:
            parse_commands(msg, context)
        assert time.perf_counter() - started < 3.0, line[:20]
