"""Intake on PostgreSQL: 250 only after the commit; a database that is gone answers 451."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import aiosmtplib
import asyncpg
import pytest

from listserv import config as configuration
from listserv.daemon import Daemon
from listserv.intake import codes as status
from tests.conftest import LIST, mail, write_config


async def test_a_database_gone_answers_451_and_nothing_accepted_is_lost(
        pg_url: str, pg_server, tmp_path: Path) -> None:
    cfg = configuration.load(write_config(tmp_path, extra=f'\n[store]\nurl = "{pg_url}"\n'))
    daemon = Daemon(cfg)
    host, port = await daemon.start()
    name = urlsplit(pg_url).path.lstrip("/")
    try:
        smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=20)
        await smtp.connect()
        errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail(subject="eins"))
        assert errors == {}
        pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false",
                       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                       f" WHERE datname = '{name}'")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.sendmail("anna@example.org", [LIST], mail(subject="zwei"))
        assert f"{refused.value.code} {refused.value.message}" == status.STORE_FAILED
        pg_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail(subject="drei"))
        assert errors == {}
        await smtp.quit()
    finally:
        await daemon.stop()
    conn = await asyncpg.connect(pg_url)
    try:
        stored = await conn.fetch("SELECT message_id FROM inbox ORDER BY id")
    finally:
        await conn.close()
    assert len(stored) == 2          # "eins" and "drei": every 250 is a row, the 451 none
