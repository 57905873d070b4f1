"""Shared fixtures: a config written to a temp dir, a real daemon on a free port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from listserv import config as configuration
from listserv.config import Config
from listserv.daemon import Daemon
from tests import pg, pgbridge

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"
SAMPLES = SHARED / "samples"

LIST = "soziale.arbeit.an.schulen@gelsenkirchen.de"
MODERATOR = "koordination@gelsenkirchen.de"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(
    directory: Path,
    *,
    server: dict[str, Any] | None = None,
    delivery: dict[str, Any] | None = None,
    lists: list[dict[str, Any]] | None = None,
    extra: str = "",
) -> Path:
    """Write a test TOML: loopback, port 0, data_dir inside ``directory``."""
    server_table = {"host": "127.0.0.1", "port": 0, "data_dir": str(directory / "var"),
                    "shutdown_grace": 2}
    server_table.update(server or {})
    delivery_table = {"transport": "maildir"}
    delivery_table.update(delivery or {})
    if lists is None:
        lists = [{"address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
                  "moderators": [MODERATOR], "subject_prefix": "[SAS]"}]
    lines = ["[server]"] + [f"{k} = {toml_value(v)}" for k, v in server_table.items()]
    lines += ["", "[delivery]"] + [f"{k} = {toml_value(v)}" for k, v in delivery_table.items()]
    if pgbridge.ENABLED and "[store]" not in extra:   # the suite on PostgreSQL
        url = pgbridge.fresh_database(Path(server_table["data_dir"]))
        lines += ["", "[store]", f"url = {toml_value(url)}"]
    for table in lists:
        lines += ["", "[[lists]]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path = directory / "listserv.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


async def wait_for(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 5.0,
    interval: float = 0.01,
) -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        await asyncio.sleep(interval)


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Config]:
    def make(**kwargs: Any) -> Config:
        return configuration.load(write_config(tmp_path, **kwargs))

    return make


@pytest.fixture
def cfg(config_factory: Callable[..., Config]) -> Config:
    return config_factory()


class FakeDns:
    """TXT records for tests: DMARC lookups and DKIM keys, no network."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}

    async def __call__(self, name: str) -> list[str]:
        return self.txt.get(name.rstrip(".").lower(), [])

    def dkim(self, name: bytes, timeout: float = 5) -> bytes | None:
        records = self.txt.get(name.decode().rstrip(".").lower())
        return records[0].encode() if records else None


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns()


def make_daemon(cfg: Config, dns: FakeDns, **kwargs: Any) -> Daemon:
    from listserv.mail.dmarc_lookup import DmarcLookup

    return Daemon(cfg, dmarc=DmarcLookup(dns), dkim_dns=dns.dkim, **kwargs)


@pytest.fixture
async def daemon(cfg: Config, dns: FakeDns) -> AsyncIterator[Daemon]:
    d = make_daemon(cfg, dns)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


def mail(
    *,
    sender: str = "anna@example.org",
    to: str = LIST,
    subject: str = "Fachtag am 3. Dezember",
    body: str = "Liebe Kolleginnen und Kollegen,\n\nbis bald.\n",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A small, well-formed message as bytes with CRLF line ends."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             "Date: Wed, 25 Nov 2026 10:00:00 +0100",
             f"Message-ID: <{abs(hash((sender, subject, body)))}@example.org>",
             "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
             "Content-Transfer-Encoding: 8bit"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


class FakeClock:
    """A clock the test moves by hand (``clock.advance(days=8)``)."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> Any:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def clocked_daemon(cfg: Config, clock: FakeClock, dns: FakeDns) -> AsyncIterator[Daemon]:
    d = make_daemon(cfg, dns, clock=clock)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """One throwaway PostgreSQL cluster for the session (tests/pg.py says how and why).

    Skips only where the server binaries or asyncpg are absent; binaries that
    are there but do not start a server fail the test, with the server's log.
    """
    bin_dir = pg.find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    missing = pg.asyncpg_missing()
    if missing is not None:
        pytest.skip(f"asyncpg not installed ({missing}): pip install asyncpg")
    try:
        server = pg.start_server(bin_dir)
    except pg.PgStartError as error:
        fault = str(error)   # failed outside the handler: the report shows it once
    else:
        fault = ""
    if fault:
        pytest.fail(f"PostgreSQL from {bin_dir} did not start: {fault}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: pg.PgServer) -> Iterator[str]:
    """A fresh empty database for this test, owned by the role ``listserv``; dropped after.

    ``postgresql://listserv@/test_<n>?host=<socket dir>``: libpq and asyncpg
    read ``host`` as the directory of the unix socket.
    """
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="session", autouse=pgbridge.ENABLED)
def _suite_on_postgresql(request: pytest.FixtureRequest) -> None:
    """LISTSERV_TEST_STORE=postgresql: every written config names a database (pgbridge)."""
    pgbridge.server = request.getfixturevalue("pg_server")


#: A test about SQLite's own files (WAL, pages at rest, locks, backup's page copy):
#: skipped when the suite runs on PostgreSQL (LISTSERV_TEST_STORE=postgresql).
sqlite_only = pytest.mark.skipif(pgbridge.ENABLED, reason="about SQLite's own file")
