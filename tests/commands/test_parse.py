"""Commands by mail (DESIGN §5), read from mails as the network's clients write them."""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listserv.commands.parse import Command, Context, Verb, find_token, parse_commands
from tests.builders import arrived

TOKEN = "abcdefghijklmnopqrstuvwxyz234567"
REQUEST = Context.REQUEST


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
    context=st.sampled_from([REQUEST]),
)
def test_commands_in_a_quote_are_never_read(
    fresh: list[str], marker: str, quoted: list[str], quote_prefix: str, context: Context
) -> None:
    body = "\n".join([*fresh, marker, *(quote_prefix + q for q in quoted)]) + "\n"
    found = parse_commands(mail(body, subject="Termine"), context)
    assert all(c.verb is Verb.UNKNOWN for c in found), found


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


@pytest.mark.parametrize(("line", "command"), [
    ("inhalt", Command(Verb.INDEX)), ("Index", Command(Verb.INDEX)),
    ("hole 12", Command(Verb.GET, "12")), ("get #7", Command(Verb.GET, "7")),
    ("Bitte hole Nr. 3", Command(Verb.GET, "3")), ("hole", Command(Verb.GET, "")),
    ("suche Fachtag Anmeldung", Command(Verb.SEARCH, "Fachtag Anmeldung")),
    ("search   Straße", Command(Verb.SEARCH, "Straße")),
])
def test_the_archive_commands(line: str, command: Command) -> None:
    msg = arrived(line, to="l-request@d.de")
    assert parse_commands(msg, Context.REQUEST) == [command]
