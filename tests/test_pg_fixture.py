"""The PostgreSQL fixtures themselves (tests/pg.py, ``pg_server`` and ``pg_url``).

The store's PostgreSQL tests trust these fixtures, so they are checked the
way the backend will use them: asyncpg connecting through the URL that
``pg_url`` yields, as a role that is not a superuser, on a database no other
test has seen.
"""

from __future__ import annotations

import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import pg

asyncpg = pytest.importorskip("asyncpg", reason="asyncpg not installed: pip install asyncpg")

SEEN: list[str] = []   # the databases earlier tests in this module were given


async def test_asyncpg_connects_through_the_url_and_owns_the_database(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    assert parts.scheme == "postgresql" and parts.username == pg.OWNER_ROLE
    assert parse_qs(parts.query)["host"][0].startswith("/")   # a socket directory, no TCP
    connection = await asyncpg.connect(pg_url)
    try:
        assert await connection.fetchval("SELECT current_user") == pg.OWNER_ROLE
        assert not await connection.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        await connection.execute("CREATE TABLE members (id bigserial PRIMARY KEY, address text)")
        await connection.execute("INSERT INTO members (address) VALUES ($1)", "anna@example.org")
        assert await connection.fetchval("SELECT address FROM members") == "anna@example.org"
        # the setting intake's "250 only after the commit" relies on, as in production
        assert await connection.fetchval("SHOW synchronous_commit") == "on"
        assert await connection.fetchval("SHOW fsync") == "off"       # tests only: see pg.py
        assert await connection.fetchval("SHOW listen_addresses") == ""
        assert await connection.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await connection.close()


@pytest.mark.parametrize("turn", [1, 2])
async def test_each_test_gets_its_own_empty_database(
    pg_url: str, pg_server: pg.PgServer, turn: int
) -> None:
    name = urlsplit(pg_url).path.lstrip("/")
    assert name not in SEEN
    connection = await asyncpg.connect(pg_url)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables == 0
        await connection.execute("CREATE TABLE marker (turn integer)")
    finally:
        await connection.close()
    existing = pg_server.psql("SELECT datname FROM pg_database").stdout.split()
    assert name in existing
    assert not set(SEEN) & set(existing), "an earlier test's database was not dropped"
    SEEN.append(name)


async def test_the_password_role_needs_its_password(pg_server: pg.PgServer, pg_url: str) -> None:
    database = urlsplit(pg_url).path.lstrip("/")
    url = pg_server.url(database, pg.SECRET_ROLE)
    with pytest.raises(asyncpg.InvalidPasswordError):
        connection = await asyncpg.connect(url, password="wrong")
        await connection.close()
    connection = await asyncpg.connect(url, password=pg_server.secret_password)
    try:
        assert await connection.fetchval("SELECT current_user") == pg.SECRET_ROLE
    finally:
        await connection.close()


def test_psql_reads_the_same_url(pg_server: pg.PgServer, pg_url: str) -> None:
    """libpq (psql, pg_dump) accepts the URL as it is: operators can paste it."""
    done = subprocess.run([str(pg_server.bin_dir / "psql"), "-X", "-A", "-t", "-d", pg_url,
                           "-c", "SELECT current_database()"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == urlsplit(pg_url).path.lstrip("/")
