"""Which mail counts as automatic (inbox/automatic.py): out-of-office replies without
``Auto-Submitted`` among them, by subject or header."""

from __future__ import annotations

import pytest

from listserv.config import ListConfig
from listserv.inbox.automatic import automatic_reason
from tests.builders import arrived

LIST = ListConfig(address="l@gelsenkirchen.de", display_name="L", moderators=("k@g.de",))
PERSON = "jana@schule.example"


@pytest.mark.parametrize("subject", [
    "Automatische Antwort: Bitte bestätigen", "Abwesenheitsnotiz: Freigabe nötig: X",
    "Abwesend: Re: Sommerfest", "Out of Office: Please confirm", "Autoreply: x",
    "Automatic reply: Approval needed", "Urlaubsnotiz: x", "Réponse automatique : x",
])
def test_out_of_office_subjects(subject: str) -> None:
    assert automatic_reason(arrived("ok\n", subject=subject), PERSON, [LIST])


@pytest.mark.parametrize(("name", "value"), [
    ("X-Autoreply", "yes"), ("X-Autorespond", "x"), ("Precedence", "auto_reply"),
    ("Auto-Submitted", "auto-replied"),
])
def test_out_of_office_headers(name: str, value: str) -> None:
    msg = arrived("ok\n", subject="AW: Freigabe nötig")
    msg[name] = value
    assert automatic_reason(msg, PERSON, [LIST])


def test_a_person_writing_about_absence_is_not_a_robot() -> None:
    for subject in ("AW: Abwesenheit im Dezember", "Re: Out of office hours", "Urlaub",
                    "Abwesenheit der Koordination im Dezember"):
        assert automatic_reason(arrived("ok\n", subject=subject), PERSON, [LIST]) is None
    assert automatic_reason(arrived("ok\n", subject="Re: Sommerfest"), PERSON, [LIST]) is None
