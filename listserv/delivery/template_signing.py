"""Signing the copies of one template: what all copies share is hashed once.

A personalised post's copies differ only where the member's value stands
(the one-click token in List-Unsubscribe and the footer, or the address in
the footer). Almost everything a DKIM signature hashes is the same in every
copy: the signed headers without a value in them, and the body up to the
line that holds the first value. ``TemplateSigner`` canonicalises that part
once, keeps the body's SHA-256 state after its shared lines, and per copy
only copies that state, hashes the body's tail and puts the value into the
few headers that carry it. The RSA step stays per copy: it is most of what
remains.

Exact by construction and checked: relaxed body canonicalisation works line
by line (the shared part ends at a line end, and the tail always holds a
non-empty line, so trailing blank lines never reach into the shared part);
a value has no blanks, so putting it into an already canonical header gives
the header's canonical form. On building, the template's own signature
inputs are computed both ways and compared; on any difference (or a value
that a quoted-printable line break cut inside a header) each copy is signed
whole, the slow and always-right way.

This module is also what a signing process runs (``init_worker``,
``sign_chunk``): each process keeps the templates it was sent, so a
template crosses the process boundary once per process, and then only the
members' values go in and signature fields come out.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

from listserv.config import DkimConfig, ListConfig
from listserv.delivery.plan import Slots, fill, render_personal
from listserv.delivery.signing import (
    Signer,
    canonical_body,
    canonical_headers,
    signable,
    signed_header_names,
    split_message,
)

_TAB_OR_BLANKS = re.compile(rb"[\t ]+")
_TRAILING_BLANKS = re.compile(rb"[\t ]+\r\n")
KEEP = 8  # templates a signing process keeps (posts being sent at the same time)


class TemplateSigner:
    """The DKIM-Signature field of each copy ``fill(template, slots, value)``."""

    def __init__(self, signer: Signer, template: bytes, slots: Slots, placeholder: bytes) -> None:
        self.signer, self.template, self.slots = signer, template, slots
        self.placeholder = placeholder
        self.exact = False
        body_start = template.find(b"\r\n\r\n") + 4
        crlf_only = template.count(b"\n") == template.count(b"\r") == template.count(b"\r\n")
        head_slots = [s for s in slots if s[0] < body_start]
        if body_start < 4 or not crlf_only or any(breaks for _, _, breaks in head_slots):
            return  # not in wire form, or a value cut in a header: sign whole copies
        headers = signable(split_message(template[:body_start])[0])
        self.include = signed_header_names(n.decode("ascii").lower() for n, _ in headers)
        self.headers = canonical_headers(headers)
        self.varying = [i for i, (_, v) in enumerate(self.headers) if placeholder in v]
        # The body's shared part: up to the line end before the first value in it.
        body = template[body_start:]
        self.tail_slots: Slots = []
        if not any(s >= body_start for s, _, _ in slots):
            cut = len(body)  # the same body in every copy
            self.tail, self.shared_body = b"", hashlib.sha256(canonical_body(body))
        else:
            first = min(s for s, _, _ in slots if s >= body_start) - body_start
            cut = body.rfind(b"\r\n", 0, first) + 2 if b"\r\n" in body[:first] else 0
            self.tail = body[cut:]
            self.tail_slots = [(s - body_start - cut, e - body_start - cut, b)
                               for s, e, b in slots if s >= body_start]
            shared = _TAB_OR_BLANKS.sub(b" ", _TRAILING_BLANKS.sub(b"\r\n", body[:cut]))
            self.shared_body = hashlib.sha256(shared)
        # The check: the template itself (its placeholder as the value), both ways.
        whole_headers, whole_body = split_message(template)
        self.exact = (
            self._body_hash(placeholder) == hashlib.sha256(canonical_body(whole_body)).digest()
            and self._headers(placeholder) == canonical_headers(signable(whole_headers)))

    def _body_hash(self, value: bytes) -> bytes:
        if not self.tail_slots:
            return self.shared_body.digest()
        hasher = self.shared_body.copy()
        hasher.update(canonical_body(fill(self.tail, self.tail_slots, value)))
        return hasher.digest()

    def _headers(self, value: bytes) -> list[tuple[bytes, bytes]]:
        headers = list(self.headers)
        for i in self.varying:
            name, text = headers[i]
            headers[i] = (name, text.replace(self.placeholder, value))
        return headers

    def field(self, value: bytes) -> bytes:
        """The signature field of the copy with ``value`` in the slots (CRLF line ends)."""
        if not self.exact:
            return self.signer.signature_header(fill(self.template, self.slots, value))
        return self.signer.field(self._headers(value), self.include, self._body_hash(value),
                                 b"\r\n")


# -- in a signing process -----------------------------------------------------------

_signer: Signer | None = None
_templates: OrderedDict[object, TemplateSigner] = OrderedDict()


class TemplateMissing(LookupError):
    """This process was not sent the template (it was restarted): send it again."""


def init_worker(dkim: DkimConfig | None) -> None:
    """Load the key once per process, not once per task."""
    global _signer
    _signer = Signer.from_config(dkim) if dkim is not None else None
    _templates.clear()


def sign_chunk(key: object, template: tuple[bytes, Slots, bytes] | None,
               values: list[bytes]) -> list[bytes]:
    """The signature fields of ``values``' copies of the template known as ``key``.

    ``template`` (bytes, slots, placeholder) comes with the first chunk a process
    gets for a post; later chunks send None and find it here.
    """
    assert _signer is not None
    signer = _templates.get(key)
    if signer is None:
        if template is None:
            raise TemplateMissing(key)
        signer = _templates[key] = TemplateSigner(_signer, *template)
        while len(_templates) > KEEP:
            _templates.popitem(last=False)
    else:
        _templates.move_to_end(key)
    return [signer.field(v) for v in values]


def forget(key: object) -> None:
    """The post is sent: drop its template (a task run in each process)."""
    _templates.pop(key, None)


def ready() -> None:
    """A no-op task: submitting one per process starts it before the first post."""


def render_and_sign(raw: bytes, mlist: ListConfig, members: list[str],
                    urls: list[str | None], sign: bool) -> list[bytes]:
    """Whole copies, each rendered from scratch (and signed): the slow, general way."""
    out = []
    for member, url in zip(members, urls, strict=True):
        data = render_personal(raw, mlist, member, url)
        if sign and _signer is not None:
            data = _signer.sign(data)
        out.append(data)
    return out
