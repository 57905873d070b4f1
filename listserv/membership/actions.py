"""Membership by mail: subscribe, confirm, approve, unsubscribe (DESIGN §3, §5).

What the handlers in ``roles`` call for the roles ``request``, ``join`` and
``leave``, and for the membership actions of ``confirm`` replies. Each
reads the mail, asks the pure parts (``commands.parse``,
``inbox.automatic``, ``texts.compose``) what it means, and then applies
the whole result in one transaction: the member change, its consent
record, the token's use, the answer mail, and the inbox row's end. A crash
before that commit changes nothing, so the row is simply handled again.

Who may do what:
- anyone may ask to join or leave, but only for the address the mail comes
  from, and the change happens only after a reply to a secret token mailed
  to that very address: a forged From cannot subscribe or remove anyone;
- a moderator's approval needs both the token of that request and a From
  that is one of the list's moderators;
- ``who``, ``einladen`` and ``entfernen`` are for moderators; the member list
  goes to the moderator's configured address, never to the From of the
  request, and membership changes wait for her reply to a token.
"""

from __future__ import annotations

import aiosqlite

from listserv.commands import tokens
from listserv.commands.parse import Command, Verb
from listserv.commands.tokens import Action
from listserv.config import ListConfig
from listserv.inbox.request import Request
from listserv.log import event
from listserv.mail.message import message_id, normalise_address, one_line, references, subject
from listserv.mail.text import body_text, fresh_lines
from listserv.membership import members
from listserv.outbox.respond import answer, notify
from listserv.texts.compose import compose


def guess_language(req: Request) -> str:
    """German or English, from the words of the request; else the list's language."""
    text = " ".join([subject(req.msg), *fresh_lines(body_text(req.msg))[:8]]).lower()
    words = set(text.replace(",", " ").replace(".", " ").split())
    english = len(words & {"please", "subscribe", "unsubscribe", "join", "leave", "help",
                           "the", "me", "list", "thanks", "confirm", "remove", "add"})
    german = len(words & {"bitte", "anmelden", "abmelden", "hilfe", "mich", "den", "der",
                          "die", "verteiler", "danke", "und", "ich", "aufnehmen",
                          "austragen", "eintragen", "bestätigen", "grüße"})
    if english > german:
        return "en"
    if german > english:
        return "de"
    return req.mlist.language


async def reply(
    db: aiosqlite.Connection, req: Request, template: str, *, to: str | None = None,
    language: str | None = None, token: str | None = None, also_other: bool = False,
    **values: object,
) -> bool:
    """Answer the request's sender (rate-limited) with ``template``."""
    rcpt = to or req.sender
    assert rcpt is not None
    lang = language or req.language
    other = ("en" if lang == "de" else "de") if also_other else None
    msg = compose(
        req.mlist, to=rcpt, template=template, language=lang, now=req.now,
        values={"address": rcpt, **values}, token=token, also_in=other,
        in_reply_to=message_id(req.msg), references=references(req.msg),
    )
    return await answer(db, req.mlist, msg, to=rcpt, now=req.now, kind=template,
                        inbox_id=req.item.id)


async def notify_moderators(
    db: aiosqlite.Connection, req: Request, template: str, *, token: str | None,
    to: list[str] | None = None, **values: object,
) -> None:
    mlist = req.mlist
    for moderator in to or list(mlist.moderators):
        msg = compose(mlist, to=moderator, template=template, language=mlist.language,
                      now=req.now, values=values, token=token, kind="auto-generated")
        await notify(db, mlist, msg, rcpts=[moderator], now=req.now, kind=template,
                     inbox_id=req.item.id)


# -- join ------------------------------------------------------------------------


