"""``listserv archive import MBOX [LIST]`` as an operator runs it: counts, progress, faults."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LIST, MODERATOR, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "listserv", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=config.parent)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    assert cli(path, "init").returncode == 0
    return path


def sent_folder(path: Path) -> Path:
    box = mailbox.mbox(path)
    for n, to in enumerate([LIST, LIST, "kollegin@schule.example", LIST]):
        box.add((f"From: Koordination <{MODERATOR}>\nTo: {to}\nSubject: Rundmail {n}\n"
                 f"Message-ID: <r{n % 3}@gelsenkirchen.de>\nDate: Mon, 2 Nov 2026 09:00:00"
                 f" +0100\n\nTermine für den Fachtag.\n").encode())
    box.flush()
    return path


def test_import_prints_counts_and_progress(config: Path, tmp_path: Path) -> None:
    result = cli(config, "archive", "import", str(sent_folder(tmp_path / "Gesendet")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        f"2 post(s) imported into the archive of {LIST}; 2 skipped (1 duplicate,"
        " 1 not for this list)")
    assert "read 4 of 4 mails" in result.stderr
    again = cli(config, "archive", "import", str(tmp_path / "Gesendet"), LIST)
    assert "0 post(s) imported" in again.stdout and "3 duplicate" in again.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["archive", "import", "/nonexistent/box"], "/nonexistent/box: no such mailbox file"),
    (["archive", "import", "BOX", "nix@x.de"], "no list 'nix@x.de' configured"),
])
def test_operator_faults_are_one_line(config: Path, tmp_path: Path, args: list[str],
                                      says: str) -> None:
    sent_folder(tmp_path / "BOX")
    result = cli(config, *[str(tmp_path / "BOX") if a == "BOX" else a for a in args])
    assert result.returncode != 0
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
