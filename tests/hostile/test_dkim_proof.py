"""Class 1: a DKIM proof means what it claims (over SMTP, against the real daemon).

The attacker holds mail the coordinator really sent and signed (she wrote
to a colleague, or to the list, last week): she replays it, adds an
unsigned Subject/To above the signed ones, or sends it to another of our
addresses. None of this may act as the coordinator: each falls back to the
ordinary path (held post, confirmation by token), and nothing is removed,
invited or published.
"""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import LIST, MODERATOR, FakeClock, FakeDns, mail
from tests.hostile.conftest import MEMBERS, list_table
from tests.mailflow import Flow

L, D = LIST.split("@")
REQUEST = f"{L}-request@{D}"
VICTIM = MEMBERS[0]


class Provider:
    """The coordinator's mail provider: signs each header once, as most do (no over-signing)."""

    def __init__(self, dns: FakeDns, domain: str = "gelsenkirchen.de") -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.private = key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        dns.txt[f"mail._domainkey.{domain}"] = [
            "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()]
        self.domain = domain

    def sign(self, raw: bytes) -> bytes:
        return dkim.sign(raw, b"mail", self.domain.encode(), self.private, include_headers=[
            b"from", b"to", b"subject", b"date", b"message-id", b"content-type"]) + raw


@pytest.fixture
def signer(dns: FakeDns) -> Provider:
    return Provider(dns)


def posts(flow: Flow) -> list[tuple[str, str]]:
    rows = flow.query("SELECT state, rule FROM posts ORDER BY id")
    return [(r["state"], r["rule"]) for r in rows]


def copies_to_members(flow: Flow) -> int:
    return sum(len(flow.sent_to(m)) for m in MEMBERS)


async def test_a_genuine_signed_request_acts_at_once_but_only_once(
    hostile: Flow, signer: Provider
) -> None:
    signed = signer.sign(mail(sender=MODERATOR, to=REQUEST, subject="",
                              body=f"entfernen {VICTIM}"))
    await hostile.send(signed, mail_from=MODERATOR, to=REQUEST)
    assert VICTIM not in hostile.members()
    # She adds the colleague again; the attacker replays the old removal.
    async with hostile.daemon.store.transaction() as db:  # type: ignore[union-attr]
        await db.execute("INSERT INTO members (list_address, address, joined_at)"
                         " VALUES (?, ?, '2026-11-25T09:00:00Z')", (LIST, VICTIM))
    await hostile.send(signed, mail_from="attacker@example.net", to=REQUEST)
    assert VICTIM in hostile.members()
    # The replay is not silently lost: it became the ordinary token request to her.
    assert hostile.query("SELECT action FROM tokens")[-1][0] == "remove_request"


async def test_an_unsigned_subject_above_a_signed_request_does_not_act(
    hostile: Flow, signer: Provider
) -> None:
    # She once asked for help; the attacker puts a command above the signed Subject.
    signed = signer.sign(mail(sender=MODERATOR, to=REQUEST, subject="hilfe", body=""))
    forged = f"Subject: entfernen {VICTIM}\r\n".encode() + signed
    await hostile.send(forged, mail_from=MODERATOR, to=REQUEST)
    assert VICTIM in hostile.members()


async def test_a_mail_to_a_colleague_replayed_to_the_list_is_held(
    hostile: Flow, signer: Provider
) -> None:
    signed = signer.sign(mail(sender=MODERATOR, to="kollegin@schule.example",
                              subject="Vertraulich: Personalfrage"))
    # Sent as it is (the list only in the envelope), and with a To: list added on top.
    await hostile.send(signed, mail_from=MODERATOR, to=LIST)
    await hostile.send(f"To: {LIST}\r\n".encode() + signed, mail_from=MODERATOR, to=LIST)
    assert [state for state, _ in posts(hostile)] == ["held", "held"]
    assert copies_to_members(hostile) == 0


async def test_a_replayed_post_and_an_old_post_are_held(
    hostile: Flow, signer: Provider, clock: FakeClock
) -> None:
    signed = signer.sign(mail(sender=MODERATOR, subject="Einladung Fachtag"))
    await hostile.send(signed, mail_from=MODERATOR, to=LIST)
    assert posts(hostile) == [("approved", "moderator_verified")]
    await hostile.send(signed, mail_from=MODERATOR, to=LIST)
    assert posts(hostile)[1][0] == "held"
    # A day and more later, a new signature over the same old mail (Date unchanged).
    clock.advance(days=1, minutes=5)
    resigned = signer.sign(mail(sender=MODERATOR, subject="Einladung Fachtag 2"))
    await hostile.send(resigned, mail_from=MODERATOR, to=LIST)
    assert posts(hostile)[2][0] == "held"
    assert copies_to_members(hostile) == len(MEMBERS)   # the first one only


@pytest.mark.parametrize("hostile", [[list_table(moderators=["koordination@x.com.de"])]],
                         indirect=True)
async def test_a_signature_of_a_neighbour_under_a_public_suffix_proves_nothing(
    hostile: Flow, dns: FakeDns
) -> None:
    """com.de is a public suffix: evil.com.de is not x.com.de's organisation."""
    evil = Provider(dns, "evil.com.de")
    await hostile.send(evil.sign(mail(sender="koordination@x.com.de", subject="Gewinnspiel")),
                       mail_from="koordination@x.com.de", to=LIST)
    assert posts(hostile) == [("held", "moderate_all")]
    assert copies_to_members(hostile) == 0
