"""Time, in one place: the clock the shell passes in, and time as the database stores it.

The core never reads the clock; the shell calls a ``Clock`` and passes
``now`` down, so tests can run a day in a millisecond with a fake clock.
Times are stored as fixed-width UTC text (``iso``), so that SQL compares
them as strings and every row reads the same on any host.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock: the default ``Clock`` of the daemon and the CLI."""
    return datetime.now(UTC)


ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that SQL compares times as strings."""
    return moment.astimezone(UTC).strftime(ISO)


def from_iso(text: str) -> datetime:
    """A time stored by ``iso``, back as an aware UTC datetime; ``ValueError`` if not one."""
    return datetime.strptime(text, ISO).replace(tzinfo=UTC)
