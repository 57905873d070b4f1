"""Bounce reading: hand-built mails for each rule, then the shared real-world corpus."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listserv.bounces.analyse import NOT_A_BOUNCE, BounceReport, analyse

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bounce_corpus.py"


def dsn(*blocks: str, human: str = "Your message could not be delivered.", subject: str = (
        "Undelivered Mail Returned to Sender"), sender: str = "MAILER-DAEMON@mx.example.org",
        ) -> bytes:
    """A minimal RFC 3464 multipart/report, one per-recipient block per argument."""
    per_recipient = "\n\n".join(blocks)
    return f"""\
Return-Path: <>
From: Mail Delivery System <{sender}>
To: liste-bounces@lists.example.de
Subject: {subject}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain

{human}

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

{per_recipient}

--BOUND
Content-Type: message/rfc822

From: koordination@lists.example.de
To: liste@lists.example.de
List-Id: <liste.lists.example.de>
Subject: Fachtag

Hallo
--BOUND--
""".encode()


FAILED = "Final-Recipient: rfc822; Anna@Schule.example\nAction: failed\nStatus: 5.1.1"
DELAYED = "Final-Recipient: rfc822; ben@schule.example\nAction: delayed\nStatus: 4.2.2"
DELIVERED = "Final-Recipient: rfc822; cem@schule.example\nAction: delivered\nStatus: 2.0.0"


def plain(headers: str, body: str) -> bytes:
    return (headers.strip() + "\n\n" + body).encode()


# --- RFC 3464 -----------------------------------------------------------------------

def test_failed_dsn_names_the_recipient_lowercased() -> None:
    assert analyse(dsn(FAILED)) == BounceReport(
        frozenset({"anna@schule.example"}), frozenset(), True)


def test_delayed_dsn_is_temporary() -> None:
    assert analyse(dsn(DELAYED)) == BounceReport(
        frozenset(), frozenset({"ben@schule.example"}), True)


def test_mixed_dsn_keeps_only_the_failures() -> None:
    report = analyse(dsn(FAILED, DELAYED, DELIVERED))
    assert report.permanent == {"anna@schule.example"}
    assert report.temporary == {"ben@schule.example"}


def test_success_dsn_is_not_a_bounce() -> None:
    assert analyse(dsn(DELIVERED, subject="Delivery Status Notification (Success)")) == (
        NOT_A_BOUNCE)
    relayed = DELIVERED.replace("delivered", "relayed")
    assert analyse(dsn(relayed)) == NOT_A_BOUNCE


def test_original_recipient_is_reported_next_to_final_recipient() -> None:
    # The member address is the original one; an alias expansion fails on the final one.
    block = ("Final-Recipient: rfc822; anna.x@mailbox.example\n"
             "Original-Recipient: rfc822;anna@schule.example\nAction: failed\nStatus: 5.1.1")
    assert analyse(dsn(block)).permanent == {"anna@schule.example", "anna.x@mailbox.example"}


def test_status_decides_when_action_is_missing() -> None:
    report = analyse(dsn("Final-Recipient: rfc822; dana@schule.example\nStatus: 4.4.7"))
    assert report.temporary == {"dana@schule.example"}


def test_blocks_run_together_without_blank_line() -> None:
    # AOL writes two recipients' fields as one block.
    report = analyse(dsn(FAILED + "\n" + DELAYED))
    assert report.permanent == {"anna@schule.example"}
    assert report.temporary == {"ben@schule.example"}


def test_line_ends_do_not_matter() -> None:
    lf = dsn(FAILED)
    assert analyse(lf.replace(b"\n", b"\r\n")) == analyse(lf)
    assert analyse(lf.replace(b"\n", b"\r")) == analyse(lf)


# --- VERP ---------------------------------------------------------------------------

def test_verp_address_wins_over_what_the_report_says() -> None:
    report = analyse(dsn(FAILED), verp_recipient="Marie@Traeger.example")
    assert report == BounceReport(frozenset({"marie@traeger.example"}), frozenset(), True)


def test_verp_with_a_delay_warning_is_temporary() -> None:
    report = analyse(dsn(DELAYED), verp_recipient="marie@traeger.example")
    assert report == BounceReport(frozenset(), frozenset({"marie@traeger.example"}), True)


def test_verp_on_a_bounce_that_names_nobody_still_counts() -> None:
    raw = plain("From: MAILER-DAEMON@mx.example\nSubject: failure notice",
                "Sorry, I wasn't able to deliver your message.\n")
    report = analyse(raw, verp_recipient="marie@traeger.example")
    assert report.permanent == {"marie@traeger.example"}


def test_verp_on_a_delay_warning_that_names_nobody_is_temporary() -> None:
    raw = plain("From: MAILER-DAEMON@mx.example\nSubject: Warning: message delayed",
                "Your message has not yet been delivered. The system will keep trying.\n")
    report = analyse(raw, verp_recipient="marie@traeger.example")
    assert report == BounceReport(frozenset(), frozenset({"marie@traeger.example"}), True)


def test_verp_on_an_auto_reply_reports_nobody() -> None:
    raw = plain("From: marie@traeger.example\nSubject: Abwesenheitsnotiz: Fachtag\n"
                "Auto-Submitted: auto-replied", "Ich bin bis zum 5. Mai nicht im Büro.\n")
    assert analyse(raw, verp_recipient="marie@traeger.example") == NOT_A_BOUNCE


# --- not bounces --------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    "From: anna@schule.example\nSubject: Automatische Antwort: Fachtag\n"
    "X-Auto-Response-Suppress: All",
    "From: anna@schule.example\nSubject: Out of Office: Fachtag",
    "From: anna@schule.example\nSubject: Re: Fachtag\nAuto-Submitted: auto-replied",
    "From: anna@schule.example\nSubject: Fachtag\nX-Autoreply: yes",
])
def test_auto_replies_report_nobody(headers: str) -> None:
    body = "Ich bin im Urlaub. In dringenden Fällen: vertretung@schule.example\n"
    assert analyse(plain(headers, body)) == NOT_A_BOUNCE


def test_ordinary_mail_reports_nobody() -> None:
    raw = plain("From: anna@schule.example\nTo: liste@lists.example.de\nSubject: Frage",
                "Kann ben@schule.example auch zum Fachtag kommen?\n")
    assert analyse(raw) == NOT_A_BOUNCE


def test_arf_complaint_is_not_a_bounce() -> None:
    raw = b"""\
