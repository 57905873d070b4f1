"""The pure reading of a mail for the archive: fields, text of every text part, attachments."""

from __future__ import annotations

from email.message import EmailMessage

from listserv.archive.extract import ERASED_NAME, anonymised, attachment, extract, redact
from listserv.mail.mentions import names

ANNA = "anna.schmidt@schule.example"


def post() -> bytes:
    msg = EmailMessage()
    msg["From"] = f"=?utf-8?q?=C3=84nna_M=C3=BCller?= <{ANNA}>"
    msg["To"] = "liste@d.de"
    msg["Cc"] = "Bob <bob@x.de>"
    msg["Subject"] = "=?utf-8?q?Fachtag_=C3=9Cberg=C3=A4nge?="
    msg["Date"] = "Wed, 25 Nov 2026 10:00:00 +0100"
    msg["Message-ID"] = "<p1@schule.example>"
    msg["In-Reply-To"] = "<p0@schule.example>"
    msg["References"] = "<root@schule.example> <p0@schule.example>"
    msg["List-Id"] = "Netzwerk <liste.d.de>"
    msg.set_content("Hallo,\nder Fachtag in der Weißen Straße.\n")
    msg.add_alternative("<p>Hallo,<br>der Fachtag in der <b>Weißen</b> Straße.</p>",
                        subtype="html")
    msg.add_attachment("Formular: Name, Schule, Grünkohl ja/nein", filename="Anmeldung.txt")
    msg.add_attachment("<html><body><h1>Programm</h1><p>Vortrag Übergänge</p></body></html>",
                       subtype="html", filename="programm.html")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                       filename="Flyer.pdf")
    inner = EmailMessage()
    inner["Subject"] = "weitergeleitet"
    inner.set_content("alt")
    msg.add_attachment(inner)
    return msg.as_bytes()


def test_fields_text_and_attachments() -> None:
    found = extract(post())
    assert (found.sender_address, found.sender_name) == (ANNA, "Änna Müller")
    assert found.subject == "Fachtag Übergänge" and found.message_id == "<p1@schule.example>"
    assert found.posted_at is not None and found.posted_at.isoformat() == \
        "2026-11-25T09:00:00+00:00"
    assert found.in_reply_to == "<p0@schule.example>"
    assert found.references == ("<root@schule.example>", "<p0@schule.example>")
    assert found.list_id == "liste.d.de" and "bob@x.de" in found.recipients
    # The plain version once (not the HTML alternative too), the text and HTML attachments.
    assert found.body.count("Weißen Straße") == 1
    assert "Grünkohl" in found.body and "Vortrag Übergänge" in found.body
    assert "<h1>" not in found.body and "%PDF" not in found.body
    assert [(p.filename, p.content_type) for p in found.parts] == [
        ("Anmeldung.txt", "text/plain"), ("programm.html", "text/html"),
        ("Flyer.pdf", "application/pdf"), ("teil-5", "message/rfc822")]
    pdf = found.parts[2]
    assert attachment(post(), pdf.position) == ("Flyer.pdf", "application/pdf", b"%PDF-1.4")
    assert attachment(post(), 99) is None and attachment(post(), -1) is None


def test_the_sender_of_the_original_wins_over_a_rewritten_from() -> None:
    copy = post().replace(b"From: =?utf-8?q?=C3=84nna_M=C3=BCller?= <" + ANNA.encode() + b">",
                          b"From: Anna via Netzwerk <liste@d.de>")
    assert extract(copy).sender_address == "liste@d.de"
    assert extract(copy, original=post()).sender_address == ANNA


def test_a_mail_without_anything_is_still_read() -> None:
    found = extract(b"\r\n\r\n")
    assert found.subject == "" and found.sender_address == "" and found.posted_at is None
    assert found.body == "" and found.parts == ()


def test_redact_every_spelling() -> None:
    text = f"an {ANNA.upper()} oder {ANNA.replace('@', '%40')} (Änna Müller)"
    assert redact(text, ANNA, ["Änna Müller"]) == \
        f"an {ERASED_NAME} oder {ERASED_NAME} ({ERASED_NAME})"


def test_anonymised_copy_names_her_nowhere_and_keeps_the_rest() -> None:
    raw = anonymised(post(), ANNA, ["Änna Müller"], "liste@d.de", own=True)
    assert not names(raw, ANNA) and b"M=C3=BCller" not in raw and "Müller".encode() not in raw
    found = extract(raw)
    assert found.sender_name == ERASED_NAME and found.subject == "Fachtag Übergänge"
    assert "Weißen Straße" in found.body and "Grünkohl" in found.body
    assert "bob@x.de" not in found.recipients        # no header is carried over blindly
    # Every attachment stays (the body is one text part now, so the mail moved up one).
    assert [(p.filename, p.content_type) for p in found.parts] == [
        ("Anmeldung.txt", "text/plain"), ("programm.html", "text/html"),
        ("Flyer.pdf", "application/pdf"), ("teil-4", "message/rfc822")]


def test_another_persons_post_keeps_its_from() -> None:
    bob = post().replace(b"=?utf-8?q?=C3=84nna_M=C3=BCller?= <" + ANNA.encode() + b">",
                         b"Bob <bob@x.de>")
    raw = anonymised(bob, ANNA, ["Änna Müller"], "liste@d.de", own=False)
    assert extract(raw).sender_address == "bob@x.de"
