"""mailtext: the body a person wrote, the fresh lines of a reply, a bare subject."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from listserv.mail.text import (
    ReplyText,
    body_text,
    fresh_lines,
    header_text,
    html_to_text,
    split_reply,
    strip_subject,
)
from tests.builders import arrived, parse


def mail(text: str | None = None, html: str | None = None, subject: str = "x") -> EmailMessage:
    return arrived(text, html=html, subject=subject, sender="a@example.org",
                   to="soziale.arbeit.an.schulen-request@gelsenkirchen.de")


# --- body_text -------------------------------------------------------------------------


def test_plain_text_part_is_preferred_over_html() -> None:
    msg = mail("plain words\n", "<p>html words</p>")
    assert body_text(msg).strip() == "plain words"


def test_html_only_mail_is_read_as_text() -> None:
    assert body_text(mail(html="<div>Hallo,</div><div>abmelden</div>")) == "Hallo,\nabmelden"


def test_empty_plain_alternative_falls_back_to_html() -> None:
    assert body_text(mail("\n", "<p>anmelden</p>")) == "anmelden"


def test_attached_message_is_not_read() -> None:
    inner = EmailMessage()
    inner["Subject"] = "forwarded"
    inner.set_content("anmelden\n")
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("see the attached mail\n")
    outer.add_attachment(inner)
    assert body_text(parse(outer.as_bytes())).strip() == "see the attached mail"


def test_attachment_only_text_is_not_the_body() -> None:
    msg = EmailMessage()
    msg.set_content("<p>body</p>", subtype="html")
    msg.add_attachment("anmelden\n", filename="notes.txt")
    assert body_text(parse(msg.as_bytes())) == "body"


def test_unknown_charset_falls_back_to_replacement_decoding() -> None:
    raw = (
        b"Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=x-unknown\n"
        b"Content-Transfer-Encoding: 8bit\n\nabmelden \xfc\n"
    )
    assert body_text(parse(raw)).startswith("abmelden ")


def test_unknown_transfer_encoding_does_not_raise() -> None:
    raw = b"Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: x-weird\n\nhilfe\n"
    assert "hilfe" in body_text(parse(raw))


def test_multipart_without_boundary_does_not_raise() -> None:
    raw = b"Subject: x\nContent-Type: multipart/alternative\n\nanmelden\n"
    assert "anmelden" in body_text(parse(raw))


def test_header_with_cr_lf_in_address_does_not_raise() -> None:
    raw = b"From: =?utf-8?q?a=0D=0Ab?= <a@example.org>\nSubject: =?utf-8?q?abmelden?=\n\nx\n"
    msg = parse(raw)
    assert isinstance(header_text(msg, "From"), str)
    assert header_text(msg, "Subject") == "abmelden"
    assert header_text(msg, "X-Missing") == ""


def test_folded_subject_is_one_line() -> None:
    msg = parse("Subject: Bitte =?utf-8?q?best=C3=A4tigen?= Sie Ihre\n Anmeldung\n\nx\n")
    assert header_text(msg, "Subject") == "Bitte bestätigen Sie Ihre Anmeldung"


# --- html_to_text ------------------------------------------------------------------------


def test_html_drops_style_script_and_head() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head>"
        "<body><script>var x;</script><p>ja</p></body></html>"
    )
    assert html_to_text(html) == "ja"


def test_html_line_breaks_from_br_p_and_div() -> None:
    html = "<p>eins</p><p>zwei<br>drei</p><div>vier</div><div><br></div><div>f&uuml;nf</div>"
    assert html_to_text(html) == "eins\nzwei\ndrei\nvier\n\nfünf"


def test_unclosed_head_does_not_hide_the_body() -> None:
    assert html_to_text("<html><head><title>x</title><body><p>ablehnen Werbung</p>") == (
        "ablehnen Werbung"
    )


def test_gmail_quote_is_marked_as_a_quote() -> None:
    html = (
        '<div dir="ltr">ok</div><br><div class="gmail_quote gmail_quote_container">'
        '<div dir="ltr" class="gmail_attr">Am Mo., 23. Nov. 2026 um 09:15 Uhr schrieb X:</div>'
        "<blockquote>verwerfen</blockquote></div>"
    )
    assert html_to_text(html) == (
        "ok\n\n> Am Mo., 23. Nov. 2026 um 09:15 Uhr schrieb X:\n> verwerfen")
    assert split_reply(html_to_text(html)).fresh == ("ok", "")


def test_blockquote_lines_are_quoted_and_a_bottom_post_is_found() -> None:
    text = html_to_text("<p>ja</p><blockquote type='cite'>ablehnen</blockquote><p>x</p>")
    assert text == "ja\n> ablehnen\nx"
    bottom = html_to_text("<div class='moz-cite-prefix'>Am 30.11.26 schrieb N:</div>"
                          "<blockquote type='cite'>ok an alle</blockquote><p>verwerfen</p>")
    assert split_reply(bottom) == ReplyText((), True, ("verwerfen",))


def test_outlook_web_reply_div_stops_reading() -> None:
    html = (
        '<div>verwerfen</div><hr style="display:inline-block;width:98%">'
        '<div id="divRplyFwdMsg"><b>From:</b> list<br><b>Subject:</b> ok</div><div>ok</div>'
    )
    assert html_to_text(html) == "verwerfen"


def test_outlook_appendonsend_stops_reading() -> None:
    assert html_to_text('<p>ja</p><div id="appendonsend"></div><p>ablehnen</p>') == "ja"


def test_outlook_desktop_border_top_von_block_stops_reading() -> None:
    html = (
        '<div class="WordSection1"><p class="MsoNormal">Ablehnen<o:p></o:p></p>'
        '<p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
        '<p class="MsoNormal"><b>Von:</b> Netzwerk<br><b>Gesendet:</b> Montag<br>'
        "<b>Betreff:</b> Freigabe</p></div><p>ok</p></div>"
    )
    assert html_to_text(html) == "Ablehnen"


def test_border_top_div_without_von_is_ordinary_text() -> None:
    assert html_to_text('<div style="border-top:1px solid">Termine</div>') == "Termine"


def test_html_entities_and_whitespace_collapse() -> None:
    assert html_to_text("<p>  Bitte\n   aus dem&nbsp;Verteiler &amp; austragen </p>") == (
        "Bitte aus dem Verteiler & austragen"
    )


@given(st.text())
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


@given(st.lists(st.sampled_from(["<p>", "</p>", "<br>", "<![if", "<!--", "&#", "<div", "x"])))
def test_html_fragments_never_raise(parts: list[str]) -> None:
    assert isinstance(html_to_text("".join(parts)), str)


# --- split_reply / fresh_lines ----------------------------------------------------------


def test_gt_quote_stops_reading() -> None:
    assert fresh_lines("ja\n\n> ablehnen\nok\n") == ["ja"]


def test_signature_separator_stops_reading() -> None:
    assert fresh_lines("subscribe\n-- \nJohn\nunsubscribe\n") == ["subscribe"]
    assert fresh_lines("subscribe\n--\nJohn\n") == ["subscribe"]


def test_outlook_original_message_separators() -> None:
    assert fresh_lines("ok\n-----Ursprüngliche Nachricht-----\nablehnen\n") == ["ok"]
    assert fresh_lines("ok\n-----Original Message-----\nreject\n") == ["ok"]
    assert fresh_lines("ok\n________________________________\nVon: x\n") == ["ok"]


def test_outlook_header_block_without_quote_marks() -> None:
    text = "ja\n\nVon: Netzwerk <l@d>\nGesendet: Montag\nAn: k@d\nBetreff: x\n\nablehnen\n"
    assert fresh_lines(text) == ["ja"]
    text = "ok\nFrom: List <l@d>\nSent: Monday\nTo: k@d\nSubject: x\n\ndiscard\n"
    assert fresh_lines(text) == ["ok"]


def test_von_line_alone_is_not_a_header_block() -> None:
    assert fresh_lines("Von: der Schulleitung kam das Okay.\nDanke\n") == [
        "Von: der Schulleitung kam das Okay.",
        "Danke",
    ]


def test_attribution_on_one_line() -> None:
    assert fresh_lines("verwerfen\nAm 23.11.26 um 09:20 schrieb Netzwerk:\n> ok\n") == ["verwerfen"]
    assert fresh_lines("ok\nOn Mon, Nov 23, 2026 at 9:15 AM List <l@d> wrote:\n> x\n") == ["ok"]


def test_attribution_wrapped_onto_two_lines() -> None:
    text = "ja\n\nAm 24.11.2026 um 10:00 schrieb Max Mustermann\n<max@example.de>:\n\n> ok\n"
    assert fresh_lines(text) == ["ja"]
    text = "ok\nOn Mon, Nov 23, 2026 at 9:15 AM Max Mustermann <\nmax@example.de> wrote:\n> x\n"
    assert fresh_lines(text) == ["ok"]


def test_short_attribution_without_date() -> None:
    assert fresh_lines("abmelden\nMax Mustermann schrieb:\n> anmelden\n") == ["abmelden"]


def test_mobile_signatures_stop_reading() -> None:
    for sig in (
        "Von meinem iPhone gesendet",
        "Gesendet von meinem iPhone",
        "Sent from my iPhone",
        "Gesendet mit der WEB.DE Mail App",
        "Get Outlook for Android",
    ):
        assert fresh_lines(f"Ja\n\n{sig}\nablehnen\n") == ["Ja"], sig


def test_closing_formula_starts_the_signature() -> None:
    assert fresh_lines("ok\n\nMit freundlichen Grüßen\n\nSabine Kowalski\nTel. 0209\n") == ["ok"]
    assert fresh_lines("LG Sabine\n") == []
    assert fresh_lines("Danke und viele Grüße\nPeter\n") == []


def test_danke_alone_is_fresh_text() -> None:
    assert fresh_lines("Danke!\n") == ["Danke!"]


def test_empty_reply_above_gmail_quote() -> None:
    reply = split_reply("\n\nAm Mo., 23. Nov. 2026 um 09:15 Uhr schrieb X <x@y>:\n> Bitte\n")
    assert [line for line in reply.fresh if line] == []
    assert reply.text_below_quote is False


def test_bottom_post_is_reported_not_read() -> None:
    reply = split_reply("Am 23.11.26 um 09:20 schrieb Netzwerk:\n> Freigabe?\n\nablehnen\n")
    assert [line for line in reply.fresh if line] == []
    assert reply.text_below_quote is True


def test_signature_below_quote_is_not_a_bottom_post() -> None:
    assert split_reply("> Freigabe?\n\n-- \nSabine\n").text_below_quote is False


def test_outlook_original_is_not_a_bottom_post() -> None:
    reply = split_reply("\n-----Ursprüngliche Nachricht-----\nVon: x\n\nText\n")
    assert reply.text_below_quote is False


def test_decomposed_umlauts_are_composed() -> None:
    assert fresh_lines("besta\u0308tigen\n") == ["bestätigen"]


@given(fresh=st.lists(st.text(alphabet="abc xyz.,!", min_size=1)), quoted=st.text())
def test_nothing_after_a_gt_line_is_returned(fresh: list[str], quoted: str) -> None:
    text = "\n".join([*fresh, "> quoted", quoted])
    lines = fresh_lines(text)
    assert len(lines) <= len(fresh)
    assert all(line in [f.strip() for f in fresh] for line in lines)


# --- strip_subject ------------------------------------------------------------------------


def test_strip_subject_prefixes_and_list_tags() -> None:
    assert strip_subject("AW: [SAS] WG: Re: anmelden") == "anmelden"
    assert strip_subject("RE: Aw: FW: Fwd: Wtr: SV: abmelden") == "abmelden"
    assert strip_subject("Re[2]: hilfe") == "hilfe"
    assert strip_subject("Re:Re:   Aufnahme in den  Verteiler") == "Aufnahme in den Verteiler"


def test_strip_subject_keeps_words_that_merely_start_like_prefixes() -> None:
    assert strip_subject("Reaktion: Fachtag") == "Reaktion: Fachtag"
    assert strip_subject("Anmeldung") == "Anmeldung"


@given(st.text())
def test_strip_subject_never_raises(subject: str) -> None:
    assert isinstance(strip_subject(subject), str)
