"""HTML as text: what a person sees in an HTML-only mail, with quotes marked as quotes.

Pure, never raises. Phones and webmail often send HTML only, and their quote
is an element, not ``>`` lines. Reading stops at Outlook's reply header
(everything below it is the original); a ``<blockquote>`` or a Gmail/
Thunderbird quote container is kept, but every line of it is written with
``> `` in front, so that the plain-text reply reader (``text.split_reply``)
treats HTML and plain mail alike: it never reads a quote, and it can still
find an answer written *below* the quote (a bottom post from Thunderbird).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_MAX_LINES = 400  # the reader needs the top of a mail, not all of it

# fmt: off
_BLOCK_TAGS = frozenset({
    "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "pre", "address", "center", "dl", "dt", "dd", "section", "article", "header", "footer",
    "blockquote",
})
# fmt: on
_SKIP_TAGS = frozenset({"style", "script", "head", "title", "template"})
_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "gmail_attr", "moz-cite-prefix", "yahoo_quoted"}
)
# Outlook's reply header: the original follows, and nothing below it is the writer's.
_END_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"})
_FROM_LABEL = re.compile(r"\s*\*?(von|from)\s*:", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    """Collects visible text with line breaks; quoted lines get "> ", Outlook's header stops."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.current_quoted = False
        self.skip_depth = 0
        self.stopped = False
        self.border_pending = False  # an Outlook border-top div: the end if "Von:" follows
        self.open_quotes: list[tuple[str, int]] = []  # (tag, depth of that tag when opened)
        self.depth: dict[str, int] = {}

    def _newline(self) -> None:
        line = "".join(self.current)
        self.lines.append(f"> {line}" if self.current_quoted and line.strip() else line)
        self.current = []
        self.current_quoted = bool(self.open_quotes)
        if len(self.lines) >= _MAX_LINES:
            self.stopped = True

    def _break_block(self) -> None:
        if self.current:
            self._newline()
        self.current_quoted = bool(self.open_quotes)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
            return
        if tag == "body":
            self.skip_depth = 0  # an unclosed <head> must not hide the body
        values = {k.lower(): (v or "") for k, v in attrs}
        if values.get("id", "").lower() in _END_IDS:
            self._break_block()
            self.stopped = True
            return
        if tag in ("div", "blockquote"):
            self.depth[tag] = self.depth.get(tag, 0) + 1
            classes = set(values.get("class", "").lower().split())
            if tag == "blockquote" or classes & _QUOTE_CLASSES:
                self._break_block()
                self.open_quotes.append((tag, self.depth[tag]))
                self.current_quoted = True
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
            return
        if tag in _BLOCK_TAGS:
            self._break_block()
        if tag in ("div", "blockquote"):
            level = self.depth.get(tag, 0)
            while self.open_quotes and self.open_quotes[-1] == (tag, level):
                self.open_quotes.pop()
            self.depth[tag] = max(0, level - 1)
            self.current_quoted = bool(self.open_quotes)

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
            self.current_quoted = bool(self.open_quotes)
        if text:
            self.current.append(text)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one line per ``<br>``/block.

    Gmail's ``gmail_quote``, ``<blockquote>`` and Thunderbird's
    ``moz-cite-prefix`` become ``> `` lines; Outlook's ``divRplyFwdMsg``/
    ``appendonsend`` and its border-top "Von:" block end the text.
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
    if parser.current:
        parser._newline()
    return "\n".join(line.replace("\xa0", " ").rstrip() for line in parser.lines).strip("\n")
