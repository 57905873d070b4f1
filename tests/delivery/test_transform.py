"""The member copy: list headers, subject prefix, footer, DMARC rewrite, odd mail."""

from __future__ import annotations

import email
import json
from collections import Counter
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listserv.config import ListConfig
from listserv.delivery.transform import list_copy, prefixed_subject, render_footer
from tests.conftest import CORPUS, LIST, MODERATOR

SAS = ListConfig(address=LIST, display_name="Netzwerk Soziale Arbeit an Schulen",
                 moderators=(MODERATOR,), subject_prefix="[SAS]")
URL = "https://listen.gelsenkirchen.de/u/" + "T" * 43
LEAVE = "soziale.arbeit.an.schulen-leave@gelsenkirchen.de"


def post(body: str = "Hallo zusammen,\nbis bald.\n", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Anna Beispiel <anna@example.org>"
    msg["To"] = LIST
    msg["Subject"] = "Fachtag im März"
    for name, value in headers.items():
        del msg[name.replace("_", "-")]
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def reparse(msg: EmailMessage) -> EmailMessage:
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)


# -- headers -----------------------------------------------------------------


def test_list_headers_in_order_once_each() -> None:
    out = reparse(list_copy(post(), SAS, unsubscribe_url=URL,
                            archive_url="https://listen.gelsenkirchen.de/sas/"))
    names = [k for k in out if k.startswith("List-")]
    assert names == ["List-Id", "List-Post", "List-Help", "List-Subscribe",
                     "List-Unsubscribe", "List-Unsubscribe-Post", "List-Archive", "List-Owner"]
    assert out["List-Id"] == ('"Netzwerk Soziale Arbeit an Schulen" '
                              "<soziale.arbeit.an.schulen.gelsenkirchen.de>")
    assert out["List-Post"] == f"<mailto:{LIST}>"
    assert out["List-Help"] == (
        "<mailto:soziale.arbeit.an.schulen-request@gelsenkirchen.de?subject=help>")
    assert out["List-Subscribe"] == "<mailto:soziale.arbeit.an.schulen-join@gelsenkirchen.de>"
    assert out["List-Unsubscribe"] == f"<{URL}>, <mailto:{LEAVE}>"
    assert out["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert out["List-Owner"] == "<mailto:soziale.arbeit.an.schulen-owner@gelsenkirchen.de>"
    assert out["Precedence"] == "list"
    assert out["X-Loop"] == LIST


def test_long_unsubscribe_url_is_never_encoded_as_rfc2047() -> None:
    raw = list_copy(post(), SAS, unsubscribe_url=URL).as_bytes()
    assert b"=?utf-8?" not in raw.split(b"\n\n")[0].split(b"List-Unsubscribe:")[1][:200]
    assert URL.encode() in raw


def test_without_url_no_one_click_header() -> None:
    out = reparse(list_copy(post(), SAS))
    assert out["List-Unsubscribe"] == f"<mailto:{LEAVE}>"
    assert "List-Unsubscribe-Post" not in out
    assert "List-Archive" not in out


def test_non_ascii_list_name_is_rfc2047_in_list_id() -> None:
    mlist = ListConfig(address=LIST, display_name="Fachkräfte", moderators=(MODERATOR,))
    out = reparse(list_copy(post(), mlist))
    assert str(out["List-Id"]) == "Fachkräfte <soziale.arbeit.an.schulen.gelsenkirchen.de>"


def test_headers_that_must_not_travel_are_removed() -> None:
    msg = post(List_Id="Other <other.example.org>", List_Unsubscribe="<mailto:x@y>",
               Return_Receipt_To="anna@example.org", Disposition_Notification_To="a@b.c",
               X_Confirm_Reading_To="a@b.c", Bcc="secret@example.org",
               DKIM_Signature="v=1; a=rsa-sha256; d=example.org; b=abc",
               ARC_Seal="i=1; a=rsa-sha256; cv=none", Return_Path="<anna@example.org>",
               Delivered_To=LIST, X_Original_To=LIST, X_Original_From="forged@example.org",
               Received="from mx.example.org by us", Precedence="bulk")
    out = reparse(list_copy(msg, SAS))
    for gone in ("Return-Receipt-To", "Disposition-Notification-To", "X-Confirm-Reading-To",
                 "Bcc", "DKIM-Signature", "ARC-Seal", "Return-Path", "Delivered-To",
                 "X-Original-To", "X-Original-From"):
        assert gone not in out, gone
    assert out.get_all("List-Id") == ['"Netzwerk Soziale Arbeit an Schulen" '
                                      "<soziale.arbeit.an.schulen.gelsenkirchen.de>"]
    assert out["Received"] == "from mx.example.org by us"
    assert out.get_all("Precedence") == ["list"]


def test_other_lists_x_loop_is_kept_ours_once() -> None:
    out = reparse(list_copy(post(X_Loop="other@lists.example.org"), SAS))
    assert sorted(out.get_all("X-Loop")) == sorted(["other@lists.example.org", LIST])
    again = reparse(list_copy(out, SAS))
    assert sorted(again.get_all("X-Loop")) == sorted(["other@lists.example.org", LIST])


def test_input_message_is_not_changed() -> None:
    msg = post(List_Id="Other <other.example.org>")
    before = msg.as_bytes()
    list_copy(msg, SAS, unsubscribe_url=URL, rewrite_from=True)
    assert msg.as_bytes() == before


# -- subject -----------------------------------------------------------------


@pytest.mark.parametrize(("subject", "expected"), [
    ("AW: [SAS] Fachtag", "AW: [SAS] Fachtag"),
    ("[SAS] AW: Fachtag", "[SAS] AW: Fachtag"),
    ("Re: Fachtag", "[SAS] Re: Fachtag"),
    ("Fachtag", "[SAS] Fachtag"),
    ("", "[SAS]"),
    (None, "[SAS]"),
    ("line\r\nBcc: x@example.org", "[SAS] line Bcc: x@example.org"),
])
def test_prefixed_subject(subject: str | None, expected: str) -> None:
    assert prefixed_subject(subject, "[SAS]") == expected


def test_prefix_is_added_once_over_many_replies() -> None:
    msg = post()
    for _ in range(3):
        msg = reparse(list_copy(msg, SAS))
        del msg["Subject"]
        msg["Subject"] = "AW: " + str(reparse(list_copy(msg, SAS))["Subject"])
    assert str(msg["Subject"]).count("[SAS]") == 1


def test_encoded_and_missing_subjects() -> None:
    raw = (b"From: a@example.org\nTo: " + LIST.encode()
           + b"\nSubject: =?iso-8859-1?q?Einladung_f=FCr_M=E4rz?=\n\nText\n")
    out = reparse(list_copy(email.message_from_bytes(raw, policy=policy.default), SAS))
    assert out["Subject"] == "[SAS] Einladung für März"
    raw = b"From: a@example.org\nTo: " + LIST.encode() + b"\n\nText\n"
    out = reparse(list_copy(email.message_from_bytes(raw, policy=policy.default), SAS))
    assert out.get_all("Subject") == ["[SAS]"]


@given(st.text(max_size=80))
def test_prefix_is_idempotent_and_one_line(subject: str) -> None:
    once = prefixed_subject(subject, "[SAS]")
    assert prefixed_subject(once, "[SAS]") == once
    assert "\r" not in once and "\n" not in once
    assert "[sas]" in once.lower()


# -- DMARC rewrite -----------------------------------------------------------


def test_rewrite_from_moves_poster_to_reply_to() -> None:
    out = reparse(list_copy(post(), SAS, rewrite_from=True))
    assert out["From"].addresses[0].addr_spec == LIST
    assert out["From"].addresses[0].display_name == (
        "Anna Beispiel via Netzwerk Soziale Arbeit an Schulen")
    assert out["Reply-To"].addresses[0].addr_spec == "anna@example.org"
    assert out["X-Original-From"] == "Anna Beispiel <anna@example.org>"
    assert len(out.get_all("From")) == 1


def test_rewrite_keeps_the_posters_own_reply_to() -> None:
    out = reparse(list_copy(post(Reply_To="sekretariat@example.org"), SAS, rewrite_from=True))
    assert [a.addr_spec for a in out["Reply-To"].addresses] == ["sekretariat@example.org"]


def test_rewrite_to_cc() -> None:
    out = reparse(list_copy(post(Cc="bob@example.org"), SAS, rewrite_from=True,
                            poster_header="Cc"))
    assert [a.addr_spec for a in out["Cc"].addresses] == ["bob@example.org", "anna@example.org"]
    assert "Reply-To" not in out


def test_rewrite_from_a_bare_address_and_a_header_injection_attempt() -> None:
    raw = (b"From: =?utf-8?q?Eve=0D=0ABcc=3A_all=40example=2Eorg?= <eve@example.org>\n"
           b"To: " + LIST.encode() + b"\nSubject: x\n\nText\n")
    out = reparse(list_copy(email.message_from_bytes(raw, policy=policy.default), SAS,
                            rewrite_from=True))
    assert "Bcc" not in out
    assert len(out.get_all("From")) == 1
    out = reparse(list_copy(post(From="anna@example.org"), SAS, rewrite_from=True))
    assert out["From"].addresses[0].display_name.startswith("anna@example.org via ")


# -- footer ------------------------------------------------------------------


def test_footer_text_de_and_en() -> None:
    de = render_footer(SAS, unsubscribe_url=URL)
    assert LEAVE in de and URL in de and "Abmelden" in de
    assert URL not in render_footer(SAS) and LEAVE in render_footer(SAS)
    en = ListConfig(address=LIST, display_name="Net", moderators=(MODERATOR,), language="en")
    assert "To leave the list" in render_footer(en)


def test_footer_appended_to_plain_text() -> None:
    out = reparse(list_copy(post(), SAS, unsubscribe_url=URL))
    body = out.get_content()
    assert body.startswith("Hallo zusammen,\nbis bald.\n")
    assert body.rstrip().endswith(URL)
    assert LEAVE in body


def test_footer_keeps_a_latin1_part_in_latin1() -> None:
    msg = post()
    msg.set_content("Grüße aus Gelsenkirchen\n", charset="iso-8859-1")
    out = reparse(list_copy(msg, SAS))
    assert out.get_content_charset() == "iso-8859-1"
    assert out.get_content().startswith("Grüße aus Gelsenkirchen\n") and LEAVE in out.get_content()


def test_footer_re_encodes_ascii_part_as_utf8_when_needed() -> None:
    mlist = ListConfig(address=LIST, display_name="Fachkräfte", moderators=(MODERATOR,))
    msg = post("plain ascii\n")
    out = reparse(list_copy(msg, mlist))
    assert out.get_content_charset() == "utf-8"
    assert "Fachkräfte" in out.get_content()
    assert out["Content-Transfer-Encoding"] in ("quoted-printable", "base64")


def test_footer_in_both_alternatives_html_before_body_end() -> None:
    msg = post()
    msg.add_alternative("<html><body><p>Hallo</p></body></html>", subtype="html")
    out = reparse(list_copy(msg, SAS, unsubscribe_url=URL))
    assert out.get_content_type() == "multipart/alternative"
    plain, html = list(out.iter_parts())
    assert LEAVE in plain.get_content()
    html_text = html.get_content()
    assert html_text.index(f'href="mailto:{LEAVE}"') < html_text.index("</body>")
    assert f'href="{URL}"' in html_text
    assert html_text.rstrip().endswith("</html>")


def test_footer_inside_the_body_of_mixed_attachments_untouched() -> None:
    msg = post()
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                       filename="Einladung Fachtag.pdf")
    out = reparse(list_copy(msg, SAS))
    parts = list(out.iter_parts())
    # No new part: Outlook would show a text part after the PDF as ATT00001.txt.
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/pdf"]
    assert parts[1].get_filename() == "Einladung Fachtag.pdf"
    assert parts[1].get_content() == b"%PDF-1.4 fake"
    assert parts[0].get_content().startswith("Hallo zusammen,\nbis bald.\n")
    assert LEAVE in parts[0].get_content()


