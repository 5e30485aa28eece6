"""Overview, broker configs, login and logout."""

from __future__ import annotations

import asyncio
import platform
from typing import Any

from aiohttp import web

import moldau
from moldau.handlers.registry import HANDLERS
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import AclOperation

from . import Ctx
from .access import COOKIE
from .calls import call, request
from .html import PREFIX, h, hidden, link, size, table, url

DESCRIBE_CONFIGS = 32
#: how long a failed login waits before its answer
FAILED_LOGIN_DELAY_S = 0.5
#: Kafka's ConfigSource codes, as DescribeConfigs reports them
CONFIG_SOURCES = {1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG", 3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
                  4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG", 6: "DYNAMIC_BROKER_LOGGER_CONFIG",
                  7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG"}


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


async def overview(ctx: Ctx) -> web.StreamResponse:
    broker = ctx.broker
    controller = broker.controller_id()
    rows = []
    for info in sorted(broker.live_brokers(), key=lambda b: b.broker_id):
        here = info.broker_id == broker.node_id
        endpoints = ", ".join(f"{n}://{host}:{port}" for n, host, port in info.endpoints) or f"{info.host}:{info.port}"
        rows.append([
            h(info.broker_id) + (" (this broker)" if here else ""),
            h(endpoints), h(info.rack or ""),
            "controller" if info.broker_id == controller else "",
            "shutting down" if info.shutting_down else "live",
            h(f"Moldau {moldau.__version__}") if here else '<span class="muted">(ask its console)</span>',
        ])
    topics = broker.topics
    partitions = sum(len(t.partitions) for t in topics.values())
    offline = sum(1 for t in topics.values() for s in t.partitions.values() if s.leader < 0)
    under = sum(1 for t in topics.values() for s in t.partitions.values() if s.leader >= 0 and len(s.isr) < len(s.replicas))
    local = broker.partitions
    local_bytes = sum(p.log.size_in_bytes for p in local.values() if not p.log.closed)
    facts = [
        ("Cluster id", h(broker.cluster_id)), ("This broker", h(broker.node_id)),
        ("Controller", h(controller if controller >= 0 else "none")),
        ("Moldau", h(moldau.__version__)), ("Python", h(platform.python_version())),
        ("Kafka APIs served", h(f"{len(HANDLERS)} (see ApiVersions)")),
        ("Topics", link(len(topics), url("topics"))), ("Partitions", h(partitions)),
        ("Under-replicated partitions", h(under)), ("Offline partitions", h(offline)),
        ("Partitions on this broker", h(f"{len(local)} ({size(local_bytes)})")),
        ("Groups coordinated here", link(len(broker.group_coordinator.list_groups()), url("groups"))),
    ]
    body = (table(["", ""], [[h(k), v] for k, v in facts], "kv")
            + "<h2>Brokers</h2>" + table(["id", "listeners", "rack", "role", "state", "version"], rows))
    return ctx.render("Overview", body, active="")


async def describe_configs(ctx: Ctx, resource_type: int, name: str, node_id: int | None = None) -> Any:
    body = request(DESCRIBE_CONFIGS, resources=[
        _resource(resource_type=resource_type, resource_name=name, configuration_keys=None)],
        include_synonyms=False, include_documentation=True)
    answer = await call(ctx.broker, ctx.connection, DESCRIBE_CONFIGS, 4, body, node_id)
    return answer.results[0]


def _resource(**fields: Any) -> Any:
    from .calls import part
    return part(DESCRIBE_CONFIGS, "resources", **fields)


def config_table(result: Any) -> str:
    if result.error_code:
        return f'<p class="msg">{h(error_name(result.error_code))}: {h(result.error_message or "")}</p>'
    rows = []
    for c in sorted(result.configs, key=lambda c: c.name):
        value = "(sensitive)" if c.is_sensitive else c.value
        rows.append([h(c.name), f"<code>{h(value)}</code>", h(CONFIG_SOURCES.get(c.config_source, c.config_source)),
                     "read-only" if c.read_only else "", f'<span class="muted">{h(c.documentation or "")}</span>'])
    return table(["name", "value", "source", "", "documentation"], rows, "configs")


async def broker_configs(ctx: Ctx) -> web.StreamResponse:
    node = ctx.request.query.get("id", str(ctx.broker.node_id))
    if not node.lstrip("-").isdigit():
        raise web.HTTPBadRequest(text="id must be a broker id")
    result = await describe_configs(ctx, 4, node, int(node))
    others = " ".join(link(f"broker {b.broker_id}", url("broker", id=b.broker_id))
                      for b in sorted(ctx.broker.live_brokers(), key=lambda b: b.broker_id))
    return ctx.render(f"Broker {node}: configs", f"<p>{others}</p>" + config_table(result), active="broker")


async def login_form(ctx: Ctx) -> web.StreamResponse:
    nxt = ctx.request.query.get("next", PREFIX + "/")
    return ctx.render("Log in", _login_body(ctx, nxt, ""))


def _login_body(ctx: Ctx, nxt: str, message: str) -> str:
    note = f'<p class="msg">{h(message)}</p>' if message else ""
    if not ctx.access.login_required:
        note += '<p class="muted">This broker has no SASL listener: the console is open.</p>'
    return (f'{note}<form method="post" action="{h(url("login"))}">{hidden("csrf", ctx.session.csrf)}'
            f'{hidden("next", nxt)}<p><label>User <input name="username" autocomplete="username" required></label></p>'
            '<p><label>Password <input type="password" name="password" autocomplete="current-password" required>'
            '</label></p><p><button type="submit">Log in</button></p>'
            '<p class="muted">The users of the broker\'s SASL listeners (PLAIN and SCRAM).</p></form>')


async def login(ctx: Ctx) -> web.StreamResponse:
    form = await ctx.request.post()
    user, password = str(form.get("username", "")), str(form.get("password", ""))
    nxt = str(form.get("next", PREFIX + "/"))
    if not nxt.startswith(PREFIX + "/") or nxt.startswith("//"):
        nxt = PREFIX + "/"  # never an open redirect
    principal = None
    if ctx.access.login_required:
        # SCRAM's key derivation (thousands of hash rounds) off the event loop
        principal = await asyncio.to_thread(ctx.access.login, user, password)
    if principal is None:
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # slows guessing down, costs the loop nothing
        return ctx.render("Log in", _login_body(ctx, nxt, "Wrong user name or password."), status=401)
    ctx.access.end(ctx.session.sid)
    session = ctx.access.new_session(principal, logged_in=True)  # a new id: no session fixation
    response = web.HTTPSeeOther(nxt)
    response.set_cookie(COOKIE, session.sid, httponly=True, samesite="Strict", path=PREFIX)
    return response


async def logout(ctx: Ctx) -> web.StreamResponse:
    ctx.access.end(ctx.session.sid)
    response = web.HTTPSeeOther(url("login"))
    response.del_cookie(COOKIE, path=PREFIX)
    return response


def may_describe_cluster(ctx: Ctx) -> bool:
    return ctx.access.cluster_allowed(ctx.connection, AclOperation.DESCRIBE)


ROUTES = [
    ("GET", "/", overview, False),
    ("GET", "/broker", broker_configs, False),
    ("GET", "/login", login_form, True),
    ("POST", "/login", login, True),
    ("POST", "/logout", logout, True),
]
