"""The desk's buttons: each is the mail reply's own code path, never a second one.

A held post or a membership request is decided through
``roles.confirm.decide`` with the token row its notice carries, exactly as
the coordinator's reply to that notice would be: the token is used in the
same transaction, the post's state or the member row changes, the poster
or person is told, the consent log is written and the coordinator gets her
usual one-line acknowledgement. What she decided by mail first is shown as
decided (the post's state, the token's ``used_at``), never done twice;
the atomic UPDATEs underneath refuse a second decision in any case.

``einladen`` and ``entfernen`` go through ``membership.actions.
moderator_change`` as a DKIM-proven mail from her would (the session was
opened by a link mailed to her configured address: the same proof). A
CSV upload invites each address (``send_invitation``): the people join by
confirming, never on the file's word.
"""

from __future__ import annotations

import json
from typing import Any

import aiosqlite
from aiohttp import web

from listserv.commands.parse import Command, Verb
from listserv.commands.tokens import Action, TokenRow
from listserv.config import ListConfig
from listserv.log import event
from listserv.mail.message import normalise_address
from listserv.membership import members
from listserv.membership.actions import moderator_change, send_invitation
from listserv.membership.memberfile import read_members
from listserv.moderation.publish import publish_approved
from listserv.roles.confirm import decide
from listserv.store.database import Store
from listserv.web import forms, site
from listserv.web.acting import web_request

MEANINGS = ("approve", "reject", "discard")
MAX_IMPORT_ROWS = 500