def test_signed_posts_are_not_altered_inside() -> None:
    raw = (b"From: a@example.org\nTo: " + LIST.encode() + b"\nSubject: s\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
           b' micalg=sha-256; boundary="b"\n\n--b\nContent-Type: text/plain\n\nsigned text\n'
           b"--b\nContent-Type: application/pkcs7-signature; name=smime.p7s\n"
           b"Content-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHAqCAMIACAQE=\n--b--\n")
    out = reparse(list_copy(email.message_from_bytes(raw, policy=policy.default), SAS))
    assert LEAVE.encode() not in out.as_bytes().split(b"\n\n", 1)[1]
    assert next(out.iter_parts()).get_content() == "signed text"
    assert out["List-Id"] is not None


@pytest.mark.parametrize("body", [
    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\ntext\n-----BEGIN PGP SIGNATURE-----\n",
    "-----BEGIN PGP MESSAGE-----\n\nhQEMA...\n-----END PGP MESSAGE-----\n",
])
def test_inline_pgp_gets_no_footer(body: str) -> None:
    out = reparse(list_copy(post(body), SAS))
    assert out.get_content() == body


def test_smime_enveloped_gets_no_footer() -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.org"
    msg["Subject"] = "s"
    msg.set_content(b"\x30\x80secret", maintype="application", subtype="pkcs7-mime",
                    params={"smime-type": "enveloped-data"}, filename="smime.p7m")
    out = reparse(list_copy(msg, SAS))
    assert out.get_content() == b"\x30\x80secret"


