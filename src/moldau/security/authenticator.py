"""SASL on a connection: the state machine Kafka's SaslServerAuthenticator keeps.

Theory of operation. A connection on a SASL listener starts unauthenticated; it may
send ApiVersions and SaslHandshake, nothing else (anything else closes it, as Kafka
does). SaslHandshake names a mechanism from ``sasl.enabled.mechanisms``; after a v1
handshake the exchange travels in SaslAuthenticate requests, after a v0 handshake as
raw size-prefixed tokens with no Kafka header (the old framing). When the mechanism
completes, the connection acts as ``User:<name>``; a failure answers
SASL_AUTHENTICATION_FAILED and closes the connection.

KIP-368: with ``connections.max.reauth.ms`` set, the answer that completes the
exchange carries ``session_lifetime_ms`` and the session expires then: a client
re-authenticates on the same connection (SaslHandshake v1 + SaslAuthenticate, which
are always allowed), keeping its principal; a request after expiry closes the
connection.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from moldau.security.oauthbearer import OAuthBearerServer, OAuthError
from moldau.security.principal import USER_TYPE, KafkaPrincipal
from moldau.security.scram import MECHANISMS as SCRAM_MECHANISMS
from moldau.security.scram import ScramError, ScramServer

API_VERSIONS_KEY = 18
SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36


class AuthenticationFailed(Exception):
    """The message is what the client is told (SaslAuthenticate's error_message)."""


@dataclass
class SaslSettings:
    """What one SASL listener accepts."""

    mechanisms: list[str]
    plain_users: dict[str, str] = field(default_factory=dict)
    scram_lookup: Any = None  # (user, mechanism) -> ScramCredential | None
    max_reauth_ms: int = 0
    max_receive_size: int = 524288
    oauth: Any = None  # OAuthSettings when OAUTHBEARER is enabled


class _Plain:
    """RFC 4616: ``authzid NUL authcid NUL passwd`` in one message."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.user: str | None = None
        self.complete = False

    def evaluate(self, token: bytes) -> bytes:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response") from None
        if not user or not password:
            raise AuthenticationFailed("Authentication failed: username or password not specified")
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise AuthenticationFailed("Authentication failed: Invalid username or password")
        if authzid and authzid != user:
            raise AuthenticationFailed("Authentication failed: Client requested an authorization id that is different from username")
        self.user = user
        self.complete = True
        return b""


class SaslAuthenticator:
    """The SASL state of one connection."""

    def __init__(self, settings: SaslSettings) -> None:
        self.settings = settings
        self.state = "handshake"  # handshake -> authenticate | raw -> complete; or failed
        self.principal: KafkaPrincipal | None = None
        self.expires_at: float | None = None  # monotonic; None: never
        self._mechanism: Any = None
        self._lifetime_ms = 0

    @property
    def complete(self) -> bool:
        return self.principal is not None

    def allows(self, api_key: int) -> bool:
        """Whether a request with this key may be served now (False closes the connection)."""
        if api_key in (SASL_HANDSHAKE_KEY,):
            return self.state in ("handshake", "complete")
        if api_key == SASL_AUTHENTICATE_KEY:
            return self.state == "authenticate"
        if self.principal is not None:  # authenticated (or re-authenticating in between)
            return self.expires_at is None or time.monotonic() < self.expires_at
        return api_key == API_VERSIONS_KEY and self.state == "handshake"

    @property
    def raw_tokens(self) -> bool:
        """After a v0 handshake: the next frames are bare SASL tokens."""
        return self.state == "raw"

    def fail(self) -> None:
        """After a failure nothing more is served (requests a client pipelined behind
        the failed attempt cannot try again before the connection closes)."""
        self.state = "failed"
        self.principal = None
        self.expires_at = None
        self._mechanism = None

    def handshake(self, mechanism: str, version: int) -> bool:
        """Choose the mechanism; False if it is not enabled (the caller answers
        UNSUPPORTED_SASL_MECHANISM and closes)."""
        if mechanism not in self.settings.mechanisms or (self.principal is not None and version < 1):
            # (KIP-368: re-authentication needs SaslHandshake v1, no raw tokens)
            self.fail()
            return False
        if mechanism == "PLAIN":
            self._mechanism = _Plain(self.settings.plain_users)
        elif mechanism == "OAUTHBEARER" and self.settings.oauth is not None:
            self._mechanism = OAuthBearerServer(self.settings.oauth)
        elif mechanism in SCRAM_MECHANISMS:
            lookup = self.settings.scram_lookup
            self._mechanism = ScramServer(mechanism, lambda user: lookup(user, mechanism) if lookup else None)
        else:
            self.fail()
            return False
        self.state = "authenticate" if version >= 1 else "raw"
        return True

    def authenticate(self, token: bytes) -> bytes:
        """One step of the exchange: the server's answer. AuthenticationFailed ends it."""
        if len(token) > self.settings.max_receive_size:
            raise AuthenticationFailed("SASL token larger than sasl.server.max.receive.size")
        mechanism = self._mechanism
        try:
            answer: bytes = mechanism.evaluate(token)
        except (ScramError, OAuthError, AuthenticationFailed) as exc:
            self.fail()
            raise AuthenticationFailed(str(exc)) from None
        if mechanism.complete:
            principal = KafkaPrincipal(USER_TYPE, mechanism.user)
            if self.principal is not None and principal != self.principal:
                self.fail()
                raise AuthenticationFailed("Cannot change principals during re-authentication")
            self.principal = principal
            self.state = "complete"
            self._mechanism = None
            self._lifetime_ms = 0
            if self.settings.max_reauth_ms > 0:
                lifetime = self.settings.max_reauth_ms
                token_expiry = getattr(mechanism, "expires_at_ms", None)
                if token_expiry is not None:  # KIP-368: never past the credential's own expiry
                    lifetime = max(0, min(lifetime, token_expiry - int(time.time() * 1000)))
                self._lifetime_ms = lifetime
                self.expires_at = time.monotonic() + lifetime / 1000
        return answer

    def session_lifetime_ms(self) -> int:
        return self._lifetime_ms if self.complete else 0
