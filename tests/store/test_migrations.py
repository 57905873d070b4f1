"""Migration 7: names stored as raw encoded words become text."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from listserv.store.database import Store
from listserv.store.migrations import MIGRATIONS
from tests.conftest import sqlite_only

pytestmark = sqlite_only


async def test_stored_encoded_names_are_decoded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                   " applied_at TEXT NOT NULL)")
        for version, script in MIGRATIONS:
            if version <= 6:
                db.executescript(script)
                db.execute("INSERT INTO schema_version VALUES (?, 'then')", (version,))
        db.executemany(
            "INSERT INTO members (list_address, address, display_name, joined_at)"
            " VALUES ('l@d.de', ?, ?, 'then')",
            [("s@x.de", "=?iso-8859-1?Q?Sabine_M=FCller?="), ("a@x.de", "Anna =?x?"),
             ("j@x.de", "=?utf-8?B?SsO8cmdlbg==?=")])
        db.execute(
            "INSERT INTO tokens (token_hash, action, list_address, address, requester, data,"
            " created_at, expires_at) VALUES ('h', 'subscribe', 'l@d.de', 'd@x.de', 'd@x.de',"
            " ?, 'then', 'later')",
            (json.dumps({"name": "=?iso-8859-1?Q?Dora_Sch=FCtz?=", "language": "de"}),))
    store = await Store.open(path)
    try:
        names = {r["address"]: r["display_name"]
                 for r in await store.fetchall("SELECT address, display_name FROM members")}
        data = (await store.fetchone("SELECT data FROM tokens"))["data"]  # type: ignore[index]
        version = await store.schema_version()
    finally:
        await store.close()
    assert names == {"s@x.de": "Sabine Müller", "a@x.de": "Anna =?x?", "j@x.de": "Jürgen"}
    assert json.loads(data) == {"name": "Dora Schütz", "language": "de"}
    assert version >= 7
