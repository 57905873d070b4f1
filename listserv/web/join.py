"""The public pages: the join form (``/``) and the login by mailed link (``/login``).

The join form starts exactly what a mail to ``L-join@D`` starts
(``membership.actions.subscribe``): the same token, the same confirmation
mail, the same consent record, with the client's IP as the peer. Its answer
page is the same whether the address is new, already a member, over its
limit, or a robot filled the honeypot: the page never tells who is on the
list. The login form answers alike for anyone too; a link goes only to an
address that is a member or a moderator, and only to that address.

A login link is opened by a GET that only shows a button; the button's POST
uses the link and opens the session. Mail scanners and link previews fetch
every URL in a mail, and must not use up anyone's link.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from listserv.log import event
from listserv.mail.message import normalise_address
from listserv.membership import logins, members
from listserv.membership.actions import subscribe
from listserv.web import forms, sessions, site
from listserv.web.acting import web_request

_TOKEN = re.compile(r"[a-z2-7]{32}")
#: Per client IP and per address, per hour (a person needs one or two).
BY_IP: web.AppKey[forms.RateLimit] = web.AppKey("join_by_ip", forms.RateLimit)
BY_ADDRESS: web.AppKey[forms.RateLimit] = web.AppKey("join_by_address", forms.RateLimit)


def add_routes(app: web.Application) -> None:
    app[BY_IP] = forms.RateLimit(limit=20, window=3600)
    app[BY_ADDRESS] = forms.RateLimit(limit=3, window=3600)
    app.router.add_get("/", join_page)
    app.router.add_post("/", join_post)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_get("/login/{token}", link_page)
    app.router.add_post("/login/{token}", link_post)
    app.router.add_post("/logout", logout)


async def join_page(request: web.Request) -> web.Response:
    who = await site.visitor(request)
    mlist = site.find_list(site.ctx_of(request), request.query.get("list"))
    # The embed snippet (docs/web.md) sends name and address here by GET: the form
    # shows them, and the person still gives consent and submits on this page.
    prefill = {k: request.query[k][:254] for k in ("name", "email", "role", "employer_type")
               if k in request.query}
    return site.render(request, who, "join.html", mlist=mlist, faults=[], form=prefill)


async def join_post(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who = await site.visitor(request)
    form = await request.post()
    site.check_csrf(who, form)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    mlist = site.find_list(ctx, fields.get("list"))
    ip = site.client_ip(request)
    if not request.app[BY_IP].allow(ip, time.monotonic()):
        event("web_join", list=mlist.address, peer=ip, outcome="refused: rate limit (ip)")
        return site.render(request, who, "message.html", status=429, kind="too_many")
    if forms.is_robot(fields):
        event("web_join", list=mlist.address, peer=ip, outcome="ignored: honeypot filled")
        return site.render(request, who, "message.html", kind="join_sent")
    joined, faults = forms.read_join(fields)
    if joined is None:
        return site.render(request, who, "join.html", status=400, mlist=mlist, faults=faults,
                           form=fields)
    if not request.app[BY_ADDRESS].allow(joined.address, time.monotonic()):
        event("web_join", list=mlist.address, peer=ip, outcome="ignored: rate limit (address)")
        return site.render(request, who, "message.html", kind="join_sent")
    now = ctx.clock()
    req = web_request(mlist, as_given=joined.as_given, name=joined.name, peer=ip, now=now,
                      language=who.language, timezone=ctx.config.server.timezone)
    profile = {"role": joined.role, "employer_type": joined.employer_type}
    async with ctx.store.transaction() as db:
        outcome = await subscribe(db, req, profile={k: v for k, v in profile.items() if v})
    event("web_join", list=mlist.address, peer=ip, outcome=outcome)
    ctx.wake_sender()
    return site.render(request, who, "message.html", kind="join_sent")


async def login_page(request: web.Request) -> web.Response:
    who = await site.visitor(request)
    return site.render(request, who, "login.html")


async def login_post(request: web.Request) -> web.Response:
    """Mail a link to a member's or moderator's own address; the same page for anyone."""
    who = await site.visitor(request)
    form = await request.post()
    site.check_csrf(who, form)
    typed = form.get("email")
    address = normalise_address(typed) if isinstance(typed, str) and len(typed) <= 254 else None
    ip = site.client_ip(request)
    if not request.app[BY_IP].allow(ip, time.monotonic()):
        return site.render(request, who, "message.html", status=429, kind="too_many")
    if address is not None and request.app[BY_ADDRESS].allow(address, time.monotonic()):
        await _send_login(request, address, who.language)
    return site.render(request, who, "message.html", kind="login_sent")


async def _send_login(request: web.Request, address: str, language: str) -> None:
    ctx = site.ctx_of(request)
    web_config = ctx.config.web
    assert web_config is not None
    now = ctx.clock()
    async with ctx.store.transaction() as db:
        for mlist in ctx.config.lists:
            member = await members.get(db, mlist.address, address)
            if member is None and address not in mlist.moderators:
                continue
            sent = await logins.send_link(
                db, mlist, to=member.as_given if member else address,
                language=member.language if member else language,
                base_url=web_config.base_url, now=now,
                minutes=web_config.login_link_minutes)
            event("web_login_request", list=mlist.address, address=address,
                  outcome="link queued" if sent else "capped")
            break
        else:
            event("web_login_request", address=address, outcome="unknown address: nothing sent")
    ctx.wake_sender()


async def link_page(request: web.Request) -> web.Response:
    """Show the button; a GET uses nothing (scanners fetch links)."""
    who = await site.visitor(request)
    return site.render(request, who, "link.html", token=request.match_info["token"])


async def link_post(request: web.Request) -> web.StreamResponse:
    ctx = site.ctx_of(request)
    who = await site.visitor(request)
    form = await request.post()
    site.check_csrf(who, form)
    token = request.match_info["token"].lower()
    now = ctx.clock()
    address = None
    if _TOKEN.fullmatch(token):
        async with ctx.store.transaction() as db:
            address = await logins.redeem(db, token, now)
            await logins.forget_expired(db, now)
    if address is None:
        event("web_login", outcome="refused: unknown, used or expired link")
        return site.render(request, who, "message.html", status=403, kind="link_invalid")
    web_config = ctx.config.web
    assert web_config is not None
    await sessions.end(ctx.store, who.session_id)   # a new login never keeps an old session
    session_id, _ = await sessions.open_session(ctx.store, address, now,
                                                web_config.session_minutes)
    target = "/desk/" if site.moderated_lists(ctx, address) else "/me/"
    event("web_login", address=address, outcome=f"session opened for {target}")
    response = site.redirect(request, target)
    site.set_cookie(response, request, sessions.COOKIE, session_id,
                    web_config.session_minutes * 60)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    ctx = site.ctx_of(request)
    who = await site.visitor(request)
    form = await request.post()
    site.check_csrf(who, form)
    await sessions.end(ctx.store, who.session_id)
    response = site.redirect(request, "/login")
    response.del_cookie(sessions.COOKIE, path=site.base_path(request) or "/")
    return response
