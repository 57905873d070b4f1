"""The members' archive on the web (``/archive/``): months, threads, posts, search.

Members only: a session (from a login link) whose address is a member of
the list, or a moderator of it. No session goes to the login page; anyone
else gets 403 and nothing of the archive (sender addresses are shown, so
no archive page is ever reachable without such a session). Every page
reads ``archive.browse``, the API the mail commands ``inhalt``/``hole``/
``suche`` use, so the web and mail show the same posts.

A post is shown as its archived text, autoescaped, never its HTML. An
attachment is given out as a download only: ``application/octet-stream``,
``Content-Disposition: attachment`` with a cleaned RFC 6266 file name, and
``nosniff``, so no browser renders a member's file inside the site. The
attachment is cut from the archived copy in the limited worker, as the
desk reads a held mail.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from aiohttp import web

from listserv.archive import browse, extract, query
from listserv.config import ListConfig
from listserv.membership import members
from listserv.web import site

MONTH_PAGE = 50
SEARCH_PAGE = 10
FILENAME_CHARS = 120


def add_routes(app: web.Application) -> None:
    app.router.add_get("/archive/", index)
    app.router.add_get(r"/archive/{month:\d{4}-\d{2}}", month_page)
    app.router.add_get(r"/archive/post/{number:\d{1,9}}", post_page)
    app.router.add_get(r"/archive/thread/{number:\d{1,9}}", thread_page)
    app.router.add_get(r"/archive/post/{number:\d{1,9}}/attachment/{position:\d{1,4}}",
                       download)
    app.router.add_get("/archive/search", search_page)


async def reader(request: web.Request) -> tuple[site.Visitor, ListConfig]:
    """The visitor and the archive she may read (``?list=`` picks one); else 303 or 403.

    Decided at each request from the members table and the configuration, so
    a member who left, or an address taken out of ``moderators``, reads no more.
    """
    ctx = site.ctx_of(request)
    who = await site.visitor(request)
    if who.address is None:
        raise web.HTTPSeeOther(site.base_path(request) + "/login", headers=site.HEADERS)
    wanted = request.query.get("list", "").lower()
    readable = []
    for mlist in ctx.config.lists:
        if mlist.archive == "off":
            continue
        if who.address in mlist.moderators or await members.get(
                ctx.store.reader, mlist.address, who.address) is not None:
            readable.append(mlist)
    chosen = next((m for m in readable if m.list_id == wanted),
                  readable[0] if readable else None)
    if chosen is None:
        raise web.HTTPForbidden(text="The archive is for the list's members only."
                                " / Das Archiv ist nur für Mitglieder des Verteilers.\n",
                                headers=site.HEADERS)
    return who, chosen


def _number(request: web.Request, key: str = "number") -> int:
    return int(request.match_info[key])


async def index(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await reader(request)
    db = ctx.store.reader
    return site.render(request, who, "archive.html", list=mlist,
                       months=await browse.months(db, mlist.address),
                       latest=await browse.latest(db, mlist.address, 10))


async def month_page(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await reader(request)
    month = query.valid_month(request.match_info["month"])
    if month is None:
        raise web.HTTPNotFound(text="no such month\n", headers=site.HEADERS)
    db = ctx.store.reader
    count = dict(await browse.months(db, mlist.address)).get(month, 0)
    page = query.Page.of(request.query.get("page", "1"), MONTH_PAGE)
    posts = await browse.by_month(db, mlist.address, month, page)
    return site.render(request, who, "archive_month.html", list=mlist, month=month,
                       posts=posts, page=page, count=count,
                       more=page.offset + len(posts) < count)


async def thread_page(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await reader(request)
    posts = await browse.thread(ctx.store.reader, mlist.address, _number(request))
    if not posts:
        raise web.HTTPNotFound(text="no such post\n", headers=site.HEADERS)
    return site.render(request, who, "archive_thread.html", list=mlist, posts=posts)


async def post_page(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await reader(request)
    post = await browse.post(ctx.store.reader, mlist.address, _number(request))
    if post is None:
        raise web.HTTPNotFound(text="no such post\n", headers=site.HEADERS)
    return site.render(request, who, "archive_post.html", list=mlist, post=post)


async def download(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    _, mlist = await reader(request)
    number, position = _number(request), _number(request, "position")
    post = await browse.post(ctx.store.reader, mlist.address, number)
    if post is None or position not in {p.position for p in post.parts}:
        raise web.HTTPNotFound(text="no such attachment\n", headers=site.HEADERS)
    raw = await browse.original(ctx.store.reader, mlist.address, number)
    found = None if raw is None else await ctx.in_worker(extract.attachment, raw, position)
    if found is None:
        raise web.HTTPNotFound(text="no such attachment\n", headers=site.HEADERS)
    filename, _content_type, data = found
    return web.Response(body=data, content_type="application/octet-stream", headers={
        "Content-Disposition": content_disposition(filename, f"anhang-{number}-{position}"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


async def search_page(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await reader(request)
    words = request.query.get("q", "")[:query.MAX_INPUT_CHARS]
    page = query.Page.of(request.query.get("page", "1"), SEARCH_PAGE)
    hits = await browse.search(ctx.store.reader, mlist.address, words, page) if words else None
    more = hits is not None and page.offset + len(hits.hits) < min(hits.total, browse.COUNTED)
    return site.render(request, who, "archive_search.html", list=mlist, words=words,
                       hits=hits, page=page, more=more, searched=bool(words),
                       segments=query.segments)


def safe_filename(name: str, fallback: str) -> str:
    """An attachment's own name, without paths, controls or quotes; ``fallback`` if none is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ")
    name = name.replace('"', "'").strip(" .")[:FILENAME_CHARS]
    return name or fallback


def content_disposition(name: str, fallback: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the UTF-8 ``filename*`` (RFC 6266/8187)."""
    clean = safe_filename(name, fallback)
    ascii_name = clean.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return (f'attachment; filename="{ascii_name}";'
            f" filename*=UTF-8''{quote(clean, safe='')}")
