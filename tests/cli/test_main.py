"""The operator's first hour (issue 13): every ordinary mistake ends in one clear line.

Each test runs the real ``listserv`` executable in a subprocess, as an
operator would, and holds it to: the exit status, at most three lines of
output, no ``Traceback``; for the port and the lock, the daemon that was
there first still answers SMTP.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from listserv.clock import from_iso, iso, local_text
from tests import pgbridge, sealed
from tests.cli.test_serve import ENV, Served
from tests.conftest import LIST, ROOT, mail, write_config

DKIM_TABLE = ('\n[dkim]\ndomain = "gelsenkirchen.de"\nselector = "listserv"\n'
              'private_key = "dkim/listserv.key"\n')


def listserv(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "listserv", *args], cwd=cwd, env=env or ENV,
                          capture_output=True, text=True, timeout=60)


def one_clear_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """Exit ``status``, at most three lines in all, no traceback; the output."""
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    assert "Traceback" not in output, output
    assert 1 <= len(output.strip().splitlines()) <= 3, output
    return output


def answers_smtp(port: int) -> bool:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        return smtp.noop()[0] == 250 and smtp.sendmail("anna@example.org", [LIST],
                                                       mail(subject="still here")) == {}


@pytest.fixture
def first(tmp_path: Path) -> Iterator[Served]:
    """A daemon already running: the one that must survive the operator's mistakes."""
    config = write_config(tmp_path)
    served = Served(config)
    yield served
    if served.proc.poll() is None:
        served.stop()


def test_port_in_use_is_one_line_at_once_and_the_first_daemon_goes_on(
    first: Served, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    config = write_config(other, server={"port": first.port})
    started = time.monotonic()
    out = one_clear_line(listserv("serve", "--config", str(config), cwd=other), 1)
    assert time.monotonic() - started < 15            # it ends; it does not live on unbound
    assert f"cannot listen on 127.0.0.1:{first.port} (SMTP): address already in use" in out
    assert "[server] port" in out and str(config) in out
    # The web port the same way.
    web = other / "web"
    web.mkdir()
    config = write_config(web, extra=f'\n[web]\nport = {first.port}\nbase_url = "http://x"\n')
    out = one_clear_line(listserv("serve", "--config", str(config), cwd=web), 1)
    assert f"127.0.0.1:{first.port} (web): address already in use" in out
    assert "[web] port" in out
    assert first.proc.poll() is None and answers_smtp(first.port)


def test_a_second_daemon_on_the_same_data_dir_names_the_first(
    first: Served, tmp_path: Path
) -> None:
    second = tmp_path / "second"
    second.mkdir()
    config = write_config(second, server={"data_dir": str(tmp_path / "var")})  # port 0: free
    out = one_clear_line(listserv("serve", "--config", str(config), cwd=second), 1)
    assert f"another listserv (PID {first.proc.pid}) is already serving {tmp_path / 'var'}" \
        in out
    assert first.proc.poll() is None and answers_smtp(first.port)
    # Commands that read, or write through SQLite's own locking, still run beside it.
    assert listserv("members", "add", "b@example.org", "--config", str(first.config),
                    cwd=tmp_path).returncode == 0
    status = listserv("status", "--json", "--config", str(first.config), cwd=tmp_path)
    assert json.loads(status.stdout)["lists"][0]["members"] == {"enabled": 1}
    # The lock goes with the daemon: after it stops, the second one may start.
    assert first.stop() == 0
    again = Served(config)
    assert answers_smtp(again.port)
    assert again.stop() == 0


def test_a_data_dir_that_cannot_be_made_is_found_by_check_and_named_by_init_and_serve(
    tmp_path: Path
) -> None:
    (tmp_path / "in-the-way").write_text("a file where a directory should be\n")
    config = write_config(tmp_path, server={"data_dir": str(tmp_path / "in-the-way" / "var")})
    for command in ("check", "init", "serve"):
        out = one_clear_line(listserv(command, "--config", str(config), cwd=tmp_path), 2)
        assert f"{config}: [server] data_dir: cannot create {tmp_path}/in-the-way/var:" \
               f" {tmp_path}/in-the-way is a file, not a directory" in out, command
    out = one_clear_line(listserv("status", "--config", str(config), cwd=tmp_path), 1)
    assert "[server] data_dir: cannot create" in out
    commands = [["members", "list"], ["held", "list"]]
    if not pgbridge.ENABLED:   # on PostgreSQL backup says pg_dump makes them (test_backup.py)
        commands.append(["backup"])
    for command in commands:
        out = one_clear_line(listserv(*command, "--config", str(config), cwd=tmp_path), 1)
        assert "run 'listserv init'" in out, command


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no 'permission denied'"
                                              " to provoke")
