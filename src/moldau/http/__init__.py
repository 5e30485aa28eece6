"""The broker's HTTP listener: Prometheus metrics, health checks and the web console.

It runs on the broker's own event loop (aiohttp's ``web.Application`` behind an
``AppRunner``), on its own port, apart from the Kafka listeners: see
:mod:`moldau.http.server` for the limits that keep slow or hostile HTTP clients from
costing the Kafka side anything but a few file descriptors.
"""
