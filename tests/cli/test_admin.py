"""``listserv members / held / privacy`` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from listserv.membership.memberfile import read_members
from tests import sealed
from tests.conftest import LIST, write_config

OUTLOOK_CSV = (
    "E-Mail-Adresse;Vorname;Nachname;Funktion;Träger\r\n"
    "jürgen.müller@schule.example;Jürgen;Müller;SchuSo;Stadt\r\n"
    "Ölke.Größ@Example.ORG;Ölke;Größ;MPT;Land\r\n"
    "kaputt-ohne-at;Bernd;Broken;;\r\n"
    ";Leer;Zeile;;\r\n"
    "\r\n"
    "ANNA@example.org;Anna;Schmidt;SDS;freier Träger\r\n"
    "anna@example.org;Anna;Doppelt;;\r\n"
    "zoë@example.net;Zoë;;;\r\n"
).encode("cp1252")


def test_read_members_from_an_outlook_cp1252_export() -> None:
    rows, problems = read_members(OUTLOOK_CSV)
    # The local part as written, the domain lower-cased.
    assert [(r.address, r.name, r.role, r.employer) for r in rows] == [
        ("jürgen.müller@schule.example", "Jürgen Müller", "SchuSo", "Stadt"),
        ("Ölke.Größ@example.org", "Ölke Größ", "MPT", "Land"),
        ("ANNA@example.org", "Anna Schmidt", "SDS", "freier Träger"),
        ("zoë@example.net", "Zoë", "", ""),
    ]
    assert [(p.line, p.text.split(":")[0]) for p in problems] == [
        (4, "not a valid address"), (5, "no e-mail address in this line"),
        (8, "anna@example.org appears twice; kept the first")]


def test_read_members_utf8_bom_commas_and_no_header() -> None:
    data = "\ufeffa@example.org,Anna\nb@example.org,Bernd\n".encode()
    rows, problems = read_members(data)
    assert [(r.address, r.name) for r in rows] == [("a@example.org", "Anna"),
                                                   ("b@example.org", "Bernd")]
    assert problems == []


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    assert cli(path, "init").returncode == 0
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "listserv", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=config.parent)


def test_members_import_list_export_remove(config: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "verteiler.csv"
    csv_file.write_bytes(OUTLOOK_CSV)
    result = cli(config, "members", "import", LIST, str(csv_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4 added, 0 unchanged, 3 skipped"
    assert "line 4: not a valid address" in result.stderr
    listing = cli(config, "members", "list", LIST)
    assert "jürgen.müller@schule.example  Jürgen Müller  (SchuSo, Stadt)" in listing.stdout
    assert "Ölke.Größ@example.org  Ölke Größ  (MPT, Land)" in listing.stdout
    assert listing.stderr.strip() == "4 member(s)"
    again = cli(config, "members", "import", LIST, str(csv_file))
    assert again.stdout.strip() == "0 added, 4 unchanged, 3 skipped"
    export = cli(config, "members", "export", LIST)
    assert export.stdout.splitlines()[0] == "E-Mail;Name;Funktion;Träger;Sprache;Status;Seit"
    assert len(export.stdout.splitlines()) == 5
    removed = cli(config, "members", "remove", LIST, "ANNA@example.org")
    assert removed.stdout.strip() == "1 removed, 0 unchanged, 0 skipped"
    assert cli(config, "members", "add", LIST, "not-an-address").returncode == 1
    with sealed.connect(config.parent / "var" / "listserv.sqlite3") as db:
        events = db.execute("SELECT event, detail FROM consent_log WHERE address = ?",
                            ("anna@example.org",)).fetchall()
    assert [e[0] for e in events] == ["added", "removed"]
    assert "verteiler.csv" in events[0][1]


def test_unknown_list_is_a_config_error(config: Path) -> None:
    result = cli(config, "members", "list", "nope@example.org")
    assert result.returncode == 2
    assert "no list 'nope@example.org' configured" in result.stderr


def test_privacy_export_and_erase(config: Path) -> None:
    assert cli(config, "members", "add", LIST, "anna@example.org").returncode == 0
    exported = json.loads(cli(config, "privacy", "export", "anna@example.org").stdout)
    assert exported["memberships"][0]["list_address"] == LIST
    assert exported["consent_log"][0]["event"] == "added"
    same = json.loads(cli(config, "members", "export-data", "ANNA@example.org").stdout)
    assert same == exported
    erased = cli(config, "members", "forget", "anna@example.org")
    assert erased.returncode == 0 and "members 1" in erased.stdout
    exported = json.loads(cli(config, "privacy", "export", "anna@example.org").stdout)
    assert exported["memberships"] == [] and exported["consent_log"] == []
    with sealed.connect(config.parent / "var" / "listserv.sqlite3") as db:
        (trace,) = db.execute("SELECT address, event FROM consent_log").fetchall()
    assert trace[1] == "erased" and "anna" not in trace[0]


async def test_held_list_show_approve_reject(clocked_daemon) -> None:
    import asyncio

    from tests.conftest import mail
    from tests.mailflow import Flow

    flow = Flow(clocked_daemon)
    config = clocked_daemon.config.path
    for subject in ("Erster Beitrag", "Zweiter Beitrag"):
        await flow.send(mail(sender="anna@example.org", subject=subject),
                        mail_from="anna@example.org", to=LIST)

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "listserv", *args, "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=config.parent)
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await run("held", "list")
    assert code == 0 and err.strip() == "2 held post(s)"
    assert "Erster Beitrag" in out and "anna@example.org" in out
    code, out, _ = await run("held", "show", "1")
    assert "Subject: Erster Beitrag" in out and "Liebe Kolleginnen" in out
    code, out, _ = await run("held", "approve", "1")
    assert code == 0 and out.startswith("post 1 approved")
    code, out, _ = await run("held", "reject", "2", "Bitte", "über", "den", "Träger")
    assert code == 0
    code, _, err = await run("held", "approve", "2")
    assert code == 1 and "not held" in err
    # The daemon's job queues the approved post; the rejection reached the poster.
    assert clocked_daemon.scheduler is not None
    assert await clocked_daemon.scheduler.run_now("publish_approved") == 1
    await flow.settled()
    assert [r[0] for r in flow.query("SELECT state FROM posts ORDER BY id")] == [
        "approved", "rejected"]
    assert "Bitte über den Träger" in flow.last_to("anna@example.org").get_body(
        ("plain",)).get_content()


def test_init_writes_a_dkim_key_and_prints_its_record(tmp_path: Path) -> None:
    key = tmp_path / "dkim" / "listserv.key"
    extra = (f'[dkim]\ndomain = "gelsenkirchen.de"\nselector = "listserv"\n'
             f'private_key = "{key}"\n')
    path = write_config(tmp_path, extra=extra)
    first = cli(path, "init")
    assert first.returncode == 0, first.stderr
    assert f"DKIM key {key}: created" in first.stdout
    assert 'listserv._domainkey.gelsenkirchen.de. IN TXT "v=DKIM1; k=rsa; p=' in first.stdout
    assert key.stat().st_mode & 0o077 == 0          # private: owner only
    second = cli(path, "init")
    assert f"DKIM key {key}: present" in second.stdout   # never overwritten
    assert cli(path, "check").returncode == 0
    key.write_text("not a key\n")
    bad = cli(path, "check")
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"{path}: [dkim] private_key: ")
    assert "Traceback" not in bad.stderr


def test_members_enable_undoes_a_bounce_disable(config: Path) -> None:
    assert cli(config, "members", "add", LIST, "anna@example.org").returncode == 0
    db_path = config.parent / "var" / "listserv.sqlite3"
    with sealed.connect(db_path) as db:
        db.execute("UPDATE members SET status = 'disabled', disabled_reason = 'bounces',"
                   " bounce_score = 5, disabled_notified_at = '2026-11-25T00:00:00.000000Z'")
    result = cli(config, "members", "enable", LIST, "ANNA@example.org", "bob@example.org")
    assert result.stdout.strip() == "1 enabled, 1 unchanged"
    with sealed.connect(db_path) as db:
        row = db.execute("SELECT status, bounce_score, disabled_notified_at FROM members"
                         ).fetchone()
        events = [r[0] for r in db.execute("SELECT event FROM consent_log ORDER BY id")]
    assert tuple(row) == ("enabled", 0.0, None)
    assert events == ["added", "enabled"]
