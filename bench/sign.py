"""DKIM signatures per second for a 20 KB member copy, on one core.

    python bench/sign.py [--seconds 3] [--size 20000]

Three signers over the same message: dkimpy alone (RSA-2048, its pure-Python
RSA), listserv's Signer with RSA-2048 and with Ed25519 (dkimpy's
canonicalisation, the private-key step in OpenSSL through ``cryptography``).
All run in this one process pinned to one CPU. Every signature produced is
then verified with dkimpy (outside the timed loop); a single failure aborts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from listserv.delivery.signing import Signer, generate_key, public_key_record  # noqa: E402

DOMAIN, SELECTOR = "gelsenkirchen.de", "listserv"


def message(size: int) -> bytes:
    """A list copy of about ``size`` bytes: list headers and German prose."""
    head = (
        b"From: Anna Beispiel <anna@example.org>\r\n"
        b"To: soziale.arbeit.an.schulen@gelsenkirchen.de\r\n"
        b"Subject: [SAS] Einladung zum Fachtag Schulsozialarbeit\r\n"
        b"Date: Tue, 25 Nov 2025 10:00:00 +0100\r\n"
        b"Message-ID: <bench@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b'List-Id: "Netzwerk Soziale Arbeit an Schulen" '
        b"<soziale.arbeit.an.schulen.gelsenkirchen.de>\r\n"
        b"List-Unsubscribe: <mailto:soziale.arbeit.an.schulen-leave@gelsenkirchen.de>\r\n"
        b"Precedence: list\r\n\r\n"
    )
    line = "Liebe Kolleginnen und Kollegen, herzliche Einladung zum Fachtag im März.\r\n"
    body = (line * (size // len(line.encode()) + 1)).encode()
    return head + body[: max(0, size - len(head))]


def rate(sign: Callable[[bytes], bytes], msg: bytes, seconds: float) -> tuple[float, list[bytes]]:
    out: list[bytes] = []
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        out.append(sign(msg))
    return len(out) / elapsed, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    msg = message(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        rsa_key = generate_key(Path(tmp) / "rsa.pem", "rsa", 2048)
        ed_key = generate_key(Path(tmp) / "ed.pem", "ed25519")
    records = {"rsa": public_key_record(rsa_key), "ed": public_key_record(ed_key)}
    pkcs1 = rsa_key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption())
    include = [b"from", b"to", b"subject", b"date", b"message-id", b"list-id",
               b"list-unsubscribe", b"from", b"subject", b"list-id"]

    def dkimpy_sign(m: bytes) -> bytes:
        return dkim.sign(m, SELECTOR.encode(), DOMAIN.encode(), pkcs1,
                         canonicalize=(b"relaxed", b"relaxed"), include_headers=include) + m

    cases = [
        ("dkimpy alone, RSA-2048", dkimpy_sign, "rsa"),
        ("listserv Signer, RSA-2048", Signer(DOMAIN, SELECTOR, rsa_key).sign, "rsa"),
        ("listserv Signer, Ed25519", Signer(DOMAIN, SELECTOR, ed_key).sign, "ed"),
    ]
    print(f"message {len(msg)} bytes, {args.seconds:g} s per signer, "
          f"CPU {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}")
    for name, sign, kind in cases:
        per_second, signed = rate(sign, msg, args.seconds)
        record = records[kind].encode()

        def dns(qname: bytes, timeout: int = 5, record: bytes = record) -> bytes:
            return record

        bad = sum(not dkim.verify(s, dnsfunc=dns) for s in signed)
        assert bad == 0, f"{name}: {bad} of {len(signed)} signatures do not verify"
        print(f"{name:28s} {per_second:8.0f} signatures/s  ({len(signed)} made, all verify)")


if __name__ == "__main__":
    main()
