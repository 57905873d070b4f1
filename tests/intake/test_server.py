"""Intake over real SMTP on loopback: route at RCPT, commit at DATA, then 250."""

from __future__ import annotations

import asyncio
import sqlite3
import ssl
from email import message_from_bytes
from email.policy import default

import aiosmtplib
import pytest
import trustme

from listserv.daemon import Daemon
from listserv.intake import codes as status
from tests import sealed
from tests.conftest import LIST, mail, sqlite_only, wait_for


def rows(daemon: Daemon, sql: str = f"SELECT {sealed.INBOX} FROM inbox ORDER BY id"
         ) -> list[sqlite3.Row]:
    """Read the database through a second connection, as an operator would."""
    assert daemon.store is not None
    with sealed.connect(daemon.store.path) as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql).fetchall()


async def client(daemon: Daemon, **kwargs) -> aiosmtplib.SMTP:
    assert daemon.address is not None
    host, port = daemon.address
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10, **kwargs)
    await smtp.connect()
    return smtp


async def test_mail_to_the_list_is_stored_before_250(daemon: Daemon) -> None:
    message = mail()
    smtp = await client(daemon)
    errors, reply = await smtp.sendmail("anna@example.org", [LIST], message)
    await smtp.quit()
    assert errors == {}
    assert reply.startswith("2.0.0 OK")
    (row,) = rows(daemon)
    assert row["mail_from"] == "anna@example.org"
    assert row["rcpt"] == LIST
    assert row["role"] == "post"
    assert row["list_address"] == LIST
    # The stored bytes are our Received header followed by exactly what was sent.
    assert row["raw"].startswith(b"Received: from ")
    assert row["raw"].endswith(message)
    assert row["message_id"].startswith("<") and row["message_id"].endswith("@example.org>")
    parsed = message_from_bytes(row["raw"], policy=default)
    assert "listserv" in parsed["Received"]
    assert f"for <{LIST}>" in parsed["Received"]


async def test_processor_takes_the_row(daemon: Daemon) -> None:
    smtp = await client(daemon)
    await smtp.sendmail("anna@example.org", [LIST, LIST.replace("@", "-request@")], mail())
    await smtp.quit()
    await wait_for(lambda: all(r["state"] == "done" for r in rows(daemon)))
    assert len(rows(daemon)) == 2
    assert {r["role"] for r in rows(daemon)} == {"post", "request"}
    assert all(r["outcome"] and r["handled_at"] for r in rows(daemon))


async def test_relay_and_unknown_recipients_are_refused(daemon: Daemon) -> None:
    smtp = await client(daemon)
    await smtp.ehlo()
    await smtp.mail("spammer@example.net")
    for rcpt, code in [("victim@example.com", status.RELAY_DENIED),
                       ("postmaster@gelsenkirchen.de", status.UNKNOWN_USER),
                       ("victim%example.com@gelsenkirchen.de", status.BAD_RECIPIENT_SYNTAX)]:
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
            await smtp.rcpt(rcpt)
        assert f"{info.value.code} {info.value.message}" == code
    # With no accepted recipient, DATA is refused and nothing is stored.
    with pytest.raises(aiosmtplib.SMTPResponseException) as info:
        await smtp.data(mail())
    assert info.value.code == 503
    await smtp.quit()
    assert rows(daemon) == []


async def test_mixed_recipients_keep_only_ours(daemon: Daemon) -> None:
    smtp = await client(daemon)
    errors, _ = await smtp.sendmail("anna@example.org", [LIST, "victim@example.com"], mail())
    await smtp.quit()
    assert errors["victim@example.com"].code == 550
    assert [r["rcpt"] for r in rows(daemon)] == [LIST]


