"""Test helpers: send mail to a running daemon, read what it sent back."""

from __future__ import annotations

import re
import sqlite3
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import aiosmtplib

from listserv.daemon import Daemon
from tests import sealed
from tests.conftest import wait_for

TOKEN_RE = re.compile(r"-confirm\+([a-z2-7]{32})@")


class Flow:
    """Talk to one daemon as people and their mail clients would."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        assert daemon.store is not None
        self.db_path: Path = daemon.store.path

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with sealed.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    async def send(self, raw: bytes, *, mail_from: str, to: str | list[str]) -> None:
        assert self.daemon.address is not None
        host, port = self.daemon.address
        rcpts = [to] if isinstance(to, str) else to
        smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10)
        await smtp.connect()
        errors, _ = await smtp.sendmail(mail_from, rcpts, raw)
        await smtp.quit()
        assert errors == {}
        await self.settled()

    async def settled(self) -> None:
        """Wait until every inbox row is handled and every copy is delivered."""
        await wait_for(lambda: not self.query(
            "SELECT id FROM inbox WHERE state IN ('new', 'processing')"
            " UNION ALL SELECT id FROM deliveries WHERE state IN ('pending', 'sending')"
            " UNION ALL SELECT id FROM posts WHERE state = 'approved' AND outgoing_id IS NULL"),
            timeout=10)

    @property
    def outbox(self) -> Path:
        return self.daemon.config.server.data_dir / "outbox" / "new"

    def sent_to(self, rcpt: str) -> list[EmailMessage]:
        """Every mail the Maildir transport wrote for ``rcpt``, oldest first."""
        order = {r["message_id"]: r["id"] for r in self.query(
            "SELECT id, message_id FROM outgoing")}
        found = []
        for path in self.outbox.glob("*") if self.outbox.is_dir() else []:
            msg = message_from_bytes(path.read_bytes(), policy=default)
            assert isinstance(msg, EmailMessage)
            if str(msg["Delivered-To"]).lower() == rcpt.lower():
                found.append((order.get(str(msg["Message-ID"]), 0), path.stat().st_mtime_ns,
                              path.name, msg))
        return [m for *_, m in sorted(found, key=lambda t: t[:3])]

    def last_to(self, rcpt: str) -> EmailMessage:
        mails = self.sent_to(rcpt)
        assert mails, f"nothing was sent to {rcpt}"
        return mails[-1]

    def members(self) -> list[str]:
        return [r["address"] for r in self.query("SELECT address FROM members ORDER BY address")]


def token_of(msg: EmailMessage) -> str:
    match = TOKEN_RE.search(str(msg["Reply-To"] or ""))
    assert match, f"no confirm address in Reply-To: {msg['Reply-To']}"
    return match.group(1)


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content()


def reply_to(
    original: EmailMessage, *, sender: str, body: str = "", quote: bool = True,
    headers: dict[str, str] | None = None, html: bool = False,
) -> bytes:
    """A reply as a mail client writes it: Re: subject, quoted original below."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(original["Reply-To"] or original["From"])
    msg["Subject"] = f"AW: {original['Subject']}"
    msg["In-Reply-To"] = str(original["Message-ID"])
    msg["Message-ID"] = f"<reply-{abs(hash((sender, body, str(original['Message-ID']))))}@client>"
    for k, v in (headers or {}).items():
        msg[k] = v
    quoted = "\n".join("> " + line for line in text_of(original).splitlines()) if quote else ""
    text = f"{body}\n\nAm 25.11.2026 um 10:00 schrieb {original['From']}:\n{quoted}\n"
    if html:
        msg.set_content(text)
        msg.add_alternative(
            f"<html><body><p>{body}</p><div id=\"divRplyFwdMsg\"><b>Von:</b> "
            f"{original['From']}<br><b>Gesendet:</b> Mittwoch<br>"
            f"<b>Betreff:</b> {original['Subject']}</div>"
            f"<div>{text_of(original)}</div></body></html>", subtype="html")
    else:
        msg.set_content(text)
    return msg.as_bytes()
