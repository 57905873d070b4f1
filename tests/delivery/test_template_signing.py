"""Signing personalised copies from one template: equal to signing each copy whole.

``TemplateSigner`` hashes what all copies share once; its signature field
must be byte for byte the one ``Signer.signature_header`` computes for the
whole copy (RSA PKCS#1 v1.5 and Ed25519 are deterministic, the clock is
fixed), and verify with dkimpy. Bodies a template cannot serve (base64)
take the object path and must verify too. Then the signing processes'
cache: a template crosses the process boundary once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from listserv.config import Config, DkimConfig
from listserv.delivery import template_signing, transform
from listserv.delivery.plan import PersonalCopies, fill, unsubscribe_token
from listserv.delivery.signing import Signer, generate_key, load_private_key, public_key_record
from listserv.delivery.template_signing import TemplateMissing, TemplateSigner
from tests.conftest import LIST, mail
from tests.delivery.test_sender import verifies

BASE_URL = "https://listen.gelsenkirchen.de"
SECRET = b"k" * 32
MEMBERS = ["anna@x.de", "b@y.de", "ein.sehr.langer.name+liste@schule.example"]

PLAIN = mail(body="Liebe Kolleginnen und Kollegen,\n\nbis bald.\n")
UMLAUTS = mail(body="Liebe Kolleginnen und Kollegen, bis März.\n" * 40)
BLANKS = mail(body="Zeile\tmit Tab  und  Leerzeichen   \n\n\n  eingerückt\n\n\n\n")
BASE64 = mail(body="x").replace(b"Content-Transfer-Encoding: 8bit",
                                b"Content-Transfer-Encoding: base64").replace(
    b"\r\n\r\nx", b"\r\n\r\nTGllYmUgS29sbGVnaW5uZW4sIGJpcyBNw6RyeiE=\r\n")
ALTERNATIVE = (
    b"From: anna@example.org\r\nTo: " + LIST.encode() + b"\r\nSubject: Fachtag\r\n"
    b"Date: Wed, 25 Nov 2026 10:00:00 +0100\r\nMessage-ID: <alt@example.org>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    b"\r\nGr\xc3\xbc\xc3\x9fe aus Gelsenkirchen\r\n--b\r\nContent-Type: text/html; "
    b"charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<html><body>"
    b"<p>Gr=C3=BC=C3=9Fe</p></body></html>\r\n--b--\r\n")


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def keyed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[Signer, bytes, Path]:
    path = tmp_path_factory.mktemp("dkim") / f"{request.param}.key"
    generate_key(path, request.param)
    key = load_private_key(path)
    signer = Signer("gelsenkirchen.de", "test", key, clock=lambda: 1_764_000_000)
    return signer, public_key_record(key).encode(), path


def copies_of(raw: bytes, config: Config, base_url: str | None = BASE_URL) -> PersonalCopies:
    msg = message_from_bytes(raw, _class=EmailMessage, policy=default)
    copy = transform.list_copy(msg, config.lists[0], add_footer=False).as_bytes()
    return PersonalCopies(copy, config.lists[0], base_url=base_url, secret=SECRET,
                          sample_member=MEMBERS[0])


@pytest.mark.parametrize("raw", [PLAIN, UMLAUTS, BLANKS, ALTERNATIVE],
                         ids=["7bit", "quoted-printable", "blanks", "alternative"])
def test_template_signature_is_the_whole_copys_signature(
    raw: bytes, keyed: tuple[Signer, bytes, Path], config_factory: Callable[..., Config],
) -> None:
    signer, record, _ = keyed
    copies = copies_of(raw, config_factory())
    assert copies.template is not None
    template = TemplateSigner(signer, copies.template, copies.slots,
                              copies.placeholder.encode())
    assert template.exact
    for member in MEMBERS:
        value = copies.value(member).encode()
        data = fill(copies.template, copies.slots, value)
        field = template.field(value)
        assert field == signer.signature_header(data)
        assert verifies(field + data, record)
        assert data == copies.render(member)  # the copy is the member's own rendering
        token = unsubscribe_token(SECRET, LIST, member)
        text = message_from_bytes(data, policy=default)
        assert f"{BASE_URL}/u/{token}" in str(text["List-Unsubscribe"])


def test_quoted_printable_footer_cut_inside_the_token_still_signs_exactly(
    keyed: tuple[Signer, bytes, Path], config_factory: Callable[..., Config],
) -> None:
    """The shared part ends at the line before the token, wherever QP broke it."""
    signer, record, _ = keyed
    raw = mail(body="Liebe Kolleginnen und Kollegen, bis März.\n" * 3)
    copies = copies_of(raw, config_factory())
    assert copies.template is not None and any(brk for _, _, brk in copies.slots)
    template = TemplateSigner(signer, copies.template, copies.slots,
                              copies.placeholder.encode())
    assert template.exact and template.tail_slots
    for member in MEMBERS:
        value = copies.value(member).encode()
        data = fill(copies.template, copies.slots, value)
        assert template.field(value) == signer.signature_header(data)
        assert verifies(template.field(value) + data, record)


def test_a_template_not_in_wire_form_is_signed_whole(
    keyed: tuple[Signer, bytes, Path], config_factory: Callable[..., Config],
) -> None:
    signer, record, _ = keyed
    copies = copies_of(PLAIN, config_factory())
    assert copies.template is not None
    lf = copies.template.replace(b"\r\n", b"\n")
    slots = [(s - copies.template[:s].count(b"\r\n"), e - copies.template[:e].count(b"\r\n"), b)
             for s, e, b in copies.slots]
    template = TemplateSigner(signer, lf, slots, copies.placeholder.encode())
    assert not template.exact
    value = copies.value(MEMBERS[1]).encode()
    assert verifies(template.field(value) + fill(lf, slots, value), record)


def test_a_base64_body_takes_the_object_path_and_verifies(
    keyed: tuple[Signer, bytes, Path], config_factory: Callable[..., Config],
) -> None:
    _, record, path = keyed
    config = config_factory()
    copies = copies_of(BASE64, config)
    assert copies.template is None  # base64 hides the placeholder: no byte substitution
    template_signing.init_worker(DkimConfig(domain="gelsenkirchen.de", selector="test",
                                            private_key=path))
    urls = [copies.url(m) for m in MEMBERS]
    datas = template_signing.render_and_sign(copies.raw, config.lists[0], MEMBERS, urls, True)
    for member, url, data in zip(MEMBERS, urls, datas, strict=True):
        assert verifies(data, record)
        text = message_from_bytes(data, policy=default)
        assert url is not None and url in str(text["List-Unsubscribe"])
        body = text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert body.startswith("Liebe Kolleginnen, bis März!") and url in body, member


def test_a_process_keeps_the_template_it_was_sent_and_asks_again_when_it_has_not(
    keyed: tuple[Signer, bytes, Path], config_factory: Callable[..., Config],
) -> None:
    _, record, path = keyed
    template_signing.init_worker(DkimConfig(domain="gelsenkirchen.de", selector="test",
                                            private_key=path))
    copies = copies_of(UMLAUTS, config_factory())
    assert copies.template is not None
    sent = (copies.template, copies.slots, copies.placeholder.encode())
    values = [copies.value(m).encode() for m in MEMBERS]
    with pytest.raises(TemplateMissing):
        template_signing.sign_chunk(copies.key, None, values)
    first = template_signing.sign_chunk(copies.key, sent, values[:1])
    later = template_signing.sign_chunk(copies.key, None, values[1:])  # no template: kept
    for value, field in zip(values, first + later, strict=True):
        assert verifies(field + fill(copies.template, copies.slots, value), record)
    template_signing.forget(copies.key)
    with pytest.raises(TemplateMissing):
        template_signing.sign_chunk(copies.key, None, values)
    others = [copies_of(PLAIN, config_factory()) for _ in range(template_signing.KEEP + 1)]
    for other in others:
        assert other.template is not None
        template_signing.sign_chunk(other.key, (other.template, other.slots,
                                                other.placeholder.encode()), values[:1])
    with pytest.raises(TemplateMissing):  # the oldest went: a few posts at a time are kept
        template_signing.sign_chunk(others[0].key, None, values[:1])
