"""Read a whole mail once, as every handler will: does it finish within the limits?

Run by the processor in the worker process (``inbox.worker``, time and
memory limited) before a handler sees the row. It does what the handlers
do with a mail, all of it: parse, decode every header of every part, walk
the MIME tree, read the text a person wrote, and write the mail back to
bytes as the list copy does. A mail this finishes for is safe to handle
on the daemon's side; one it does not finish for (or that the email
package cannot write back) is parked with the reason, and nothing else
waits for it.

Pure: bytes in, a short summary out; it raises on what it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass

from listserv.mail.message import parse, sender_of, subject, to_bytes
from listserv.mail.text import body_text, fresh_lines, header_text

MAX_PARTS = 1000     # as intake.screen: a second line of defence, counted on the parse
MAX_DEPTH = 40


class Unreadable(Exception):
    """The mail is beyond what a list post may be; the message says why."""


@dataclass(frozen=True)
class Examined:
    parts: int
    depth: int
    header_chars: int


def _depth_and_parts(msg: object) -> tuple[int, int]:
    """Depth and number of parts, walked without recursion (deep trees cost no stack)."""
    stack = [(msg, 1)]
    parts = depth = 0
    while stack:
        part, level = stack.pop()
        parts += 1
        depth = max(depth, level)
        if parts > MAX_PARTS:
            raise Unreadable(f"over {MAX_PARTS} MIME parts")
        if depth > MAX_DEPTH:
            raise Unreadable(f"nested deeper than {MAX_DEPTH} levels")
        payload = part.get_payload() if hasattr(part, "get_payload") else None  # type: ignore[attr-defined]
        if isinstance(payload, list):
            stack.extend((child, level + 1) for child in payload)
    return depth, parts


def examine_message(raw: bytes) -> Examined:
    """Everything a handler reads, once; raises ``Unreadable`` (or the parser's error)."""
    msg = parse(raw)
    depth, parts = _depth_and_parts(msg)
    chars = 0
    for part in msg.walk():
        for name in part:
            chars += len(header_text(part, name))
    sender_of(msg)
    subject(msg)
    fresh_lines(body_text(msg))
    to_bytes(msg)
    return Examined(parts=parts, depth=depth, header_chars=chars)
