"""Does a stored mail name a person? In any case, and in any encoding a mail can use.

``members forget`` must find every stored mail that carries an address,
whatever header or envelope it came under (From, Reply-To, Sender, To, a
held notice's attached copy, an answer sent to her) and however it is
written there: upper case, an RFC 2047 encoded word, a quoted-printable or
base64 body, a URL-encoded ``%40``. A byte search misses all but the first,
so the mail is read the way a mail client shows it (every header decoded,
every part's payload decoded, attached mails included) and each form is
compared lower-cased. Never raises: a mail we cannot parse is searched as
bytes only, and the caller treats an unreadable mail as one to delete.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from email.message import Message


def forms(address: str) -> list[str]:
    """The spellings of ``address`` we look for (all lower case)."""
    plain = address.strip().lower()
    return [plain, plain.replace("@", "%40"), plain.replace("@", "=40")]


def _texts(raw: bytes, depth: int = 0) -> list[str]:
    out = [raw.decode("latin-1").lower()]
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # a mail the parser cannot read: the bytes above must do
        return out
    for part in msg.walk():
        out.extend(_headers(part))
        for inner in _attached_mails(part) if depth < _MAX_DEPTH else []:
            out.extend(_texts(inner, depth + 1))
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            continue
        if isinstance(payload, bytes):
            for charset in ("utf-8", "latin-1"):
                out.append(payload.decode(charset, "replace").lower())
    return out


_MAX_DEPTH = 3   # a mail attached to a mail attached to a mail (held notice of a bounce)


def _attached_mails(part: Message) -> list[bytes]:
    """Mails carried inside ``part`` in a way ``walk`` does not decode.

    A ``message/rfc822`` part with a transfer encoding (Python's own
    ``add_attachment`` writes base64) is parsed as a mail whose body is the
    encoded text; an ``.eml`` sent as ``application/octet-stream`` (how a
    held notice attaches a mail it cannot parse) is not parsed at all.
    """
    found: list[bytes] = []
    try:
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if part.get_content_maintype() == "message" and cte in ("base64", "quoted-printable"):
            inner = part.get_payload()
            body = inner[0].get_payload() if isinstance(inner, list) and inner else None
            if isinstance(body, str):
                holder = email.message.Message()
                holder["Content-Transfer-Encoding"] = cte
                holder.set_payload(body)
                decoded = holder.get_payload(decode=True)
                if isinstance(decoded, bytes):
                    found.append(decoded)
        elif not part.is_multipart() and part.get_content_maintype() == "application":
            decoded = part.get_payload(decode=True)
            if isinstance(decoded, bytes) and b":" in decoded[:200]:
                found.append(decoded)
    except Exception:  # a broken part: its bytes were searched already
        pass
    return found


def _headers(part: Message) -> list[str]:
    found = []
    for name in set(part.keys()):
        try:
            values = part.get_all(name) or []
        except Exception:
            continue
        for value in values:
            try:
                found.append(str(value).lower())
            except Exception:
                continue
    return found


def names(raw: bytes | None, address: str) -> bool:
    """True when the mail ``raw`` carries ``address`` anywhere, in any form."""
    if not raw:
        return False
    wanted = forms(address)
    return any(form in text for text in _texts(raw) for form in wanted)
