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
from listserv.texts.compose import compose, person
from listserv.texts.render import render


def guess_language(req: Request) -> str:
    """German or English, from the words of the request; else the list's language."""
    text = " ".join([subject(req.msg), *fresh_lines(body_text(req.msg))[:8]]).lower()
    words = set(text.replace(",", " ").replace(".", " ").split())
    english = len(words & {"please", "subscribe", "unsubscribe", "join", "leave", "help",
                           "the", "me", "list", "thanks", "confirm", "remove", "add",
                           "nomail", "resume", "pause"})
    german = len(words & {"bitte", "anmelden", "abmelden", "hilfe", "mich", "den", "der",
                          "die", "verteiler", "danke", "und", "ich", "aufnehmen",
                          "austragen", "eintragen", "bestätigen", "grüße", "pausieren",
                          "fortsetzen"})
    if english > german:
        return "en"
    if german > english:
        return "de"
    return req.mlist.language


async def reply(
    db: aiosqlite.Connection, req: Request, template: str, *, to: str | None = None,
    language: str | None = None, token: str | None = None, capped: bool = True,
    to_name: str = "", **values: object,
) -> bool:
    """Answer the request's sender with ``template``, in one language.

    ``capped=False`` for mail the person asked for (``outbox.respond``): it is
    sent even when her address has had its answers for the day.
    """
    rcpt = to or req.sender
    assert rcpt is not None
    msg = compose(
        req.mlist, to=rcpt, template=template, language=language or req.language, now=req.now,
        values={"address": rcpt, **values}, token=token, to_name=to_name,
        in_reply_to=message_id(req.msg), references=references(req.msg),
    )
    return await answer(db, req.mlist, msg, to=rcpt, now=req.now, kind=template,
                        inbox_id=req.item.id, capped=capped)


async def notify_moderators(
    db: aiosqlite.Connection, req: Request, template: str, *, token: str | None,
    to: list[str] | None = None, **values: object,
) -> None:
    mlist = req.mlist
    if "address" in values and "person" not in values:
        values["person"] = person(str(values.get("name", "")), str(values["address"]))
    for moderator in to or list(mlist.moderators):
        msg = compose(mlist, to=moderator, template=template, language=mlist.language,
                      now=req.now, values=values, token=token, kind="auto-generated")
        await notify(db, mlist, msg, rcpts=[moderator], now=req.now, kind=template,
                     inbox_id=req.item.id)


async def acknowledge(db: aiosqlite.Connection, req: Request, template: str,
                      **values: object) -> None:
    """One short mail to the moderator who decided by mail: what her reply did.

    A notice, so never held back by the reply cap; it carries no token, so
    answering it changes nothing.
    """
    await notify_moderators(db, req, template, token=None, to=[req.sender or ""], **values)


# -- join ------------------------------------------------------------------------


async def subscribe(db: aiosqlite.Connection, req: Request,
                    profile: dict[str, str] | None = None) -> str:
    """A join request; ``profile``: role and employer type from the web's join form,
    carried in the token to the member row."""
    mlist, address = req.mlist, req.sender
    assert address is not None
    if await members.get(db, mlist.address, address):
        await reply(db, req, "already_member")
        return "already a member"
    policy = mlist.subscription_policy
    data = {"name": req.display_name, "language": req.language,
            "as_given": req.from_.as_given or address, **(profile or {})}
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
                                name=req.display_name)
        await members.log_consent(db, list_address=mlist.address, address=address,
                                  event="subscribe_requested", now=req.now,
                                  message_id=message_id(req.msg), peer=req.item.peer)
        return "waiting for approval"
    # confirm, confirm_then_approve: the address itself must confirm first.
    token = await tokens.issue(db, action=Action.SUBSCRIBE, list_address=mlist.address,
                               address=address, now=req.now, days=mlist.token_days,
                               requester=address, data=data)
    if not await reply(db, req, "confirm_subscribe", token=token, days=mlist.token_days):
        return "dropped (rate limit)"
    await members.log_consent(db, list_address=mlist.address, address=address,
                              event="subscribe_requested", now=req.now,
                              token_hash=tokens.token_hash(token), message_id=message_id(req.msg),
                              peer=req.item.peer)
    return "confirmation sent"


async def start_join(db: aiosqlite.Connection, req: Request, address: str, *, approved_by: str
                     ) -> str:
    """Start the join of ``address`` on a moderator's word ("aufnehmen" on a held post).

    The person still confirms her own address (double opt-in, the proof of
    consent); the token remembers the moderator, so her reply adds her at once.
    """
    mlist = req.mlist
    if await members.get(db, mlist.address, address):
        return "already a member"
    data = {"name": "", "language": mlist.language, "as_given": address,
            "approved_by": approved_by}
    token = await tokens.issue(db, action=Action.SUBSCRIBE, list_address=mlist.address,
                               address=address, now=req.now, days=mlist.token_days,
                               requester=approved_by, data=data)
    if not await reply(db, req, "confirm_subscribe", to=address, language=mlist.language,
                       token=token, also_other=True, days=mlist.token_days):
        return "dropped (rate limit)"
    await members.log_consent(db, list_address=mlist.address, address=address,
                              event="subscribe_requested", now=req.now,
                              token_hash=tokens.token_hash(token), message_id=message_id(req.msg),
                              detail=f"request written to the list; aufnehmen by {approved_by}")
    return "confirmation sent"


