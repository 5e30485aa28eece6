"""Server-rendered HTML: every page is built from strings, and every piece of data
passes through :func:`h` (``html.escape`` with quotes) on its way in -- topic names,
keys, values, headers, group ids and client ids are all the user's and may be hostile.
Attributes are always double-quoted. Links are built with :func:`url` (percent-encoded
path parts and query). The one stylesheet and the one script are inline constants:
no build step, nothing fetched from outside the broker.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from urllib.parse import quote, urlencode

PREFIX = "/console"


def h(value: object) -> str:
    """Escape anything for HTML text or a double-quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def url(*parts: object, **query: object) -> str:
    """``/console/<parts, each percent-encoded>?<query>`` (None values left out)."""
    path = PREFIX + "".join("/" + quote(str(p), safe="") for p in parts)
    args = {k: v for k, v in query.items() if v is not None and v != ""}
    return path + ("?" + urlencode(args) if args else "")


def link(text: object, href: str) -> str:
    return f'<a href="{h(href)}">{h(text)}</a>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table; header texts are escaped here, cells must be HTML already (escaped)."""
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{h(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def hidden(name: str, value: object) -> str:
    return f'<input type="hidden" name="{h(name)}" value="{h(value)}">'


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


ON = ' class="on"'
NAV = (("Overview", ""), ("Topics", "topics"), ("Groups", "groups"), ("Broker", "broker"))

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#24324a;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center}
header a{color:#d8e2f5;text-decoration:none}header a.on{color:#fff;font-weight:600}
header .who{margin-left:auto;font-size:12px;color:#b8c4da}
main{padding:12px 20px}h1{font-size:20px;margin:8px 0 12px}h2{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px}
th,td{border:1px solid #d9dde5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f6}td.num,th.num{text-align:right}
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:70ch;font-size:12px}
.msg{color:#7a2a2a;background:#fbeaea;padding:6px 10px;border-radius:4px}
.ok{color:#1f5d2a;background:#e6f4e8;padding:6px 10px;border-radius:4px}
form.inline{display:inline}input,select,textarea,button{font:inherit}
.muted{color:#68707d;font-size:12px}.kv td:first-child{font-weight:600}
footer{padding:8px 20px;color:#68707d;font-size:12px}
"""

SCRIPT = """
document.addEventListener('submit',function(e){var m=e.target.getAttribute('data-confirm');
if(m&&!window.confirm(m)){e.preventDefault();}});
"""


def page(title: str, body: str, *, active: str = "", who: str = "", cluster: str = "",
         logout_csrf: str | None = None, elapsed_ms: float | None = None) -> str:
    nav = "".join(
        f'<a href="{h(url(path) if path else PREFIX + "/")}"{ON if path == active else ""}>{h(name)}</a>'
        for name, path in NAV
    )
    logout = ""
    if logout_csrf is not None:
        logout = (f'<form class="inline" method="post" action="{h(url("logout"))}">{hidden("csrf", logout_csrf)}'
                  '<button type="submit">Log out</button></form>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{h(title)} · Moldau</title><style>{CSS}</style></head><body>"
        f'<header><strong>Moldau</strong><span class="muted">{h(cluster)}</span>{nav}'
        f'<span class="who">{h(who)} {logout}</span></header>'
        f"<main><h1>{h(title)}</h1>{body}</main>"
        f'<footer>rendered in <span id="render-ms">{elapsed_ms or 0:.1f}</span> ms</footer>'
        f"<script>{SCRIPT}</script></body></html>"
    )
