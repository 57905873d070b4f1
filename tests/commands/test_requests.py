"""Free-text requests to the list address (commands/requests.py): join, leave, colleague, post."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from listserv.commands.requests import Ask, Asked, read_request
from tests.builders import arrived

SENDER = "sabine.kowalski@gelsenkirchen.de"


def ask(text: str | None = None, *, subject: str = "", html: str | None = None) -> Ask:
    msg: EmailMessage = arrived(text, html=html, subject=subject)
    return read_request(msg, SENDER).ask


def test_a_command_subject_with_an_empty_body() -> None:
    assert ask("", subject="anmelden") is Ask.JOIN
    assert ask("", subject="Bitte abmelden!") is Ask.LEAVE
    assert ask("", subject="Aufnahme in den Verteiler") is Ask.JOIN
    assert ask("", subject="Abmeldung vom Verteiler") is Ask.LEAVE


@pytest.mark.parametrize(("text", "subject", "expected"), [
    ("Hallo,\n\nbitte nehmen Sie mich in den Verteiler auf.\n\nGruß\nPeter\n", "", Ask.JOIN),
    ("Liebe Frau Kowalski,\nbitte streichen Sie mich aus dem Verteiler.\n", "", Ask.LEAVE),
    ("Ich möchte mich vom E-Mail-Verteiler abmelden.\n", "Verteiler", Ask.LEAVE),
    ("Bitte setzen Sie mich auf den Verteiler.\n", "", Ask.JOIN),
    ("Please add me to your mailing list.\n", "", Ask.JOIN),
    ("Please remove me from the list.\n", "", Ask.LEAVE),
    ("Hallo, ich möchte gerne auf die Mailingliste.\n", "Mailingliste", Ask.JOIN),
    ("I want to unsubscribe.\n", "", Ask.LEAVE),
])
def test_free_text_requests(text: str, subject: str, expected: Ask) -> None:
    assert ask(text, subject=subject) is expected


@pytest.mark.parametrize(("first_line", "subject"), [
    ("Ich habe diese Info aus dem Verteiler der Stadt bekommen.", "Info"),
    ("Wer in den Verteiler aufgenommen werden möchte, schreibt an die Koordination.", "X"),
    ("Anbei das Programm.", "Fachtag: Anmeldung bis 3.12. – Verteiler bitte weitergeben"),
    ("Bitte leiten Sie die Einladung an Ihren Verteiler weiter.", "Einladung"),
    ("Bitte bis 3.12. anmelden.", "Anmeldung Netzwerktreffen"),
    ("Bitte beim Veranstalter bis Freitag anmelden.", "Fachtag"),
    ("Hiermit melde ich mich verbindlich zum Fachtag am 3.12. an.", "Anmeldung Fachtag"),
    ("ok", "Hilfe"),
])
def test_posts_that_name_the_list_or_an_anmeldung_stay_posts(first_line: str, subject: str
                                                            ) -> None:
    assert ask(first_line + "\n", subject=subject) in (Ask.NONE, Ask.LIKE_JOIN)
    assert ask(first_line + "\n", subject=subject) is not Ask.JOIN


def test_an_announcement_mentioning_anmelden_later_stays_a_post() -> None:
    body = ("Liebe Kolleginnen und Kollegen,\n\nanbei die Einladung zum Fachtag am 4.12.\n"
            "Bitte melden Sie sich bis Freitag an. Wer nicht mehr im Verteiler sein will,\n"
            "kann sich abmelden.\n\nViele Grüße\nSabine\n")
    assert ask(body, subject="Fachtag Kinderschutz") is Ask.NONE


def test_a_colleague_with_an_address_is_a_colleague_request() -> None:
    msg = arrived("bitte nehmen Sie meine Kollegin Anna.Kraus@schule.example in den Verteiler"
                  " auf.\n", subject="Kollegin")
    assert read_request(msg, SENDER) == Asked(Ask.COLLEAGUE, "anna.kraus@schule.example")
    # Her own address is no colleague; a colleague without an address is not the asker.
    own = arrived(f"bitte nehmen Sie meine Kollegin und mich ({SENDER}) auf\n")
    assert read_request(own, SENDER).ask is not Ask.COLLEAGUE
    nameless = arrived("Bitte nehmen Sie Herrn Klein in den Verteiler auf.\n")
    assert read_request(nameless, SENDER).ask is Ask.NONE


def test_a_negated_request_is_no_request() -> None:
    assert ask("Ich möchte nicht in den Verteiler aufgenommen werden.\n") is Ask.NONE
    assert ask("Ich möchte nicht, dass Sie mich aus dem Verteiler austragen.\n") is Ask.NONE
    assert ask("Bitte tragen Sie mich nicht aus dem Verteiler aus.\n") is Ask.NONE
    # A "nicht" in another clause is not the request's.
    assert ask("Bitte tragen Sie mich aus, ich bin nicht mehr an der Schule.\n") is Ask.LEAVE


def test_a_hint_only_is_like_join() -> None:
    assert ask("Hallo, ich würde gerne die Infos des Netzwerks bekommen. Wie geht das?\n",
               subject="Frage") is Ask.LIKE_JOIN


def test_hostile_input_never_raises_and_stays_fast() -> None:
    assert ask("a" * 100_000 + " nehmen " * 2000 + " auf\n") in (Ask.NONE, Ask.LIKE_JOIN)
    assert ask(html="<p>" + "<div>" * 5000 + "bitte nehmen Sie mich in den Verteiler auf")
