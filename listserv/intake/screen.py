"""Is this mail too complex to examine? A cheap, linear look at DATA, before the 250.

Python's email package is quadratic in places (decoding a header of many
RFC 2047 encoded words: 5,000 take a second, 50,000 a couple of minutes),
builds an object per MIME part (100,000 parts: many seconds and hundreds of
megabytes) and recurses per nesting level. No mailing-list post needs
anything near these limits, so a mail beyond them is refused at DATA with
``codes.TOO_COMPLEX`` (5.6.0): the sender learns at once, and nothing of it
is stored. The counting here is regular expressions over the bytes, linear
in the size (which ``max_message_bytes`` bounds), and never parses.

What passes is still examined in a worker process with a time and memory
limit (``inbox.worker``) before any handler reads it; this screen only
keeps the obvious floods out cheaply.

Counted:

* encoded words in the top-level header block (``MAX_ENCODED_WORDS``) and
  its size (``MAX_HEADER_BYTES``);
* MIME parts: lines that open a part of a declared boundary (``MAX_PARTS``);
* containers: declared multipart boundaries and ``message/*`` parts, an
  upper bound of the nesting depth (``MAX_CONTAINERS``).
"""

from __future__ import annotations

import re

MAX_HEADER_BYTES = 256 * 1024
MAX_ENCODED_WORDS = 2000
MAX_PARTS = 1000
MAX_CONTAINERS = 40

_ENCODED_WORD = re.compile(rb"=\?[^?\s]{1,75}\?[bBqQ]\?")
_BOUNDARY = re.compile(rb"boundary\s*=\s*(?:\"([^\"\r\n]{1,200})\"|([^\s;\"]{1,200}))",
                       re.IGNORECASE)
_DELIMITER = re.compile(rb"^--([^\r\n]{1,200}?)[ \t]*\r?$", re.MULTILINE)
_MESSAGE_PART = re.compile(rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?message/", re.IGNORECASE
                           | re.MULTILINE)


def _header_end(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i != -1]
    return min(ends) if ends else len(raw)


def screen(raw: bytes) -> str | None:
    """Why ``raw`` is refused, or None when it may be stored."""
    head_end = _header_end(raw)
    if head_end > MAX_HEADER_BYTES:
        return f"header block over {MAX_HEADER_BYTES // 1024} KiB"
    head = raw[:head_end]
    words = len(_ENCODED_WORD.findall(head))
    if words > MAX_ENCODED_WORDS:
        return f"{words} encoded words in the header (at most {MAX_ENCODED_WORDS})"
    boundaries = {(quoted or bare).strip() for quoted, bare in _BOUNDARY.findall(raw)}
    containers = len(boundaries) + len(_MESSAGE_PART.findall(raw))
    if containers > MAX_CONTAINERS:
        return f"{containers} nested MIME containers (at most {MAX_CONTAINERS})"
    if boundaries:
        parts = 0
        for match in _DELIMITER.finditer(raw):
            value = match.group(1)
            if value in boundaries or (value.endswith(b"--") and value[:-2] in boundaries):
                parts += 1
                if parts > 2 * MAX_PARTS:   # an opening and a closing line per part at most
                    break
        opening = parts - len(boundaries)   # each multipart also has one closing line
        if opening > MAX_PARTS:
            return f"over {MAX_PARTS} MIME parts"
    return None
