"""``mentions.names``: her address is found in any header, any case, any transfer encoding."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from listserv.mail.mentions import names

ADDRESS = "anna.schmidt@schule.example"

case_forms = st.lists(st.booleans(), min_size=len(ADDRESS), max_size=len(ADDRESS)).map(
    lambda flips: "".join(c.upper() if f else c for c, f in zip(ADDRESS, flips, strict=True)))
headers = st.sampled_from(["From", "Reply-To", "Sender", "To", "Cc", "Delivered-To"])
encodings = st.sampled_from(["7bit", "quoted-printable", "base64"])


def build(header: str | None, spelled: str, body_cte: str, in_body: bool,
          name: str = "Änna Müller") -> bytes:
    msg = EmailMessage()
    msg["From"] = "bob@andere.example"
    msg["Subject"] = "Hallo"
    if header:
        if header == "From":
            del msg["From"]
        msg[header] = f"{name} <{spelled}>"
    text = ("Kontakt: " + spelled + "\n" if in_body else "Nichts hier.\n") + "x" * 90 + "\n"
    msg.set_content(text, charset="utf-8", cte=body_cte)
    return msg.as_bytes()


@given(case_forms, headers, encodings)
def test_found_in_any_header_and_case_with_an_encoded_name(
    spelled: str, header: str, cte: str
) -> None:
    assert names(build(header, spelled, cte, in_body=False), ADDRESS)


@given(case_forms, encodings)
def test_found_in_a_body_of_any_transfer_encoding(spelled: str, cte: str) -> None:
    assert names(build(None, spelled, cte, in_body=True), ADDRESS)


def test_found_in_an_attached_mail_and_split_by_a_soft_line_break() -> None:
    inner = build("Reply-To", ADDRESS.upper(), "base64", in_body=False)
    outer = EmailMessage()
    outer["From"] = "listserv@gelsenkirchen.de"
    outer.set_content("Ein Beitrag wartet.")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")
    assert names(outer.as_bytes(), ADDRESS)
    qp = (b"From: b@x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
          b"Kontakt: anna.schm=\r\nidt@schule.example\r\n")
    assert names(qp, ADDRESS)


@given(encodings)
def test_not_found_where_she_is_not(cte: str) -> None:
    assert not names(build("Reply-To", "bernd@schule.example", cte, in_body=True), ADDRESS)
    assert not names(None, ADDRESS) and not names(b"", ADDRESS)
