"""The pages of the web face put together: templates, header middleware, routes.

``server.WebServer`` builds its aiohttp application and hands it here; the
pages themselves live in ``join`` (public), ``me`` (a member's settings)
and ``desk`` with ``deciding`` (the coordinator's desk), ``reading`` (the
members' archive), sharing ``site``.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from listserv.clock import from_iso, local_text
from listserv.context import Context
from listserv.web import desk, forms, join, me, reading, site


def install(app: web.Application, ctx: Context) -> None:
    """Add the pages, the stylesheet and the header middleware to ``app``."""
    app[site.CTX] = ctx
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(site.TEMPLATES),
                               autoescape=jinja2.select_autoescape(default=True),
                               undefined=jinja2.StrictUndefined)
    env.globals["roles"] = forms.ROLES
    env.globals["employers"] = forms.EMPLOYERS
    zone = ZoneInfo(ctx.config.server.timezone)

    def local(stamp: str | None, language: str = "de") -> str:
        """A stored UTC time as people read it (``clock.local_text``)."""
        if not stamp:
            return "-"
        try:
            moment: datetime = from_iso(stamp)
        except ValueError:
            return stamp
        return local_text(moment, zone, language)

    env.filters["local"] = local
    app.middlewares.append(site.headers_middleware)
    app.router.add_get("/static/site.css", site.stylesheet)
    join.add_routes(app)
    me.add_routes(app)
    desk.add_routes(app)
    reading.add_routes(app)
