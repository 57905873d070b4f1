"""Injection, floods, forged decisions, token guessing and replay, loops between lists."""

from __future__ import annotations

import re
import secrets
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from listserv.intake import codes as status
from tests.conftest import LIST, MODERATOR, mail
from tests.hostile.conftest import MEMBERS, list_table, outbox_files, parsed, smtp_to
from tests.mailflow import Flow, reply_to

L, D = LIST.split("@")
JOIN, REQUEST = f"{L}-join@{D}", f"{L}-request@{D}"
EVIL = "=?utf-8?q?Eve=0D=0ABcc:_victim@example.com=0D=0A=00X?="


def raw_mail(sender_header: str, subject: str, to: str = LIST, body: str = "Hallo\n") -> bytes:
    return (f"From: {sender_header}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@example.org>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def decoded(value: str) -> str:
    return str(make_header(decode_header(value)))


def headers_are_clean(msg: EmailMessage, poster_headers: frozenset[str]) -> None:
    """No header listserv built carries CR/LF/NUL, even after RFC 2047 decoding.

    ``poster_headers``: the poster's own header lines, passed through unchanged in a
    list copy (and inside the attached original of a notice); they are the poster's
    bytes, not ours, and are checked only for being still one header each.
    """
    for name, folded in msg.raw_items():
        value = re.sub(r"\r?\n[ \t]", " ", folded)  # unfold: what is left is one line
        assert not re.search(r"[\r\n]", value), (name, folded)
        if f"{name}: {value}" in poster_headers:
            continue
        assert not re.search(r"[\r\n\x00]", decoded(value)), (name, value)
    assert "Bcc" not in msg and "X-Injected" not in msg


async def test_crlf_and_nul_in_display_names_and_subjects_never_reach_a_header(
    hostile: Flow,
) -> None:
    sender = f"{EVIL} <eve@example.org>"
    subject = f"{EVIL} =?utf-8?b?{'SGFsbG8NClgtSW5qZWN0ZWQ6IDE='}?="  # "Hallo\r\nX-Injected: 1"
    await hostile.send(raw_mail(sender, subject), mail_from="eve@example.org", to=LIST)  # held
    await hostile.send(raw_mail(sender, subject, to=JOIN), mail_from="eve@example.org", to=JOIN)
    await hostile.send(raw_mail(sender, "hilfe", to=REQUEST), mail_from="eve@example.org",
                       to=REQUEST)
    # The moderator approves: the list copy is built from the same hostile headers.
    notice = hostile.last_to(MODERATOR)
    await hostile.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                       to=str(notice["Reply-To"]))
    files = outbox_files(hostile)
    kinds = {str(parsed(f)["Delivered-To"]) for f in files}
    assert {"eve@example.org", MODERATOR, *MEMBERS} <= kinds
    poster = frozenset({f"From: {sender}", f"Subject: {subject}"})
    for path in files:
        headers_are_clean(parsed(path), poster)
    assert "victim@example.com" not in {r[0] for r in hostile.query("SELECT rcpt FROM deliveries")}


async def test_oversized_lines_and_headers(hostile: Flow) -> None:
    smtp = await smtp_to(hostile.daemon)
    long_line = b"X" * (70 * 1024)
    await smtp.mail("anna@example.org")
    await smtp.rcpt(LIST)
    code, _ = await smtp.execute_command(b"DATA")
    assert code == 354
    smtp.transport.write(b"Subject: long\r\n\r\n" + long_line + b"\r\n.\r\n")  # type: ignore[union-attr]
    reply = await smtp.protocol.read_response(timeout=10)  # type: ignore[union-attr]
    assert f"{reply.code} {reply.message}" == status.LINE_TOO_LONG
    smtp.close()
    # 60 KiB headers and 5,000 header lines are taken and processed without a fault.
    big = raw_mail("anna@example.org", "A" * 60_000).replace(
        b"\r\n\r\n", b"\r\n" + b"".join(b"X-Junk-%d: j\r\n" % i for i in range(5000)) + b"\r\n", 1)
    await hostile.send(big, mail_from="anna@example.org", to=LIST)
    states = [r[0] for r in hostile.query("SELECT state FROM inbox")]
    assert states == ["done"]
    for path in outbox_files(hostile):
        assert max(len(line) for line in path.read_bytes().splitlines()) <= 998


async def test_message_over_max_bytes_is_refused(hostile: Flow) -> None:
    smtp = await smtp_to(hostile.daemon)
    size = hostile.daemon.config.server.max_message_bytes + 1024
    with pytest.raises(Exception) as info:
        await smtp.sendmail("anna@example.org", [LIST], b"Subject: x\r\n\r\n" + b"y" * size)
    assert "5.3.4" in str(info.value)
    assert hostile.query("SELECT count(*) FROM inbox")[0][0] == 0


async def test_a_thousand_recipients_in_one_transaction(hostile: Flow) -> None:
    smtp = await smtp_to(hostile.daemon)
    await smtp.mail("bot@example.net")
    codes = []
    for _ in range(1000):
        token = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(32))
        code, _msg = await smtp.execute_command(f"RCPT TO:<{L}-confirm+{token}@{D}>".encode())
        codes.append(code)
    # One confirmation address per message (issue 12, class 5): the others get 452,
    # so the message is stored once, not once per token.
    assert codes[0] == 250 and set(codes[1:]) == {452}
    await smtp.data(b"From: bot@example.net\r\nSubject: x\r\n\r\nok\r\n")
    smtp.close()
    await hostile.settled()
    assert hostile.query("SELECT count(*) FROM inbox")[0][0] == 1
    assert len(hostile.sent_to("bot@example.net")) <= 1


