"""The embedded default transport: every copy as a file in a local Maildir.

Nothing leaves the machine; an operator (or a test) reads the copies in
``<data_dir>/outbox/new``. Production hands copies to a relay instead
(``smtp.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from listserv.delivery.outcomes import ACCEPTED, DeliveryResult
from listserv.store import keys


class MaildirTransport:
    """Every copy as one file per recipient in ``<data_dir>/outbox/new``.

    Written the way a local delivery agent writes: into ``tmp/`` under a
    unique name, flushed to disk, then renamed into ``new/``, so a reader
    never sees half a message, and a file in ``new/`` survives a crash once
    ``deliver`` has returned. Each file begins with ``Return-Path`` and
    ``Delivered-To`` (DESIGN §3), so the envelope is visible on disk.
    """

    def __init__(self, directory: Path, *, fsync: bool = True) -> None:
        self.directory = directory
        self.fsync = fsync
        for sub in ("tmp", "new", "cur"):  # 0700 and 0600 whatever the umask: personal data
            keys.private_dir(directory / sub)
        keys.private_dir(directory)
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._counter = itertools.count()

    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes, *,
                      before_data: Callable[[], Awaitable[object]] | None = None
                      ) -> DeliveryResult:
        if before_data is not None:  # writing the file is the delivery
            await before_data()
        try:
            await asyncio.to_thread(self._write_all, mail_from, rcpts, data)
        except OSError as exc:  # disk full, permissions: nothing is lost, try again later
            return DeliveryResult.temporary(rcpts, 451, f"4.3.0 maildir: {exc.strerror}")
        return DeliveryResult.every(rcpts, ACCEPTED)

    async def close(self) -> None:
        return None

    def _write_all(self, mail_from: str, rcpts: list[str], data: bytes) -> None:
        eol = b"\r\n" if data.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        written: list[tuple[Path, Path]] = []
        try:
            for rcpt in rcpts:
                head = (f"Return-Path: <{mail_from}>".encode() + eol
                        + f"Delivered-To: {rcpt}".encode() + eol)
                name = self._unique_name()
                tmp = self.directory / "tmp" / name
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, keys.FILE_MODE)
                os.fchmod(fd, keys.FILE_MODE)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(head)
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                written.append((tmp, self.directory / "new" / name))
            for tmp, new in written:
                os.rename(tmp, new)
            if self.fsync:
                _fsync_dir(self.directory / "new")
        except OSError:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise

    def _unique_name(self) -> str:
        now = time.time()
        sec, usec = int(now), int((now % 1) * 1_000_000)
        return f"{sec}.M{usec}P{os.getpid()}Q{next(self._counter)}.{self._host}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
