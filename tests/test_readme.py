"""What a newcomer does: the README's commands, as written, on a clean copy of the tree.

The README's first command is run step by step in a copy of the tracked
files (a fresh virtual environment, the install, ``init``, then ``serve``
in the background), its "first mail" snippet is run as written, and the
reply that lands in the Maildir outbox must carry a DKIM signature that
dkimpy verifies against the DNS record ``init`` printed. The only liberty
taken: ``serve`` runs in the background, and the test waits for its
``event=listening`` line instead of a second terminal.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import dkim
import pytest

from listserv.ops.preflight import port_problem
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
FIRST_SCREEN_HEADING = "## A first mail"


def sh_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)]


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 3)
    return README[start:end if end > 0 else None]


def test_the_first_screen_has_exactly_the_two_commands_and_ci_runs_the_second() -> None:
    first_screen = README[:README.index(FIRST_SCREEN_HEADING)]
    commands = sh_blocks(first_screen)
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("listserv serve") and "pytest" in commands[1]
    assert all(c.startswith("python3 -m venv .venv && ") for c in commands)
    assert commands[1] in (ROOT / ".ci" / "run").read_text().splitlines()
    where = section("A first mail")
    assert "var/outbox/new" in where and "--config" in where and "LISTSERV_CONFIG" in where


def clean_copy(target: Path) -> Path:
    """The tracked files of this tree (as they are on disk), nothing else."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            timeout=60)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout, cannot list its files: {listed.stderr.decode()}")
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def newcomer_env() -> dict[str, str]:
    """The operator's shell: no PYTHONPATH into this tree, no virtual environment active."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "LISTSERV_CONFIG")}
    return env


class Background:
    """``listserv serve`` as the README starts it, its log read line by line."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.log.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no log line matching {pattern!r}; got:\n{''.join(self.log)}")


def until(condition: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll ``condition`` until it is truthy (``wait_for`` outside an event loop)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.05)
    return result


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    yield clean_copy(tmp_path / "listserv")


def test_a_newcomer_gets_a_signed_reply_by_following_the_readme(tree: Path) -> None:
    for port, what in ((8025, "SMTP"), (8080, "web")):
        problem = port_problem("127.0.0.1", port)
        if problem is not None:
            pytest.skip(f"the embedded default listens on 127.0.0.1:{port} ({what}), which is"
                        f" taken on this machine ({problem})")
    run_daemon, run_tests = sh_blocks(README[:README.index(FIRST_SCREEN_HEADING)])
    *setup, serve = run_daemon.split(" && ")
    env = newcomer_env()
    printed = "".join(step(command, tree, env) for command in setup)
    # init printed the record to publish; it is all a receiver would know of the key.
    record = re.search(r"^(\S+)\._domainkey\.(\S+)\. IN TXT (.+)$", printed, re.M)
    assert record, printed
    selector, domain = record.group(1), record.group(2)
    txt = "".join(re.findall(r'"([^"]*)"', record.group(3))).encode()
    daemon = Background(shlex.split(serve), tree, env)
    try:
        daemon.wait_line(r"event=listening host=127\.0\.0\.1 port=8025")
        assert "signed=yes selector=listserv" in "".join(daemon.log)
        first_mail = sh_blocks(section("A first mail"))[0]
        sent = subprocess.run(["bash", "-c", first_mail], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        outbox = tree / "var" / "outbox" / "new"

        def replies_to_anna() -> list[bytes]:
            found = [f.read_bytes() for f in outbox.glob("*")] if outbox.is_dir() else []
            return [data for data in found if b"\nDelivered-To: anna@example.org" in data]

        (reply,) = until(replies_to_anna)
        signature = message_from_bytes(reply)["DKIM-Signature"]
        assert f"s={selector};" in signature.replace(" ", "") and f"d={domain};" in signature

        def dns(name: bytes, timeout: int = 5) -> bytes | None:
            return txt if name.decode().rstrip(".") == f"{selector}._domainkey.{domain}" \
                else None

        assert dkim.verify(reply, dnsfunc=dns), "the reply's DKIM signature does not verify"
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=30) == 0
    # The second command in the same tree: its install, then its test run on one test file
    # (the whole suite is what .ci/run runs; here it would run this very test again).
    *setup, pytest_step = run_tests.split(" && ")
    for command in setup:
        step(command, tree, env)
    assert "passed" in step(f"{pytest_step} -p no:cacheprovider tests/test_clock.py", tree, env)


def step(command: str, tree: Path, env: dict[str, str]) -> str:
    """One step of a README command, in the copy, as the operator's shell runs it."""
    result = subprocess.run(command, shell=True, cwd=tree, env=env, capture_output=True,
                            text=True, timeout=180)
    if command.startswith("python3 -m venv") and result.returncode != 0:
        pytest.skip(f"cannot make a virtual environment here: {result.stderr.strip()}")
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout
