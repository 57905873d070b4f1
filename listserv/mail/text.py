"""Readable text of a mail: the body a person wrote, the fresh part of a reply, a bare subject.

Pure functions, no I/O. Everything here takes mail from strangers, so nothing
here may raise: Python's ``email`` package raises ``KeyError``, ``LookupError``,
``ValueError`` or ``UnicodeError`` on malformed mail (see
``shared/corpus/python-email-hazards.json``), and every such call is guarded
with a fallback that decodes the raw payload bytes with ``errors="replace"``.

The reply reader is deliberately simple (DESIGN §5): it stops at the first line
that looks like the start of a quote, a signature or a forwarded original and
never reads past it. Text written *below* a quote (a bottom post) is therefore
not read; :func:`split_reply` only reports that it exists, so a caller can say
"please write above the quoted text" instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import TypeVar

from listserv.mail.html import html_to_text

__all__ = [
    "ReplyText",
    "body_text",
    "fresh_lines",
    "header_text",
    "html_to_text",
    "split_reply",
    "strip_subject",
]

T = TypeVar("T")
_MAX_PARTS = 200  # a mail with more parts than this is not a command anyway
_MAX_LINES = 1000  # lines split_reply reads
_MAX_MARKER_CHARS = 1000  # longer lines are text, never a quote or signature marker

# --- headers and bodies --------------------------------------------------------------


def _safe(call: Callable[[], T], default: T) -> T:
    """call(), or default when the email package raises on malformed mail."""
    try:
        return call()
    except Exception:
        return default


def header_text(msg: Message, name: str) -> str:
    """The header's decoded value on one line, or "" when absent or unreadable.

    ``msg[name]`` parses the header and raises on some malformed values
    (``ValueError`` for CR/LF in address parts); then the raw value is used.
    """
    try:
        value = msg.get(name)
    except Exception:
        raw = _safe(lambda: list(msg.raw_items()), [])
        value = next((v for k, v in raw if k.lower() == name.lower()), None)
    return "" if value is None else " ".join(str(value).split())


def _content_type(part: Message) -> str:
    return _safe(part.get_content_type, "text/plain")


def _part_text(part: Message) -> str:
    """Decoded text of one leaf part; falls back to the payload bytes decoded leniently."""
    content = _safe(part.get_content, None) if isinstance(part, EmailMessage) else None
    if isinstance(content, str):
        return content
    payload = _safe(lambda: part.get_payload(decode=True), None)
    if isinstance(payload, bytes):
        charset = _safe(part.get_content_charset, None) or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except (LookupError, ValueError):
            return payload.decode("utf-8", errors="replace")
    raw = _safe(part.get_payload, None)
    return raw if isinstance(raw, str) else ""


def _leaves(msg: Message) -> list[tuple[str, Message]]:
    """Inline leaf parts with their content types, in document order.

    Does not descend into an attached ``message/rfc822``: that is someone
    else's mail (a forwarded original, a bounced copy), not the sender's words.
    """
    leaves: list[tuple[str, Message]] = []
    stack: list[Message] = [msg]
    while stack and len(leaves) < _MAX_PARTS:
        part = stack.pop()
        ctype = _content_type(part)
        if part is not msg and ctype.startswith("message/"):
            continue
        children = _safe(part.get_payload, None) if _safe(part.is_multipart, False) else None
        if isinstance(children, list):
            stack.extend(reversed([c for c in children if isinstance(c, Message)]))
        elif _safe(part.get_content_disposition, None) != "attachment":
            leaves.append((ctype, part))
    return leaves


def body_text(msg: Message) -> str:
    """The text the sender wrote: the first inline text/plain part, else HTML as text.

    An empty text/plain alternative next to a real HTML part is skipped, since
    some clients send one. A multipart whose structure could not be parsed is
    read as raw text as a last resort. Returns "" when there is no readable text.
    """
    try:
        leaves = _leaves(msg)
        html_parts = [part for ctype, part in leaves if ctype == "text/html"]
        for ctype, part in leaves:
            if ctype == "text/plain":
                text = _part_text(part)
                if text.strip() or not html_parts:
                    return text
        if html_parts:
            return html_to_text(_part_text(html_parts[0]))
        for ctype, part in leaves:  # a multipart whose boundary is missing: its raw text
            if ctype.startswith("multipart/"):
                return _part_text(part)
    except Exception:
        return ""
    return ""


# --- the fresh part of a reply ----------------------------------------------------------

_ATTRIBUTION_START = re.compile(r"^(am|on)\s.*\d", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"\b(schrieb|wrote|a écrit)\b.*:\s*$", re.IGNORECASE)
# "X schrieb:", and Lotus Notes' "X/Stadt/GE@STADT schrieb am 30.11.2026 10:15:" (whose
# original follows without quote marks: everything below is the original).
_SHORT_ATTRIBUTION = re.compile(
    r"^.{0,100}\b(schrieb|wrote)(\s+(am|on)\s[^:]{0,40}(:\d\d)?)?\s*:\s*$", re.IGNORECASE)
# "-----Ursprüngliche Nachricht-----", "---------- Forwarded message ---------", and
# Outlook web's line of underscores. No dash inside the words: keeps the regex linear.
_SEPARATOR = re.compile(r"^(-{2,}[^-]*\b(nachricht|message)\b[^-]*-{2,}|_{10,})$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\*?(von|from)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\*?(gesendet|sent|an|to|betreff|subject|datum|date|cc)\s*:", re.IGNORECASE
)
_HEADER_SENT = re.compile(r"^\*?(gesendet|sent|datum|date)\s*:\*?\s*\S", re.IGNORECASE)
_MOBILE = re.compile(
    r"^(((gesendet|sent|envoyé)\s+(von|from|mit|with|via|de)\b)|von meinem\b.*\bgesendet\b|"
    r"get outlook for\b|holen sie sich outlook\b|outlook für (android|ios) herunterladen|"
    r"diese nachricht wurde von meinem\b)",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^((vielen\s+)?dank(e)?(\s+schön)?(\s+und|\s*,)?\s+)?"
    r"((mit\s+)?(freundliche[nm]?|beste[nm]?|herzliche[nm]?|liebe[nm]?|viele[nm]?|"
    r"schöne[nm]?|kollegiale[nm]?)\s+(grü(ß|ss)en?|gru(ß|ss)|grüßle)|grü(ß|ss)e|gru(ß|ss)|"
    r"mfg|lg|vg|bg|(best|kind|warm)\s+regards|regards|best wishes|cheers)"
    r"([\s,.!]+[^\s,.!]+){0,3}[\s,.!]*$",
    re.IGNORECASE,
)


def _norm(line: str) -> str:
    """NFC (macOS may send decomposed umlauts), no-break and zero-width spaces removed."""
    line = unicodedata.normalize("NFC", line)
    line = line.replace("\xa0", " ").replace("\u200b", "").replace("\ufeff", "")
    return line.strip()


def _is_closing(line: str) -> bool:
    """True for a complimentary close ("Mit freundlichen Grüßen", "LG Sabine", "Regards").

    What follows a close is a signature, so the reader stops there. Outlook
    signatures come without the "-- " separator, which makes this the only way
    to see that an otherwise empty reply is empty.
    """
    return bool(_CLOSING.match(_norm(line)))


def _marker(lines: list[str], i: int) -> str | None:
    """What line i starts: "quote" (``>`` or "Am … schrieb …:"), "end" (signature,
    close, forwarded original, Outlook header block) or None for a fresh line."""
    raw = lines[i]
    if len(raw) > _MAX_MARKER_CHARS:  # no marker is that long; spares the regexes
        return None
    line = _norm(raw)
    if line.startswith(">") or _SHORT_ATTRIBUTION.match(line):
        return "quote"
    if line == "--" or raw.rstrip("\r\n") == "-- " or _SEPARATOR.match(line):
        return "end"
    if _MOBILE.match(line) or _is_closing(line):
        return "end"
    if _HEADER_FROM.match(line):
        outlook = any(_HEADER_NEXT.match(_norm(nxt)) for nxt in lines[i + 1 : i + 5])
        return "end" if outlook else None
    if _HEADER_SENT.match(line):  # GMX, web.de: "Gesendet:" comes before "Von:"
        following = lines[i + 1 : i + 4]
        return "end" if any(_HEADER_FROM.match(_norm(nxt)) for nxt in following) else None
    if _ATTRIBUTION_START.match(line):
        following = _norm(lines[i + 1][:_MAX_MARKER_CHARS]) if i + 1 < len(lines) else ""
        for candidate in (line, f"{line} {following}"):
            if candidate.endswith(":") and _ATTRIBUTION_END.search(candidate):
                return "quote"  # the ":" test first keeps hostile lines cheap
    return None


@dataclass(frozen=True)
class ReplyText:
    """The fresh lines of a mail; for a bottom post, also the first block below the quote."""

    fresh: tuple[str, ...]
    text_below_quote: bool = False
    below: tuple[str, ...] = ()


def _text_below(lines: list[str], start: int) -> tuple[str, ...]:
    """After a ``>`` quote: the first block of unquoted text below it (a bottom post).

    Only the first block: an interleaved reply's later answers, a signature,
    a mobile footer or a complimentary close below the quote end it. Lines
    before the first ``>`` (a wrapped attribution) do not count.
    """
    seen_quote = _norm(lines[start]).startswith(">")
    block: list[str] = []
    for j in range(start + 1, len(lines)):
        line = _norm(lines[j][:_MAX_MARKER_CHARS])
        if line.startswith(">"):
            if block:
                break
            seen_quote = True
            continue
        if not seen_quote:
            continue
        kind = _marker(lines, j) if line else None
        if kind is not None:
            break
        if line or block:
            block.append(line)
    while block and not block[-1]:
        block.pop()
    return tuple(block)


def split_reply(text: str) -> ReplyText:
    """Lines above the first quote/signature marker, stripped; blank lines kept as "".

    Never reads into a quote. For a ``>``-style quote it also returns the
    first block written below it, so that a bottom post ("ok" under the
    quoted notice, as Thunderbird users write) is read, and is never taken
    for an empty reply. Reads the first 1,000 lines only: a decision stands
    near the top, and a 10 MB body must not cost seconds.
    """
    lines = text.splitlines()[:_MAX_LINES]
    for i in range(len(lines)):
        kind = _marker(lines, i)
        if kind is not None:
            fresh = tuple(_norm(line) for line in lines[:i])
            below = _text_below(lines, i) if kind == "quote" else ()
            return ReplyText(fresh, bool(below), below)
    return ReplyText(tuple(_norm(line) for line in lines))


def fresh_lines(text: str) -> list[str]:
    """The non-empty lines above the first quote or signature marker."""
    return [line for line in split_reply(text).fresh if line]


# --- subjects -----------------------------------------------------------------------------

_SUBJECT_PREFIXES = re.compile(
    r"^(?:\s*(?:(?:re|aw|wg|fwd?|wtr|sv|vs|antw|tr|rif)\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*:"
    r"|\[[^\]]{0,40}\]))+",
    re.IGNORECASE,
)


def strip_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and ``[LIST]`` tags, in any order.

    "AW: [SAS] WG: Re: anmelden" -> "anmelden".
    """
    return _SUBJECT_PREFIXES.sub("", " ".join(_norm(subject).split())).strip()


