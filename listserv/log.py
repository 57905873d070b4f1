"""One structured line per event, in logfmt, never a message body.

``event("accepted", inbox=12, msgid="<a@b>")`` writes
``2026-11-25T13:00:00Z level=info event=accepted inbox=12 msgid=<a@b>``.
Values are single-line by construction (CR, LF and other control
characters are escaped), so a hostile header cannot forge a log line.
"""

from __future__ import annotations

import logging
import sys
import time

logger = logging.getLogger("listserv")

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\r": "\\r", "\n": "\\n", "\t": "\\t"})


def _format_value(value: object) -> str:
    text = str(value)
    if len(text) > 300:
        text = text[:300] + "…"
    text = text.translate(_ESCAPES)
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if not text or any(c in text for c in ' ="'):
        return f'"{text}"'
    return text


def format_event(name: str, level: str, fields: dict[str, object]) -> str:
    parts = [f"level={level}", f"event={name}"]
    parts += [f"{k}={_format_value(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


def event(name: str, *, level: str = "info", **fields: object) -> None:
    levelno = logging.getLevelName(level.upper())
    if logger.isEnabledFor(levelno):
        logger.log(levelno, format_event(name, level, fields))


class _UTCFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)  # type: ignore[assignment]

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%SZ")
        line = f"{stamp} {record.getMessage()}"
        if record.exc_info:
            # Only the type and text, never locals or a mail body.
            exc = record.exc_info[1]
            line += f" error={_format_value(f'{type(exc).__name__}: {exc}')}"
        return line


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log every SMTP command at INFO, including peers' addresses
    # per line; our own events say what matters.
    for noisy in ("mail.log", "aiosqlite", "apscheduler", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
