"""The Postfix recipe in deploy/postfix/, proved with a real Postfix.

A private Postfix instance (``postfix -c DIR``: a copy of /etc/postfix with
its own queue and data directories, log file and loopback ports; the
system's Postfix and its configuration are never touched) gets exactly the
lines of ``deploy/postfix/main.cf``, ``master.cf`` and ``listserv_transport``,
with only the ports changed. Then:

  smtplib -> Postfix "port 25" -> LMTP -> listserv (post_policy open)
          -> SMTP -> Postfix's loopback listener for listserv -> a sink
             (the sink stands in for the members' mail servers: relayhost)

Every member gets one DKIM-verifying copy with its VERP envelope sender; the
sub-addresses (``-confirm+TOKEN``, ``-bounces+VERP``) reach listserv too; an
unknown address of the domain and a foreign domain are refused at RCPT.
Skipped where Postfix is not installed or cannot be started (not root).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from listserv.config import Config
from listserv.delivery.plan import verp_sender
from listserv.store import keys
from tests.conftest import LIST, ROOT, FakeDns, mail, make_daemon, wait_for
from tests.delivery import test_transports as test_transports
from tests.delivery.test_end_to_end import rsa_key
from tests.delivery.test_sender import verifies
from tests.delivery.test_transports import Relay

serve = test_transports.serve  # the sink fixture

RECIPE = ROOT / "deploy" / "postfix"
SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
MEMBERS = ["anna@schule1.example", "bernd@schule2.example", "clara@schule2.example"]
LOCAL, DOMAIN = LIST.split("@")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postfix:
    """One private Postfix instance under ``base`` (config, queue, data, log)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.config = base / "etc"
        self.log = base / "postfix.log"
        self.started = False

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        binary = shutil.which(args[0], path=SBIN) or args[0]
        done = subprocess.run([binary, "-c", str(self.config), *args[1:]], capture_output=True,
                              text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr or done.stdout}")
        return done

    def postconf(self, *settings: str) -> None:
        self.run("postconf", "-e", *settings)

    def configure(self, *, inbound: int, outbound: int, lmtp: int, sink: int) -> None:
        shutil.copytree("/etc/postfix", self.config, symlinks=True)
        # This instance's own world: directories, log, loopback only, no TLS
        # (Debian's snakeoil certificate may be absent), quick retries.
        self.postconf(
            f"queue_directory = {self.base / 'queue'}", f"data_directory = {self.base / 'data'}",
            f"maillog_file = {self.log}", f"maillog_file_prefixes = {self.base}",
            "inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
            "myhostname = mx.test.invalid", "mydestination = localhost", "alias_maps =",
            "smtpd_tls_security_level = none", "smtp_tls_security_level = none",
            f"relayhost = [127.0.0.1]:{sink}",  # the members' mail servers
            "queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 2s",
        )
        # The recipe, line by line, with the paths of this instance.
        for line in (RECIPE / "main.cf").read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                self.postconf(line.replace("/etc/postfix/", f"{self.config}/"))
        transport = (RECIPE / "listserv_transport").read_text()
        (self.config / "listserv_transport").write_text(
            transport.replace("127.0.0.1:8024", f"127.0.0.1:{lmtp}"))
        self.run("postmap", f"hash:{self.config / 'listserv_transport'}")
        master = (RECIPE / "master.cf").read_text().replace("10025", str(outbound))
        with (self.config / "master.cf").open("a") as fh:
            fh.write("\n" + master)
        self.run("postconf", "-M#", "smtp/inet")  # nothing on the real port 25
        # "Port 25" of this test: what the Internet sees (relay only to relay_domains).
        self.run("postconf", "-M", f"127.0.0.1:{inbound}/inet = 127.0.0.1:{inbound} inet n - n"
                 " - - smtpd -o smtpd_relay_restrictions=reject_unauth_destination")
        self.run("postconf", "-F", "*/*/chroot = n")  # a chroot would need copies of /etc
        self.base.chmod(0o755)  # Postfix's daemons run as the postfix user
        (self.base / "queue").mkdir(mode=0o755)  # `postfix check` makes what is inside

    def start(self) -> None:
        self.run("postfix", "check")
        self.run("postfix", "start")
        self.started = True

    def master_pid(self) -> int | None:
        try:
            return int((self.base / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """``postfix stop``, then make sure the master (and with it its children) is gone."""
        pid = self.master_pid()
        self.run("postfix", "stop", check=False)
        deadline = time.monotonic() + 15
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)  # waiting for an outside process to exit: no event to wait on
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def unavailable() -> str | None:
    if shutil.which("postfix", path=SBIN) is None:
        return ("Postfix is not installed (Debian: DEBIAN_FRONTEND=noninteractive apt-get "
                "install -y --no-install-recommends postfix): deploy/postfix/ not proved")
    if os.geteuid() != 0:
        return "not root: a private Postfix instance must start as root to drop to 'postfix'"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no 'postfix' user: the Postfix package is not installed properly"
    return None


@pytest.fixture
def postfix() -> Iterator[Postfix]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp_path: its parents are 0700 and the postfix user must enter.
    base = Path(tempfile.mkdtemp(prefix="listserv-postfix-"))
    instance = Postfix(base)
    try:
        yield instance
    finally:
        if instance.started:
            instance.stop()
        shutil.rmtree(base, ignore_errors=True)


def send(port: int, rcpts: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
    """One mail to Postfix; also try two addresses that must be refused at RCPT."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        refused = smtp.sendmail("poster@example.org", rcpts, data)
        for probe in (f"nobody@{DOMAIN}", "someone@elsewhere.example"):
            smtp.rset()
            smtp.mail("poster@example.org")
            refused[probe] = smtp.rcpt(probe)
    return refused


async def test_a_post_passes_postfix_to_listserv_over_lmtp_and_back_out_to_members(
    postfix: Postfix, tmp_path: Path, config_factory: Callable[..., Config], dns: FakeDns,
    serve: Callable[..., Any],
) -> None:
    sink = await serve(Relay())
    inbound, outbound = free_port(), free_port()
    table, record = rsa_key(tmp_path)
    config = config_factory(
        server={"protocol": "lmtp"},
        delivery={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": outbound,
                  "smtp_starttls": "off", "verp": True},
        lists=[{"address": LIST, "display_name": "Netzwerk Soziale Arbeit an Schulen",
                "moderators": ["koordination@gelsenkirchen.de"], "subject_prefix": "[SAS]",
                "post_policy": "open"}],
        extra=table)
    daemon = make_daemon(config, dns)
    _, lmtp = await daemon.start()
    try:
        assert daemon.store is not None
        async with daemon.store.transaction() as db:
            await db.executemany(
                "INSERT INTO members (list_address, address, joined_at) VALUES (?, ?, ?)",
                [(LIST, m, "2026-01-01T00:00:00.000000Z") for m in MEMBERS])
        try:
            await asyncio.to_thread(postfix.configure, inbound=inbound, outbound=outbound,
                                    lmtp=lmtp, sink=sink.port)
            await asyncio.to_thread(postfix.start)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"a private Postfix instance does not start here: {exc}\n"
                        f"{postfix.log_text()[-2000:]}")
        confirm = f"{LOCAL}-confirm+{'a' * 32}@{DOMAIN}"
        bounces = f"{LOCAL}-bounces+gone=schule9.example@{DOMAIN}"
        data = mail(sender="poster@example.org", subject="Fachtag im März",
                    body="Liebe Kolleginnen und Kollegen,\n\nGrüße aus Gelsenkirchen.\n")
        refused = await asyncio.to_thread(send, inbound, [LIST, confirm, bounces], data)
        assert refused[f"nobody@{DOMAIN}"][0] == 550, refused  # relay_recipient_maps
        assert refused["someone@elsewhere.example"][0] == 554, refused  # never an open relay
        assert set(refused) == {f"nobody@{DOMAIN}", "someone@elsewhere.example"}

        def copies() -> Counter[str]:
            return Counter(r for m in sink.messages if m.mail_from.startswith(f"{LOCAL}-bounces")
                           for r in m.rcpts if r in MEMBERS)

        try:
            await wait_for(lambda: sum(copies().values()) >= len(MEMBERS), timeout=30)
        except AssertionError:
            raise AssertionError(f"copies {copies()}; Postfix log:\n"
                                 f"{postfix.log_text()[-3000:]}") from None
        assert copies() == Counter(MEMBERS)
        for received in sink.messages:
            if not set(received.rcpts) & set(MEMBERS):
                continue
            (rcpt,) = received.rcpts
            assert received.mail_from == verp_sender(
                keys.key(config.server.data_dir, keys.VERP_KEY),
                config.lists[0].bounces_address, LIST, rcpt)
            assert verifies(received.data, record.encode()), "Postfix kept the signature"
            copy = message_from_bytes(received.data, policy=default)
            assert copy["Subject"] == "[SAS] Fachtag im März"
            assert "Postfix" in " ".join(copy.get_all("Received") or [])
        rows = await daemon.store.fetchall(
            "SELECT rcpt, role, unseal_text(extension) AS extension FROM inbox ORDER BY id")
        # The extension (token, VERP part) is stored sealed, never in rcpt (issue 12).
        assert {(r["rcpt"], r["extension"]): r["role"] for r in rows} == {
            (LIST, ""): "post", (confirm.replace("+" + "a" * 32, ""), "a" * 32): "confirm",
            (bounces.replace("+gone=schule9.example", ""), "gone=schule9.example"): "bounces"}
        log = postfix.log_text()
        assert f"relay=127.0.0.1[127.0.0.1]:{lmtp}" in log and "status=sent" in log
    finally:
        await daemon.stop()
