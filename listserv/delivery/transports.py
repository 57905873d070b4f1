"""How a copy leaves: one narrow method, ``deliver(mail_from, rcpts, data)``.

The sender never talks SMTP or writes files itself; it hands finished bytes
to a ``Transport`` and gets back one outcome per recipient. Outcomes are
values, not exceptions: a relay that is down is a ``temporary`` outcome for
every recipient, a ``550`` for one RCPT is ``permanent`` for that one only.
That keeps the sender's bookkeeping one function over a result table, and
lets tests swap in a fake transport (as httpx's ``MockTransport``).

Two implementations: ``MaildirTransport`` (the embedded default, below) and
``SmtpTransport`` (``transport_smtp.py``, a smarthost). ``make_transport``
picks one from ``[delivery]``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from listserv.config import Config


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    TEMPORARY = "temporary"   # 4xx, a connection fault, a timeout: try again later
    PERMANENT = "permanent"   # 5xx: this recipient will not work


@dataclass(frozen=True, slots=True)
class RcptOutcome:
    outcome: Outcome
    code: int = 250
    text: str = ""

    @property
    def reply(self) -> str:
        """The reply as one line, for ``deliveries.last_reply`` and the log."""
        return f"{self.code} {self.text}".strip()


ACCEPTED = RcptOutcome(Outcome.ACCEPTED, 250, "OK")


@dataclass(frozen=True)
class DeliveryResult:
    """One outcome per recipient of a ``deliver`` call."""

    outcomes: dict[str, RcptOutcome]

    @classmethod
    def every(cls, rcpts: Iterable[str], outcome: RcptOutcome) -> DeliveryResult:
        return cls({r: outcome for r in rcpts})

    @classmethod
    def temporary(cls, rcpts: Iterable[str], code: int, text: str) -> DeliveryResult:
        return cls.every(rcpts, RcptOutcome(Outcome.TEMPORARY, code, text))

    def merged(self, other: DeliveryResult) -> DeliveryResult:
        return DeliveryResult({**self.outcomes, **other.outcomes})

    def of(self, kind: Outcome) -> list[str]:
        return [r for r, o in self.outcomes.items() if o.outcome is kind]


class Transport(Protocol):
    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> DeliveryResult:
        """Hand ``data`` over for ``rcpts``; never raises for a delivery fault."""
        ...

    async def close(self) -> None: ...


def outcome_for_code(code: int, text: str) -> RcptOutcome:
    """An SMTP reply code as an outcome (2xx accepted, 5xx permanent, else temporary)."""
    if 200 <= code < 300:
        return RcptOutcome(Outcome.ACCEPTED, code, text)
    if 500 <= code < 600:
        return RcptOutcome(Outcome.PERMANENT, code, text)
    return RcptOutcome(Outcome.TEMPORARY, code, text)


# -- Maildir -----------------------------------------------------------------


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
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._counter = itertools.count()

    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> DeliveryResult:
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
                with open(tmp, "xb") as fh:
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


def make_transport(config: Config) -> Transport:
    """The transport ``[delivery] transport`` names."""
    if config.delivery.transport == "smtp":
        from listserv.delivery.smtp import SmtpTransport

        return SmtpTransport.from_config(config)
    return MaildirTransport(config.server.data_dir / "outbox")
