"""One-click unsubscribe (RFC 8058): a small HTTP endpoint inside the daemon.

Off unless ``[web]`` is configured. It listens on loopback and is meant to
sit behind the operator's HTTPS reverse proxy (``base_url``). Routes:

``/u/<token>``, a member's own link (personalised copies carry it in
List-Unsubscribe and in the footer):
  * ``POST`` with ``List-Unsubscribe=One-Click`` removes the member at once
    (that is what mail providers send when the reader clicks "unsubscribe"),
    writes the consent log, queues the goodbye mail, answers 200;
  * ``GET`` shows a German/English page whose button posts that very body
    back. A GET never changes anything: virus scanners and link previews
    fetch every URL in a mail, and must not unsubscribe anyone;
  * an unknown or revoked token is 404 and changes nothing.

``/l/<list-id>``, the list's page (for copies that are the same for every
member, which cannot carry a member's link): ``GET`` asks for the address,
``POST`` sends the usual unsubscribe confirmation mail to it, exactly as a
mail to ``L-leave@D`` would, and answers the same whether or not the address
is a member (the page must not tell strangers who is on the list).

Tokens: a member's token is ``delivery.plan.unsubscribe_token`` (an HMAC of list
and address under ``<data_dir>/unsubscribe.key``); the members table holds
only its ``commands.tokens.token_hash``, and the endpoint looks members up by that
hash. The sender stores the hash when it sends a personalised copy; this
module also fills it in for every member who has none yet (at start, and
again when an unknown token comes in), so every member's token works however
the list is delivered. Revocation: a member who leaves in any way loses the
row, and with it the hash. Rotating the key (delete ``unsubscribe.key`` and
``UPDATE members SET unsubscribe_token = NULL``) revokes every link at once.

``GET /healthz``: 200 when healthy, 503 otherwise, with the reasons, as JSON;
the very facts of ``listserv status --json`` (``ops.health.snapshot``), read
at most once a second however often it is asked.

The access log is off: the URL of a request is a member's secret.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from listserv.commands import tokens
from listserv.config import ListConfig
from listserv.context import Context
from listserv.delivery.plan import unsubscribe_token
from listserv.log import event
from listserv.mail.message import normalise_address
from listserv.membership import members
from listserv.ops import health
from listserv.outbox.respond import answer
from listserv.store.database import Store
from listserv.store.keys import UNSUBSCRIBE_KEY, key
from listserv.texts.compose import compose
from listserv.web import app as pages
from listserv.web import site

ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
_TOKEN = re.compile(r"[a-z2-7]{32}")
#: The site's headers (never framed, cached or leaking the URL); the one-click pages
#: carry their style inline, so only their CSP differs.
_HEADERS = {
    **site.HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
                               " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
_STYLE = ("body{font-family:system-ui,sans-serif;font-size:1.1rem;line-height:1.5;"
          "margin:0;padding:1rem;color:#222}main{max-width:36rem;margin:auto}"
          "button{font-size:1.25rem;padding:1rem 1.5rem;width:100%;margin:1rem 0;"
          "border-radius:.5rem;border:0;background:#0b5394;color:#fff}"
          "input{font-size:1.2rem;padding:.75rem;width:100%;box-sizing:border-box}"
          "p[lang=en]{color:#555}")


def member_url(base_url: str, token: str) -> str:
    """A member's one-click URL (what ``plan.PersonalCopies`` writes)."""
    return f"{base_url}/u/{token}"


def list_page_url(base_url: str, mlist: ListConfig) -> str:
    """The list's own unsubscribe page, for copies shared by all members.

    Not a one-click URL: a copy that carries it must not also carry
    ``List-Unsubscribe-Post`` (RFC 8058 §3.1 requires the POST to act alone).
    """
    return f"{base_url}/l/{mlist.list_id}"


