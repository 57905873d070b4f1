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
from html.parser import HTMLParser
from typing import TypeVar

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
_HTML_MAX_LINES = 400  # the reader needs the top of a mail, not all of it
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


# --- HTML to text ---------------------------------------------------------------------

# fmt: off
_BLOCK_TAGS = frozenset({
    "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "pre", "address", "center", "dl", "dt", "dd", "section", "article", "header", "footer",
})
# fmt: on
_SKIP_TAGS = frozenset({"style", "script", "head", "title", "template"})
_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "gmail_attr", "moz-cite-prefix", "yahoo_quoted"}
)
_QUOTE_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"})
_FROM_LABEL = re.compile(r"\s*\*?(von|from)\s*:", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    """Collects visible text with line breaks and stops at the first quote element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        self.stopped = False
        self.border_pending = False  # an Outlook border-top div: quote if "Von:" follows

    def _newline(self) -> None:
        self.lines.append("".join(self.current))
        self.current = []
        if len(self.lines) >= _HTML_MAX_LINES:
            self.stopped = True

    def _break_block(self) -> None:
        if self.current:
            self._newline()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
            return
        if tag == "body":
            self.skip_depth = 0  # an unclosed <head> must not hide the body
        values = {k.lower(): (v or "") for k, v in attrs}
        classes = set(values.get("class", "").lower().split())
        if (
            tag == "blockquote"
            or classes & _QUOTE_CLASSES
            or values.get("id", "").lower() in _QUOTE_IDS
        ):
            self._break_block()
            self.stopped = True
            return
        if tag == "div" and "border-top" in values.get("style", "").lower():
            self.border_pending = True
        if tag == "br":
            self._newline()
        elif tag in _BLOCK_TAGS:
            self._break_block()

    def handle_endtag(self, tag: str) -> None:
        if self.stopped:
            return
        if tag in _SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._break_block()

    def handle_data(self, data: str) -> None:
        if self.stopped or self.skip_depth:
            return
        text = re.sub(r"[ \t\r\n\f\v]+", " ", data)
        if self.border_pending and text.strip():
            self.border_pending = False
            if _FROM_LABEL.match(text):
                self._break_block()
                self.stopped = True
                return
        if not self.current:
            text = text.lstrip(" ")
        if text:
            self.current.append(text)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one line per ``<br>``/block, cut at the first quote.

    Gmail's ``gmail_quote``, ``<blockquote>``, Thunderbird's ``moz-cite-prefix``,
    Outlook's ``divRplyFwdMsg``/``appendonsend`` and its border-top "Von:" block
    all start the quoted original, so reading stops there.
    """
    parser = _TextExtractor()
    try:
        for start in range(0, len(html), 8192):
            parser.feed(html[start : start + 8192])
            if parser.stopped:
                break
        else:
            parser.close()
    except Exception:
        pass  # keep whatever was read before the parser gave up
    lines = [*parser.lines, "".join(parser.current)]
    return "\n".join(line.replace("\xa0", " ").rstrip() for line in lines).strip("\n")


# --- the fresh part of a reply ----------------------------------------------------------

_ATTRIBUTION_START = re.compile(r"^(am|on)\s.*\d", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"\b(schrieb|wrote|a écrit)\b.*:\s*$", re.IGNORECASE)
_SHORT_ATTRIBUTION = re.compile(r"^.{0,100}\b(schrieb|wrote)\s*:\s*$", re.IGNORECASE)
# "-----Ursprüngliche Nachricht-----", "---------- Forwarded message ---------", and
# Outlook web's line of underscores. No dash inside the words: keeps the regex linear.
_SEPARATOR = re.compile(r"^(-{2,}[^-]*\b(nachricht|message)\b[^-]*-{2,}|_{10,})$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\*?(von|from)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\*?(gesendet|sent|an|to|betreff|subject|datum|date|cc)\s*:", re.IGNORECASE
)
_MOBILE = re.compile(
    r"^(((gesendet|sent|envoyé)\s+(von|from|mit|with|via|de)\b)|von meinem\b.*\bgesendet\b|"
    r"get outlook for\b|diese nachricht wurde von meinem\b)",
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
    if _ATTRIBUTION_START.match(line):
        following = _norm(lines[i + 1][:_MAX_MARKER_CHARS]) if i + 1 < len(lines) else ""
        for candidate in (line, f"{line} {following}"):
            if candidate.endswith(":") and _ATTRIBUTION_END.search(candidate):
                return "quote"  # the ":" test first keeps hostile lines cheap
    return None


@dataclass(frozen=True)
class ReplyText:
    """The fresh lines of a mail and whether text follows a ``>`` quote (a bottom post)."""

    fresh: tuple[str, ...]
    text_below_quote: bool = False


def _has_text_below(lines: list[str], start: int) -> bool:
    """After a ``>`` quote, is there unquoted text (a bottom post)?

    Errs towards "yes": a wrongly seen bottom post only costs a "not understood"
    answer, a missed one would turn "ablehnen" below the quote into an empty
    reply, which confirms. Lines before the first ``>`` (a wrapped attribution)
    and a signature below the quote do not count.
    """
    seen_quote = _norm(lines[start]).startswith(">")
    for raw in lines[start + 1 :]:
        line = _norm(raw)
        if line.startswith(">"):
            seen_quote = True
        elif line == "--" or raw.rstrip("\r\n") == "-- " or _MOBILE.match(line):
            return False
        elif line and seen_quote:
            return True
    return False


def split_reply(text: str) -> ReplyText:
    """Lines above the first quote/signature marker, stripped; blank lines kept as "".

    Never looks past the marker; only for a ``>``-style quote does it check
    whether someone wrote below it, so a bottom post is not taken for an
    empty reply (which would mean "confirm"). Reads the first 1,000 lines only:
    commands stand at the top, and a 10 MB body must not cost seconds.
    """
    lines = text.splitlines()[:_MAX_LINES]
    for i in range(len(lines)):
        kind = _marker(lines, i)
        if kind is not None:
            fresh = tuple(_norm(line) for line in lines[:i])
            return ReplyText(fresh, kind == "quote" and _has_text_below(lines, i))
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
