"""How a copy leaves: one narrow method, ``deliver(mail_from, rcpts, data)``.

The sender never talks SMTP or writes files itself; it hands finished bytes
to a ``Transport`` and gets back one outcome per recipient, as values
(``outcomes.py``), not exceptions. That keeps the sender's bookkeeping one
function over a result table, and lets tests swap in a fake transport (as
httpx's ``MockTransport``).

Two implementations: ``MaildirTransport`` (``maildir.py``, the embedded
default) and ``SmtpTransport`` (``smtp.py``, a smarthost). ``make_transport``
picks one from ``[delivery]``.
"""

from __future__ import annotations

from typing import Protocol

from listserv.config import Config
from listserv.delivery.maildir import MaildirTransport
from listserv.delivery.outcomes import DeliveryResult
from listserv.delivery.pipeline import BeforeData
from listserv.delivery.smtp import SmtpTransport


class Transport(Protocol):
    async def deliver(self, mail_from: str, rcpts: list[str], data: bytes, *,
                      before_data: BeforeData | None = None) -> DeliveryResult:
        """Hand ``data`` over for ``rcpts``; never raises for a delivery fault.

        ``before_data`` is awaited once the envelope is accepted and before any
        byte of ``data`` goes out: the sender passes "the previous transaction's
        outcome is committed", so the envelope's round trip overlaps that commit
        while a crash still repeats at most one transaction per connection.
        """
        ...

    async def close(self) -> None: ...


def make_transport(config: Config) -> Transport:
    """The transport ``[delivery] transport`` names."""
    if config.delivery.transport == "smtp":
        return SmtpTransport.from_config(config)
    return MaildirTransport(config.server.data_dir / "outbox")
