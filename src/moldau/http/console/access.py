"""Who uses the console, and what they may see and do.

Theory of operation: every browser gets a session (a random id in an HttpOnly,
SameSite=Strict cookie) holding its principal and a CSRF token that every form posts
back; a POST whose token does not match is refused (403), so another site cannot make
a logged-in browser reset offsets or produce.

When the broker has a SASL listener, the console requires a login: the user name and
password are checked by running the very SASL exchange a Kafka client would run
(PLAIN against the listener's JAAS users, SCRAM-SHA-256/512 against the credentials in
the metadata store) in memory, against a fresh server-side authenticator of that
listener; the principal it yields is the session's. Without a SASL listener the console
is open and its principal is ``User:ANONYMOUS`` -- bind the HTTP listener to loopback or
put it behind a proxy that authenticates. Either way, when an authorizer is configured
every page and action asks it (through the handlers, or :func:`allowed`), so a
principal sees in the console what it could read with a client, and nothing more.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moldau.protocol.header import RequestHeader
from moldau.security.acl import CLUSTER_NAME, AclOperation, ResourceType
from moldau.security.authenticator import AuthenticationFailed, SaslAuthenticator, SaslSettings
from moldau.security.credentials import ScramCredentials
from moldau.security.listener_security import ListenerSecurity
from moldau.security.principal import ANONYMOUS, KafkaPrincipal
from moldau.security.scram import MECHANISMS as SCRAM_MECHANISMS
from moldau.security.scram import ScramClient, ScramError

from .calls import ConsoleConnection, RemotePool

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

COOKIE = "moldau_console"
SESSION_TTL_S = 8 * 3600
#: sessions kept at most (the oldest are dropped first)
MAX_SESSIONS = 1000


@dataclass
class Session:
    sid: str
    principal: KafkaPrincipal
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    logged_in: bool = False
    expires: float = field(default_factory=lambda: time.monotonic() + SESSION_TTL_S)


class Access:
    """The console's sessions and its link to the broker's security settings."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.sessions: dict[str, Session] = {}
        self.pool = RemotePool()
        security = ListenerSecurity(broker.config, ScramCredentials(broker.store))
        self.sasl: list[SaslSettings] = []
        for listener in broker.listeners:
            if listener.uses_sasl:
                settings = security.for_listener(listener).sasl
                if settings is not None:
                    self.sasl.append(settings)

    @property
    def login_required(self) -> bool:
        return bool(self.sasl)

    def session(self, sid: str | None) -> Session | None:
        found = self.sessions.get(sid or "")
        if found is None or found.expires < time.monotonic():
            self.sessions.pop(sid or "", None)
            return None
        return found

    def new_session(self, principal: KafkaPrincipal = ANONYMOUS, logged_in: bool = False) -> Session:
        while len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        session = Session(secrets.token_urlsafe(24), principal, logged_in=logged_in)
        self.sessions[session.sid] = session
        return session

    def end(self, sid: str) -> None:
        self.sessions.pop(sid, None)

    @staticmethod
    def csrf_ok(session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())

    def login(self, user: str, password: str) -> KafkaPrincipal | None:
        """The principal for these credentials on one of the SASL listeners, or None."""
        for settings in self.sasl:
            for mechanism in settings.mechanisms:
                principal = _try(settings, mechanism, user, password)
                if principal is not None:
                    return principal
        return None

    def connection(self, session: Session, ip: str) -> ConsoleConnection:
        return ConsoleConnection(session.principal, ip, pool=self.pool)

    def allowed(self, connection: ConsoleConnection, operation: AclOperation, resource_type: ResourceType,
                name: str) -> bool:
        """The authorizer's answer for this principal (True without an authorizer)."""
        authorizer = self.broker.authorizer
        if authorizer is None:
            return True
        return bool(authorizer.authorize(connection.principal, connection.ip, operation, resource_type, name))

    def cluster_allowed(self, connection: ConsoleConnection, operation: AclOperation) -> bool:
        return self.allowed(connection, operation, ResourceType.CLUSTER, CLUSTER_NAME)


def _try(settings: SaslSettings, mechanism: str, user: str, password: str) -> KafkaPrincipal | None:
    """Run ``mechanism``'s exchange against a fresh server authenticator."""
    server = SaslAuthenticator(settings)
    if not server.handshake(mechanism, 1):
        return None
    try:
        if mechanism == "PLAIN":
            server.authenticate(b"\0" + user.encode() + b"\0" + password.encode())
        elif mechanism in SCRAM_MECHANISMS:
            client = ScramClient(mechanism, user, password)
            client.verify(server.authenticate(client.final(server.authenticate(client.first()))))
        else:
            return None  # OAUTHBEARER takes a token, not a password
    except (AuthenticationFailed, ScramError, ValueError):
        return None
    return server.principal


def header_for(connection: ConsoleConnection) -> Any:
    """A request header as the authorize helpers read it (no API: checks only)."""
    return RequestHeader(-1, 0, 0, "moldau-console", 0, connection)