async def ask_for_colleague(db: aiosqlite.Connection, req: Request, colleague: str) -> str:
    """A member asks to add a colleague: the coordinator gets a ready invitation.

    Her "ok" sends the usual invitation (``Action.INVITE_REQUEST``); the
    colleague joins only by confirming it herself. The asker is told once.
    """
    mlist = req.mlist
    address = normalise_address(colleague)
    if address is None or address == req.sender:
        return "colleague request without a usable address"
    if await members.get(db, mlist.address, address):
        # The same answer as for a non-member: an answer must not tell who is a member.
        await reply(db, req, "colleague_forwarded")
        return f"colleague {address} is already a member; nothing to do"
    token = await tokens.issue(db, action=Action.INVITE_REQUEST, list_address=mlist.address,
                               address=address, now=req.now, days=mlist.token_days,
                               requester=req.sender or "",
                               data={"name": "", "requested_by": req.sender})
    asker = f"{req.display_name} <{req.sender}>" if req.display_name else req.sender
    await notify_moderators(db, req, "colleague_request", token=token, address=address,
                            asker=one_line(asker or "-", 150))
    # Not her words back: the From may be forged, so the colleague's address is not repeated.
    await reply(db, req, "colleague_forwarded")
    return f"colleague {address}: ready invitation sent to the moderators"


async def add_and_welcome(
    db: aiosqlite.Connection, req: Request, address: str, name: str, language: str, *,
    event: str, detail: str, token_hash: str = "", profile: dict[str, str] | None = None,
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
        role=(profile or {}).get("role", ""),
        employer_type=(profile or {}).get("employer_type", ""),
    )
    # She asked for this (her own reply to a token, or the moderator's decision
    # on her request): never held back by the reply cap.
    if added:
        await reply(db, req, "welcome", to=address, language=language, capped=False,
                    to_name=name)
        _log_member("member_added", req, address, detail)
    else:
        await reply(db, req, "already_member", to=address, language=language, capped=False)
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


# -- pause and resume ------------------------------------------------------------


async def set_delivery(db: aiosqlite.Connection, req: Request, *, paused: bool) -> str:
    """``pausieren``/``nomail`` and ``fortsetzen``/``mail``: a member pauses delivery
    (parental leave) and resumes it; the membership and its consent stay.

    Acts on the From's own row only and tells that address, so a forged
    pause is seen at once by the member it concerns, who undoes it with one
    word. Resuming also switches back on a member disabled for bounces: she
    has just written from that mailbox. A non-member gets the usual answer.
    """
    mlist, address = req.mlist, req.sender
    assert address is not None
    member = await members.get(db, mlist.address, address)
    if member is None:
        await reply(db, req, "not_a_member")
        return f"{'pause' if paused else 'resume'} from a non-member"
    await members.set_status(db, list_address=mlist.address, address=address,
                             status="nomail" if paused else "enabled")
    await reply(db, req, "paused" if paused else "resumed", to=member.as_given,
                language=req.language)
    _log_member("member_paused" if paused else "member_resumed", req, address,
                f"was {member.status}")
    return f"delivery {'paused' if paused else 'resumed'} (was {member.status})"


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
    shown = {status: render(req.mlist.language, f"status_{status}",
                            texts_dir=req.mlist.texts_dir).body.strip()
             for status in ("nomail", "disabled")}
    lines = [f"{r['address']}  {r['display_name']}".rstrip()
             + (f"  ({shown[r['status']]})" if r["status"] in shown else "") for r in rows]
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
                  token=invitation, kind="auto-generated")
    # The moderator (token or DKIM proven) asked for it: not held back by the cap.
    await answer(db, mlist, msg, to=address, now=req.now, kind="invitation",
                 inbox_id=req.item.id, capped=False)
    await members.log_consent(db, list_address=mlist.address, address=address,
                              event="invited", now=req.now, detail=f"by {req.sender}")


async def remove_by_moderator(db: aiosqlite.Connection, req: Request, address: str,
                              token_hash: str = "") -> bool:
    """Remove ``address``, tell the person and the moderator; False if not a member."""
    mlist = req.mlist
    member = await members.get(db, mlist.address, address)
    if member is None:
        await acknowledge(db, req, "ack_not_member", address=address)
        return False
    await members.remove(db, list_address=mlist.address, address=address, now=req.now,
                         event="removed", token_hash=token_hash,
                         detail=f"removed by moderator {req.sender}")
    await reply(db, req, "removed", to=member.as_given, language=member.language, capped=False)
    await acknowledge(db, req, "ack_removed", address=address, name=member.display_name)
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
            await acknowledge(db, req, "ack_invited", address=target, name=name)
            return f"invite {target}: invitation sent (DKIM-verified moderator)"
        removed = await remove_by_moderator(db, req, target)
        return f"remove {target}: {'removed' if removed else 'not a member'} (DKIM-verified)"
    action = Action.INVITE_REQUEST if command.verb is Verb.INVITE else Action.REMOVE_REQUEST
    token = await tokens.issue(db, action=action, list_address=mlist.address, address=target,
                               now=req.now, days=mlist.token_days, requester=req.sender or "",
                               data={"name": name})
    template = "confirm_invite" if action is Action.INVITE_REQUEST else "confirm_remove"
    await notify_moderators(db, req, template, token=token, to=[req.sender or ""],
                            address=target, name=name)
    return f"{command.verb} {target}: confirmation sent to moderator"
