"""Hostile input against an in-process daemon (real SMTP on loopback, Maildir outbox)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiosmtplib
import pytest

from listserv.clock import iso
from listserv.config import Config
from listserv.daemon import Daemon
from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, make_daemon
from tests.mailflow import Flow

MEMBERS = ["mitglied1@schule1.example", "mitglied2@schule2.example"]


def list_table(address: str = LIST, **extra: object) -> dict[str, object]:
    table: dict[str, object] = {"address": address, "display_name": "Netzwerk SAS",
                                "moderators": [MODERATOR], "subject_prefix": "[SAS]"}
    table.update(extra)
    return table


@pytest.fixture
async def hostile(
    config_factory: Callable[..., Config], clock: FakeClock, dns: FakeDns,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Flow]:
    """A daemon with the default list, or the lists given by indirect parametrization."""
    lists = getattr(request, "param", None) or [list_table()]
    d = make_daemon(config_factory(lists=lists), dns, clock=clock)
    await d.start()
    assert d.store is not None
    async with d.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
            [(lists[0]["address"], m, iso(clock.now)) for m in MEMBERS])
    try:
        yield Flow(d)
    finally:
        await d.stop()


async def smtp_to(d: Daemon) -> aiosmtplib.SMTP:
    assert d.address is not None
    smtp = aiosmtplib.SMTP(hostname=d.address[0], port=d.address[1], start_tls=False, timeout=10)
    await smtp.connect()
    await smtp.ehlo()
    return smtp


def outbox_files(flow: Flow) -> list[Path]:
    return sorted(flow.outbox.iterdir()) if flow.outbox.is_dir() else []


def parsed(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg
