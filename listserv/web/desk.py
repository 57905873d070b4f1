"""The coordinator's desk (``/desk/``): what waits for her, the members, one member's log.

Every page needs a session whose address is a configured moderator of the
list shown (checked at each request, from the configuration: taking an
address out of ``moderators`` closes her desk at once). No member list,
no held post and no consent log is reachable otherwise; a member's session
gets 403. The buttons post to ``deciding``, which calls the functions a
mail reply calls.

Pages read at most one page of members (50) with a count; the held posts
and requests are the few open ones, read by the ``posts_by_state`` index
and the tokens' own rows.
"""

from __future__ import annotations

import csv
import io
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiohttp import web

from listserv.clock import iso
from listserv.config import ListConfig
from listserv.mail.message import one_line
from listserv.mail.text import body_text, header_text
from listserv.membership import members
from listserv.texts.render import render
from listserv.web import deciding, forms, site

PAGE_SIZE = 50
POST_TEXT_CHARS = 20_000


def add_routes(app: web.Application) -> None:
    app.router.add_get("/desk/", overview)
    app.router.add_get("/desk/post/{post}", read_post)
    app.router.add_post("/desk/post/{post}", deciding.post_decision)
    app.router.add_post("/desk/request/{request}", deciding.request_decision)
    app.router.add_get("/desk/members", member_list)
    app.router.add_post("/desk/members", deciding.members_change)
    app.router.add_get("/desk/members.csv", export_csv)
    app.router.add_get("/desk/member", member_log)