async def subscribe(db: aiosqlite.Connection, req: Request) -> str:
    mlist, address = req.mlist, req.sender
    assert address is not None
    if await members.get(db, mlist.address, address):
        await reply(db, req, "already_member")
        return "already a member"
    policy = mlist.subscription_policy
    data = {"name": req.display_name, "language": req.language,
            "as_given": req.from_.as_given or address}
    if policy == "open":
        await add_and_welcome(db, req, data["as_given"], req.display_name, req.language,
                              event="subscribed", detail="open list: request mail")
        return "subscribed (open list)"
    if policy == "approve":
        if not await reply(db, req, "pending_approval"):
            return "dropped (rate limit)"
        token = await tokens.issue(db, action=Action.APPROVE_MEMBER, list_address=mlist.address,
                                   address=address, now=req.now, days=mlist.token_days,
                                   requester=address, data=data)
        await notify_moderators(db, req, "approve_member", token=token, address=address,
                                name=req.display_name or "-")
        await members.log_consent(db, list_address=mlist.address, address=address,
                                  event="subscribe_requested", now=req.now,
                                  message_id=message_id(req.msg), peer=req.item.peer)
        return "waiting for approval"
    # confirm, confirm_then_approve: the address itself must confirm first.
    token = await tokens.issue(db, action=Action.SUBSCRIBE, list_address=mlist.address,
                               address=address, now=req.now, days=mlist.token_days,
                               requester=address, data=data)
    if not await reply(db, req, "confirm_subscribe", token=token, also_other=True,
                       days=mlist.token_days):
        return "dropped (rate limit)"
    await members.log_consent(db, list_address=mlist.address, address=address,
                              event="subscribe_requested", now=req.now,
                              token_hash=tokens.token_hash(token), message_id=message_id(req.msg),
                              peer=req.item.peer)
    return "confirmation sent"


async def add_and_welcome(
    db: aiosqlite.Connection, req: Request, address: str, name: str, language: str, *,
    event: str, detail: str, token_hash: str = "",
) -> bool:
    """Add the member and welcome her, or tell her she already is one; True if added.

    The one way a person becomes a member by mail (her own confirmation, the
    moderator's approval, an accepted invitation), so every path writes the
    same consent record and sends the same welcome.
    """
    added = await members.add(
        db, list_address=req.mlist.address, address=address, now=req.now, display_name=name,
        language=language, event=event, token_hash=token_hash,
        message_id=message_id(req.msg), detail=detail, peer=req.item.peer,
    )
    if added:
        await reply(db, req, "welcome", to=address, language=language)
        _log_member("member_added", req, address, detail)
    else:
        await reply(db, req, "already_member", to=address, language=language)
    return added


def _log_member(name: str, req: Request, address: str, detail: str) -> None:
    event(name, list=req.mlist.address, member=address, inbox=req.item.id,
          msgid=message_id(req.msg), detail=detail)


# -- leave -----------------------------------------------------------------------


async def unsubscribe(db: aiosqlite.Connection, req: Request) -> str:
    mlist, address = req.mlist, req.sender
    assert address is not None
    member = await members.get(db, mlist.address, address)
    if member is None:
        # Same words whatever the truth, so an answer tells nothing about membership.
        await reply(db, req, "leave_not_member")
        return "leave request from a non-member"
    token = await tokens.issue(db, action=Action.UNSUBSCRIBE, list_address=mlist.address,
                               address=address, now=req.now, days=mlist.token_days,
                               requester=address)
    await reply(db, req, "confirm_unsubscribe", token=token, language=member.language,
                days=mlist.token_days)
    return "unsubscribe confirmation sent"


# -- moderator commands ------------------------------------------------------------


def is_moderator(mlist: ListConfig, address: str | None) -> bool:
    return address is not None and address in mlist.moderators


async def who(db: aiosqlite.Connection, req: Request) -> str:
    if not is_moderator(req.mlist, req.sender):
        await reply(db, req, "moderators_only")
        return "who refused: not a moderator"
    async with db.execute(
        "SELECT address, display_name, status FROM members WHERE list_address = ?"
        " ORDER BY address", (req.mlist.address,)) as cursor:
        rows = list(await cursor.fetchall())
    lines = [f"{r['address']}  {r['display_name']}".rstrip()
             + ("" if r["status"] == "enabled" else f"  ({r['status']})") for r in rows]
    # To the moderator's configured address (her From matched it), never elsewhere.
    await notify_moderators(db, req, "member_list", token=None, to=[req.sender or ""],
                            count=len(rows), members="\n".join(lines) or "-")
    return f"member list sent to moderator ({len(rows)})"


