"""A member's settings (``/me/``): pause and resume, leave, name and role, her data.

Reached only with a session opened by a login link mailed to her own
address, so the session proves the address as her reply to a token would.
Pausing and resuming are ``membership.actions.set_delivery``, as the mail
commands ``pausieren``/``fortsetzen`` (she is told by mail, as there);
leaving removes her at once with the consent record and goodbye mail of the
one-click link; the data download is ``erasure.export``, the very JSON of
``listserv members export-data``.
"""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite
from aiohttp import web

from listserv.log import event
from listserv.membership import erasure, members
from listserv.membership.actions import set_delivery
from listserv.outbox.respond import answer
from listserv.texts.compose import compose
from listserv.web import forms, site
from listserv.web.acting import web_request


def add_routes(app: web.Application) -> None:
    app.router.add_get("/me/", settings_page)
    app.router.add_post("/me/", settings_post)
    app.router.add_get("/me/data.json", my_data)


async def _member_visitor(request: web.Request) -> site.Visitor:
    who = await site.visitor(request)
    if who.session is None:
        raise web.HTTPSeeOther(site.base_path(request) + "/login", headers=site.HEADERS)
    return who


async def settings_page(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who = await _member_visitor(request)
    assert who.address is not None
    memberships = []
    async with ctx.store.transaction() as db:   # a consistent read of all her rows
        for mlist in ctx.config.lists:
            member = await members.get(db, mlist.address, who.address)
            if member is not None:
                memberships.append((mlist, member))
    return site.render(request, who, "me.html", memberships=memberships,
                       done=request.query.get("done", ""))


async def settings_post(request: web.Request) -> web.StreamResponse:
    ctx = site.ctx_of(request)
    who = await _member_visitor(request)
    form = await request.post()
    site.check_csrf(who, form)
    assert who.address is not None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    mlist = site.find_list(ctx, fields.get("list"))
    action = fields.get("action", "")
    now = ctx.clock()
    done = ""
    async with ctx.store.transaction() as db:
        member = await members.get(db, mlist.address, who.address)
        if member is None:
            return site.redirect(request, "/me/")
        req = web_request(mlist, as_given=member.as_given, name=member.display_name,
                          peer=site.client_ip(request), now=now, language=member.language,
                          timezone=ctx.config.server.timezone, proven=True)
        if action in ("pause", "resume"):
            outcome = await set_delivery(db, req, paused=action == "pause")
            done = action
        elif action == "leave":
            await members.remove(db, list_address=mlist.address, address=member.address,
                                 now=now, event="unsubscribed", peer=req.item.peer,
                                 detail="left on the settings page (session from a login link)")
            goodbye = compose(mlist, to=member.as_given, template="goodbye",
                              language=member.language, now=now,
                              values={"address": member.as_given})
            await answer(db, mlist, goodbye, to=member.as_given, now=now, kind="goodbye",
                         inbox_id=None, capped=False)
            outcome, done = "left the list", "leave"
        elif action == "profile":
            outcome = await _set_profile(db, mlist.address, member.address, fields, now)
            done = "profile"
        else:
            raise web.HTTPBadRequest(text="unknown action\n")
    event("web_member", list=mlist.address, member=member.address, action=action,
          outcome=outcome)
    ctx.wake_sender()
    return site.redirect(request, f"/me/?done={done}")


async def _set_profile(db: aiosqlite.Connection, list_address: str, address: str,
                       fields: dict[str, str], now: datetime) -> str:
    """Correct name, role and employer type; the change is written to the consent log."""
    role = fields.get("role", "")
    employer = fields.get("employer_type", "")
    if (role and role not in forms.ROLES) or (employer and employer not in forms.EMPLOYERS):
        raise web.HTTPBadRequest(text="unknown role or employer type\n")
    name = forms.clean_name(fields.get("name", ""))
    await db.execute(
        "UPDATE members SET display_name = ?, role = ?, employer_type = ?"
        " WHERE list_address = ? AND address = ?", (name, role, employer, list_address, address))
    await members.log_consent(db, list_address=list_address, address=address,
                              event="profile_changed", now=now,
                              detail="name/role corrected on the settings page")
    return "profile corrected"


async def my_data(request: web.Request) -> web.Response:
    """Everything stored about her, as ``listserv members export-data`` prints it."""
    ctx = site.ctx_of(request)
    who = await _member_visitor(request)
    assert who.address is not None
    data = await erasure.export(ctx.store, who.address)
    return web.Response(
        text=json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="meine-daten.json"'})
