"""Redeeming a token: what a reply to one of our notices does.

A reply reaches us at ``L-confirm+TOKEN@D`` (or with the token in the
Subject or a ``confirm TOKEN`` line at ``L-request@D``: the same reading
either way). The token names the action; the reply's fresh text, read by
``commands.reader``, names the choice; ``commands.verdict`` says what that
choice does for this notice. A person confirming her own request may write
anything that is not a no; a moderator acts only on an explicit word, and
otherwise gets "Ihre Antwort enthielt keine Entscheidung" naming the post or
person. The token is used in the same transaction as the action it allows,
so it works exactly once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

import aiosqlite

from listserv.clock import from_iso, local_text
from listserv.commands import tokens
from listserv.commands.parse import Verb
from listserv.commands.reader import read_reply
from listserv.commands.tokens import Action, Lookup, TokenRow
from listserv.commands.verdict import notice_for, verdict
from listserv.inbox.request import Request
from listserv.log import event
from listserv.mail.message import message_id
from listserv.membership import members
from listserv.membership.actions import (
    acknowledge,
    add_and_welcome,
    is_moderator,
    notify_moderators,
    remove_by_moderator,
    reply,
    send_invitation,
)
from listserv.moderation.posts import decide_by_reply, post_facts, start_join_from_post

MODERATOR_ACTIONS = {Action.APPROVE_MEMBER, Action.INVITE_REQUEST, Action.REMOVE_REQUEST,
                     Action.MODERATE_POST}
_VERBS = {"approve": Verb.APPROVE, "reject": Verb.REJECT, "discard": Verb.DISCARD}


async def redeem(db: aiosqlite.Connection, req: Request, token: str) -> str:
    """Read the reply in ``req`` as an answer to the notice of ``token``, and act on it."""
    found, row = await tokens.look_up(db, token, req.mlist.address, req.now)
    if found is Lookup.UNKNOWN or row is None:
        event("token_refused", reason="unknown", list=req.mlist.address, inbox=req.item.id)
        await reply(db, req, "token_unknown")
        return "unknown token"
    if row.action in MODERATOR_ACTIONS and not is_moderator(req.mlist, req.sender):
        # A forged or stray reply: it changes nothing, and nobody is answered,
        # since the From may be a bystander's address.
        event("token_refused", reason="not_a_moderator", list=req.mlist.address,
              inbox=req.item.id, sender=req.sender, action=row.action)
        return f"ignored: {row.action} reply from a non-moderator"
    if found is Lookup.USED:
        if await _same_mail_decided(db, req):
            # One DATA to -request and to -confirm+TOKEN: decided once, answered once.
            return "duplicate delivery of a reply already decided; nothing to do"
        event("token_refused", reason="used", list=req.mlist.address, inbox=req.item.id)
        await reply(db, req, "token_used", by=row.used_by or "-",
                    at=_local_time(req, row.used_at or ""), outcome=row.outcome or "-")
        return "token already used"
    if found is Lookup.EXPIRED:
        event("token_refused", reason="expired", list=req.mlist.address, inbox=req.item.id)
        await reply(db, req, "token_expired", days=req.mlist.token_days)
        return "token expired"
    notice = notice_for(row.action, request_like=bool(row.data.get("request_like")))
    reading = read_reply(req.msg, notice.asker, wish=notice.wish)
    meaning = verdict(notice, reading.choice)
    event("reply_read", list=req.mlist.address, inbox=req.item.id, msgid=req.item.message_id,
          action=row.action, choice=reading.choice, why=reading.why, meaning=meaning)
    if meaning == "ignore":
        return f"ignored: {reading.why}; nothing done, no answer"
    if meaning == "reask":
        if await _same_mail_decided(db, req):
            # One DATA to -request and to -confirm+TOKEN that says nothing: asked once.
            return "duplicate delivery of a reply already answered; nothing to do"
        return await _not_understood(db, req, row, token)
    return await decide(db, req, row, token, meaning, reading.reason)


async def decide(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str,
                 meaning: str, reason: str = "") -> str:
    """Carry out ``meaning`` (a ``verdict``: approve, reject, discard, confirm, decline,
    join) for the notice of ``row``: what a reply does once read, and what the desk's
    buttons do (``web.deciding``), so both write the same records. The caller has
    checked the token is valid and, for a moderator's action, who decides."""
    if row.action is Action.MODERATE_POST and meaning == "join":
        return await start_join_from_post(db, req, row, token)
    if row.action in _DECISIONS:
        return await _DECISIONS[row.action](db, req, row, token, _VERBS[meaning], reason)
    on_yes, declined = _CONFIRMATIONS[row.action]
    if meaning in ("approve", "confirm"):
        return await on_yes(db, req, row, token)
    await _use(db, req, row, "declined")
    if row.action in _CANCELLED:
        await acknowledge(db, req, _CANCELLED[row.action], address=row.address,
                          name=row.data.get("name", ""))
    if row.action not in MODERATOR_ACTIONS:
        await reply(db, req, "request_declined", to=row.address,
                    language=row.data.get("language", req.language))
    return declined


