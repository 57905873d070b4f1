"""End to end: a post queued in a running daemon reaches every enabled member, signed.

Members are put straight into the members table, the post is queued as the
POST handler queues it (``outbox.enqueue_post`` in one transaction, then
``sender.wake()``), and a real aiosmtpd relay on loopback receives the
copies. Every copy must verify with dkimpy against the published key, and
with Perl's Mail::DKIM (an independent implementation) where it is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from listserv.config import Config
from listserv.daemon import Daemon
from listserv.delivery import transform
from listserv.delivery.plan import verp_sender
from listserv.delivery.signing import generate_key, public_key_record
from listserv.outbox import queue as outbox
from listserv.store import keys
from tests.conftest import LIST, mail, wait_for
from tests.delivery import test_transports as test_transports
from tests.delivery.test_sender import BOUNCES, verifies
from tests.delivery.test_transports import Relay

serve = test_transports.serve  # the relay fixture

MEMBERS = [f"mitglied{i}@schule{i % 4}.example" for i in range(12)]
DISABLED = "weg@schule9.example"

PERL_VERIFIER = r"""
use strict; use warnings;
use Mail::DKIM::Verifier;
my %db;
open my $fh, '<', $ENV{DKIM_FAKE_DNS} or die "$!";
while (<$fh>) { chomp; next if /^\s*([#;]|$)/; my ($k, $v) = split /\s+/, $_, 2;
                $k =~ s/\.$//; $db{lc $k} = $v; }
no warnings 'redefine';
*Mail::DKIM::DNS::query = sub {
    my ($name, $type) = @_; $name = lc $name; $name =~ s/\.$//;
    die "not cached: $name\n" unless exists $db{$name};
    my $v = $db{$name};
    return (bless \$v, 'FakeTXT');
};
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) { s/\015?\012/\015\012/; $dkim->PRINT($_); }
$dkim->CLOSE;
printf "result=%s detail=%s\n", $dkim->result, $dkim->result_detail;
package FakeTXT; sub type { 'TXT' } sub char_str_list { ${ $_[0] } } sub txtdata { ${ $_[0] } }
"""


def perl_dkim_available() -> bool:
    if shutil.which("perl") is None:
        return False
    return subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e1"],
                          capture_output=True).returncode == 0


@pytest.fixture
async def daemons() -> AsyncIterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        await d.stop()


async def run_daemon(config: Config, daemons: list[Daemon]) -> Daemon:
    daemon = Daemon(config)
    await daemon.start()
    daemons.append(daemon)
    return daemon


def rsa_key(tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "dkim" / "listserv.key"
    key = generate_key(path, "rsa", 2048)
    table = (f'\n[dkim]\ndomain = "gelsenkirchen.de"\nselector = "test"\n'
             f'private_key = "{path}"\n')
    return table, public_key_record(key)


async def queue_post(daemon: Daemon, *, verp: bool, personalize: bool = False) -> None:
    assert daemon.store is not None and daemon.sender is not None
    mlist = daemon.config.lists[0]
    msg = message_from_bytes(
        mail(subject="Einladung zum Fachtag", body="Liebe Kolleginnen,\n\nbis bald.\n"),
        _class=EmailMessage, policy=default)
    raw = transform.list_copy(msg, mlist, add_footer=not personalize).as_bytes()
    now = daemon.store.clock()
    async with daemon.store.transaction() as db:
        await db.executemany(
            "INSERT INTO members (list_address, address, joined_at, status) VALUES (?, ?, ?, ?)",
            [(LIST, a, "2026-01-01T00:00:00.000000Z", "enabled") for a in MEMBERS]
            + [(LIST, DISABLED, "2026-01-01T00:00:00.000000Z", "disabled")])
        await outbox.enqueue_post(db, now=now, list_address=LIST, mail_from=BOUNCES, raw=raw,
                                  message_id="<fachtag@example.org>", inbox_id=None,
                                  verp=verp, personalize=personalize)
    daemon.sender.wake()


@pytest.mark.parametrize("mode", ["bulk", "verp", "personalize"])
async def test_every_enabled_member_gets_one_signed_copy_through_the_relay(
    mode: str, tmp_path: Path, config_factory: Callable[..., Config],
    serve: Callable[..., Any], daemons: list[Daemon],
) -> None:
    relay = await serve(Relay())
    table, record = rsa_key(tmp_path)
    config = config_factory(delivery={
        "transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": relay.port,
        "smtp_starttls": "off", "verp": mode != "bulk", "personalize": mode == "personalize",
        "max_recipients_per_transaction": 5}, extra=table)
    daemon = await run_daemon(config, daemons)
    await queue_post(daemon, verp=mode != "bulk", personalize=mode == "personalize")
    await wait_for(lambda: sum(relay.delivered().values()) >= len(MEMBERS), timeout=30)
    assert relay.delivered() == Counter({m: 1 for m in MEMBERS})
    for received in relay.messages:
        assert verifies(received.data, record.encode()), received.rcpts
        if mode != "bulk":
            key = keys.key(config.server.data_dir, keys.VERP_KEY)
            assert received.mail_from == verp_sender(key, BOUNCES, LIST, received.rcpts[0])
        copy = message_from_bytes(received.data, policy=default)
        assert copy["Subject"] == "[SAS] Einladung zum Fachtag"
        assert copy["List-Id"].startswith('"Netzwerk Soziale Arbeit an Schulen"')
    distinct = {m.data for m in relay.messages}
    assert len(distinct) == (len(MEMBERS) if mode == "personalize" else 1)
    assert daemon.sender is not None
    await wait_for(lambda: daemon.sender.sent == len(MEMBERS))
    if not perl_dkim_available():
        pytest.skip("Perl Mail::DKIM not installed (apt-get install libmail-dkim-perl): "
                    "copies verified with dkimpy only")
    script = tmp_path / "dkimverify.pl"
    script.write_text(PERL_VERIFIER)
    dns = tmp_path / "dns.txt"
    dns.write_text(f"test._domainkey.gelsenkirchen.de {record}\n")
    for data in distinct:
        out = subprocess.run(["perl", str(script)], input=data, capture_output=True,
                             env={"DKIM_FAKE_DNS": str(dns), "PATH": "/usr/bin:/bin"},
                             check=True)
        assert out.stdout.startswith(b"result=pass"), out.stdout + out.stderr


async def test_maildir_mode_writes_one_file_per_member(
    tmp_path: Path, config_factory: Callable[..., Config], daemons: list[Daemon],
) -> None:
    table, record = rsa_key(tmp_path)
    config = config_factory(delivery={"transport": "maildir", "verp": True}, extra=table)
    daemon = await run_daemon(config, daemons)
    await queue_post(daemon, verp=True)
    new = config.server.data_dir / "outbox" / "new"
    await wait_for(lambda: len(list(new.iterdir())) >= len(MEMBERS), timeout=30)
    seen: Counter[str] = Counter()
    for path in new.iterdir():
        data = path.read_bytes()
        first, second, rest = data.split(b"\n", 2)  # the copy's own line ends (LF here)
        rcpt = second.removeprefix(b"Delivered-To: ").decode()
        seen[rcpt] += 1
        key = keys.key(config.server.data_dir, keys.VERP_KEY)
        assert first == f"Return-Path: <{verp_sender(key, BOUNCES, LIST, rcpt)}>".encode()
        assert verifies(rest, record.encode())
    assert seen == Counter({m: 1 for m in MEMBERS})
    assert not list((config.server.data_dir / "outbox" / "tmp").iterdir())
