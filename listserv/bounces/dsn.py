"""RFC 3464 delivery-status reading, done by hand.

flufl.bounce reads message/delivery-status too, but it drops blocks whose recipient lacks
the ``rfc822;`` type, ignores success actions (so a "delivered" DSN cannot be told from
a mail with no DSN) and never looks at DSN fields an MTA pasted into a text/plain part
(Amazon WorkMail, some Exchange and Japanese gateways do). This reader works on text, so
the same code serves a parsed delivery-status part and fields found in prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from listserv.bounces.mime import normalise_address

_FIELD_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_QUOTE_RE = re.compile(r"^(?:[ \t]*>)+ ?")  # a DSN forwarded inline by a person
_STATUS_RE = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_RECIPIENT_FIELDS = ("original-recipient", "final-recipient", "x-actual-recipient")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded"})


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block: who, and whether it failed for good, for now, or not."""

    addresses: tuple[str, ...]  # Original-Recipient first: that is the member we wrote to
    outcome: str  # "permanent" | "temporary" | "success"


def delivery_status_texts(msg: Message) -> list[str]:
    """Text of every message/delivery-status part, header blocks rebuilt from compat32."""
    texts: list[str] = []
    for part in msg.walk():
        if part.get_content_type() not in _DSN_TYPES:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            blocks = []
            for block in payload:
                if isinstance(block, Message):
                    blocks.append("\n".join(f"{k}: {v}" for k, v in block.items()))
            texts.append("\n\n".join(blocks))
        elif isinstance(payload, str):
            texts.append(payload)
    return texts


def _blocks(text: str) -> list[dict[str, str]]:
    """Split DSN text into field blocks, unfolding continuation lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        line = _QUOTE_RE.sub("", line)
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        match = _FIELD_RE.match(line.strip())
        if match:
            last = match.group(1).lower()
            if last in current and last in _RECIPIENT_FIELDS:
                # AOL runs recipient blocks together without the blank line.
                blocks.append(current)
                current = {}
            current.setdefault(last, match.group(2).strip())
    if current:
        blocks.append(current)
    return blocks


def _recipient(value: str, *, strict: bool = False) -> str | None:
    """The address of a ``type; address`` field; the type is optional in the wild.

    ``strict`` wants the field to hold nothing but the address: X-Actual-Recipient
    is also used for pipes and program paths ("|procmail ... #user@host").
    """
    _, _, address = value.rpartition(";")
    address = (address or value).strip()
    found = normalise_address(address)
    if strict and found and found != address.strip("<>").lower():
        return None
    return found


def _outcome(action: str, status: str) -> str | None:
    action = action.split()[0].strip(" ;()").lower() if action.strip() else ""
    if action in SUCCESS_ACTIONS:
        return "success"
    if action.startswith("delay"):
        return "temporary"
    if action.startswith(("fail", "error")):
        # "failed" means the MTA gave up, whatever its last status: for us it is gone.
        return "permanent"
    match = _STATUS_RE.search(status)
    if match:
        return {"5": "permanent", "4": "temporary", "2": "success"}[match.group(1)]
    return None


def parse_dsn(text: str) -> list[DsnRecipient]:
    """Per-recipient results in DSN text; blocks without a recipient field are skipped."""
    results: list[DsnRecipient] = []
    for block in _blocks(text):
        addresses: list[str] = []
        for field in _RECIPIENT_FIELDS:
            if field in block:
                address = _recipient(block[field], strict=field.startswith("x-"))
                if address and address not in addresses:
                    addresses.append(address)
        if not addresses:
            continue
        outcome = _outcome(block.get("action", ""), block.get("status", ""))
        if outcome is not None:
            results.append(DsnRecipient(tuple(addresses), outcome))
    return results
