"""The rows that cross the store's boundary: what intake hands in, what handlers get out.

Plain frozen dataclasses and the inbox states, with no database behind
them, so the core (``inbox.request``, the handlers' pure parts) can name an
inbox row without importing the database driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class InboxState(StrEnum):
    NEW = "new"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class NewInbound:
    """One accepted recipient of one message, as intake hands it over."""

    received_at: datetime
    peer: str
    helo: str
    mail_from: str
    rcpt: str
    list_address: str
    role: str
    extension: str
    message_id: str
    raw: bytes


@dataclass(frozen=True)
class InboxItem:
    id: int
    received_at: str
    peer: str
    mail_from: str
    rcpt: str
    list_address: str
    role: str
    extension: str
    message_id: str
    raw: bytes
    attempts: int