async def _same_mail_decided(db: aiosqlite.Connection, req: Request) -> bool:
    """Was this very mail (same Message-ID, same list) already handled at another address?

    One DATA to ``-request`` and ``-confirm+TOKEN`` is two inbox rows; whichever is
    processed second must neither decide again nor ask again.
    """
    if not req.item.message_id:
        return False
    async with db.execute(
            "SELECT 1 FROM inbox WHERE message_id = ? AND list_address = ? AND id != ?"
            " AND role IN ('request', 'confirm') AND state = 'done'",
            (req.item.message_id, req.mlist.address, req.item.id)) as cursor:
        return await cursor.fetchone() is not None


def _local_time(req: Request, stamp: str) -> str:
    """A stored UTC time as people read it: "25.11.2026, 10:15 Uhr"."""
    try:
        moment = from_iso(stamp)
    except ValueError:
        return stamp
    return local_text(moment, ZoneInfo(req.timezone), req.language)


async def _use(db: aiosqlite.Connection, req: Request, row: TokenRow, outcome: str) -> bool:
    return await tokens.use(db, row, now=req.now, by=req.sender or "", outcome=outcome)


async def _not_understood(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str
                          ) -> str:
    """Ask again, naming what the question was about; nothing changes."""
    if row.action not in MODERATOR_ACTIONS:
        await reply(db, req, "not_understood", token=token, about=row.address)
        return "reply not understood; instructions sent again"
    values: dict[str, object] = {"address": row.address, "name": row.data.get("name") or ""}
    template = {Action.APPROVE_MEMBER: "no_decision_member",
                Action.INVITE_REQUEST: "no_decision_invite",
                Action.REMOVE_REQUEST: "no_decision_remove"}.get(row.action, "no_decision_post")
    if row.action is Action.MODERATE_POST:
        values = await post_facts(db, int(row.data.get("post", 0)))
        if row.data.get("request_like"):
            template = "no_decision_post_request"
    await notify_moderators(db, req, template, token=token, to=[req.sender or ""], **values)
    return "moderator reply held no decision; asked again"


async def _subscribe(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str) -> str:
    mlist = req.mlist
    name, language = row.data.get("name", ""), row.data.get("language", mlist.language)
    th = row.token_hash
    if await members.get(db, mlist.address, row.address):
        await _use(db, req, row, "already a member")
        await reply(db, req, "already_member", to=row.address, language=language, capped=False)
        return "already a member"
    if mlist.subscription_policy == "confirm_then_approve" and not row.data.get("approved_by"):
        await _use(db, req, row, "confirmed")
        await members.log_consent(db, list_address=mlist.address, address=row.address,
                                  event="confirmed", now=req.now, token_hash=th,
                                  message_id=message_id(req.msg), peer=req.item.peer,
                                  detail=f"reply from {req.sender}")
        approval = await tokens.issue(db, action=Action.APPROVE_MEMBER,
                                      list_address=mlist.address, address=row.address,
                                      now=req.now, days=mlist.token_days,
                                      requester=row.address, data=row.data)
        await notify_moderators(db, req, "approve_member", token=approval, address=row.address,
                                name=name or "-")
        await reply(db, req, "pending_approval", to=row.address, language=language,
                    capped=False)
        return "confirmed; approval requested"
    await _use(db, req, row, "subscribed")
    await add_and_welcome(db, req, row.data.get("as_given", row.address), name, language,
                          event="confirmed", token_hash=th,
                          detail=_subscribe_detail(row, req), profile=_profile(row))
    return "subscribed"


def _profile(row: TokenRow) -> dict[str, str]:
    """Role and employer type the join form asked for, kept in the token's data."""
    return {key: str(row.data.get(key, "")) for key in ("role", "employer_type")}


def _subscribe_detail(row: TokenRow, req: Request) -> str:
    """The consent record's detail: who confirmed, and who approved a request written as a post."""
    approved = row.data.get("approved_by")
    return (f"double opt-in, reply from {req.sender}"
            + (f"; request written to the list, accepted by moderator {approved}"
               if approved else ""))


