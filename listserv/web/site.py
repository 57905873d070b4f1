"""The pages' common ground: templates, security headers, visitors, CSRF, cookies.

What the pages of ``join``, ``me`` and ``desk`` share (``app.install`` puts
them together). Every page is rendered from a Jinja2 template in
``templates/<de|en>/`` (autoescaped); the one stylesheet is
served by the daemon itself, so the Content-Security-Policy allows only the
site itself and no script at all (the pages need none).

CSRF: every form carries a token that must match, in constant time, the
session's own token (logged in) or the ``ls_csrf`` cookie (the public
forms: a double-submit cookie). Both cookies are ``HttpOnly`` and
``SameSite=Strict``, and ``Secure`` when the request came over TLS (directly,
or from the reverse proxy on loopback saying ``X-Forwarded-Proto: https``).
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from listserv.config import ListConfig
from listserv.context import Context
from listserv.web import forms, sessions

TEMPLATES = Path(__file__).parent / "templates"
CTX: web.AppKey[Context] = web.AppKey("ctx", Context)
CSRF_COOKIE = "ls_csrf"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
                               " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Visitor:
    """Who asks: her language, her session (if any), the CSRF token her forms carry."""

    language: str
    session: sessions.Session | None
    session_id: str | None
    csrf: str
    new_csrf_cookie: bool = False

    @property
    def address(self) -> str | None:
        return self.session.address if self.session else None


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        raise
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=(TEMPLATES / "site.css").read_bytes(), content_type="text/css",
                        headers={"Cache-Control": "max-age=3600"})


def ctx_of(request: web.Request) -> Context:
    return request.app[CTX]


def base_path(request: web.Request) -> str:
    """The path prefix links need: the configured mount (the proxy forwards it unchanged)."""
    web_config = ctx_of(request).config.web
    return web_config.mount if web_config is not None else ""


def over_tls(request: web.Request) -> bool:
    if request.secure:
        return True
    return from_proxy(request) and request.headers.get("X-Forwarded-Proto", "") == "https"


def from_proxy(request: web.Request) -> bool:
    """Only a peer on loopback is trusted to tell the client's address and scheme."""
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def client_ip(request: web.Request) -> str:
    """The person's address: the proxy's ``X-Forwarded-For`` (last hop) when it is on loopback."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and from_proxy(request):
        last = forwarded.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return request.remote or "-"


async def visitor(request: web.Request) -> Visitor:
    ctx = ctx_of(request)
    language = forms.pick_language(request.query.get("lang"),
                                   request.headers.get("Accept-Language", ""))
    session_id = request.cookies.get(sessions.COOKIE)
    session = await sessions.find(ctx.store, session_id, ctx.clock())
    if session is not None:
        return Visitor(language, session, session_id, session.csrf)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(cookie) <= 100:
        return Visitor(language, None, None, cookie)
    return Visitor(language, None, None, secrets.token_urlsafe(32), new_csrf_cookie=True)


def check_csrf(visitor: Visitor, form: Any) -> None:
    """Refuse a POST whose form token is missing or wrong (403, nothing done)."""
    given = form.get("csrf")
    if not forms.same_secret(given if isinstance(given, str) else None, visitor.csrf):
        raise web.HTTPForbidden(text="CSRF token missing or wrong: nothing was done.\n")


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str,
               max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=base_path(request) or "/",
                        httponly=True, samesite="Strict", secure=over_tls(request))


def render(request: web.Request, who: Visitor, template: str, *, status: int = 200,
           **context: Any) -> web.Response:
    """The page ``template`` in the visitor's language, with what every page needs."""
    ctx = ctx_of(request)
    lists = ctx.config.lists
    values = {"base": base_path(request), "csrf": who.csrf, "lang": who.language,
              "address": who.address, "list": lists[0], "path": request.path,
              "is_moderator": bool(who.address and moderated_lists(ctx, who.address)),
              **context}
    response = aiohttp_jinja2.render_template(f"{who.language}/{template}", request, values,
                                              status=status)
    if who.new_csrf_cookie:
        set_cookie(response, request, CSRF_COOKIE, who.csrf, None)
    return response


def moderated_lists(ctx: Context, address: str) -> list[ListConfig]:
    return [m for m in ctx.config.lists if address.lower() in m.moderators]


async def moderator(request: web.Request) -> tuple[Visitor, ListConfig]:
    """The visitor and the list she moderates (``?list=`` picks one); else 303 or 403."""
    ctx = ctx_of(request)
    who = await visitor(request)
    if who.address is None:
        raise web.HTTPSeeOther(base_path(request) + "/login", headers=HEADERS)
    lists = moderated_lists(ctx, who.address)
    wanted = request.query.get("list", "").lower()
    chosen = next((m for m in lists if m.list_id == wanted), lists[0] if lists else None)
    if chosen is None:
        raise web.HTTPForbidden(text="This page is for the list's moderators only."
                                " / Diese Seite ist nur für die Moderation.\n",
                                headers=HEADERS)
    return who, chosen


def find_list(ctx: Context, list_id: str | None) -> ListConfig:
    """The list a form names by its List-Id (``?list=``), else the first configured list."""
    for mlist in ctx.config.lists:
        if list_id and mlist.list_id == list_id.lower():
            return mlist
    return ctx.config.lists[0]


def redirect(request: web.Request, path: str) -> web.Response:
    """After a POST: back to a page (303), so a reload does not post again."""
    return web.Response(status=303, headers={"Location": base_path(request) + path})