async def send_invitation(db: aiosqlite.Connection, req: Request, address: str, name: str
                          ) -> None:
    """The invited person gets a token; she becomes a member only by answering it."""
    mlist = req.mlist
    invitation = await tokens.issue(db, action=Action.INVITATION, list_address=mlist.address,
                                    address=address, now=req.now, days=mlist.token_days,
                                    requester=req.sender or "", data={"name": name,
                                    "language": mlist.language, "invited_by": req.sender})
    msg = compose(mlist, to=address, template="invitation", language=mlist.language,
                  now=req.now, values={"address": address, "days": mlist.token_days},
                  token=invitation, also_in="en" if mlist.language == "de" else "de",
                  kind="auto-generated")
    await answer(db, mlist, msg, to=address, now=req.now, kind="invitation",
                 inbox_id=req.item.id)
    await members.log_consent(db, list_address=mlist.address, address=address,
                              event="invited", now=req.now, detail=f"by {req.sender}")


async def remove_by_moderator(db: aiosqlite.Connection, req: Request, address: str,
                              token_hash: str = "") -> bool:
    """Remove ``address``, tell the person and the moderator; False if not a member."""
    mlist = req.mlist
    member = await members.get(db, mlist.address, address)
    if member is None:
        await notify_moderators(db, req, "moderator_done", token=None, to=[req.sender or ""],
                                what=f"{address}: kein Mitglied / not a member")
        return False
    await members.remove(db, list_address=mlist.address, address=address, now=req.now,
                         event="removed", token_hash=token_hash,
                         detail=f"removed by moderator {req.sender}")
    await reply(db, req, "removed", to=address, language=member.language)
    await notify_moderators(db, req, "moderator_done", token=None, to=[req.sender or ""],
                            what=f"{address}: entfernt / removed")
    event("member_removed", list=mlist.address, member=address, inbox=req.item.id,
          detail=f"by moderator {req.sender}")
    return True


async def moderator_change(db: aiosqlite.Connection, req: Request, command: Command) -> str:
    """``einladen``/``entfernen``: at once when DKIM proves the moderator wrote it,
    else only after her reply to a token sent to her configured address."""
    mlist = req.mlist
    if not is_moderator(mlist, req.sender):
        await reply(db, req, "moderators_only")
        return f"{command.verb} refused: not a moderator"
    target_text, _, name = command.argument.partition(" ")
    target = normalise_address(target_text)
    if target is None:
        await reply(db, req, "invalid_address")  # not her text back (the From may be forged)
        return f"{command.verb}: invalid address"
    name = one_line(name, 100)
    if req.moderator_verified:
        if command.verb is Verb.INVITE:
            await send_invitation(db, req, target, name)
            await notify_moderators(db, req, "moderator_done", token=None, to=[req.sender or ""],
                                    what=f"{target}: eingeladen / invited")
            return f"invite {target}: invitation sent (DKIM-verified moderator)"
        removed = await remove_by_moderator(db, req, target)
        return f"remove {target}: {'removed' if removed else 'not a member'} (DKIM-verified)"
    action = Action.INVITE_REQUEST if command.verb is Verb.INVITE else Action.REMOVE_REQUEST
    token = await tokens.issue(db, action=action, list_address=mlist.address, address=target,
                               now=req.now, days=mlist.token_days, requester=req.sender or "",
                               data={"name": name})
    template = "confirm_invite" if action is Action.INVITE_REQUEST else "confirm_remove"
    await notify_moderators(db, req, template, token=token, to=[req.sender or ""],
                            address=target, name=name or "-")
    return f"{command.verb} {target}: confirmation sent to moderator"