def test_a_data_dir_without_permission_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = write_config(tmp_path, server={"data_dir": str(locked / "var")})
    for command in ("check", "init", "serve"):
        out = one_clear_line(listserv(command, "--config", str(config), cwd=tmp_path), 2)
        assert "is not writable for this user" in out


def test_no_operator_mistake_ends_in_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    c = ["--config", str(config)]
    (tmp_path / "broken.toml").write_text("[server\nport = 1\n")
    mistakes: list[tuple[list[str], int, str]] = [
        (["status", "--config", str(tmp_path / "nowhere.toml")], 2, "file not found"),
        (["check", "--config", str(tmp_path / "broken.toml")], 2, "not valid TOML"),
        (["members", "list", *c], 1, "no database"),
    ]
    for args, status, words in mistakes:
        assert words in one_clear_line(listserv(*args, cwd=tmp_path), status), args
    assert listserv("init", *c, cwd=tmp_path).returncode == 0
    mistakes = [
        (["members", "list", "nolist@example.org", *c], 2, "no list 'nolist@example.org'"),
        (["members", "import", str(tmp_path / "missing.csv"), *c], 1, "cannot read"),
        (["members", "add", "not-an-address", *c], 1, "not a valid address"),
        (["held", "show", "4711", *c], 1, "no post 4711"),
        (["held", "approve", "x", *c], 2, "invalid int value"),
        (["frobnicate", *c], 2, "invalid choice"),
    ]
    for args, status, words in mistakes:
        out = one_clear_line(listserv(*args, cwd=tmp_path), status)
        assert words in out, (args, out)


