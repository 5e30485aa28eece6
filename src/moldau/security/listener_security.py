"""What securing one listener takes, from the broker's settings: its TLS context, the
mapping of client certificates to principals, and its SASL settings.

Every ssl.* and sasl.* key is read as it applies on the listener (Kafka's
``listener.name.<listener>.`` prefix wins over the plain key); PLAIN's users come from
``listener.name.<l>.plain.sasl.jaas.config``, else ``sasl.jaas.config``.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Any

from moldau.security.authenticator import SaslSettings
from moldau.security.credentials import ScramCredentials
from moldau.security.jaas import plain_users
from moldau.security.oauthbearer import oauth_settings
from moldau.security.scram import MECHANISMS as SCRAM_MECHANISMS
from moldau.security.ssl_principal import SslPrincipalMapper
from moldau.security.tls import server_context

log = logging.getLogger(__name__)
SUPPORTED_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS, "OAUTHBEARER")


@dataclass
class SecuredListener:
    """How connections on one listener are secured (all None: PLAINTEXT)."""

    ssl_context: ssl.SSLContext | None = None
    principal_mapper: SslPrincipalMapper | None = None
    sasl: SaslSettings | None = None


class ListenerSecurity:
    def __init__(self, config: Any, credentials: ScramCredentials | None = None) -> None:
        self.config = config
        self.credentials = credentials if credentials is not None else ScramCredentials()
        self._cache: dict[str, SecuredListener] = {}

    def for_listener(self, listener: Any) -> SecuredListener:
        """ValueError (naming the setting) when the listener cannot be secured as asked."""
        cached = self._cache.get(listener.name)
        if cached is not None:
            return cached
        name = listener.name

        def get(key: str, mechanism: str | None = None) -> Any:
            return self.config.for_listener(name, key, mechanism)

        secured = SecuredListener()
        if listener.uses_tls:
            secured.ssl_context = server_context(get)
            secured.principal_mapper = SslPrincipalMapper(str(get("ssl.principal.mapping.rules") or "DEFAULT"))
        if listener.uses_sasl:
            mechanisms = [str(m).upper() for m in get("sasl.enabled.mechanisms") or []]
            unsupported = [m for m in mechanisms if m not in SUPPORTED_MECHANISMS]
            if unsupported or not mechanisms:
                raise ValueError(
                    f"listener {name}: sasl.enabled.mechanisms {','.join(mechanisms) or '(none)'} - "
                    f"supported are {', '.join(SUPPORTED_MECHANISMS)}"
                )
            users: dict[str, str] = {}
            if "PLAIN" in mechanisms:
                jaas = get("sasl.jaas.config", "PLAIN")
                if not jaas:
                    raise ValueError(f"listener {name}: PLAIN needs listener.name.{name.lower()}.plain.sasl.jaas.config")
                users = plain_users(str(jaas))
            oauth = None
            if "OAUTHBEARER" in mechanisms:
                oauth = oauth_settings(get)
                if oauth.jwks is None:
                    log.warning("listener %s accepts unsecured (unsigned) OAUTHBEARER tokens, Kafka's "
                                "development mode: set sasl.oauthbearer.jwks.endpoint.url in production", name)
            secured.sasl = SaslSettings(
                mechanisms,
                users,
                self.credentials.get,
                int(get("connections.max.reauth.ms") or 0),
                int(get("sasl.server.max.receive.size")),
                oauth,
            )
        self._cache[name] = secured
        return secured
