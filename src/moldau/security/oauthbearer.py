"""SASL/OAUTHBEARER (RFC 7628, KIP-255/KIP-768), the server side.

The client's one message is ``n,[a=authzid],`` then ``\\x01``-separated ``key=value``
pairs, one of them ``auth=Bearer <JWT>``. The token is checked in one of two ways, as
Kafka's two validator callback handlers do:

* **unsecured** (Kafka's default, for development: OAuthBearerUnsecuredValidatorCallbackHandler):
  the JWT must be unsigned (``alg: none``, empty signature) and is trusted as it says;
  ``exp`` is required, the principal is the ``sub`` claim. Options from the
  OAuthBearerLoginModule JAAS entry: ``unsecuredValidatorPrincipalClaimName``,
  ``unsecuredValidatorScopeClaimName``, ``unsecuredValidatorRequiredScope``,
  ``unsecuredValidatorAllowableClockSkewMs``.
* **signed** (OAuthBearerValidatorCallbackHandler), when
  ``sasl.oauthbearer.jwks.endpoint.url`` is set: the signature is checked with PyJWT
  against the JSON Web Key Set (a ``file:`` URL or path read at start, or an
  ``http(s)://`` endpoint fetched and refreshed: :mod:`moldau.security.jwks`), with
  ``sasl.oauthbearer.expected.audience``, ``sasl.oauthbearer.expected.issuer``,
  ``sasl.oauthbearer.sub.claim.name`` and ``sasl.oauthbearer.clock.skew.seconds``.

The token's expiry bounds the session (KIP-368) when re-authentication is on.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

from moldau.security.jaas import parse_jaas
from moldau.security.jwks import JwksSource


class OAuthError(Exception):
    """The token was refused; the message says why."""


@dataclass
class OAuthSettings:
    jwks: JwksSource | None = None  # the signing keys when signed tokens are required; None: unsecured mode
    audience: list[str] = field(default_factory=list)
    issuer: str | None = None
    sub_claim: str = "sub"
    scope_claim: str = "scope"
    required_scope: list[str] = field(default_factory=list)
    skew_s: float = 30.0


def oauth_settings(get: Any) -> OAuthSettings:
    """From the listener's settings (``get(key, mechanism)``); ValueError if unusable."""
    settings = OAuthSettings()
    url = get("sasl.oauthbearer.jwks.endpoint.url")
    if url:
        try:
            import jwt  # noqa: F401 - checked here: the listener cannot work without it
        except ImportError:
            raise ValueError("sasl.oauthbearer.jwks.endpoint.url needs PyJWT: pip install 'moldau[oauth]'") from None
        settings.jwks = JwksSource(
            str(url),
            refresh_ms=int(get("sasl.oauthbearer.jwks.endpoint.refresh.ms")),
            backoff_ms=int(get("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms")),
            backoff_max_ms=int(get("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms")),
        )
        settings.audience = [str(a) for a in get("sasl.oauthbearer.expected.audience") or []]
        settings.issuer = get("sasl.oauthbearer.expected.issuer") or None
        settings.sub_claim = str(get("sasl.oauthbearer.sub.claim.name") or "sub")
        settings.scope_claim = str(get("sasl.oauthbearer.scope.claim.name") or "scope")
        settings.skew_s = float(get("sasl.oauthbearer.clock.skew.seconds"))
    else:
        jaas = get("sasl.jaas.config", "OAUTHBEARER")
        options: dict[str, str] = {}
        for entry in parse_jaas(str(jaas)) if jaas else []:
            options.update(entry.options)
        settings.sub_claim = options.get("unsecuredValidatorPrincipalClaimName", "sub")
        settings.scope_claim = options.get("unsecuredValidatorScopeClaimName", "scope")
        settings.required_scope = options.get("unsecuredValidatorRequiredScope", "").split()
        settings.skew_s = int(options.get("unsecuredValidatorAllowableClockSkewMs", "0")) / 1000
    return settings


def _b64json(part: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise OAuthError("malformed JWT") from None
    if not isinstance(data, dict):
        raise OAuthError("malformed JWT")
    return data


def _unsecured(token: str, settings: OAuthSettings) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or parts[2]:
        raise OAuthError("an unsecured JWT has three parts and no signature")
    if _b64json(parts[0]).get("alg") != "none":
        raise OAuthError("an unsecured JWT must have alg none")
    claims = _b64json(parts[1])
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise OAuthError("the JWT has no exp claim")
    if exp + settings.skew_s < time.time():
        raise OAuthError("the JWT has expired")
    scope = claims.get(settings.scope_claim) or []
    scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope]
    missing = [s for s in settings.required_scope if s not in scopes]
    if missing:
        raise OAuthError(f"the JWT lacks the required scope {' '.join(missing)}")
    return claims


def _signed(token: str, settings: OAuthSettings) -> dict[str, Any]:
    import jwt

    try:
        kid = jwt.get_unverified_header(token).get("kid")
        assert settings.jwks is not None
        keyset = settings.jwks.keys(kid)
        if keyset is None:
            raise OAuthError("the JWKS has not been fetched yet")
        keys = [k for k in keyset if kid is None or k.key_id == kid]
        if not keys:
            raise OAuthError("no key of the JWKS matches the JWT's kid")
        key = keys[0]
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[key.algorithm_name] if getattr(key, "algorithm_name", None) else None,
            audience=settings.audience or None, issuer=settings.issuer, leeway=settings.skew_s,
            options={"require": ["exp"], "verify_aud": bool(settings.audience)},
        )
    except jwt.PyJWTError as exc:
        raise OAuthError(f"invalid JWT: {exc}") from None
    return claims


class OAuthBearerServer:
    """One exchange: ``evaluate`` takes the client's message; ``user`` and
    ``expires_at_ms`` are set once it is complete."""

    def __init__(self, settings: OAuthSettings) -> None:
        self.settings = settings
        self.user: str | None = None
        self.complete = False
        self.expires_at_ms: int | None = None

    def evaluate(self, message: bytes) -> bytes:
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            raise OAuthError("malformed OAUTHBEARER message") from None
        gs2, sep, rest = text.partition("\x01")
        if not sep or not gs2.startswith(("n,", "y,")) or not gs2.endswith(","):
            raise OAuthError("malformed OAUTHBEARER message")
        pairs = dict(p.split("=", 1) for p in rest.split("\x01") if "=" in p)
        auth = pairs.get("auth", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise OAuthError("no bearer token")
        claims = (_signed if self.settings.jwks is not None else _unsecured)(token.strip(), self.settings)
        subject = claims.get(self.settings.sub_claim)
        if not isinstance(subject, str) or not subject:
            raise OAuthError(f"the JWT has no {self.settings.sub_claim} claim")
        authzid = gs2[2:-1]
        if authzid.startswith("a=") and authzid[2:] != subject:
            raise OAuthError("the authorization id differs from the token's subject")
        self.user = subject
        self.expires_at_ms = int(float(claims["exp"]) * 1000)
        self.complete = True
        return b""
