"""Sealed mail at rest (issue 12, class 6): unreadable without the key, whole with it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from listserv.store import keys
from listserv.store.database import Store
from listserv.store.rows import NewInbound
from listserv.store.seal import MAGIC, Sealer
from tests.conftest import LIST


@given(st.binary(max_size=2000))
def test_round_trip_and_nothing_readable(data: bytes) -> None:
    sealer = Sealer(b"k" * 32)
    sealed = sealer.seal(data)
    assert sealed is not None and sealed.startswith(MAGIC)
    assert sealer.unseal(sealed) == data
    if len(data) >= 8:
        assert data not in sealed
    assert Sealer(b"x" * 32).unseal(sealed) is None   # another installation's key


def test_values_written_before_sealing_are_read_as_they_are() -> None:
    sealer = Sealer(b"k" * 32)
    assert sealer.unseal(b"From: a@b\r\n\r\nx") == b"From: a@b\r\n\r\nx"
    assert sealer.unseal(None) is None and sealer.unseal_text("abc") == "abc"
    assert sealer.seal(None) is None


async def test_the_store_seals_inbox_mail_and_the_token_in_its_extension(tmp_path: Path
                                                                         ) -> None:
    store = await Store.open(tmp_path / "var" / "db.sqlite3")
    token = "abcdefghijklmnopqrstuvwxyz234567"
    try:
        from datetime import UTC, datetime

        await store.add_inbound([NewInbound(
            received_at=datetime.now(UTC), peer="p", helo="h", mail_from="a@b.example",
            rcpt=LIST.replace("@", "-confirm@"), list_address=LIST, role="confirm",
            extension=token, message_id="<m@x>", raw=b"Subject: ok " + token.encode())])
        item = await store.claim_next()
        assert item is not None and item.extension == token and token.encode() in item.raw
    finally:
        await store.close()
    data = b"".join(p.read_bytes() for p in (tmp_path / "var").iterdir() if p.is_file())
    assert token.encode() not in data
    key = tmp_path / "var" / keys.MAIL_KEY
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
