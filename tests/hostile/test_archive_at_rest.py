"""Erasure reaches the members' archive: its rows, its copies and its FTS index, byte by byte.

The archive's search text is plain in the database (FTS5 must read it), so
an erased member must be gone from the index's bytes, not just from the
answers to a query: the database file, its WAL and shm are searched for
every spelling of her address and name, and for her name as an index term.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from listserv.cli.main import main as cli_main
from listserv.config import Config
from tests import sealed
from tests.conftest import LIST, MODERATOR, FakeDns, mail, make_daemon, sqlite_only
from tests.mailflow import Flow, reply_to, text_of

pytestmark = sqlite_only

REQUEST = LIST.replace("@", "-request@")
ANNA = "Anna.Schmidt@Schule.example"
NAME = "Änna Müller"
BOB = "bob@andere-schule.example"


def cli(config: Config, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main([*args, "--config", str(config.path)]) == 0
    return out.getvalue()


def needles() -> list[bytes]:
    low = ANNA.lower()
    return [low.encode(), ANNA.encode(), low.replace("@", "%40").encode(),
            low.replace("@", "=40").encode(), NAME.encode(), NAME.encode("latin-1"),
            "Müller".encode(), "müller".encode(), "änna".encode()]


def found_in_files(data_dir: Path) -> list[str]:
    """Needles in the database, its WAL and shm (the archive lives there, nowhere else)."""
    hits = []
    for path in sorted(data_dir.glob("listserv.sqlite3*")):
        data = path.read_bytes()
        hits += [f"{path.name}: {n!r}" for n in needles() if n in data or n.lower() in
                 data.lower()]
    return hits


async def publish(flow: Flow, raw: bytes, sender: str, subject: str) -> None:
    await flow.send(raw, mail_from=sender, to=LIST)
    notice = next(m for m in reversed(flow.sent_to(MODERATOR))
                  if str(m["Subject"]) == f"Freigabe nötig: {subject}")
    await flow.send(reply_to(notice, sender=MODERATOR, body="ok"), mail_from=MODERATOR,
                    to=str(notice["Reply-To"]))


async def search(flow: Flow, words: str) -> str:
    before = len(flow.sent_to(BOB))
    await flow.send(mail(sender=BOB, to=REQUEST, subject="", body=f"suche {words}\n"),
                    mail_from=BOB, to=REQUEST)
    mails = flow.sent_to(BOB)
    assert len(mails) == before + 1
    return text_of(mails[-1])


@pytest.mark.parametrize("mode", ["anonymise", "delete"])
async def test_an_erased_member_is_gone_from_the_archive_and_its_index_bytes(
        config_factory: Callable[..., Config], dns: FakeDns, mode: str) -> None:
    config = config_factory(lists=[{
        "address": LIST, "display_name": "Netzwerk SAS", "moderators": [MODERATOR],
        "replies_per_address_per_day": 40, "archive_erasure": mode}])
    daemon = make_daemon(config, dns)
    await daemon.start()
    flow = Flow(daemon)
    try:
        await asyncio.to_thread(cli, config, "members", "add", ANNA, BOB)
        her_post = mail(sender=f"=?utf-8?q?=C3=84nna_M=C3=BCller?= <{ANNA}>",
                        subject="Fachtag Übergänge",
                        body=f"Liebe Kolleginnen,\n\nder Fachtag ist am Freitag.\n\n"
                             f"{NAME}\nSchulsozialarbeit\n{ANNA}\n")
        await publish(flow, her_post, ANNA, "Fachtag Übergänge")
        reply = mail(sender=BOB, subject="Raumplanung",
                     body=f"Fragen zum Raum bitte an {ANNA.upper()} ({NAME}).\n")
        await publish(flow, reply, BOB, "Raumplanung")
        assert flow.query("SELECT count(*) FROM archive")[0][0] == 2
        assert "Nr. 1" in await search(flow, "müller")

        # The test can fail: the index holds her in plain text before.
        assert found_in_files(config.server.data_dir)
        exported = json.loads(await asyncio.to_thread(cli, config, "members", "export-data",
                                                      ANNA))
        assert [p["subject"] for p in exported["archived_posts"]] == ["Fachtag Übergänge"]
        assert "der Fachtag ist am Freitag" in exported["archived_posts"][0]["body"]

        await asyncio.to_thread(cli, config, "members", "forget", ANNA)

        assert found_in_files(config.server.data_dir) == []
        rows = flow.query("SELECT number, sender_address, sender_name, erased, subject,"
                          " unseal(raw) AS raw FROM archive ORDER BY number")
        if mode == "delete":
            assert [r["number"] for r in rows] == [2]          # her post went
        else:
            assert tuple(rows[0])[:5] == (1, "", "ehemaliges Mitglied", 1,
                                                       "Fachtag Übergänge")
            assert "Nr. 1" in await search(flow, "Freitag")    # the post stays findable
        bob_row = rows[-1]
        assert (bob_row["number"], bob_row["sender_address"]) == (2, BOB)
        with sealed.connect(flow.db_path) as db:   # even opened with the key: not in a copy
            copies = b"".join(r[0] or b"" for r in db.execute("SELECT unseal(raw) FROM archive"))
            texts = " ".join(r[0] for r in db.execute("SELECT body FROM archive_fts"))
        assert [n for n in needles() if n.lower() in copies.lower()] == []
        assert "müller" not in texts.lower() and ANNA.lower() not in texts.lower()
        assert "Treffer" in (hit := await search(flow, "müller")) and "hat 0 Treffer" in hit
        assert "Nr. 2" in await search(flow, "Raumplanung")
    finally:
        await daemon.stop()
