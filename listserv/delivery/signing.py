"""DKIM signing of member copies: dkimpy's canonicalisation, OpenSSL's signature.

dkimpy does RSA in pure Python (~145 signatures/s for a 20 KB post); the
sender signs every distinct copy (one per member when copies are
personalised), so the private-key step is done by ``cryptography`` instead
(several thousand/s). Everything a verifier re-computes — header selection,
relaxed canonicalisation, the hashed form of our own DKIM-Signature — comes
from dkimpy's own helpers, so our signatures and dkimpy's verifier cannot
drift apart. ``bench/sign.py`` measures both and checks each signature.

Choices: relaxed/relaxed (survives re-folding by relays), no ``l=`` (a
length tag lets anyone append text under our name), no ``i=``/``q=`` (their
defaults are right), ``t=`` from an injectable clock. From, Subject and the
List-* headers are signed once more than they occur, so a copy of them added
later breaks the signature. RSA keys under 2048 bits are refused (RFC 8301
makes 1024 the floor; large receivers already distrust it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim import hash_headers, rfc822_parse
from dkim.canonicalization import (
    CanonicalizationPolicy,
    correct_empty_body,
    strip_trailing_lines,
)

from listserv.config import DkimConfig
from listserv.errors import ConfigError

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

MIN_RSA_BITS = 2048

#: Signed when present, in this order.
SIGNED_HEADERS = (
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type",
    "content-transfer-encoding", "list-id", "list-post", "list-help", "list-subscribe",
    "list-unsubscribe", "list-unsubscribe-post", "list-owner", "list-archive",
    "precedence", "x-original-from",
)
#: Signed one extra time (even when absent): nobody may add another one.
OVERSIGNED = frozenset({
    "from", "subject", "list-id", "list-post", "list-help", "list-subscribe",
    "list-unsubscribe", "list-unsubscribe-post", "list-owner", "list-archive",
})

_SIGNED_SET = frozenset(SIGNED_HEADERS)
_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_HEADER_END = re.compile(rb"\n\r?\n")
_WIDTH = 76


class DkimKeyError(ConfigError):
    """The DKIM key file is missing, unreadable, of an unknown kind or too weak."""


def load_private_key(path: Path) -> PrivateKey:
    """Read a PEM private key (RSA or Ed25519), or dkimpy's base64 Ed25519 seed."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"{path}: cannot read DKIM key: {exc.strerror}") from None
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            seed = base64.b64decode(data.strip(), validate=True)
            key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"{path}: not a usable private key: {exc}") from None
    return _checked(key, str(path))