def token_data(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _token_row(row: aiosqlite.Row) -> TokenRow:
    return TokenRow(token_hash=row["token_hash"], action=Action(row["action"]),
                    list_address=row["list_address"], address=row["address"],
                    requester=row["requester"], data=token_data(row["data"]),
                    created_at=row["created_at"], expires_at=row["expires_at"],
                    used_at=row["used_at"], used_by=row["used_by"], outcome=row["outcome"])


async def find_post(store: Store, mlist: ListConfig, post: str) -> aiosqlite.Row | None:
    if not post.isdigit() or len(post) > 12:
        return None
    return await store.fetchone("SELECT * FROM posts WHERE id = ? AND list_address = ?",
                                (int(post), mlist.address))


async def _form(request: web.Request) -> tuple[site.Visitor, ListConfig, dict[str, str]]:
    who, mlist = await site.moderator(request)
    form = await request.post()
    site.check_csrf(who, form)
    return who, mlist, {k: v for k, v in form.items() if isinstance(v, str)}


def _request_of(request: web.Request, mlist: ListConfig, who: site.Visitor) -> Any:
    ctx = site.ctx_of(request)
    assert who.address is not None
    return web_request(mlist, as_given=who.address, name="", peer=site.client_ip(request),
                       now=ctx.clock(), language=mlist.language,
                       timezone=ctx.config.server.timezone, proven=True)


async def post_decision(request: web.Request) -> web.StreamResponse:
    """Approve, reject (with a reason) or discard a held post."""
    ctx = site.ctx_of(request)
    who, mlist, fields = await _form(request)
    meaning = fields.get("decision", "")
    if meaning not in MEANINGS:
        raise web.HTTPBadRequest(text="unknown decision\n", headers=site.HEADERS)
    post = await find_post(ctx.store, mlist, request.match_info["post"])
    if post is None:
        raise web.HTTPNotFound(text="no such post\n", headers=site.HEADERS)
    req = _request_of(request, mlist, who)
    async with ctx.store.transaction() as db:
        async with db.execute(   # the post's notice: read in Python, as both stores can
                "SELECT * FROM tokens WHERE action = 'moderate_post' AND list_address = ?"
                " AND used_at IS NULL", (mlist.address,)) as cur:
            found = next((row for row in await cur.fetchall()
                          if json.loads(row["data"]).get("post") == post["id"]), None)
        if post["state"] != "held" or found is None or found["used_at"] is not None:
            outcome, done = f"post {post['id']} was already decided", "already"
        elif found["expires_at"] <= req.item.received_at:
            outcome, done = f"post {post['id']}: its notice has expired", "expired"
        else:
            outcome = await decide(db, req, _token_row(found), "", meaning,
                                   forms.clean_reason(fields.get("reason", "")))
            done = meaning
    event("web_desk", list=mlist.address, moderator=who.address, post=post["id"],
          decision=meaning, outcome=outcome)
    ctx.wake_sender()
    if done == "approve":
        await publish_approved(ctx)
    return site.redirect(request, f"/desk/post/{post['id']}?list={mlist.list_id}&done={done}")


async def request_decision(request: web.Request) -> web.StreamResponse:
    """Approve or decline (with a reason) a membership request waiting for her."""
    ctx = site.ctx_of(request)
    who, mlist, fields = await _form(request)
    meaning = fields.get("decision", "")
    ident = request.match_info["request"]
    if meaning not in MEANINGS or not ident.isdigit():
        raise web.HTTPBadRequest(text="unknown decision\n", headers=site.HEADERS)
    req = _request_of(request, mlist, who)
    async with ctx.store.transaction() as db:
        async with db.execute("SELECT * FROM tokens WHERE rowid = ? AND list_address = ?"
                              " AND action = 'approve_member'",
                              (int(ident), mlist.address)) as cur:
            found = await cur.fetchone()
        if found is None or found["used_at"] is not None:
            outcome, done = "request already decided", "already"
        elif found["expires_at"] <= req.item.received_at:
            outcome, done = "request expired", "expired"
        else:
            outcome = await decide(db, req, _token_row(found), "", meaning,
                                   forms.clean_reason(fields.get("reason", "")))
            done = f"request_{meaning}"
    event("web_desk", list=mlist.address, moderator=who.address, request=ident,
          decision=meaning, outcome=outcome)
    ctx.wake_sender()
    return site.redirect(request, f"/desk/?list={mlist.list_id}&done={done}")


async def members_change(request: web.Request) -> web.StreamResponse:
    """Invite one person, remove one member, or invite everyone in an uploaded CSV."""
    ctx = site.ctx_of(request)
    who, mlist = await site.moderator(request)
    form = await request.post()
    site.check_csrf(who, form)
    action = form.get("action")
    req = _request_of(request, mlist, who)
    if action == "import":
        upload = form.get("file")
        data = upload.file.read(1024 * 1024 + 1) if isinstance(upload, web.FileField) else b""
        outcome, done = await _import(ctx, req, data)
    elif action in ("invite", "remove"):
        typed = form.get("email")
        address = normalise_address(typed) if isinstance(typed, str) else None
        if address is None:
            return site.redirect(request, f"/desk/members?list={mlist.list_id}&done=invalid")
        name = forms.clean_name(str(form.get("name", "")))
        verb = Verb.INVITE if action == "invite" else Verb.REMOVE
        async with ctx.store.transaction() as db:
            outcome = await moderator_change(db, req, Command(verb, f"{address} {name}".strip()))
        done = str(action)
    else:
        raise web.HTTPBadRequest(text="unknown action\n", headers=site.HEADERS)
    event("web_desk", list=mlist.address, moderator=who.address, action=action,
          outcome=outcome)
    ctx.wake_sender()
    return site.redirect(request, f"/desk/members?list={mlist.list_id}&done={done}")


async def _import(ctx: Any, req: Any, data: bytes) -> tuple[str, str]:
    """Invite each new address of the file; existing members are left alone."""
    if len(data) > 1024 * 1024:
        return "import refused: file over 1 MiB", "import_too_large"
    rows, problems = read_members(data)
    invited = 0
    async with ctx.store.transaction() as db:
        for row in rows[:MAX_IMPORT_ROWS]:
            if await members.get(db, req.mlist.address, row.address) is None:
                await send_invitation(db, req, row.address, row.name)
                invited += 1
    return (f"import: {invited} invited, {len(rows) - invited} already members or over"
            f" {MAX_IMPORT_ROWS}, {len(problems)} lines skipped", f"imported_{invited}")
