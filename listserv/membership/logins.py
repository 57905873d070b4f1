"""Single-use login links for the web face, mailed only to the person's own address.

The link ``<base_url>/login/<token>`` is the only way into a member's
settings or the coordinator's desk: no password is stored. The token is
160 random bits (``commands.tokens.new_token``); the table ``login_links``
keeps only its SHA-256, and using it is one UPDATE that succeeds only while
it is unused and unexpired, so a link opens at most one session however
often it is clicked or replayed. Here, below ``web``, because the mail
command ``einstellungen``/``settings`` sends the same link.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import aiosqlite

from listserv.clock import iso
from listserv.commands.tokens import new_token, token_hash
from listserv.config import ListConfig, WebConfig
from listserv.inbox.request import Request
from listserv.log import event
from listserv.membership import members
from listserv.outbox.respond import answer
from listserv.texts.compose import compose


async def issue(db: aiosqlite.Connection, *, address: str, now: datetime, minutes: int) -> str:
    """A new link for ``address`` inside the caller's transaction; the token's only copy."""
    token = new_token()
    await db.execute(
        "INSERT INTO login_links (token_hash, address, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (token_hash(token), address.lower(), iso(now), iso(now + timedelta(minutes=minutes))))
    return token


async def redeem(db: aiosqlite.Connection, token: str, now: datetime) -> str | None:
    """The address the link was mailed to, marking it used; None if unknown, used or expired."""
    hashed = token_hash(token)
    cursor = await db.execute(
        "UPDATE login_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
        " AND expires_at > ?", (iso(now), hashed, iso(now)))
    if cursor.rowcount != 1:
        return None
    async with db.execute("SELECT address FROM login_links WHERE token_hash = ?",
                          (hashed,)) as cur:
        row = await cur.fetchone()
    return None if row is None else str(row["address"])


async def send_link(
    db: aiosqlite.Connection, mlist: ListConfig, *, to: str, language: str, base_url: str,
    now: datetime, minutes: int, inbox_id: int | None = None,
) -> bool:
    """Issue a link and queue the mail to ``to`` (the person's own address); True if queued.

    Capped like any answer: whoever types an address into the login form has
    proved nothing, so a flood of requests for one address costs it at most
    the day's answers.
    """
    token = await issue(db, address=to, now=now, minutes=minutes)
    msg = compose(mlist, to=to, template="login_link", language=language, now=now,
                  values={"address": to, "url": f"{base_url}/login/{token}",
                          "minutes": minutes}, kind="auto-generated")
    sent = await answer(db, mlist, msg, to=to, now=now, kind="login_link", inbox_id=inbox_id)
    event("login_link", list=mlist.address, rcpt=to, outcome="queued" if sent else "capped")
    return sent


async def forget_expired(db: aiosqlite.Connection, now: datetime) -> int:
    """Delete links and sessions past their expiry (a scheduled clean-up)."""
    links = await db.execute("DELETE FROM login_links WHERE expires_at < ?", (iso(now),))
    sessions = await db.execute("DELETE FROM web_sessions WHERE expires_at < ?", (iso(now),))
    return links.rowcount + sessions.rowcount


async def by_mail(db: aiosqlite.Connection, req: Request, web: WebConfig | None) -> str:
    """``einstellungen``/``settings``: the link goes to the From's own address, and only
    when it is a member or a moderator; a forged From gets a link into its owner's mailbox."""
    mlist, address = req.mlist, req.sender
    assert address is not None
    member = await members.get(db, mlist.address, address)
    if member is None and address not in mlist.moderators:
        msg = compose(mlist, to=address, template="not_a_member", language=req.language,
                      now=req.now, values={"address": address})
        await answer(db, mlist, msg, to=address, now=req.now, kind="not_a_member",
                     inbox_id=req.item.id)
        return "settings link asked by a non-member"
    if web is None:
        msg = compose(mlist, to=address, template="settings_off", language=req.language,
                      now=req.now, values={"address": address})
        await answer(db, mlist, msg, to=address, now=req.now, kind="settings_off",
                     inbox_id=req.item.id)
        return "settings link asked, but the web face is off"
    to = member.as_given if member else address
    sent = await send_link(db, mlist, to=to, language=member.language if member else
                           req.language, base_url=web.base_url, now=req.now,
                           minutes=web.login_link_minutes, inbox_id=req.item.id)
    return "settings link sent" if sent else "settings link dropped (rate limit)"