async def test_oversize_is_refused_552_5_3_4(config_factory) -> None:
    d = Daemon(config_factory(server={"max_message_bytes": 2000}))
    await d.start()
    try:
        smtp = await client(d)
        big = mail(body=("y" * 70 + "\n") * 60)
        # Without a SIZE announcement the limit is enforced on the data itself.
        await smtp.ehlo()
        await smtp.mail("anna@example.org")
        await smtp.rcpt(LIST)
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await smtp.data(big)
        assert f"{info.value.code} {info.value.message}" == status.TOO_BIG
        # Announced size over the limit is refused at MAIL FROM already.
        await smtp.ehlo()
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as info2:
            await smtp.mail("anna@example.org", options=["SIZE=5000"])
        assert f"{info2.value.code} {info2.value.message}" == status.TOO_BIG
        await smtp.quit()
        assert rows(d) == []
    finally:
        await d.stop()


async def test_8bitmime_and_smtputf8_are_accepted(daemon: Daemon) -> None:
    smtp = await client(daemon)
    await smtp.ehlo()
    assert smtp.supports_extension("8BITMIME")
    assert smtp.supports_extension("SMTPUTF8")
    message = mail(sender="jürgen@müller.example", body="Grüße aus Gelsenkirchen\n")
    errors, _ = await smtp.sendmail("jürgen@müller.example", [LIST], message,
                                    mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    await smtp.quit()
    assert errors == {}
    (row,) = rows(daemon)
    assert row["mail_from"] == "jürgen@müller.example"
    assert "Grüße".encode() in row["raw"]


async def test_lmtp_answers_per_recipient(config_factory) -> None:
    d = Daemon(config_factory(server={"protocol": "lmtp"}))
    host, port = await d.start()
    try:
        reader, writer = await _open(host, port)
        assert (await reader.readline()).startswith(b"220")
        replies = []
        for line in ["LHLO client.example", "MAIL FROM:<anna@example.org>",
                     f"RCPT TO:<{LIST}>", "RCPT TO:<nobody@example.com>",
                     f"RCPT TO:<{LIST.replace('@', '-request@')}>", "DATA"]:
            writer.write(line.encode() + b"\r\n")
            replies.append(await _read_reply(reader))
        assert replies[3].startswith(b"550 5.7.1")
        assert replies[5].startswith(b"354")
        writer.write(mail() + b"\r\n.\r\n")
        # One reply per accepted recipient (RFC 2033), not one per transaction.
        first = await reader.readline()
        second = await reader.readline()
        assert first.startswith(b"250 2.0.0") and second.startswith(b"250 2.0.0")
        writer.write(b"QUIT\r\n")
        await _read_reply(reader)
        writer.close()
        assert len(rows(d)) == 2
        assert "with LMTP" in message_from_bytes(rows(d)[0]["raw"], policy=default)["Received"]
    finally:
        await d.stop()


async def _open(host: str, port: int):
    return await asyncio.open_connection(host, port)


async def _read_reply(reader) -> bytes:
    lines = []
    while True:
        line = await reader.readline()
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


async def test_starttls_is_offered_and_works(tmp_path, config_factory) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    d = Daemon(config_factory(server={"tls_cert": str(cert_path), "tls_key": str(key_path)}))
    host, port = await d.start()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, tls_context=context,
                               timeout=10)
        await smtp.connect()
        await smtp.ehlo()
        assert smtp.supports_extension("STARTTLS")
        await smtp.starttls(server_hostname="localhost")
        assert smtp.get_transport_info("sslcontext") is not None
        errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail())
        await smtp.quit()
        assert errors == {}
        (row,) = rows(d)
        assert "with ESMTPS" in message_from_bytes(row["raw"], policy=default)["Received"]
    finally:
        await d.stop()


@sqlite_only
async def test_store_failure_answers_451_and_keeps_nothing(daemon: Daemon) -> None:
    assert daemon.store is not None
    # Another writer holds the write lock for longer than our busy timeout.
    await daemon.store._db.execute("PRAGMA busy_timeout = 100")
    blocker = sqlite3.connect(daemon.store.path, isolation_level=None, check_same_thread=False)
    # In a thread: the daemon's own commit in flight needs this event loop to finish.
    await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")
    try:
        smtp = await client(daemon)
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await smtp.sendmail("anna@example.org", [LIST], mail())
        assert f"{info.value.code} {info.value.message}" == status.STORE_FAILED
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert rows(daemon) == []
    # When the fault is gone the same session works again.
    errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail(subject="again"))
    await smtp.quit()
    assert errors == {}
    assert len(rows(daemon)) == 1


