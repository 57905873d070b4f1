"""DKIM signing: our signatures verify with dkimpy, tampering breaks them, weak keys are refused."""

from __future__ import annotations

import base64
import email
import json
import re
import stat
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import CanonicalizationPolicy
from hypothesis import given
from hypothesis import strategies as st

from listserv.config import DkimConfig, ListConfig
from listserv.delivery.signing import (
    DkimKeyError,
    PrivateKey,
    Signer,
    canonical_body,
    dns_txt_record,
    generate_key,
    load_private_key,
    public_key_record,
    signed_header_names,
    split_message,
)
from listserv.delivery.transform import list_copy
from tests.conftest import CORPUS, LIST, MODERATOR
from tests.delivery.test_transform import CORPUS_FILES, SAS

VECTORS = CORPUS / "dkim"
DOMAIN, SELECTOR = "gelsenkirchen.de", "listserv"
MESSAGE = (b"From: Anna Beispiel <anna@example.org>\r\nTo: " + LIST.encode() + b"\r\n"
           b"Subject: [SAS] Fachtag\r\nDate: Tue, 25 Nov 2025 10:00:00 +0100\r\n"
           b"Message-ID: <1@example.org>\r\nList-Id: <sas.gelsenkirchen.de>\r\n\r\n"
           b"Hallo  zusammen,\t\r\nbis bald.\r\n\r\n\r\n")


def dns_for(records: dict[str, str]) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc``: answer TXT queries from a table, like the vectors' README."""
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        answer = records.get(name.decode().rstrip(".").lower())
        return answer.encode() if answer else None
    return dnsfunc


def verify(signed: bytes, key: PrivateKey, domain: str = DOMAIN,
           selector: str = SELECTOR) -> bool:
    dnsfunc = dns_for({f"{selector}._domainkey.{domain}": public_key_record(key)})
    return dkim.verify(signed, dnsfunc=dnsfunc)


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def key(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PrivateKey:
    return generate_key(tmp_path_factory.mktemp("keys") / f"{request.param}.pem", request.param)


def test_signature_verifies_with_dkimpy(key: PrivateKey) -> None:
    signer = Signer(DOMAIN, SELECTOR, key, clock=lambda: 1_764_061_200)
    signed = signer.sign(MESSAGE)
    assert signed.endswith(MESSAGE)
    assert verify(signed, key)
    header = signed[: len(signed) - len(MESSAGE)]
    assert header.startswith(b"DKIM-Signature: v=1; a=")
    assert b" t=1764061200;" in header and b"l=" not in header
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))


def test_lf_message_gets_lf_signature_and_survives_crlf_conversion(key: PrivateKey) -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    signed = Signer(DOMAIN, SELECTOR, key).sign(lf)
    assert b"\r" not in signed
    assert verify(signed, key)
    assert verify(signed.replace(b"\n", b"\r\n"), key)


def test_relay_changes_that_relaxed_allows_still_verify(key: PrivateKey) -> None:
    signed = Signer(DOMAIN, SELECTOR, key).sign(MESSAGE)
    assert verify(b"Received: from relay by mx; Tue, 25 Nov 2025\r\n" + signed, key)
    assert verify(signed.replace(b"Subject: [SAS] Fachtag", b"Subject:   [SAS]\r\n\tFachtag"),
                  key)


@pytest.mark.parametrize("tamper", [
    lambda m: m.replace(b"List-Id: <sas.gelsenkirchen.de>", b"List-Id: <evil.example.org>"),
    lambda m: m.replace(b"\r\n\r\nHallo", b"\r\nSubject: second subject\r\n\r\nHallo"),
    lambda m: m.replace(b"\r\n\r\nHallo", b"\r\nList-Archive: <https://evil.example>\r\n\r\nHallo"),
    lambda m: m.replace(b"\r\n\r\nHallo", b"\r\nFrom: ceo@example.org\r\n\r\nHallo"),
    lambda m: m.replace(b"bis bald", b"bis nie"),
    lambda m: m + b"Appended footer\r\n",
], ids=["list-id-changed", "second-subject", "list-archive-added", "second-from",
        "body-changed", "body-appended"])
def test_tampering_breaks_the_signature(key: PrivateKey, tamper: Callable[[bytes], bytes]) -> None:
    signed = Signer(DOMAIN, SELECTOR, key).sign(MESSAGE)
    assert verify(signed, key)
    assert not verify(tamper(signed), key)


