"""Class 6 of issue 12: nothing secret or erased is readable at rest.

The attacker here has a copy of data_dir without the keys (a stolen backup
disk, a leaked database file): every byte of every file is searched.

The Maildir outbox (``<data_dir>/outbox``) is left out of the searches: it
*is* the delivery (the embedded stand-in for the relay and the recipients'
mailboxes, DESIGN §3), not listserv's stored state; production delivers
to a relay and has no such directory. It is still created 0700/0600.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listserv.cli.main import main as cli_main
from listserv.config import Config
from listserv.ops import backup
from tests import sealed
from tests.conftest import LIST, MODERATOR, FakeDns, mail, make_daemon, sqlite_only
from tests.mailflow import Flow, reply_to

pytestmark = sqlite_only

L, D = LIST.split("@")
ANNA = "Anna.Schmidt@Schule.example"          # as she writes it
NAME = "Änna Müller"
NAME_2047 = "=?utf-8?q?=C3=84nna_M=C3=BCller?="
BOB = "bob@andere-schule.example"
TOKEN_RE = re.compile(rb"[a-z2-7]{32}")


def forms_of_anna() -> list[bytes]:
    """Every spelling of her address and name a file could hold."""
    low = ANNA.lower()
    out = {ANNA, low, ANNA.upper(), low.replace("@", "=40"), low.replace("@", "%40"),
           low.replace("@", "="), NAME, "=C3=84nna_M=C3=BCller", "=C3=84nna M=C3=BCller"}
    found = [f.encode() for f in out] + [NAME.encode("latin-1")]
    for shift in range(3):  # base64 of the address at each alignment
        chunk = base64.b64encode(b"x" * shift + low.encode())[4:-4]
        found.append(chunk)
    return found


def state_files(data_dir: Path, *, skip: set[Path] = frozenset()) -> Iterator[Path]:
    """Every file of listserv's stored state (database, WAL, keys, backups, ...)."""
    for path in data_dir.rglob("*"):
        if path.is_file() and "outbox" not in path.relative_to(data_dir).parts \
                and path not in skip:
            yield path


def hits(data_dir: Path, needles: list[bytes], skip: set[Path] = frozenset()) -> list[str]:
    found = []
    for path in state_files(data_dir, skip=skip):
        data = path.read_bytes()
        low = data.lower()
        for needle in needles:
            if needle in data or needle.lower() in low:
                found.append(f"{path.relative_to(data_dir)}: {needle!r}")
    return found


