"""Where the footer goes: inside the first body, never a MIME part of its own."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest

from listserv.config import ListConfig
from listserv.daemon import Daemon
from listserv.delivery.footer import append_footer, render_footer
from tests.conftest import LIST, MODERATOR, mail
from tests.mailflow import Flow, reply_to

SAS = ListConfig(address=LIST, display_name="Netzwerk Soziale Arbeit an Schulen",
                 moderators=(MODERATOR,), subject_prefix="[SAS]")
LEAVE = "soziale.arbeit.an.schulen-leave@gelsenkirchen.de"
FOOTER = render_footer(SAS)


def with_attachment(*, html: bool = False, attachment_first: bool = False) -> EmailMessage:
    """A post as Outlook sends one with a PDF: mixed[alternative[plain, html], pdf]."""
    msg = EmailMessage()
    msg["From"] = "Anna Beispiel <anna@example.org>"
    msg["To"] = LIST
    msg["Subject"] = "Einladung Fachtag"
    if attachment_first:
        msg.make_mixed()
        msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                           filename="a.pdf")
        note = EmailMessage()
        note.set_content("Siehe Anhang.\n")
        msg.attach(note)
        return msg
    msg.set_content("Liebe Kolleginnen,\nanbei die Einladung.\n")
    if html:
        msg.add_alternative("<html><body><p>Liebe Kolleginnen,</p></body></html>",
                            subtype="html")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                       filename="Einladung.pdf")
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)  # type: ignore


def test_mixed_with_alternative_gets_the_footer_in_both_versions() -> None:
    msg = with_attachment(html=True)
    assert append_footer(msg, FOOTER)
    alternative, pdf = msg.iter_parts()
    plain, html = alternative.iter_parts()
    assert LEAVE in plain.get_content()
    assert f'href="mailto:{LEAVE}"' in html.get_content()
    assert html.get_content().index("list-footer") < html.get_content().index("</body>")
    assert pdf.get_content() == b"%PDF-1.4 fake"
    assert len(list(msg.walk())) == 5   # mixed, alternative, plain, html, pdf: nothing new


def test_attachment_first_gets_no_footer_and_no_new_part() -> None:
    msg = with_attachment(attachment_first=True)
    before = msg.as_bytes()
    assert not append_footer(msg, FOOTER)
    assert msg.as_bytes() == before


def test_a_named_text_file_first_is_an_attachment_not_a_body() -> None:
    msg = EmailMessage()
    msg.set_content("Protokoll\n", disposition="inline", filename="protokoll.txt")
    msg.add_attachment(b"x", maintype="application", subtype="pdf", filename="b.pdf")
    assert not append_footer(msg, FOOTER)
    assert LEAVE not in next(msg.iter_parts()).get_content()


@pytest.fixture
def flow(daemon: Daemon) -> Flow:
    return Flow(daemon)


async def test_a_real_multipart_post_gets_the_footer_inside_its_body(flow: Flow) -> None:
    member = "birgit@schule.example"
    await flow.send(mail(sender=member, to=LIST.replace("@", "-join@"), subject="x", body=""),
                    mail_from=member, to=LIST.replace("@", "-join@"))
    confirm = flow.last_to(member)
    await flow.send(reply_to(confirm, sender=member), mail_from=member,
                    to=str(confirm["Reply-To"]))
    approval = flow.last_to(MODERATOR)
    await flow.send(reply_to(approval, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(approval["Reply-To"]))
    assert flow.members() == [member]
    await flow.send(with_attachment(html=True).as_bytes(), mail_from="anna@example.org",
                    to=LIST)
    notice = next(m for m in flow.sent_to(MODERATOR) if "Freigabe" in str(m["Subject"]))
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))
    copy = flow.last_to(member)
    assert str(copy["Subject"]) == "[SAS] Einladung Fachtag"
    types = [p.get_content_type() for p in copy.walk()]
    assert types == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html",
                     "application/pdf"]
    plain = copy.get_body(("plain",))
    assert plain is not None and LEAVE in plain.get_content()
    assert plain.get_content().startswith("Liebe Kolleginnen,\nanbei die Einladung.\n")