async def test_subscribe_bomb_for_one_victim_is_capped(hostile: Flow) -> None:
    victim = "opfer@example.org"
    smtp = await smtp_to(hostile.daemon)
    for i in range(40):
        spelled = [victim, victim.upper(), f"Opfer <{victim}>", f'"x" <{victim.title()}>'][i % 4]
        to = [JOIN, REQUEST, LIST][i % 3]
        body = "anmelden\n" if to != JOIN else "x\n"
        subject = "Bitte nehmen Sie mich in den Verteiler auf" if to == LIST else "anmelden"
        await smtp.sendmail(f"bot{i}@botnet.example", [to], raw_mail(spelled, subject, to, body))
    smtp.close()
    await hostile.settled()
    cap = hostile.daemon.config.lists[0].replies_per_address_per_day
    got = len(hostile.sent_to(victim))
    assert 1 <= got <= cap, got
    assert victim not in hostile.members()


async def test_forged_moderator_decisions_change_nothing(hostile: Flow) -> None:
    await hostile.send(mail(sender=MEMBERS[0], subject="Fachtag"), mail_from=MEMBERS[0], to=LIST)
    notice = hostile.last_to(MODERATOR)
    confirm = str(notice["Reply-To"])
    attempts = [
        # right token, From not a moderator (the attacker saw the notice)
        reply_to(notice, sender="evil@example.org", body="ok"),
        # right token, moderator's address only as display name
        reply_to(notice, sender=f'"{MODERATOR}" <evil@example.org>', body="ok"),
        # moderator From, guessed tokens
        *[mail(sender=MODERATOR, to=LIST.replace("@", f"-confirm+{g}@"), body="ok\n")
          for g in ["a" * 32, "2" * 32]],
        # moderator From, no token at all
        mail(sender=MODERATOR, to=REQUEST, subject="ok", body="ok\nfreigeben\n"),
    ]
    targets = [confirm, confirm, LIST.replace("@", "-confirm+" + "a" * 32 + "@"),
               LIST.replace("@", "-confirm+" + "2" * 32 + "@"), REQUEST]
    for raw, to in zip(attempts, targets, strict=True):
        await hostile.send(raw, mail_from="evil@example.org", to=to)
    assert [r[0] for r in hostile.query("SELECT state FROM posts")] == ["held"]
    assert hostile.query("SELECT count(*) FROM outgoing WHERE kind = 'post'")[0][0] == 0
    assert hostile.sent_to("evil@example.org") == []  # a bystander is never answered
    # Token guessing: 60 random tokens from one address change nothing, answers are capped.
    smtp = await smtp_to(hostile.daemon)
    for _ in range(60):
        guess = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(32))
        await smtp.sendmail("guess@example.net", [LIST.replace("@", f"-confirm+{guess}@")],
                            raw_mail("guess@example.net", "ok", body="ok\n"))
    smtp.close()
    await hostile.settled()
    assert [r[0] for r in hostile.query("SELECT state FROM posts")] == ["held"]
    assert len(hostile.sent_to("guess@example.net")) <= 5
    # The real decision still works, once; a replay is answered "already done" and changes nothing.
    for _ in range(3):
        await hostile.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                           to=confirm)
    assert hostile.query("SELECT count(*) FROM outgoing WHERE kind = 'post'")[0][0] == 1
    assert [r[0] for r in hostile.query("SELECT state FROM posts")] == ["approved"]
    for m in MEMBERS:
        assert sum("Fachtag" in str(x["Subject"]) and x["List-Id"] is not None
                   for x in hostile.sent_to(m)) == 1


LIST_B = f"andere.liste@{D}"


@pytest.mark.parametrize("hostile", [[
    list_table(post_policy="open", dmarc_mitigation="never"),
    list_table(LIST_B, post_policy="open", dmarc_mitigation="never", subject_prefix="[B]"),
]], indirect=True, ids=["two-open-lists"])
async def test_two_lists_subscribed_to_each_other_do_not_loop(hostile: Flow) -> None:
    assert hostile.daemon.store is not None
    async with hostile.daemon.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(LIST, LIST_B, "x"), (LIST_B, LIST, "x"), (LIST_B, "bea@example.org", "x")])
    await hostile.send(mail(sender=MEMBERS[0], subject="Kreis"), mail_from=MEMBERS[0], to=LIST)
    # Play the MTA: every copy addressed to one of the lists goes back in, for 6 rounds.
    injected: set[str] = set()
    for _ in range(6):
        fresh = [p for p in outbox_files(hostile) if p.name not in injected
                 and str(parsed(p)["Delivered-To"]) in (LIST, LIST_B)]
        if not fresh:
            break
        for p in fresh:
            injected.add(p.name)
            data = p.read_bytes().split(b"\n", 2)[2]  # without Return-Path/Delivered-To
            to = str(parsed(p)["Delivered-To"])
            await hostile.send(data, mail_from=LIST.replace("@", "-bounces@"), to=to)
    else:
        pytest.fail("copies still circulating after 6 rounds")
    posts = hostile.query("SELECT count(*) FROM outgoing WHERE kind = 'post'")[0][0]
    assert posts <= 2, "a post must not circulate"
    for person in [*MEMBERS, "bea@example.org"]:
        assert sum("Kreis" in str(x["Subject"]) for x in hostile.sent_to(person)) <= 1
