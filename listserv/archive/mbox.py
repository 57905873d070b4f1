"""``listserv archive import MBOX [LIST]``: seed a list's archive from a mailbox.

The coordinator's sent folder holds every announcement she made before
listserv, and much else. A mail is taken when it was for this list (its
List-Id is the list's, or the list address is in its To or Cc) and its
Message-ID is not archived yet; everything else is counted with its
reason: ``duplicate`` (the Message-ID is in the archive, or twice in the
file), ``not for this list``, ``unreadable`` (no parseable mail). The mail is
archived as it is in the file (that is what the members got then).

Mails are committed in batches of ``BATCH`` so a large file does not hold
the write lock for long beside a running daemon, and the import can be run
again: what is in already is skipped as a duplicate.
"""

from __future__ import annotations

import mailbox
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from listserv.archive import records
from listserv.archive.extract import Extract, extract
from listserv.config import ListConfig
from listserv.errors import ListservError
from listserv.log import event
from listserv.store.database import Store

BATCH = 500
NOT_FOR_LIST = "not for this list"
DUPLICATE = "duplicate"
UNREADABLE = "unreadable"


def for_list(found: Extract, mlist: ListConfig) -> bool:
    if found.list_id:
        return found.list_id == mlist.list_id.lower()
    return mlist.address in found.recipients


def read_mbox(path: Path) -> mailbox.mbox:
    if not path.is_file():
        raise ListservError(f"{path}: no such mailbox file")
    try:
        box = mailbox.mbox(path, create=False)
        box.lock = lambda: None  # type: ignore[method-assign]  (read only: no dot-lock file)
        box.keys()
    except (OSError, mailbox.Error) as exc:
        raise ListservError(f"{path}: cannot read the mailbox: {exc}") from exc
    return box


async def import_mbox(store: Store, mlist: ListConfig, path: Path, now: datetime, *,
                      progress: Callable[[int, int], None] = lambda done, total: None
                      ) -> tuple[int, Counter[str]]:
    """Archive the list's mails of ``path``; return (imported, skipped by reason)."""
    box = read_mbox(path)
    keys = box.keys()
    imported, skipped = 0, Counter[str]()
    seen: set[str] = set()
    batch: list[tuple[bytes, Extract]] = []

    async def flush() -> int:
        count = 0
        async with store.transaction() as db:
            for raw, found in batch:
                if await records.known(db, mlist.address, found.message_id):
                    skipped[DUPLICATE] += 1
                    continue
                await records.record(db, list_address=mlist.address, raw=raw, found=found,
                                     now=now, source="import")
                count += 1
        batch.clear()
        return count

    for done, key in enumerate(keys, start=1):
        try:
            raw = box.get_bytes(key)
            found = extract(raw)
        except Exception:   # one broken mail in a big file is counted, never the end
            skipped[UNREADABLE] += 1
            continue
        if not for_list(found, mlist):
            skipped[NOT_FOR_LIST] += 1
        elif found.message_id and found.message_id in seen:
            skipped[DUPLICATE] += 1
        else:
            seen.add(found.message_id)
            batch.append((raw, found))
        if len(batch) >= BATCH:
            imported += await flush()
        if done % 100 == 0 or done == len(keys):
            progress(done, len(keys))
    if batch:
        imported += await flush()
    event("archive_imported", list=mlist.address, file=str(path), imported=imported,
          **{k.replace(" ", "_"): v for k, v in skipped.items()})
    return imported, skipped