def unsealed_dump(db_path: Path) -> bytes:
    """Every value of every table, the sealed ones opened (what the daemon itself reads)."""
    out = []
    with sealed.connect(db_path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    opened = db.execute("SELECT unseal(?)", (value,)).fetchone()[0]
                    out.append(opened if isinstance(opened, bytes) else str(opened).encode())
    return b"\n".join(out)


def cli(config: Config, *args: str) -> int:
    return cli_main([*args, "--config", str(config.path)])


def cli_output(config: Config, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(config, *args) == 0
    return out.getvalue()


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The worst umask an operator could run us with: files would be world-readable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def test_after_forget_her_address_is_in_no_file_and_no_mailed_token_is_anywhere(
    config_factory: Callable[..., Config], dns: FakeDns, loose_umask: None,
) -> None:
    config = config_factory()
    data_dir = config.server.data_dir
    daemon = make_daemon(config, dns)
    await daemon.start()
    flow = Flow(daemon)
    try:
        # She joins (confirm, then the coordinator approves) with an encoded name.
        await flow.send(mail(sender=f"{NAME_2047} <{ANNA}>", subject="anmelden"),
                        mail_from=ANNA, to=f"{L}-join@{D}")
        confirm = flow.last_to(ANNA.lower())
        await flow.send(reply_to(confirm, sender=ANNA, body="ja"), mail_from=ANNA,
                        to=str(confirm["Reply-To"]))
        request = flow.last_to(MODERATOR)
        await flow.send(reply_to(request, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                        to=str(request["Reply-To"]))
        assert ANNA.lower() in flow.members()
        # She posts; the coordinator approves; the list copy goes to every member.
        await flow.send(mail(sender=f"{NAME_2047} <{ANNA}>", subject="Fachtag"),
                        mail_from=ANNA, to=LIST)
        notice = flow.last_to(MODERATOR)
        await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                        to=str(notice["Reply-To"]))
        # Mail that names her under other headers and encodings: Reply-To in upper case,
        # Sender, an envelope sender forged to be hers, a quoted-printable body with
        # her address split by a soft line break.
        qp_body = f"Kontakt: {ANNA.lower()[:9]}=\r\n{ANNA.lower()[9:]}\r\n"
        qp = (f"From: {BOB}\r\nTo: {LIST}\r\nSubject: Kontakt\r\n"
              f"Reply-To: {ANNA.upper()}\r\nMessage-ID: <qp@andere-schule.example>\r\n"
              "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp_body).encode()
        await flow.send(qp, mail_from=BOB, to=LIST)
        await flow.send(mail(sender=BOB, subject="hilfe", headers={"Sender": ANNA}),
                        mail_from=ANNA, to=f"{L}-request@{D}")
        await flow.settled()
        mailed_tokens = {m for p in flow.outbox.iterdir()
                         for m in TOKEN_RE.findall(p.read_bytes())
                         if b"confirm+" + m in p.read_bytes()}
        assert len(mailed_tokens) >= 4   # her confirmation, approval, two held notices

        before = await asyncio.to_thread(backup.backup, config.database_path,
                                         backup.backups_dir(config))
        # The test can fail: the unsealed database and the old backup do hold her.
        assert ANNA.lower().encode() in unsealed_dump(config.database_path).lower()

        # Art. 15 first: her messages and the hashes of her tokens, never a token.
        exported = json.loads(await asyncio.to_thread(cli_output, config, "members",
                                                      "export-data", ANNA.upper()))
        assert any("Fachtag" in (m["text"] or "") for m in exported["messages_received"])
        assert exported["tokens"] and all(re.fullmatch(r"[0-9a-f]{64}", t["token_hash"])
                                          for t in exported["tokens"])
        assert not [t for t in mailed_tokens if t.decode() in json.dumps(exported)]

        assert await asyncio.to_thread(cli, config, "members", "forget", ANNA) == 0
        after = await asyncio.to_thread(backup.backup, config.database_path,
                                        backup.backups_dir(config),
                                        now=datetime.now(UTC) + timedelta(seconds=2))
        assert after != before

        # Byte level: no file of the stored state (database, WAL, shm, backups taken
        # after, keys) holds her address or name in any form, nor any mailed token.
        assert hits(data_dir, forms_of_anna(), skip={before}) == []
        assert hits(data_dir, sorted(mailed_tokens), skip=set()) == []
        # Not even with the key: the opened mail and every column are free of her.
        dump = unsealed_dump(config.database_path)
        assert [f for f in forms_of_anna() if f.lower() in dump.lower()] == []
        assert [t for t in mailed_tokens if t in dump] == []
        # The daemon goes on working on the scrubbed file.
        await flow.send(mail(sender=BOB, subject="hilfe"), mail_from=BOB,
                        to=f"{L}-request@{D}")
        assert flow.last_to(BOB)["Subject"]
    finally:
        await daemon.stop()

    # Backups older than the erasure go on the normal schedule: KEEP daily copies.
    for day in range(1, backup.KEEP + 1):
        backup.backup(config.database_path, backup.backups_dir(config),
                      now=datetime.now(UTC) + timedelta(days=day))
    assert not before.exists()
    assert hits(data_dir, forms_of_anna()) == []

    # Whatever the umask (0 here), every file under data_dir is 0600 and every
    # directory 0700, the Maildir outbox included.
    loose = [f"{p.relative_to(data_dir)} {oct(p.stat().st_mode & 0o777)}"
             for p in [data_dir, *data_dir.rglob("*")]
             if p.stat().st_mode & 0o077]
    assert loose == []
    assert stat.S_IMODE(config.database_path.stat().st_mode) == 0o600


async def test_queued_notices_hold_no_readable_token_before_they_are_sent(
    config_factory: Callable[..., Config], dns: FakeDns,
) -> None:
    """A notice queued but not yet delivered is sealed; once delivered its body is gone."""
    config = config_factory(delivery={"transport": "smtp", "smtp_host": "127.0.0.1",
                                      "smtp_port": 9, "smtp_starttls": "off"})
    daemon = make_daemon(config, dns)
    await daemon.start()
    try:
        flow = Flow(daemon)
        await flow.send(mail(sender=BOB, subject="anmelden"), mail_from=BOB,
                        to=f"{L}-join@{D}")
        rows = flow.query("SELECT unseal(raw) AS raw FROM outgoing WHERE kind = 'reply'")
        assert rows and rows[0][0] is not None
        token = token_of_bytes(rows[0][0])
        with sqlite3.connect(config.database_path) as db:
            raw = db.execute("SELECT raw FROM outgoing WHERE kind = 'reply'").fetchone()[0]
        assert token.encode() not in raw and b"anmelden" not in raw.lower()
        # He replies to the list address by mistake: a held post whose Subject has it.
        await flow.send(mail(sender=BOB, subject=f"AW: Bitte bestätigen [{token}]"),
                        mail_from=BOB, to=LIST)
        assert flow.query("SELECT subject FROM posts")[0][0] == "AW: Bitte bestätigen [[…]]"
        assert hits(config.server.data_dir, [token.encode()]) == []
    finally:
        await daemon.stop()


def token_of_bytes(raw: bytes) -> str:
    match = re.search(rb"-confirm\+([a-z2-7]{32})@", raw)
    assert match is not None
    return match.group(1).decode()