def test_cli_habits_options_anywhere_pipes_one_list_and_local_times(
    first: Served, tmp_path: Path
) -> None:
    config = str(first.config)
    # --config and --log-level before the subcommand, after it, and mixed.
    for args in (["--config", config, "status"], ["status", "--config", config],
                 ["--log-level", "debug", "status", "--config", config],
                 ["--config", config, "members", "list"]):
        result = listserv(*args, cwd=tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
    # The reader goes away before we write (listserv status | head): no traceback.
    proc = subprocess.Popen([sys.executable, "-m", "listserv", "--config", config, "status"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141 and err == "", err
    # One list configured: no LIST argument needed; a mistyped list is not added as a member.
    added = listserv("members", "add", "zoe@example.org", "--config", config, cwd=tmp_path)
    assert added.stdout.strip() == "1 added, 0 unchanged, 0 skipped"
    typo = listserv("members", "add", LIST.replace(".de", ".d"), "x@example.org",
                    "--config", config, cwd=tmp_path)
    assert f"did you mean {LIST}?" in one_clear_line(typo, 2)
    forgot = listserv("members", "add", LIST, "--config", config, cwd=tmp_path)
    assert "is a list, not a member" in one_clear_line(forgot, 2)
    listing = listserv("members", "list", "--config", config, cwd=tmp_path)
    assert listing.stdout.splitlines() == ["zoe@example.org"]
    # Times of held posts and status: the server's zone, clock.local_text's one format.
    with smtplib.SMTP("127.0.0.1", first.port, timeout=10) as smtp:
        smtp.sendmail("anna@example.org", [LIST], mail(subject="Fachtag"))
    first.wait_line(r"event=processed .*outcome=\"held")
    db = sealed.connect(first.config.parent / "var" / "listserv.sqlite3")
    (created,) = db.execute("SELECT created_at FROM posts").fetchone()
    db.close()
    berlin = ZoneInfo("Europe/Berlin")
    shown = local_text(from_iso(created), berlin, "de")
    held = listserv("held", "list", "--config", config, cwd=tmp_path)
    assert re.match(rf"\s+1  {re.escape(shown)}  {LIST}  anna@example.org  Fachtag", held.stdout)
    show = listserv("held", "show", "1", "--config", config, cwd=tmp_path).stdout
    assert f"Held since: {shown} (expires " in show
    assert "Date: 25.11.2026, 10:00 Uhr" in show         # the sender's +0100 header, in Berlin
    status = listserv("status", "--config", config, cwd=tmp_path).stdout
    assert re.search(r"listserv status at \d\d\.\d\d\.\d{4}, \d\d:\d\d Uhr \(Europe/Berlin\)",
                     status)


def test_every_positional_argument_says_what_it_wants() -> None:
    from listserv.cli.main import build_parser

    def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    missing = []
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):   # each subcommand's line
                missing += [f"{parser.prog} {c.dest}" for c in action._choices_actions
                            if not c.help]
            elif not action.option_strings and not action.help:
                missing.append(f"{parser.prog} {action.dest}")
    assert missing == []
    text = " ".join(listserv("members", "add", "--help", cwd=ROOT).stdout.split())
    assert "may be left out when only one list is configured" in text


def test_a_bug_is_one_line_and_debug_shows_where(monkeypatch, capsys) -> None:
    from listserv.cli import main as cli

    def broken(args):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_run", broken)
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: a bug" in err
    assert "Traceback" not in err
    assert cli.main(["--log-level", "DEBUG", "status"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_signing_is_on_by_default_and_serve_says_where_mail_goes(tmp_path: Path) -> None:
    shipped = (ROOT / "config" / "listserv.toml").read_text()
    assert re.search(r"^\[dkim\]", shipped, re.M), "the embedded default signs"
    config = write_config(tmp_path, extra=DKIM_TABLE)
    out = one_clear_line(listserv("serve", "--config", str(config), cwd=tmp_path), 2)
    assert "[dkim] private_key" in out and "run 'listserv init'" in out
    init = listserv("init", "--config", str(config), cwd=tmp_path)
    assert init.returncode == 0 and "DKIM key" in init.stdout and "created" in init.stdout
    assert "listserv._domainkey.gelsenkirchen.de. IN TXT" in init.stdout
    served = Served(config)
    try:
        first_lines = served.log[:3]
        assert "event=starting" in first_lines[0]
        database = tmp_path / "var" / "listserv.sqlite3"
        named = pgbridge.url_for(database) if pgbridge.ENABLED else None
        assert (f'database="{named}"' if named else f"database={database}") in first_lines[0]
        assert f"to=maildir:{tmp_path / 'var' / 'outbox' / 'new'} signed=yes selector=listserv" \
            in first_lines[1]
    finally:
        assert served.stop() == 0
    # A relay without signing: status says so and exits 1.
    relay = tmp_path / "relay"
    relay.mkdir()
    config = write_config(relay, delivery={"transport": "smtp", "smtp_port": 2525})
    assert listserv("init", "--config", str(config), cwd=relay).returncode == 0
    status = listserv("status", "--config", str(config), cwd=relay)
    assert status.returncode == 1
    assert "mail goes to the relay 127.0.0.1:2525 unsigned" in status.stdout


def until(condition: Callable[[], Any], timeout: float = 10) -> Any:
    """Poll ``condition`` until it is truthy (wait_for, for code outside an event loop)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.05)
    return result


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_json_and_healthz_tell_a_monitor_the_same(tmp_path: Path) -> None:
    web_port = free_port()
    config = write_config(tmp_path, extra=f'\n[web]\nport = {web_port}\nbase_url = "http://x"\n')
    served = Served(config)
    try:
        served.wait_line(r"event=web_listening")
        status = listserv("status", "--json", "--config", str(config), cwd=tmp_path)
        facts = json.loads(status.stdout)
        assert status.returncode == 0 and facts["healthy"] is True and facts["reasons"] == []
        assert {"inbox", "deliveries", "oldest_due_delivery", "lists", "last_backup",
                "next_runs", "delivery"} <= set(facts)
        assert facts["lists"][0]["held"] == 0 and "backup" in facts["next_runs"]
        code, body = get(f"http://127.0.0.1:{web_port}/healthz")
        assert code == 200 and body["healthy"] is True
        # Something needs a person: a mail received an hour ago and never handled.
        with sealed.connect(tmp_path / "var" / "listserv.sqlite3") as db:
            db.execute("INSERT INTO inbox (received_at, peer, mail_from, rcpt, list_address,"
                       " role, size, raw, state, attempts) VALUES (?, 'p', 'a@b.de', ?, ?,"
                       " 'post', 1, ?, 'failed', 5)",
                       (iso(datetime.now(UTC) - timedelta(hours=1)), LIST, LIST, b"\x00"))
            db.execute("UPDATE inbox SET handled_at = received_at")
        status = listserv("status", "--json", "--config", str(config), cwd=tmp_path)
        facts = json.loads(status.stdout)
        assert status.returncode == 1 and facts["healthy"] is False
        # The web endpoint reads the facts at most once a second: wait for the new ones.
        code, body = until(lambda: (a := get(f"http://127.0.0.1:{web_port}/healthz"))[0] == 503
                           and a)
        assert body["reasons"] == facts["reasons"]
        assert "1 received mails failed in the last 24 h" in facts["reasons"][0]
    finally:
        assert served.stop() == 0
