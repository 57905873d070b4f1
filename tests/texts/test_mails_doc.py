"""The three mails of docs/mails.md, rendered by running the real flow over SMTP.

``LISTSERV_WRITE_MAILS_DOC=1 pytest tests/texts/test_mails_doc.py`` rewrites
``docs/mails.md`` from what the daemon actually sends; without it the test
only checks that the mails read as the issue asks (German only, no raw token
in a subject, no "(-)", dates as "25.11.2026, 10:00 Uhr").
"""

from __future__ import annotations

import os
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, ROOT, mail
from tests.mailflow import Flow, reply_to, text_of

REQUEST = LIST.replace("@", "-request@")
SABINE = "sabine.mueller@schule-gelsenkirchen.de"
VEREIN = "info@foerderverein-gesamtschule.example"
TOKEN = re.compile(r"(?<=confirm\+)[a-z2-7]{32}")
INTRO = """# The mails as they now read

Rendered by `tests/texts/test_mails_doc.py`, which runs the real daemon over
SMTP (list language German, time zone Europe/Berlin, a fixed clock) and
copies what it sent: the join confirmation a new member gets, the
coordinator's approval request, and the notice of a held post. The secret
token in the reply address is shown as `TOKEN`. Regenerate with
`LISTSERV_WRITE_MAILS_DOC=1 python3 -m pytest tests/texts/test_mails_doc.py`.
"""


def shown(title: str, msg: EmailMessage) -> str:
    """A mail as a reader sees it: the headers a client shows, then the text."""
    lines = [f"## {title}", "", "```"]
    for name in ("From", "To", "Reply-To", "Subject", "Date"):
        if msg[name] is not None:
            lines.append(f"{name}: {msg[name]}")
    lines += ["", text_of(msg).replace("\r\n", "\n").rstrip()]
    attached = [p.get_content_type() for p in msg.iter_attachments()]
    if attached:
        lines += ["", f"[Anhang: {', '.join(attached)}]"]
    lines += ["```", ""]
    return TOKEN.sub("TOKEN", "\n".join(lines))


@pytest.fixture
def flow(clocked_daemon: Daemon) -> Flow:
    return Flow(clocked_daemon)


async def test_the_three_mails(flow: Flow) -> None:
    await flow.send(mail(sender=f"=?iso-8859-1?Q?Sabine_M=FCller?= <{SABINE}>", to=LIST,
                         subject="Aufnahme in den Verteiler",
                         body="Hallo,\nbitte nehmen Sie mich in den Verteiler auf.\n"
                              "Viele Grüße\nSabine Müller\n"), mail_from=SABINE, to=LIST)
    confirm = flow.last_to(SABINE)
    await flow.send(reply_to(confirm, sender=SABINE), mail_from=SABINE,
                    to=str(confirm["Reply-To"]))
    approval = flow.last_to(MODERATOR)
    await flow.send(mail(sender=f"Förderverein Gesamtschule <{VEREIN}>",
                         subject="Sommerfest am 12. Juni",
                         body="Liebe Kolleginnen und Kollegen,\n\nam 12. Juni feiern wir "
                              "unser Sommerfest und laden Sie herzlich ein.\n\nViele Grüße\n"
                              "Ihr Förderverein\n"), mail_from=VEREIN, to=LIST)
    held = flow.last_to(MODERATOR)
    mails = [("Join confirmation (to the new member)", confirm),
             ("Approval request (to the coordinator)", approval),
             ("Held-post notice (to the coordinator)", held)]
    for _, msg in mails:
        text = text_of(msg)
        assert "[" not in str(msg["Subject"]) and not TOKEN.search(str(msg["Subject"]))
        assert "(-)" not in text and "Hello" not in text and "please" not in text
    assert str(approval["Subject"]) == f"Neues Mitglied freigeben: Sabine Müller ({SABINE})"
    assert "25.11.2026, 10:00 Uhr" in text_of(held)    # the post's Date, in Berlin time
    document = INTRO + "\n" + "\n".join(shown(t, m) for t, m in mails)
    if os.environ.get("LISTSERV_WRITE_MAILS_DOC") == "1":
        Path(ROOT / "docs" / "mails.md").write_text(document, encoding="utf-8")