def test_broken_multipart_skips_footer_without_raising() -> None:
    raw = (b"From: a@example.org\nSubject: s\nMIME-Version: 1.0\n"
           b'Content-Type: multipart/mixed; boundary="missing"\n\n--other\n\ntext\n')
    msg = email.message_from_bytes(raw, policy=policy.default)
    out = reparse(list_copy(msg, SAS))
    assert out.as_bytes().endswith(b"\n\n--other\n\ntext\n") and out["List-Id"] is not None


def test_unknown_charset_skips_footer() -> None:
    raw = (b"From: a@example.org\nSubject: s\nMIME-Version: 1.0\n"
           b"Content-Type: text/plain; charset=x-unknown\n\ntext\n")
    out = reparse(list_copy(email.message_from_bytes(raw, policy=policy.default), SAS))
    assert out.get_payload() == "text\n"


# -- the shared corpus -------------------------------------------------------


def corpus_files() -> list[Path]:
    files = [p for p in sorted((CORPUS / "messages").rglob("*"))
             if p.is_file() and not p.name.startswith("MANIFEST")]
    hazards = CORPUS / "python-email-hazards.json"
    if hazards.exists():
        files += [CORPUS / name for name in json.loads(hazards.read_text())["files"]]
    return sorted(set(files))


def filenames(msg: EmailMessage) -> Counter[str]:
    found: Counter[str] = Counter()
    for part in msg.walk():
        try:
            name = part.get_filename()
        except Exception:
            name = None
        if name:
            found[name] += 1
    return found


CORPUS_FILES = corpus_files() if CORPUS.exists() else []


@pytest.mark.skipif(not CORPUS_FILES, reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
@pytest.mark.parametrize("rewrite_from", [False, True], ids=["keep-from", "rewrite-from"])
def test_every_corpus_mail_gives_a_sendable_copy(path: Path, rewrite_from: bool) -> None:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    out = list_copy(msg, SAS, unsubscribe_url=URL, rewrite_from=rewrite_from)
    again = email.message_from_bytes(out.as_bytes(), policy=policy.default)
    assert len(again.get_all("List-Id") or []) == 1
    assert not filenames(msg) - filenames(again)