def test_list_copy_then_sign_verifies(key: PrivateKey) -> None:
    msg = EmailMessage()
    msg["From"] = "Anna Müller <anna@example.org>"
    msg["To"] = LIST
    msg["Subject"] = "Einladung zum Fachtag im März"
    msg.set_content("Liebe Kolleginnen und Kollegen,\n\nherzliche Einladung.\n")
    msg.add_alternative("<html><body><p>Herzliche Einladung</p></body></html>", subtype="html")
    mlist = ListConfig(address=LIST, display_name="Netzwerk Soziale Arbeit an Schulen",
                       moderators=(MODERATOR,), subject_prefix="[SAS]")
    copy = list_copy(msg, mlist, unsubscribe_url="https://listen.gelsenkirchen.de/u/" + "x" * 43,
                     rewrite_from=True).as_bytes()
    signed = Signer(DOMAIN, SELECTOR, key).sign(copy)
    assert verify(signed, key)
    names = dkim.DKIM(signed).headers[0][1].decode()
    for must in ("list-unsubscribe-post", "list-unsubscribe", "list-id", "reply-to"):
        assert must in names
    parsed = email.message_from_bytes(signed, policy=policy.default)
    assert parsed["DKIM-Signature"] is not None
    assert not verify(signed.replace(b"Precedence: list", b"Precedence: bulk"), key)


def test_signed_header_names_oversign_from_subject_and_list_headers() -> None:
    names = signed_header_names(["received", "from", "to", "subject", "list-id", "received"])
    assert names.count("from") == 2 and names.count("subject") == 2
    assert names.count("list-id") == 2 and names.count("list-archive") == 1
    assert names.count("to") == 1 and "received" not in names and "cc" not in names


# -- keys --------------------------------------------------------------------


def test_rsa_1024_is_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(DkimKeyError, match=r"1024 bits.*at least 2048"):
        Signer(DOMAIN, SELECTOR, weak)
    path = tmp_path / "weak.pem"
    path.write_bytes(weak.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.TraditionalOpenSSL,
                                        serialization.NoEncryption()))
    with pytest.raises(DkimKeyError, match=r"weak.pem: RSA key has 1024 bits"):
        Signer.from_config(DkimConfig(DOMAIN, SELECTOR, path))
    with pytest.raises(DkimKeyError):
        generate_key(tmp_path / "new.pem", "rsa", bits=1024)


