"""SaslHandshake (17) and SaslAuthenticate (36): the SASL exchange on a SASL listener.

The state machine is :class:`moldau.security.authenticator.SaslAuthenticator`, kept on
the connection; these handlers only move its messages. On a listener without SASL both
reach Kafka's request handler, which answers ILLEGAL_SASL_STATE (the handshake with no
mechanisms; SaslAuthenticate with "SaslAuthenticate request received after successful
authentication") and keeps the connection; so do we. An unsupported mechanism and a
failed exchange answer their error and close the connection, as Kafka does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from moldau.handlers.registry import codec_for, handles
from moldau.log_throttle import ThrottledLog
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS
from moldau.security.authenticator import AuthenticationFailed

log = logging.getLogger(__name__)
failures_log = ThrottledLog(log, "failed SASL authentications")

SASL_HANDSHAKE = ALL_APIS[17]
SASL_AUTHENTICATE = ALL_APIS[36]
_handshake = codec_for(SASL_HANDSHAKE)
_authenticate = codec_for(SASL_AUTHENTICATE)


def _close_after_answer(connection: Any) -> None:
    """The answer is written in the same turn of the loop (see Connection._drain_queue);
    closing on the next turn flushes it first."""
    asyncio.get_running_loop().call_soon(connection.close)


@handles(SASL_HANDSHAKE, 0, 1)
def sasl_handshake(broker: Any, header: Any, request: Any) -> Any:
    connection = header.connection
    authenticator = connection.authenticator
    if authenticator is None:  # not a SASL listener
        return _handshake.Response(error_code=int(ErrorCode.ILLEGAL_SASL_STATE), mechanisms=[])
    if authenticator.handshake(request.mechanism, header.api_version):
        return _handshake.Response(error_code=0, mechanisms=list(authenticator.settings.mechanisms))
    failures_log("%s asked for SASL mechanism %r, not enabled", connection.peer, request.mechanism)
    _close_after_answer(connection)
    return _handshake.Response(
        error_code=int(ErrorCode.UNSUPPORTED_SASL_MECHANISM), mechanisms=list(authenticator.settings.mechanisms)
    )


@handles(SASL_AUTHENTICATE, 0, 2)
def sasl_authenticate(broker: Any, header: Any, request: Any) -> Any:
    connection = header.connection
    authenticator = connection.authenticator
    if authenticator is None:  # not a SASL listener
        return _authenticate.Response(
            error_code=int(ErrorCode.ILLEGAL_SASL_STATE),
            error_message="SaslAuthenticate request received after successful authentication",
            auth_bytes=b"", session_lifetime_ms=0,
        )
    try:
        answer = authenticator.authenticate(bytes(request.auth_bytes))
    except AuthenticationFailed as exc:
        failures_log("SASL authentication of %s failed: %s", connection.peer, exc)
        _close_after_answer(connection)
        return _authenticate.Response(
            error_code=int(ErrorCode.SASL_AUTHENTICATION_FAILED), error_message=str(exc), auth_bytes=b"",
            session_lifetime_ms=0,
        )
    if authenticator.complete:
        connection.principal = authenticator.principal
    return _authenticate.Response(
        error_code=0, error_message=None, auth_bytes=answer,
        session_lifetime_ms=authenticator.session_lifetime_ms() if authenticator.complete else 0,
    )
