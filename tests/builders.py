"""Building test mails as they arrive: constructed, serialised, parsed again."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage


def parse(raw: str | bytes) -> EmailMessage:
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def arrived(
    text: str | None = None,
    *,
    html: str | None = None,
    subject: str = "",
    sender: str = "Sabine Kowalski <sabine.kowalski@gelsenkirchen.de>",
    to: str = "soziale.arbeit.an.schulen@gelsenkirchen.de",
) -> EmailMessage:
    """text/plain, HTML, or both as multipart/alternative."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    return parse(msg.as_bytes())