From: feedback@provider.example
Subject: Abuse report
Content-Type: multipart/report; report-type=feedback-report; boundary="B"

--B
Content-Type: text/plain

This is an abuse report.
--B
Content-Type: message/feedback-report

Feedback-Type: abuse
Original-Rcpt-To: anna@schule.example
--B--
"""
    assert analyse(raw) == NOT_A_BOUNCE


@pytest.mark.parametrize("raw", [
    b"", b"\x00\xff\xfe", b"garbage without headers", b"\r\r\r\n\n", b"From: \n\n",
    b"Content-Type: multipart/report; boundary=\n\n--\n--",
    b"Content-Type: text/plain; charset=ansi_x3.110-1983\n\n\xe4\xf6",
    b"Subject: =?x-unknown?q?=FF?=\nFrom: =?utf-8?b?////?=\n\nhi",
])
def test_garbage_reports_nobody_and_never_raises(raw: bytes) -> None:
    assert analyse(raw).recipients == frozenset()


# --- non-standard bounces, read from the prose ---------------------------------------

def test_x_failed_recipients_header() -> None:
    raw = plain("From: Mail Delivery System <Mailer-Daemon@mx.example>\n"
                "Subject: Mail delivery failed\nX-Failed-Recipients: anna@schule.example",
                "A message that you sent could not be delivered.\n")
    assert analyse(raw).permanent == {"anna@schule.example"}


@pytest.mark.parametrize(("subject", "body"), [
    ("Mail delivery failed: returning message to sender",  # Exim
     "This message was created automatically by mail delivery software.\n\n"
     "A message that you sent could not be delivered to one or more of its\n"
     "recipients. This is a permanent error. The following address(es) failed:\n\n"
     "  anna@schule.example\n    SMTP error from remote mail server after RCPT "
     "TO:<anna@schule.example>:\n    550 5.1.1 User unknown\n\n"
     "------ This is a copy of the message, including all the headers. ------\n\n"
     "From: koordination@lists.example.de\nTo: liste@lists.example.de\n"),
    ("failure notice",  # qmail
     "Hi. This is the qmail-send program at mx.example.\n"
     "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
     "<anna@schule.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
     "--- Below this line is a copy of the message.\n\nFrom: koordination@lists.example.de\n"),
    ("Returned mail: see transcript for details",  # Sendmail
     "   ----- The following addresses had permanent fatal errors -----\n"
     "<anna@schule.example>\n    (reason: 550 5.1.1 User unknown)\n"),
    ("Undeliverable: Fachtag",  # Exchange
     "Delivery has failed to these recipients or groups:\n\n"
     "anna@schule.example\nThe e-mail address you entered couldn't be found.\n"),
    ("Mail delivery failed",  # DragonFly
     "There was an error delivering your mail to <anna@schule.example>.\n"),
    ("Mail delivery failed: returning message to sender",  # GMX / web.de
     "Ihre E-Mail konnte nicht beim Empfänger zugestellt werden.\n\n"
     "anna@schule.example:\n  SMTP error from remote server for RCPT TO command, "
     "host: mx.schule.example reason: 550 Mailbox unavailable\n"),
])
def test_prose_formats(subject: str, body: str) -> None:
    raw = plain(f"From: Mail Delivery System <MAILER-DAEMON@mx.example>\nSubject: {subject}\n"
                "To: liste-bounces@lists.example.de", body)
    assert analyse(raw).recipients == {"anna@schule.example"}


def test_prose_delay_warning_is_temporary() -> None:
    raw = plain("From: MAILER-DAEMON@mx.example\nSubject: Warning: message delayed",
                "This is a warning message only. Your message has not yet been delivered\n"
                "to <anna@schule.example>. The system will keep trying for 5 days.\n")
    assert analyse(raw).temporary == {"anna@schule.example"}


def test_amazon_ses_json() -> None:
    bounce = ('{"notificationType":"Bounce","bounce":{"bounceType":"Permanent",'
              '"bouncedRecipients":[{"emailAddress":"anna@schule.example"}]}}')
    headers = "From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message"
    assert analyse(plain(headers, bounce)).permanent == {"anna@schule.example"}
    delivery = '{"notificationType":"Delivery","mail":{"destination":["anna@schule.example"]}}'
    assert analyse(plain(headers, delivery)) == NOT_A_BOUNCE


# --- never raises -------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(analyse(raw), BounceReport)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=40),
       st.sampled_from([None, "anna@schule.example", "not an address", ""]))
def test_never_raises_on_damaged_dsn(at: int, junk: bytes, verp: str | None) -> None:
    raw = dsn(FAILED, DELAYED)
    at = min(at, len(raw))
    assert isinstance(analyse(raw[:at] + junk + raw[at:], verp_recipient=verp), BounceReport)


# --- the shared corpus --------------------------------------------------------------

@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bounce_corpus", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bounce_corpus"] = module
    spec.loader.exec_module(module)
    if not (module.BOUNCES / "expected.json").is_file():
        pytest.skip(f"bounce corpus not found at {module.BOUNCES}")
    return module


# Files whose corpus label we do not follow, each checked by eye.
DISPUTED_NON_BOUNCES = {
    # In Sisimai's maildir/not/, but its text is a mailbox-full rejection naming
    # "target mail address: xxxx@yyyyyy.net"; reporting it is what a list wants.
    "sisimai/not-bounces/rb-issue-368-bug.eml",
}


def test_corpus_rate(bench) -> None:  # type: ignore[no-untyped-def]
    score = bench.run(analyse, bench.load_cases())
    assert not score.crashes
    assert score.scored > 600
    assert score.rate >= 0.95, score.misses
    assert not score.split_wrong


def test_corpus_non_bounces_report_nobody(bench) -> None:  # type: ignore[no-untyped-def]
    score = bench.run(analyse, bench.load_cases())
    assert score.nonbounces >= 30
    assert {path for path, _ in score.false_positives} <= DISPUTED_NON_BOUNCES
    assert not score.nobody_wrong


def test_corpus_line_endings(bench) -> None:  # type: ignore[no-untyped-def]
    total, same, _, failures = bench.line_ending_check(analyse)
    assert total == 160
    assert same == total, failures


def test_corpus_ordinary_mail_never_raises(bench) -> None:  # type: ignore[no-untyped-def]
    if not (bench.CORPUS / "messages").is_dir():
        pytest.skip("shared/corpus/messages absent")
    total, _ = bench.ordinary_mail_check(analyse)
    assert total > 400
