"""OAUTHBEARER in Kafka's unsecured mode (unsigned JWTs) and its refusals."""

from __future__ import annotations

import base64
import json
import time

import pytest

from moldau.security.oauthbearer import OAuthBearerServer, OAuthError, OAuthSettings


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _message(claims: dict, header: dict | None = None, signature: str = "") -> bytes:
    token = f"{_b64(header or {'alg': 'none'})}.{_b64(claims)}.{signature}"
    return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


def test_unsecured_token_gives_its_subject_and_expiry() -> None:
    exp = int(time.time()) + 60
    server = OAuthBearerServer(OAuthSettings())
    assert server.evaluate(_message({"sub": "alice", "exp": exp})) == b""
    assert server.complete and server.user == "alice" and server.expires_at_ms == exp * 1000


@pytest.mark.parametrize("message", [
    _message({"sub": "alice", "exp": time.time() - 100}),  # expired (past the 30 s skew)
    _message({"sub": "alice"}),  # no exp
    _message({"exp": time.time() + 60}),  # no subject
    _message({"sub": "alice", "exp": time.time() + 60}, header={"alg": "HS256"}),  # not unsecured
    _message({"sub": "alice", "exp": time.time() + 60}, signature="c2ln"),  # a signature
    b"n,,\x01auth=Basic abc\x01\x01",
    b"garbage",
    b"\xff\xfe",
])
def test_refused(message: bytes) -> None:
    with pytest.raises(OAuthError):
        OAuthBearerServer(OAuthSettings()).evaluate(message)


def test_required_scope_and_authzid() -> None:
    settings = OAuthSettings(required_scope=["kafka"])
    with pytest.raises(OAuthError):
        OAuthBearerServer(settings).evaluate(_message({"sub": "a", "exp": time.time() + 60, "scope": "other"}))
    OAuthBearerServer(settings).evaluate(_message({"sub": "a", "exp": time.time() + 60, "scope": "other kafka"}))
    token = _message({"sub": "a", "exp": time.time() + 60}).replace(b"n,,", b"n,a=b,")
    with pytest.raises(OAuthError):
        OAuthBearerServer(OAuthSettings()).evaluate(token)