@sqlite_only
async def test_read_only_database_answers_451_then_recovers(daemon: Daemon) -> None:
    assert daemon.store is not None
    # query_only makes SQLite refuse every write ("attempt to write a readonly
    # database"), as a read-only file would; chmod does not bind root in CI.
    await daemon.store._db.execute("PRAGMA query_only = ON")
    smtp = await client(daemon)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await smtp.sendmail("anna@example.org", [LIST], mail())
    assert f"{info.value.code} {info.value.message}" == status.STORE_FAILED
    await daemon.store._db.execute("PRAGMA query_only = OFF")
    errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail(subject="again"))
    await smtp.quit()
    assert errors == {}
    assert [r["message_id"] != "" for r in rows(daemon)] == [True]


async def test_connection_limit_answers_421(config_factory) -> None:
    d = Daemon(config_factory(server={"max_connections": 2}))
    host, port = await d.start()
    try:
        held = [await _open(host, port) for _ in range(2)]
        for reader, _ in held:
            assert (await reader.readline()).startswith(b"220")
        reader, writer = await _open(host, port)
        assert (await reader.readline()).startswith(status.TOO_MANY_CONNECTIONS.encode())
        writer.close()
        for _, w in held:
            w.close()
        # Once the others have gone, a client is served again.
        async def served() -> bool:
            r, w = await _open(host, port)
            line = await r.readline()
            w.close()
            return line.startswith(b"220")
        await wait_for(served)
    finally:
        await d.stop()


async def test_too_many_recipients(config_factory) -> None:
    d = Daemon(config_factory(server={"max_recipients": 2}))
    await d.start()
    try:
        smtp = await client(d)
        await smtp.ehlo()
        await smtp.mail("anna@example.org")
        await smtp.rcpt(LIST)
        await smtp.rcpt(LIST.replace("@", "-request@"))
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
            await smtp.rcpt(LIST.replace("@", "-owner@"))
        assert info.value.code == 452
        await smtp.quit()
    finally:
        await d.stop()


async def test_null_sender_is_accepted_for_bounces(daemon: Daemon) -> None:
    smtp = await client(daemon)
    bounces = LIST.replace("@", "-bounces+anna=example.org@")
    await smtp.ehlo()
    response = await smtp.execute_command(b"MAIL", b"FROM:<>")
    assert response.code == 250
    await smtp.rcpt(bounces)
    response = await smtp.data(mail(sender="MAILER-DAEMON@example.org"))
    assert response.code == 250
    await smtp.quit()
    (row,) = rows(daemon)
    assert row["mail_from"] == ""
    assert row["role"] == "bounces"
    assert row["extension"] == "anna=example.org"


async def test_line_over_64k_is_refused_with_a_defined_code(daemon: Daemon) -> None:
    smtp = await client(daemon)
    await smtp.ehlo()
    await smtp.mail("anna@example.org")
    await smtp.rcpt(LIST)
    with pytest.raises(aiosmtplib.SMTPResponseException) as info:
        await smtp.data(mail(body="x" * 70_000 + "\n"))
    assert f"{info.value.code} {info.value.message}" == status.LINE_TOO_LONG
    # A long but tolerable line (over RFC 5321's 998) is taken.
    errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail(body="y" * 5000 + "\n"))
    await smtp.quit()
    assert errors == {}
    assert len(rows(daemon)) == 1


async def test_a_mail_without_message_id_gets_one(daemon: Daemon) -> None:
    raw = b"From: anna@example.org\r\nTo: " + LIST.encode() + b"\r\nSubject: x\r\n\r\nHallo\r\n"
    smtp = await client(daemon)
    await smtp.sendmail("anna@example.org", [LIST], raw)
    await smtp.quit()
    (row,) = rows(daemon)
    assert row["message_id"].startswith("<") and row["message_id"].endswith(">")
    parsed = message_from_bytes(row["raw"], policy=default)
    assert parsed["Message-ID"] == row["message_id"]
    assert row["raw"].endswith(raw)
