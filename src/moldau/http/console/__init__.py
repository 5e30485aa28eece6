"""The web console: server-rendered pages on the broker's HTTP listener (docs/16-console.md).

Every page is a plain aiohttp handler that reads the broker's in-process state (its
metadata image, its logs through the read path, the Kafka handlers through
:mod:`.calls`) and returns one HTML document built by :mod:`.html`; a little inline
JavaScript asks for confirmation before writes. Each answer says how long it took to
build (``X-Moldau-Render-Ms``), and every list is paginated and every read bounded so a
page stays well under 200 ms with thousands of topics.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .access import COOKIE, Access, Session
from .calls import ConsoleConnection
from .html import PREFIX, page, url

if TYPE_CHECKING:
    from moldau.broker.broker import Broker


@dataclass
class Ctx:
    """One request's view: the broker, the session and the connection handlers see."""

    broker: Broker
    access: Access
    request: web.Request
    session: Session
    connection: ConsoleConnection
    started: float

    def render(self, title: str, body: str, active: str = "", status: int = 200) -> web.Response:
        who = str(self.session.principal) if self.access.login_required or self.broker.authorizer else ""
        elapsed = (time.perf_counter() - self.started) * 1000
        text = page(title, body, active=active, who=who, cluster=f"cluster {self.broker.cluster_id}",
                    logout_csrf=self.session.csrf if self.session.logged_in else None, elapsed_ms=elapsed)
        return web.Response(text=text, content_type="text/html", status=status,
                            headers={"X-Moldau-Render-Ms": f"{elapsed:.2f}", **SECURITY_HEADERS})


#: no framing by other sites, no inline script from elsewhere, no sniffing
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Page = Callable[[Ctx], Awaitable[web.StreamResponse]]


def routes(app: web.Application, broker: Broker) -> None:
    """Add the console's pages under ``/console`` (and ``/`` redirecting there)."""
    from . import pages_cluster, pages_groups, pages_topics

    holder: list[Access] = []

    def access() -> Access:
        if not holder:  # built on first use: the Kafka listeners are bound after the HTTP one
            holder.append(Access(broker))
        return holder[0]

    def wrap(fn: Page, *, public: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            acc = access()
            session = acc.session(request.cookies.get(COOKIE))
            fresh = session is None
            if session is None:
                session = acc.new_session()
            if acc.login_required and not session.logged_in and not public:
                if request.method != "GET":
                    raise web.HTTPForbidden(text="log in first")
                response: web.StreamResponse = web.HTTPSeeOther(url("login", next=request.path_qs))
            else:
                if request.method == "POST":
                    form = await request.post()
                    token = form.get("csrf")
                    if fresh or not acc.csrf_ok(session, token if isinstance(token, str) else None):
                        return web.Response(status=403, text="invalid or missing CSRF token: reload the page")
                peer = request.transport.get_extra_info("peername") if request.transport else None
                ip = peer[0] if peer else "127.0.0.1"
                ctx = Ctx(broker, acc, request, session, acc.connection(session, ip), started)
                try:
                    response = await fn(ctx)
                except web.HTTPException as exc:
                    response = exc
            if fresh:
                response.set_cookie(COOKIE, session.sid, httponly=True, samesite="Strict", path=PREFIX)
            return response

        return handle

    async def root(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    async def close_pool(_app: web.Application) -> None:
        if holder:
            await holder[0].pool.close()

    app.on_cleanup.append(close_pool)
    app.router.add_get("/", root)
    app.router.add_get(PREFIX, root)
    for method, path, fn, public in [
        *pages_cluster.ROUTES, *pages_topics.ROUTES, *pages_groups.ROUTES,
    ]:
        app.router.add_route(method, PREFIX + path, wrap(fn, public=public))
