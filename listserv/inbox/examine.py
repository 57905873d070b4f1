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

from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

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
    faults: tuple[str, ...]   # steps that raised: the handlers guard those themselves


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
        payload = part.get_payload() if isinstance(part, Message) else None
        if isinstance(payload, list):
            stack.extend((child, level + 1) for child in payload)
    return depth, parts


def _header_chars(msg: Message) -> int:
    chars = 0
    for part in msg.walk():
        for name in part:
            chars += len(header_text(part, name))
    return chars


def examine_message(raw: bytes) -> Examined:
    """Everything a handler reads, once; raises only when a limit is exceeded.

    ``Unreadable`` (too many parts, too deep), ``MemoryError`` and
    ``RecursionError`` mean the mail is beyond us; any other error of one
    step is only noted in ``faults``: the email package raises on some
    real mail (a CR-only bounce that cannot be written back, an address
    with CR/LF), and the handlers already guard those calls. The time
    limit is the worker's.
    """
    msg = parse(raw)
    depth, parts = _depth_and_parts(msg)
    faults: list[str] = []
    chars = 0
    steps: list[tuple[str, Callable[[], object]]] = [
        ("headers", lambda: _header_chars(msg)), ("sender", lambda: sender_of(msg)),
        ("subject", lambda: subject(msg)), ("text", lambda: fresh_lines(body_text(msg))),
        ("bytes", lambda: to_bytes(msg))]
    for name, step in steps:
        try:
            result = step()
        except (Unreadable, MemoryError, RecursionError):
            raise
        except Exception as exc:
            faults.append(f"{name}: {type(exc).__name__}")
            continue
        if name == "headers":
            chars = int(result)  # type: ignore[call-overload]
    return Examined(parts=parts, depth=depth, header_chars=chars, faults=tuple(faults))
