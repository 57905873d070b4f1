"""Time, in one place: the clock the shell passes in, and time as the database stores it.

The core never reads the clock; the shell calls a ``Clock`` and passes
``now`` down, so tests can run a day in a millisecond with a fake clock.
Times are stored as fixed-width UTC text (``iso``), so that SQL compares
them as strings and every row reads the same on any host.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

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


_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_text(moment: datetime, zone: tzinfo, language: str = "de") -> str:
    """A time as people read it, in the list's zone: one format for every notice and CLI line.

    German: ``30.11.2026, 13:19 Uhr``; English: ``30 Nov 2026, 13:19``. Naive
    datetimes are taken as UTC, which is how the store hands them back.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    if language == "en":
        return f"{local.day} {_MONTHS_EN[local.month - 1]} {local.year}, {local:%H:%M}"
    return f"{local:%d.%m.%Y, %H:%M} Uhr"
