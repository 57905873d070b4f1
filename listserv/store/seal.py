"""Mail at rest, sealed: what the database holds of a mail is unreadable without ``mail.key``.

The stored mail is what an attacker who gets a copy of the database (a
backup, a stolen disk, the WAL, a free page) would read first: replies to
confirmation mails quote the token, our own queued answers carry it in
Subject, Reply-To and body, and every mail names people. So the bodies
(``inbox.raw``, ``outgoing.raw``) and the recipient extension that holds a
token or a VERP address (``inbox.extension``) are stored sealed with
XSalsa20-Poly1305 (PyNaCl's ``SecretBox``, libsodium) under a key kept in
``<data_dir>/mail.key``, outside the database (``store.keys``).

The ``Store`` registers ``seal(x)`` and ``unseal(x)`` as SQL functions on
its connection, so a statement writes ``seal(?)`` and reads
``unseal(raw) AS raw`` and nothing else in the code changes. A value
without the ``MAGIC`` prefix is one written before sealing and is returned
as it is, so an old database keeps working and is sealed row by row as
retention empties it. Sealing costs about a microsecond per kilobyte.
"""

from __future__ import annotations

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

MAGIC = b"\x00LSv1\x00"


class Sealer:
    """Seal and open values under one installation's key."""

    def __init__(self, key: bytes) -> None:
        self._box = SecretBox(key[:SecretBox.KEY_SIZE])

    def seal(self, value: bytes | str | None) -> bytes | None:
        if value is None:
            return None
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        return MAGIC + bytes(self._box.encrypt(bytes(data)))

    def unseal(self, value: bytes | str | None) -> bytes | str | None:
        """The plain bytes of a sealed value; anything else as it is."""
        if not isinstance(value, bytes) or not value.startswith(MAGIC):
            return value
        try:
            return self._box.decrypt(value[len(MAGIC):])
        except CryptoError:  # another installation's key: the mail is gone for us
            return None

    def unseal_text(self, value: bytes | str | None) -> str | None:
        """``unseal`` for a text column (the extension)."""
        plain = self.unseal(value)
        if isinstance(plain, bytes):
            return plain.decode("utf-8", "surrogateescape")
        return plain