async def _approve_member(
    db: aiosqlite.Connection, req: Request, row: TokenRow, token: str, decision: Verb | None,
    reason: str,
) -> str:
    mlist = req.mlist
    name, language = row.data.get("name", ""), row.data.get("language", mlist.language)
    if decision is Verb.APPROVE or decision is Verb.CONFIRM:
        await _use(db, req, row, "approved")
        await add_and_welcome(db, req, row.data.get("as_given", row.address), name, language,
                              event="approved", detail=f"approved by moderator {req.sender}",
                              token_hash=row.token_hash, profile=_profile(row))
        await acknowledge(db, req, "ack_member_approved", address=row.address, name=name)
        return f"member approved by {req.sender}"
    if decision is Verb.REJECT:
        await _use(db, req, row, "rejected")
        await reply(db, req, "refused" if reason else "refused_no_reason", to=row.address,
                    language=language, capped=False, reason=reason)
        await acknowledge(db, req, "ack_member_refused", address=row.address, name=name)
        await members.log_consent(db, list_address=mlist.address, address=row.address,
                                  event="refused", now=req.now, detail=f"by {req.sender}")
        return f"member refused by {req.sender}"
    if decision is Verb.DISCARD:
        await _use(db, req, row, "discarded")
        await acknowledge(db, req, "ack_member_discarded", address=row.address, name=name)
        return f"request discarded by {req.sender}"
    return await _not_understood(db, req, row, token)


async def _unsubscribe(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str) -> str:
    member = await members.get(db, req.mlist.address, row.address)
    await _use(db, req, row, "unsubscribed")
    if member is None:
        return "was not a member"
    await members.remove(db, list_address=req.mlist.address, address=row.address, now=req.now,
                         event="unsubscribed", token_hash=row.token_hash,
                         message_id=message_id(req.msg), peer=req.item.peer,
                         detail=f"confirmed by {req.sender}")
    await reply(db, req, "goodbye", to=member.as_given, language=member.language, capped=False)
    event("member_removed", list=req.mlist.address, member=row.address, inbox=req.item.id,
          detail="unsubscribed")
    return "unsubscribed"


async def _invite_request(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str) -> str:
    await _use(db, req, row, "invitation sent")
    await send_invitation(db, req, row.address, row.data.get("name", ""))
    await acknowledge(db, req, "ack_invited", address=row.address, name=row.data.get("name", ""))
    return f"invitation sent to {row.address}"


async def _invitation(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str) -> str:
    await _use(db, req, row, "accepted")
    added = await add_and_welcome(
        db, req, row.address, row.data.get("name", ""),
        row.data.get("language", req.mlist.language), event="invitation_accepted",
        detail=f"invited by {row.data.get('invited_by', '-')}, reply from {req.sender}",
        token_hash=row.token_hash)
    return "subscribed by invitation" if added else "already a member"


async def _remove_request(db: aiosqlite.Connection, req: Request, row: TokenRow, token: str) -> str:
    await _use(db, req, row, "removed")
    if not await remove_by_moderator(db, req, row.address, row.token_hash):
        return "not a member"
    return f"removed {row.address}"


# Actions a reply only confirms (yes) or declines (no): (what yes does, what no means).
_CONFIRMATIONS: dict[Action, tuple[Callable[[aiosqlite.Connection, Request, TokenRow, str],
                                            Awaitable[str]], str]] = {
    Action.SUBSCRIBE: (_subscribe, "subscription declined by the address"),
    Action.UNSUBSCRIBE: (_unsubscribe, "unsubscribe declined"),
    Action.INVITE_REQUEST: (_invite_request, "invitation cancelled by moderator"),
    Action.INVITATION: (_invitation, "invitation declined"),
    Action.REMOVE_REQUEST: (_remove_request, "removal cancelled by moderator"),
}
# What the moderator hears when her "verwerfen" cancels her own invite or remove.
_CANCELLED = {Action.INVITE_REQUEST: "ack_invite_cancelled",
              Action.REMOVE_REQUEST: "ack_remove_cancelled"}
# Actions where the moderator chooses between approve, reject and discard.
_DECISIONS: dict[Action, Callable[[aiosqlite.Connection, Request, TokenRow, str, Verb | None,
                                   str], Awaitable[str]]] = {
    Action.APPROVE_MEMBER: _approve_member,
    Action.MODERATE_POST: decide_by_reply,
}