_GREETING = re.compile(
    r"^(hallo|hello|hi|hey|moin|servus|guten\s+(morgen|tag|abend)|sehr\s+geehrte[rs]?|"
    r"liebe[rs]?|dear|good\s+(morning|afternoon|evening))\b",
    re.IGNORECASE,
)


def strip_greeting(line: str) -> str:
    """Drop "Hallo," / "Liebe Frau X," openings; keep what follows a comma on the same line.

    One rule for the command reader and the reply reader, so "Hallo, ok" means
    the same at ``-request`` as under a notice.
    """
    for _ in range(3):
        greeting = _GREETING.match(line)
        if not greeting:
            break
        _, comma, rest = line.partition(",")
        if comma:
            line = rest.strip()
        elif (len(line) <= 40 or line.endswith("!")) and _only_addressee(line[greeting.end():]):
            return ""
        else:
            break   # "Lieber nicht", "hallo ok": words of her own, not a greeting
    return line


_ADDRESSEE = re.compile(r"zusammen|alle|allerseits|miteinander|team|frau|herr|kolleg\w*|"
                        r"everyone|everybody|all|there|folks|team", re.IGNORECASE)


def _only_addressee(rest: str) -> bool:
    """After "Hallo"/"Liebe": only a name (capitalised) or "zusammen", "Frau", "Team" …"""
    return all(word[0].isupper() or _ADDRESSEE.fullmatch(word)
               for word in re.findall(r"[^\W\d_]+", rest))