async def overview(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await site.moderator(request)
    held = await ctx.store.fetchall(
        "SELECT id, sender, subject, created_at, reason FROM posts WHERE state = 'held'"
        " AND list_address = ? ORDER BY created_at LIMIT 200", (mlist.address,))
    pending = await ctx.store.fetchall(
        "SELECT rowid AS id, address, data, created_at FROM tokens"
        " WHERE action = 'approve_member' AND list_address = ? AND used_at IS NULL"
        " AND expires_at > ? ORDER BY created_at LIMIT 200", (mlist.address, iso(ctx.clock())))
    counted = await ctx.store.fetchone(
        "SELECT count(*) AS n FROM members WHERE list_address = ?", (mlist.address,))
    return site.render(request, who, "desk.html", mlist=mlist, held=held,
                       pending=[(r, deciding.token_data(r["data"])) for r in pending],
                       member_count=counted["n"] if counted else 0,
                       lists=site.moderated_lists(ctx, who.address or ""),
                       done=request.query.get("done", ""))


async def read_post(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await site.moderator(request)
    post = await deciding.find_post(ctx.store, mlist, request.match_info["post"])
    if post is None:
        raise web.HTTPNotFound(text="no such post\n", headers=site.HEADERS)
    raw = await ctx.store.fetchone("SELECT unseal(raw) AS raw FROM inbox WHERE id = ?",
                                   (post["inbox_id"],))
    data = raw["raw"] if raw is not None and raw["raw"] else b""
    try:
        # A stranger's mail: read in the limited worker, never on the event loop.
        shown = await ctx.in_worker(readable_post, data)
    except Exception as exc:
        shown = {"from": "", "to": "", "date": "", "subject": "",
                 "text": f"(cannot be shown: {type(exc).__name__})"}
    return site.render(request, who, "post.html", mlist=mlist, post=post, shown=shown,
                       reason=_reason(post["rule"], post["reason"], who.language, mlist),
                       done=request.query.get("done", ""))


def _reason(rule: str, stored: str, language: str, mlist: ListConfig) -> str:
    """Why the post is held, in the reader's language when the texts explain the rule."""
    try:
        return render(language, f"reason_{rule}", texts_dir=mlist.texts_dir).body.strip()
    except (OSError, KeyError, ValueError):
        return stored


def readable_post(raw: bytes) -> dict[str, str]:
    """From, To, Date, Subject and the text of a held post, as plain strings (autoescaped)."""
    if not raw:
        return {"text": "", "from": "", "date": "", "subject": "", "to": ""}
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return {"from": one_line(header_text(msg, "From"), 300),
            "to": one_line(header_text(msg, "To"), 300),
            "date": one_line(header_text(msg, "Date"), 100),
            "subject": one_line(header_text(msg, "Subject"), 300),
            "text": body_text(msg)[:POST_TEXT_CHARS]}


def _like(word: str) -> str:
    """A search word as a LIKE pattern: its own % and _ taken literally."""
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def member_page(ctx: Any, mlist: ListConfig, word: str, number: int
                      ) -> tuple[list[Any], forms.Paging]:
    """One page of members (by address), matching ``word`` in address or name if given.

    Without a word: a count and one page, both by the (list, address) index.
    With one: a substring match cannot use an index, so the page and its total
    come from one scan (``count(*) OVER ()``); a second query only when the
    page asked for lies beyond the matches.
    """
    columns = ("address, address_as_given, display_name, role, employer_type, status,"
               " joined_at")
    if not word:
        counted = await ctx.store.fetchone(
            "SELECT count(*) AS n FROM members WHERE list_address = ?", (mlist.address,))
        paging = _paging(number, counted["n"] if counted else 0)
        # The OFFSET is walked in the covering (list, address) index alone; only the
        # page's 50 rows are read from the table.
        rows = await ctx.store.fetchall(
            f"SELECT {columns} FROM members WHERE id IN (SELECT id FROM members"
            " WHERE list_address = ? ORDER BY address LIMIT ? OFFSET ?) ORDER BY address",
            (mlist.address, PAGE_SIZE, paging.offset))
        return rows, paging
    where = ("list_address = ? AND (address LIKE ? ESCAPE '\\'"
             " OR display_name LIKE ? ESCAPE '\\')")
    params = [mlist.address, _like(word.lower()), _like(word)]
    sql = (f"SELECT {columns}, count(*) OVER () AS total FROM members WHERE {where}"
           " ORDER BY address LIMIT ? OFFSET ?")
    rows = await ctx.store.fetchall(sql, [*params, PAGE_SIZE, (number - 1) * PAGE_SIZE])
    if rows or number == 1:
        return rows, _paging(number, rows[0]["total"] if rows else 0)
    counted = await ctx.store.fetchone(f"SELECT count(*) AS n FROM members WHERE {where}",
                                       params)
    paging = _paging(number, counted["n"] if counted else 0)
    rows = await ctx.store.fetchall(sql, [*params, PAGE_SIZE, paging.offset])
    return rows, paging


def _paging(number: int, total: int) -> forms.Paging:
    """The page asked for, or the last one when it lies beyond the end."""
    paging = forms.Paging(number=number, size=PAGE_SIZE, total=total)
    return forms.Paging(number=min(number, paging.pages), size=PAGE_SIZE, total=total)


async def member_list(request: web.Request) -> web.Response:
    ctx = site.ctx_of(request)
    who, mlist = await site.moderator(request)
    word = forms.search_word(request.query.get("q"))
    rows, paging = await member_page(ctx, mlist, word,
                                     forms.page_number(request.query.get("page")))
    return site.render(request, who, "members.html", mlist=mlist, rows=rows, paging=paging,
                       q=word, done=request.query.get("done", ""))


async def export_csv(request: web.Request) -> web.Response:
    """The members as CSV, the columns of ``listserv members export``."""
    ctx = site.ctx_of(request)
    _, mlist = await site.moderator(request)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["E-Mail", "Name", "Funktion", "Träger", "Sprache", "Status", "Seit"])
    for m in await members.all_members(ctx.store, mlist.address):
        writer.writerow([m.as_given, m.display_name, m.role, m.employer_type, m.language,
                         m.status, m.joined_at])
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{mlist.local_part}-mitglieder.csv"'})


async def member_log(request: web.Request) -> web.Response:
    """One member's consent log: every join, confirmation, change and removal, with proof."""
    ctx = site.ctx_of(request)
    who, mlist = await site.moderator(request)
    address = request.query.get("address", "").strip().lower()[:254]
    member = await ctx.store.fetchone(
        "SELECT * FROM members WHERE list_address = ? AND address = ?", (mlist.address, address))
    log = await ctx.store.fetchall(
        "SELECT event, at, detail, peer, message_id FROM consent_log"
        " WHERE list_address = ? AND address = ? ORDER BY id", (mlist.address, address))
    return site.render(request, who, "member.html", mlist=mlist, member=member, log=log,
                       member_address=address)
