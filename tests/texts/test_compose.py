"""German grammar for the list's name, names without "(-)", one language, no token in Subject."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listserv.config import ListConfig
from listserv.texts.compose import compose, german_place, person
from tests.conftest import LIST, MODERATOR

NOW = datetime(2026, 11, 30, 12, 19, tzinfo=UTC)


@pytest.mark.parametrize(("name", "forms"), [
    ("Netzwerk Soziale Arbeit an Schulen", ("im Netzwerk Soziale Arbeit an Schulen",
                                            "ins Netzwerk Soziale Arbeit an Schulen",
                                            "aus dem Netzwerk Soziale Arbeit an Schulen")),
    ("Arbeitskreis SchuSo", ("im Arbeitskreis SchuSo", "in den Arbeitskreis SchuSo",
                             "aus dem Arbeitskreis SchuSo")),
    ("Liste Fachtage", ("in der Liste Fachtage", "in die Liste Fachtage",
                        "aus der Liste Fachtage")),
    ("SAS", ("im Verteiler »SAS«", "in den Verteiler »SAS«", "aus dem Verteiler »SAS«")),
])
def test_german_place(name: str, forms: tuple[str, str, str]) -> None:
    assert german_place(name) == forms


@pytest.mark.parametrize(("name", "shown"), [
    ("Sabine Müller", "Sabine Müller (s@x.de)"), ("", "s@x.de"), ("-", "s@x.de"),
    ("s@x.de", "s@x.de"), ("  ", "s@x.de"),
])
def test_person_never_shows_empty_parentheses(name: str, shown: str) -> None:
    assert person(name, "s@x.de") == shown


def test_a_token_mail_keeps_the_token_out_of_the_subject() -> None:
    mlist = ListConfig(LIST, "Netzwerk Soziale Arbeit an Schulen", (MODERATOR,))
    token = "abcdefghijklmnopqrstuvwxyz234567"
    msg = compose(mlist, to="s@x.de", template="confirm_subscribe", language="de", now=NOW,
                  values={"days": 7, "address": "s@x.de"}, token=token)
    assert token not in str(msg["Subject"])
    assert str(msg["Reply-To"]) == LIST.replace("@", f"-confirm+{token}@")
    body = msg.get_content()
    assert "Aufnahme ins Netzwerk" in body
    assert "confirm" not in body.replace(f"-confirm+{token}", "")
    assert "Hello" not in body and "reply" not in body