async def assign_tokens(store: Store, secret: bytes) -> int:
    """Store the token hash of every member who has none; return how many.

    Cheap when nothing is missing (one scan of the members table); the
    UPDATE re-checks ``IS NULL``, so it never overwrites the sender's work.
    """
    rows = await store.fetchall(
        "SELECT id, list_address, address FROM members WHERE unsubscribe_token IS NULL")
    if not rows:
        return 0
    values = [(tokens.token_hash(unsubscribe_token(secret, r["list_address"], r["address"])),
               r["id"]) for r in rows]
    async with store.transaction() as db:
        await db.executemany("UPDATE members SET unsubscribe_token = ?"
                             " WHERE id = ? AND unsubscribe_token IS NULL", values)
    return len(values)


def _page(title: str, body: str, *, status: int = 200) -> web.Response:
    text = ("<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers=_HEADERS)


def _text(body: str, *, status: int = 200) -> web.Response:
    return web.Response(text=body + "\n", status=status, content_type="text/plain",
                        charset="utf-8", headers=_HEADERS)


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


_UNKNOWN = (
    "<h1>Link ungültig / Invalid link</h1>"
    "<p>Dieser Abmeldelink ist unbekannt oder die Adresse ist bereits ausgetragen.</p>"
    "<p lang=\"en\">This unsubscribe link is unknown, or the address has already "
    "been removed.</p>")


class WebServer:
    """The aiohttp application and its loopback listener, started by the daemon."""

    def __init__(self, ctx: Context, *, backfill_interval: float = 2.0,
                 min_answer: float = 0.3) -> None:
        assert ctx.config.web is not None
        self.ctx = ctx
        self.web = ctx.config.web
        self.backfill_interval = backfill_interval
        #: Every answer takes at least this long (seconds), so its time does not tell a
        #: member from a non-member, or a known token from a guessed one.
        self.min_answer = min_answer
        self._work: set[asyncio.Task[None]] = set()
        self._last_backfill = float("-inf")
        self._secret = b""
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None
        self._health: tuple[float, dict[str, Any]] | None = None
        self._health_lock = asyncio.Lock()

    @web.middleware
    async def _even_time(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Pad every answer to ``min_answer``: lookups, a backfill, a removal or a
        queued mail take different times, and the time is an answer too."""
        started = time.monotonic()
        try:
            return await handler(request)
        finally:
            rest = self.min_answer - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    def _padded(self, handler: Handler) -> Handler:
        async def padded(request: web.Request) -> web.StreamResponse:
            return await self._even_time(request, handler)
        return padded

    async def drain(self) -> None:
        """Wait for the mail work answered pages have started (tests, shutdown)."""
        while self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    def app(self) -> web.Application:
        # 1 MiB: the desk's CSV upload; every other form is a few hundred bytes.
        app = web.Application(client_max_size=1024 * 1024)
        # Only the one-click pages are padded to an even time: they answer strangers
        # about membership. The site's pages answer members and the coordinator.
        app.router.add_get("/u/{token}", self._padded(self.member_page))
        app.router.add_post("/u/{token}", self._padded(self.member_post))
        app.router.add_get("/l/{list_id}", self._padded(self.list_page))
        app.router.add_post("/l/{list_id}", self._padded(self.list_post))
        app.router.add_get("/healthz", self.healthz)
        pages.install(app, self.ctx)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        """200 or 503 with the reasons: the facts of ``listserv status --json``."""
        async with self._health_lock:  # a flood of probes reads the database once a second
            if self._health is None or time.monotonic() - self._health[0] >= 1.0:
                found = await health.snapshot(self.ctx.config, self.ctx.clock(),
                                              store=self.ctx.store)
                self._health = (time.monotonic(), found)
            found = self._health[1]
        return web.json_response(found, status=200 if found["healthy"] else 503,
                                 headers=_HEADERS)

    async def start(self) -> tuple[str, int]:
        self._secret = key(self.ctx.config.server.data_dir, UNSUBSCRIBE_KEY)
        filled = await self._backfill()
        app = self.app()
        if self.web.mount:   # the proxy forwards /listen/... unchanged: serve it there
            root = web.Application(client_max_size=1024 * 1024)
            root.add_subapp(self.web.mount, app)
            app = root
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.web.host, self.web.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.address = (host, port)
        event("web_listening", host=host, port=port, base_url=self.web.base_url,
              tokens_assigned=filled)
        return self.address

    async def stop(self) -> None:
        await self.drain()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _backfill(self) -> int:
        self._last_backfill = time.monotonic()
        return await assign_tokens(self.ctx.store, self._secret)

    # -- /u/<token> -------------------------------------------------------------

    async def _find(self, raw_token: str) -> tuple[ListConfig, str, str] | None:
        """(list, address, language) of the token's member, or None.

        A miss may be a member who joined since the last fill-in: fill in
        again, at most every ``backfill_interval`` seconds, so a stream of
        guessed tokens does not become a stream of table scans. That limit
        cannot hide a real member: whoever holds a link got it in a mail,
        and a member who joined after the last fill-in that long ago is
        filled in now; one who joined since has no link yet, unless the
        sender stored the hash itself (personalised copies).
        """
        token = raw_token.lower()
        if not _TOKEN.fullmatch(token):
            return None
        for attempt in range(2):
            row = await self.ctx.store.fetchone(
                "SELECT list_address, address, language FROM members"
                " WHERE unsubscribe_token = ?", (tokens.token_hash(token),))
            if row is not None:
                mlist = self.ctx.config.find_list(row["list_address"])
                return None if mlist is None else (mlist, row["address"], row["language"])
            if attempt or time.monotonic() - self._last_backfill < self.backfill_interval:
                return None
            if not await self._backfill():
                return None
        return None

    async def member_page(self, request: web.Request) -> web.Response:
        """Show what the button does; never unsubscribe on a GET."""
        found = await self._find(request.match_info["token"])
        if found is None:
            return _page("Link ungültig / Invalid link", _UNKNOWN, status=404)
        mlist, address, _ = found
        name, addr = html.escape(mlist.display_name), html.escape(address)
        body = (
            f"<h1>Abmelden / Unsubscribe</h1>"
            f"<p>Die Adresse <strong>{addr}</strong> erhält die Mails des Verteilers "
            f"„{name}“. Mit dem Knopf wird sie sofort ausgetragen.</p>"
            f"<p lang=\"en\">The address <strong>{addr}</strong> receives the mails of "
            f"the list “{name}”. The button removes it at once.</p>"
            f"<form method=\"post\"><input type=\"hidden\" name=\"{ONE_CLICK_FIELD}\" "
            f"value=\"{ONE_CLICK_VALUE}\"><button type=\"submit\">"
            f"Abmelden / Unsubscribe</button></form>")
        return _page("Abmelden / Unsubscribe", body)

    async def member_post(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
            return _text("expected List-Unsubscribe=One-Click (RFC 8058)", status=400)
        found = await self._find(request.match_info["token"])
        if found is None or not await self._unsubscribe(request.match_info["token"], found):
            if _wants_html(request):
                return _page("Link ungültig / Invalid link", _UNKNOWN, status=404)
            return _text("unknown or revoked token", status=404)
        mlist, address, _ = found
        if not _wants_html(request):
            return _text(f"unsubscribed {address} from {mlist.address}")
        addr, name = html.escape(address), html.escape(mlist.display_name)
        return _page("Abgemeldet / Unsubscribed", (
            f"<h1>Abgemeldet / Unsubscribed</h1>"
            f"<p><strong>{addr}</strong> ist aus „{name}“ ausgetragen. Eine Bestätigung "
            f"kommt per Mail.</p><p lang=\"en\"><strong>{addr}</strong> has been removed "
            f"from “{name}”. A confirmation follows by mail.</p>"))

    async def _unsubscribe(self, token: str, found: tuple[ListConfig, str, str]) -> bool:
        """Remove the member, log consent, queue the goodbye: one transaction."""
        mlist, address, language = found
        hashed = tokens.token_hash(token.lower())
        now = self.ctx.clock()
        async with self.ctx.store.transaction() as db:
            cur = await db.execute("SELECT 1 FROM members WHERE list_address = ? AND address = ?"
                                   " AND unsubscribe_token = ?", (mlist.address, address, hashed))
            if await cur.fetchone() is None:  # removed meanwhile (a double click)
                return False
            await members.remove(db, list_address=mlist.address, address=address, now=now,
                                 event="unsubscribed", token_hash=hashed,
                                 detail="one-click (RFC 8058) via the web endpoint")
            goodbye = compose(mlist, to=address, template="goodbye", language=language,
                              now=now, values={"address": address})
            await answer(db, mlist, goodbye, to=address, now=now, kind="goodbye",
                         inbox_id=None, capped=False)   # she asked for it: never capped
        event("member_removed", list=mlist.address, member=address,
              detail="one-click unsubscribe")
        self.ctx.wake_sender()
        return True

    # -- /l/<list-id> -----------------------------------------------------------

    def _list(self, request: web.Request) -> ListConfig:
        list_id = request.match_info["list_id"].lower()
        for mlist in self.ctx.config.lists:
            if mlist.list_id == list_id:
                return mlist
        raise web.HTTPNotFound(text="unknown list\n")

    @staticmethod
    def _list_form(mlist: ListConfig, note: str = "") -> str:
        name = html.escape(mlist.display_name)
        return (
            f"<h1>Abmelden / Unsubscribe</h1>{note}"
            f"<p>Vom Verteiler „{name}“ abmelden: Adresse eingeben, dann kommt eine Mail, "
            f"auf die Sie zur Bestätigung einfach antworten.</p>"
            f"<p lang=\"en\">Leave the list “{name}”: enter the address; a mail follows, "
            f"and a plain reply to it confirms.</p>"
            f"<form method=\"post\"><label for=\"address\">E-Mail-Adresse / address</label>"
            f"<input type=\"email\" id=\"address\" name=\"address\" autocomplete=\"email\" "
            f"required><button type=\"submit\">Abmeldung anfordern / Request</button></form>")

    async def list_page(self, request: web.Request) -> web.Response:
        return _page("Abmelden / Unsubscribe", self._list_form(self._list(request)))

    async def list_post(self, request: web.Request) -> web.Response:
        """Mail the confirmation, as ``L-leave@D`` does; answer alike for anyone."""
        mlist = self._list(request)
        form = await request.post()
        value = form.get("address")
        address = normalise_address(value) if isinstance(value, str) else None
        if address is None:
            note = "<p><strong>Keine gültige Adresse / Not a valid address.</strong></p>"
            return _page("Abmelden / Unsubscribe", self._list_form(mlist, note), status=400)
        # The work is done after the answer, so member and stranger get the same page
        # at the same time, and nothing is written for a stranger (issue 12, class 5).
        task = asyncio.create_task(self._request_leave_logged(mlist, address))
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        addr = html.escape(address)
        return _page("Abmelden / Unsubscribe", (
            f"<h1>Fast geschafft / Almost done</h1>"
            f"<p>Wenn <strong>{addr}</strong> eingetragen ist, kommt gleich eine Mail. "
            f"Antworten Sie darauf, um die Abmeldung zu bestätigen.</p>"
            f"<p lang=\"en\">If <strong>{addr}</strong> is on the list, a mail is on its "
            f"way. Reply to it to confirm.</p>"))

    async def _request_leave_logged(self, mlist: ListConfig, address: str) -> None:
        try:
            sent = await self._request_leave(mlist, address)
        except Exception as exc:  # a locked database: the person may simply try again
            event("web_leave_request", level="error", list=mlist.address,
                  error=f"{type(exc).__name__}: {exc}")
            return
        event("web_leave_request", list=mlist.address,
              outcome="confirmation queued" if sent else "not sent")

    async def _request_leave(self, mlist: ListConfig, address: str) -> bool:
        """A non-member gets nothing: the form must not become a way to mail strangers."""
        now = self.ctx.clock()
        async with self.ctx.store.transaction() as db:
            member = await members.get(db, mlist.address, address)
            if member is None:
                return False
            token = await tokens.issue(db, action=tokens.Action.UNSUBSCRIBE,
                                       list_address=mlist.address, address=address, now=now,
                                       days=mlist.token_days, requester=address)
            msg = compose(mlist, to=address, template="confirm_unsubscribe",
                          language=member.language, now=now, token=token,
                          values={"address": address, "days": mlist.token_days})
            sent = await answer(db, mlist, msg, to=address, now=now,
                                kind="confirm_unsubscribe", inbox_id=None)
        if sent:
            self.ctx.wake_sender()
        return sent
