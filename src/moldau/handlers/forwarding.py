"""The handler side of forwarding metadata writes to the controller.

A handler of a metadata write (topics, configs, reassignments, elections) calls
:func:`forward_or_refuse` first: None means "handle it here" (this broker is the
controller, or a single broker); anything else is the answer to send -- the
controller's own answer, or the handler's refusal of every item with a retriable
error (see :mod:`moldau.broker.forwarding` for which and why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from moldau.broker.forwarding import ForwardingError, is_forwarded
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

log = logging.getLogger(__name__)

Refusal = Callable[[ErrorCode, str], Any]


def forward_timeout_s(broker: Any, request_timeout_ms: int | None = None) -> float:
    """How long a forwarded request may take: the request's own timeout when it names
    one, else ``request.timeout.ms`` (what Kafka's channel to the controller waits)."""
    if request_timeout_ms is not None and request_timeout_ms > 0:
        return request_timeout_ms / 1000
    return broker.config.int("request.timeout.ms") / 1000


async def forward_or_refuse(
    broker: Any, header: Any, request: Any, refuse: Refusal, request_timeout_ms: int | None = None
) -> Any | None:
    """None to handle ``request`` here; else the answer to give (see module docstring)."""
    channel = broker.controller_channel
    if channel.is_local():
        return None
    if is_forwarded(header.client_id):
        # sent here as to the controller, which we are not (any more): unseen, refused
        return refuse(ErrorCode.NOT_CONTROLLER, "This broker is not the controller.")
    connection = header.connection
    on_behalf = None if connection is None else (str(connection.principal), connection.ip)
    try:
        answer = await channel.forward(
            ALL_APIS[header.api_key], header.api_version, request, forward_timeout_s(broker, request_timeout_ms),
            on_behalf,
        )
    except ForwardingError as exc:
        return refuse(exc.code, exc.message)
    return answer  # None: we became the controller meanwhile

