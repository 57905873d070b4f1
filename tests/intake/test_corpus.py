"""Every odd, malformed and bounced mail of the shared corpus through intake and processor.

Each is either stored with 250 or refused with one of our defined codes,
and the daemon keeps answering. Includes the files on which a plain call of
Python's ``email`` package raises (``python-email-hazards.json``).
"""

from __future__ import annotations

import json

import aiosmtplib
import pytest

from listserv.daemon import Daemon
from listserv.intake import codes as status
from tests import sealed
from tests.conftest import CORPUS, LIST, mail, wait_for

DEFINED = {line.split(" ", 1)[0] for line in vars(status).values()
           if isinstance(line, str) and line[:3].isdigit()}


def corpus_files() -> list:
    files = []
    for folder in ("messages", "bounces"):
        base = CORPUS / folder
        if base.is_dir():
            files += sorted(p for p in base.rglob("*") if p.is_file()
                            and p.suffix not in {".json", ".md", ".tsv", ".txt_expected"}
                            and p.name not in {"LICENSE", "README", "MANIFEST.tsv"})
    return files


@pytest.fixture(scope="module")
def files() -> list:
    found = corpus_files()
    if not found:
        pytest.skip(f"corpus not found at {CORPUS}")
    return found


async def test_every_corpus_mail_is_stored_or_refused_with_a_defined_code(
    files, daemon: Daemon
) -> None:
    assert daemon.address is not None
    host, port = daemon.address
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=30)
    await smtp.connect()
    await smtp.ehlo()
    accepted = refused = 0
    codes: dict[str, int] = {}
    for path in files:
        raw = path.read_bytes()
        await smtp.mail("corpus@example.org")
        await smtp.rcpt(LIST)
        try:
            reply = await smtp.data(raw)
            code = f"{reply.code}"
            accepted += 1
        except aiosmtplib.SMTPResponseException as exc:
            code = f"{exc.code}"
            refused += 1
            await smtp.rset()
        assert code in DEFINED, f"{path}: {code}"
        codes[code] = codes.get(code, 0) + 1
    await smtp.quit()
    print(f"\ncorpus through intake: {len(files)} files, {accepted} accepted, "
          f"{refused} refused, codes {codes}")
    assert accepted + refused == len(files)
    assert accepted >= len(files) * 0.99

    # The processor takes every stored row and the daemon still answers.
    assert daemon.store is not None

    def unfinished() -> int:
        with sealed.connect(daemon.store.path) as db:
            return db.execute("SELECT count(*) FROM inbox WHERE state != 'done'").fetchone()[0]

    await wait_for(lambda: unfinished() == 0, timeout=120)
    smtp = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10)
    await smtp.connect()
    errors, _ = await smtp.sendmail("anna@example.org", [LIST], mail())
    await smtp.quit()
    assert errors == {}


def test_hazard_files_are_part_of_the_run(files) -> None:
    hazards_path = CORPUS / "python-email-hazards.json"
    if not hazards_path.exists():
        pytest.skip("python-email-hazards.json not in corpus")
    hazards = json.loads(hazards_path.read_text())
    entries = hazards if isinstance(hazards, list) else hazards.get("files", hazards)
    names = {str(e["path"] if isinstance(e, dict) else e) for e in entries}
    present = {str(p.relative_to(CORPUS)) for p in files}
    assert len(names) >= 70
    assert names <= present, sorted(names - present)[:5]