def _checked(key: object, where: str) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise DkimKeyError(
                f"{where}: RSA key has {key.key_size} bits, DKIM needs at least "
                f"{MIN_RSA_BITS}; move it away and run `listserv init` to create a new one"
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise DkimKeyError(f"{where}: DKIM key must be RSA or Ed25519, not {type(key).__name__}")


class Signer:
    """Signs member copies for one ``d=``/``s=`` pair; build it once, reuse it."""

    def __init__(
        self, domain: str, selector: str, key: PrivateKey,
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.domain = domain.lower().rstrip(".")
        self.selector = selector
        self.key = _checked(key, f"key for {selector}._domainkey.{self.domain}")
        self.algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"
        self._clock = clock

    @classmethod
    def from_config(cls, config: DkimConfig, *, clock: Callable[[], float] = time.time) -> Signer:
        return cls(config.domain, config.selector, load_private_key(config.private_key),
                   clock=clock)

    def sign(self, message: bytes) -> bytes:
        """Return ``message`` with our DKIM-Signature header in front."""
        return self.signature_header(message) + message

    def signature_header(self, message: bytes) -> bytes:
        """The ``DKIM-Signature: ...`` field for ``message``, line ends as in it."""
        headers, body = split_message(message)
        linesep = b"\r\n" if message.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        body_hash = hashlib.sha256(canonical_body(body)).digest()
        # Only signed fields can be selected: canonicalise just those.
        headers = signable(headers)
        include = signed_header_names(name.decode("ascii").lower() for name, _ in headers)
        return self.field(canonical_headers(headers), include, body_hash, linesep)

    def field(self, canonical_headers: list[tuple[bytes, bytes]], include: list[str],
              body_hash: bytes, linesep: bytes) -> bytes:
        """The signature field from what a verifier hashes: the canonical signed
        headers (relaxed), the ``h=`` names, the body's SHA-256."""
        tags = [
            "v=1", f"a={self.algorithm}", "c=relaxed/relaxed", f"d={self.domain}",
            f"s={self.selector}", f"t={int(self._clock())}", "h=" + " : ".join(include),
            f"bh={base64.b64encode(body_hash).decode('ascii')}",
        ]
        unsigned = _fold("DKIM-Signature: " + "; ".join(tags) + ";") + "\n b="
        hasher = hashlib.sha256()
        value = unsigned.removeprefix("DKIM-Signature:").encode("ascii")
        hash_headers(hasher, _RELAXED, canonical_headers,
                     [n.encode("ascii") for n in include], (b"DKIM-Signature", value), None)
        b64 = base64.b64encode(self._sign_digest(hasher.digest())).decode("ascii")
        chunks = [b64[i:i + _WIDTH - 3] for i in range(0, len(b64), _WIDTH - 3)]
        return (unsigned + "\n ".join(chunks) + "\n").encode("ascii").replace(b"\n", linesep)

    def _sign_digest(self, digest: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 hash


def split_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's ``rfc822_parse``, without splitting and re-joining the body line by line.

    The header is parsed by dkimpy itself; the body gets the same CRLF line
    ends that its split-and-join gives, by two C-speed replaces.
    """
    end = _HEADER_END.search(message)
    if end is None or message.startswith((b"\n", b"\r\n")):
        return rfc822_parse(message)
    headers, _ = rfc822_parse(message[: end.start() + 1])
    body = message[end.end():].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return headers, body


def signable(headers: list[list[bytes]]) -> list[list[bytes]]:
    """The header fields a signature of ours may cover (``SIGNED_HEADERS``)."""
    return [h for h in headers if h[0].lower().decode("ascii") in _SIGNED_SET]


def canonical_headers(headers: list[list[bytes]]) -> list[tuple[bytes, bytes]]:
    """dkimpy's relaxed header canonicalisation."""
    return _RELAXED.canonicalize_headers(headers)  # type: ignore[no-any-return]


def canonical_body(body: bytes) -> bytes:
    """dkimpy's relaxed body canonicalisation, skipping its regular expressions
    when they cannot change anything (no tab, no double blank, no blank before
    a line end): three regex passes over a 20 KB body cost more than the
    RSA signature itself."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        return _RELAXED.canonicalize_body(body)
    return correct_empty_body(strip_trailing_lines(body))


def signed_header_names(present: Iterable[str]) -> list[str]:
    """The ``h=`` list: each signed name as often as present, +1 if over-signed."""
    counts: dict[str, int] = {}
    for name in present:
        counts[name] = counts.get(name, 0) + 1
    names: list[str] = []
    for name in SIGNED_HEADERS:
        names += [name] * (counts.get(name, 0) + (name in OVERSIGNED))
    return names


def _fold(text: str) -> str:
    """Break ``text`` at blanks so that lines stay within 76 columns."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > _WIDTH:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n ".join([*lines, line])


# -- keys and DNS ------------------------------------------------------------


def public_key_record(key: PrivateKey) -> str:
    """The TXT record text ``v=DKIM1; k=...; p=...`` for ``key``."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


def dns_txt_record(config: DkimConfig) -> str:
    """The zone-file line to publish, the text split into 255-byte strings."""
    text = public_key_record(load_private_key(config.private_key))
    strings = " ".join(f'"{text[i:i + 255]}"' for i in range(0, len(text), 255))
    domain = config.domain.lower().rstrip(".")
    return f"{config.selector}._domainkey.{domain}. IN TXT {strings}"


def generate_key(
    path: Path, kind: Literal["rsa", "ed25519"] = "rsa", bits: int = 2048
) -> PrivateKey:
    """Create a new key as a PKCS#8 PEM file with mode 0600; never overwrite one.

    The file appears complete or not at all (written aside, then hard-linked
    into place), so a crash cannot leave half a key that ``init`` would trust.
    """
    if kind == "rsa":
        if bits < MIN_RSA_BITS:
            raise DkimKeyError(f"{path}: RSA keys need at least {MIN_RSA_BITS} bits, not {bits}")
        key: PrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown key kind {kind!r}: use 'rsa' or 'ed25519'")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # FileExistsError if a key is already there
    finally:
        tmp.unlink(missing_ok=True)
    return key
