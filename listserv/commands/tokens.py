"""Confirmation tokens: secret, single use, bound to one action, one list, one address.

A token is 160 random bits written as 32 lowercase base32 characters
(``[a-z2-7]``), so it survives mail systems that lowercase addresses and
fits in ``L-confirm+TOKEN@D``. The database holds only its SHA-256: whoever
reads a backup still cannot confirm anything. Redeeming is one UPDATE that
succeeds only for an unused, unexpired token, so two replies racing each
other cannot both use it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import aiosqlite

from listserv.clock import iso


class Action(StrEnum):
    SUBSCRIBE = "subscribe"            # the address confirms it wants to join
    APPROVE_MEMBER = "approve_member"  # a moderator approves a confirmed request
    UNSUBSCRIBE = "unsubscribe"        # the member confirms leaving
    INVITE_REQUEST = "invite_request"  # a moderator confirms her own "einladen"
    INVITATION = "invitation"          # the invited person accepts
    REMOVE_REQUEST = "remove_request"  # a moderator confirms her own "entfernen"
    MODERATE_POST = "moderate_post"    # a moderator decides a held post


#: A token where people write it (a Subject, a quoted mail): to blank it out of text we
#: keep or hand out (``posts.subject``, ``members export-data``).
TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9])[a-z2-7]{32}(?![A-Za-z0-9])")


def new_token() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.lower().encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class TokenRow:
    token_hash: str
    action: Action
    list_address: str
    address: str
    requester: str
    data: dict[str, Any]
    created_at: str
    expires_at: str
    used_at: str | None
    used_by: str
    outcome: str


class Lookup(StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


async def issue(
    db: aiosqlite.Connection,
    *,
    action: Action,
    list_address: str,
    address: str,
    now: datetime,
    days: int,
    requester: str = "",
    data: dict[str, Any] | None = None,
) -> str:
    """Create a token inside the caller's transaction; return it (the only copy)."""
    token = new_token()
    await db.execute(
        "INSERT INTO tokens (token_hash, action, list_address, address, requester, data,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (token_hash(token), action.value, list_address, address, requester,
         json.dumps(data or {}, ensure_ascii=False), iso(now), iso(now + timedelta(days=days))),
    )
    return token


async def look_up(
    db: aiosqlite.Connection, token: str, list_address: str, now: datetime
) -> tuple[Lookup, TokenRow | None]:
    async with db.execute(
        "SELECT * FROM tokens WHERE token_hash = ? AND list_address = ?",
        (token_hash(token), list_address),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return Lookup.UNKNOWN, None
    found = TokenRow(
        token_hash=row["token_hash"], action=Action(row["action"]),
        list_address=row["list_address"], address=row["address"],
        requester=row["requester"], data=json.loads(row["data"] or "{}"),
        created_at=row["created_at"], expires_at=row["expires_at"], used_at=row["used_at"],
        used_by=row["used_by"], outcome=row["outcome"],
    )
    if found.used_at is not None:
        return Lookup.USED, found
    if found.expires_at <= iso(now):
        return Lookup.EXPIRED, found
    return Lookup.VALID, found


async def use(
    db: aiosqlite.Connection, row: TokenRow, *, now: datetime, by: str, outcome: str
) -> bool:
    """Mark the token used; False if it was used meanwhile (then do nothing)."""
    cursor = await db.execute(
        "UPDATE tokens SET used_at = ?, used_by = ?, outcome = ?"
        " WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
        (iso(now), by, outcome, row.token_hash, iso(now)),
    )
    return cursor.rowcount == 1


async def expire(db: aiosqlite.Connection, now: datetime, keep_days: int = 30) -> int:
    """Delete tokens that expired (or were used) more than ``keep_days`` ago.

    Used tokens are kept that long so a second reply can be told "already
    decided by … at …"; consent_log keeps the proof beyond that.
    """
    cutoff = iso(now - timedelta(days=keep_days))
    cursor = await db.execute(
        "DELETE FROM tokens WHERE expires_at < ? OR (used_at IS NOT NULL AND used_at < ?)",
        (cutoff, cutoff),
    )
    return cursor.rowcount
