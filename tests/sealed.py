"""Reading the database as the daemon does: with ``unseal()`` for the sealed mail columns.

Tests that look into the SQLite file with the standard library (beside a
running daemon, or after it stopped) open it here, so ``SELECT unseal(raw)``
gives the plain mail (``listserv.store.seal``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from listserv.store import keys
from listserv.store.seal import Sealer
from tests import pgbridge

#: Every inbox column, the sealed ones opened: for "SELECT {INBOX} FROM inbox".
INBOX = ("id, received_at, peer, helo, mail_from, rcpt, list_address, role,"
         " unseal_text(extension) AS extension, message_id, size, unseal(raw) AS raw, state,"
         " attempts, not_before, handled_at, outcome")


def connect(path: Path | str, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` with the installation's ``unseal`` and ``unseal_text``.

    When the suite runs on PostgreSQL (``tests/pgbridge.py``), the database
    that the configuration of ``path``'s data_dir names, with the same API.
    """
    url = pgbridge.url_for(Path(path)) if pgbridge.ENABLED else None
    if url is not None:
        return pgbridge.SyncPg(url, Path(path).parent)  # type: ignore[return-value]
    db = sqlite3.connect(path, **kwargs)
    sealer = Sealer(keys.key(Path(path).parent, keys.MAIL_KEY))
    db.create_function("unseal", 1, sealer.unseal)
    db.create_function("unseal_text", 1, sealer.unseal_text)
    return db