def test_unreadable_or_bad_key_files_give_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DkimKeyError, match=r"missing.pem: cannot read"):
        load_private_key(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    with pytest.raises(DkimKeyError, match=r"junk.pem: not a usable private key"):
        load_private_key(tmp_path / "junk.pem")


def test_generate_key_mode_0600_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "dkim" / "listserv.key"
    key = generate_key(path, "ed25519")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_record(load_private_key(path)) == public_key_record(key)
    with pytest.raises(FileExistsError):
        generate_key(path, "rsa")
    assert public_key_record(load_private_key(path)) == public_key_record(key)
    assert [p.name for p in path.parent.iterdir()] == ["listserv.key"]


def test_dns_txt_record_is_split_into_255_byte_strings(tmp_path: Path) -> None:
    path = tmp_path / "rsa.pem"
    key = generate_key(path, "rsa", bits=4096)
    line = dns_txt_record(DkimConfig(DOMAIN, SELECTOR, path))
    name, _, strings = line.partition(" IN TXT ")
    assert name == "listserv._domainkey.gelsenkirchen.de."
    parts = re.findall(r'"([^"]*)"', strings)
    assert all(len(p) <= 255 for p in parts) and len(parts) >= 3
    text = "".join(parts)
    assert text == public_key_record(key) and text.startswith("v=DKIM1; k=rsa; p=")
    signed = Signer(DOMAIN, SELECTOR, key).sign(MESSAGE)
    assert dkim.verify(signed, dnsfunc=dns_for({"listserv._domainkey.gelsenkirchen.de": text}))


# -- the published vectors ---------------------------------------------------

needs_vectors = pytest.mark.skipif(not (VECTORS / "expected.json").exists(),
                                   reason=f"DKIM vectors not found at {VECTORS}")


@needs_vectors
def test_rfc8463_ed25519_key_gives_the_published_public_key_and_signs() -> None:
    key = load_private_key(VECTORS / "rfc8463" / "ed25519.private.b64")
    table = json.loads((VECTORS / "expected.json").read_text())["dns_tables"]["rfc8463"]
    published = table["brisbane._domainkey.football.example.com"]
    assert public_key_record(key) == published
    message = (VECTORS / "rfc8463" / "unsigned.eml").read_bytes()
    signed = Signer("football.example.com", "brisbane", key).sign(message)
    assert dkim.verify(signed, dnsfunc=dns_for(table))


@needs_vectors
def test_rfc8463_rsa_key_is_refused_as_too_short() -> None:
    with pytest.raises(DkimKeyError, match="1024 bits"):
        load_private_key(VECTORS / "rfc8463" / "rsa.private.pem")


@needs_vectors
@pytest.mark.parametrize(("file", "passes"), [
    ("rfc8463/signed.eml", [True, True]),
    ("dkimpy/ed25519test2.msg", [True]),
    ("mail-dkim/corpus/good_rfc4871_3.txt", [True]),
    ("mail-dkim/corpus/goodkey_ed25519.txt", [True]),
    ("mail-dkim/corpus/badkey2_ed25519.txt", [False]),
    ("mail-dkim/corpus/bad_1878954.txt", [False]),
])
def test_verifier_setup_reproduces_expected_results(file: str, passes: list[bool]) -> None:
    """Our dnsfunc stub is sound: the vectors' published expectations come out."""
    vectors = json.loads((VECTORS / "expected.json").read_text())
    vector = next(v for v in vectors["vectors"] if v["file"] == file)
    assert (vector["expected"] == "pass") == all(passes)
    dnsfunc = dns_for(vectors["dns_tables"][vector["dns_table"]])
    checker = dkim.DKIM((VECTORS / file).read_bytes(), minkey=512)
    results = []
    for i in range(len(passes)):
        try:
            results.append(checker.verify(idx=i, dnsfunc=dnsfunc))
        except dkim.DKIMException:
            results.append(False)
    assert results == passes


# -- our shortcuts equal dkimpy's own functions ------------------------------

_PIECES = st.sampled_from([b"a", b"Zeile", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r", b":", b""])
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


@given(st.lists(_PIECES, max_size=40).map(b"".join))
def test_canonical_body_equals_dkimpy(body: bytes) -> None:
    assert canonical_body(body) == _RELAXED.canonicalize_body(body)


@given(st.lists(_PIECES, max_size=30).map(b"".join))
def test_split_message_equals_dkimpy(tail: bytes) -> None:
    for message in (b"From: a@b.c\r\nSubject: x\r\n\r\n" + tail, b"From: a@b.c\n\n" + tail,
                    b"From: a@b.c\nTo: d@e.f\n\r\n" + tail):
        assert split_message(message) == dkim.rfc822_parse(message)


@needs_vectors
def test_split_message_equals_dkimpy_on_the_vectors() -> None:
    for path in sorted(VECTORS.rglob("*")):
        if path.suffix in (".eml", ".msg", ".txt", ".message") and path.is_file():
            data = path.read_bytes()
            try:
                expected = dkim.rfc822_parse(data)
            except dkim.MessageFormatError:
                continue
            assert split_message(data) == expected, path
            assert canonical_body(expected[1]) == _RELAXED.canonicalize_body(expected[1]), path


def test_base64_signature_is_one_value() -> None:
    """b= folded over lines is still the plain base64 of the signature."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = Signer(DOMAIN, SELECTOR, key).signature_header(MESSAGE).decode()
    b64 = "".join(header.split(" b=", 1)[1].split())
    assert len(base64.b64decode(b64, validate=True)) == 256


def test_every_corpus_list_copy_signs_and_verifies() -> None:
    if not CORPUS_FILES:
        pytest.skip(f"corpus not found at {CORPUS}")
    key = ed25519.Ed25519PrivateKey.generate()  # fast: this signs ~470 copies
    signer = Signer(DOMAIN, SELECTOR, key)
    failed = []
    for path in CORPUS_FILES:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        copy = list_copy(msg, SAS, unsubscribe_url="https://listen.example/u/t").as_bytes()
        if not verify(signer.sign(copy), key):
            failed.append(path.name)
    assert failed == []

