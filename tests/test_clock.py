"""The one way times are shown to people: the list's zone, one format per language."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from listserv.clock import from_iso, iso, local_text

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("moment", "language", "shown"),
    [
        (datetime(2026, 11, 30, 12, 19, tzinfo=UTC), "de", "30.11.2026, 13:19 Uhr"),  # CET
        (datetime(2026, 7, 1, 22, 5, tzinfo=UTC), "de", "02.07.2026, 00:05 Uhr"),  # CEST, next day
        (datetime(2026, 11, 30, 12, 19, tzinfo=UTC), "en", "30 Nov 2026, 13:19"),
        (datetime(2026, 11, 30, 12, 19), "de", "30.11.2026, 13:19 Uhr"),  # naive = UTC
    ],
)
def test_local_text_is_in_the_lists_zone(moment: datetime, language: str, shown: str) -> None:
    assert local_text(moment, BERLIN, language) == shown


def test_iso_round_trips() -> None:
    moment = datetime(2026, 11, 30, 12, 19, 7, 123456, tzinfo=UTC)
    assert from_iso(iso(moment)) == moment
