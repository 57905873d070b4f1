"""MIME plumbing for bounce reading: tolerant parsing, text extraction, address syntax.

Kept apart from `bounces` so that the reading rules there are not buried under the
defensive code real-world bounces require: the stdlib email package raises on unknown
charsets, broken encodings and odd structures (see shared/corpus/python-email-hazards.json),
and a bounce parser must survive all of it.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.header import decode_header
from email.message import Message

# Dot-atom local part (plus the quoted form), then a domain that may lack a dot because
# internal hosts ("kijitora@mailhub0") do bounce. The trailing lookahead keeps "a@b.c."
# at the end of a sentence from swallowing the full stop.
ADDRESS_RE = re.compile(
    r"""(?<![\w.!#$%&'*+/=?^`{|}~-])
        ("[^"\r\n]{1,64}"|[\w!#$%&'*+/=?^`{|}~-]+(?:\.+[\w!#$%&'*+/=?^`{|}~-]+)*)
        @
        ([a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)*)
        (?![\w-]|\.[a-z0-9])""",
    re.IGNORECASE | re.VERBOSE,
)
_DOT_ATOM_RE = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*\Z")


def parse(raw: bytes) -> Message:
    """Parse with compat32: flufl.bounce expects that API, and it is the most forgiving."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return email.message_from_bytes(text, policy=email.policy.compat32)


def normalise_address(candidate: str) -> str | None:
    """One canonical, lowercased form of an address, or None when it is not one.

    A local part that is not a dot-atom ("neko....nyaan....") is only valid quoted, so it
    is written quoted: that is the form the MTA used and the form a member table holds.
    """
    candidate = candidate.strip().strip("<>()[]',;:").strip()
    match = ADDRESS_RE.fullmatch(candidate) or ADDRESS_RE.search(candidate)
    if match is None:
        return None
    local, domain = match.group(1), match.group(2)
    if local.startswith('"') and local.endswith('"'):
        local = local[1:-1]
    if len(domain) > 253 or not local or len(local) > 64:
        return None
    if not _DOT_ATOM_RE.match(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{domain}".lower()


def addresses_in(text: str) -> list[str]:
    """All addresses in free text, in order of appearance, without repeats."""
    seen: dict[str, None] = {}
    for match in ADDRESS_RE.finditer(text):
        address = normalise_address(match.group(0))
        if address:
            seen.setdefault(address, None)
    return list(seen)


def header_text(msg: Message, name: str) -> str:
    """A header decoded to str (RFC 2047 words too); empty on any fault."""
    try:
        values = msg.get_all(name) or []
        parts: list[str] = []
        for value in values:
            for chunk, charset in decode_header(str(value)):
                if isinstance(chunk, bytes):
                    parts.append(_decode_bytes(chunk, charset))
                else:
                    parts.append(chunk)
        return " ".join(parts)
    except Exception:
        return " ".join(str(v) for v in (msg.get_all(name) or []))


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1")


def part_text(part: Message) -> str:
    """The decoded body of one non-multipart part; HTML is reduced to its text."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        if not isinstance(raw, str):
            return ""
        text = raw
    else:
        try:
            charset = part.get_content_charset()
        except Exception:
            charset = None
        text = _decode_bytes(payload, charset)
    if part.get_content_subtype() == "html":
        text = re.sub(r"(?is)<(script|style).*?</\1>", " ", text)
        text = re.sub(r"(?i)<br\s*/?>|</(p|div|tr|li|h\d)>", "\n", text)
        text = re.sub(r"<[^>]*>", " ", text)
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ")
        text = text.replace("&amp;", "&").replace("&#64;", "@")
    return text


def walk_readable(msg: Message) -> tuple[list[str], list[Message]]:
    """The bounce's own text parts, and the returned messages attached to it.

    The walk does not enter message/rfc822 parts: what lies inside is the mail we sent,
    whose addresses are the list's and the sender's, never the failed one.
    """
    texts: list[str] = []
    returned: list[Message] = []
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list):
                returned.extend(p for p in payload if isinstance(p, Message))
            continue
        if ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            returned.append(email.message_from_string(part_text(part)))
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            if ctype != "message/delivery-status":  # its header blocks are read elsewhere
                stack[0:0] = [p for p in payload if isinstance(p, Message)]
            continue
        if part.get_content_maintype() == "multipart":
            # A multipart whose boundary never occurs in the body: compat32 leaves the
            # whole body as one string, and that string is still the bounce's text.
            texts.append(payload if isinstance(payload, str) else "")
            continue
        if part.get_content_maintype() not in ("image", "audio", "video", "application"):
            texts.append(part_text(part))  # text/*, and odd types that are text in practice
    return texts, returned
