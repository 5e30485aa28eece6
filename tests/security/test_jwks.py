"""Signing keys from an HTTP JWKS endpoint: fetched at set-up, refreshed when due or
when a token names an unknown ``kid``, retried with backoff; a real HTTP server on
127.0.0.1 and real RS256 tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

jwt = pytest.importorskip("jwt")

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402
from tests.security.jwks_provider import JwksProvider as Provider  # noqa: E402

from moldau.security.jwks import JwksSource  # noqa: E402
from moldau.security.oauthbearer import OAuthBearerServer, OAuthError, OAuthSettings  # noqa: E402


class Key:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwk = {**json.loads(RSAAlgorithm.to_jwk(self.private.public_key())), "kid": kid, "alg": "RS256"}

    def message(self, sub: str = "svc") -> bytes:
        now = int(time.time())
        token = jwt.encode({"sub": sub, "exp": now + 300}, self.private, algorithm="RS256", headers={"kid": self.kid})
        return f"n,,\x01auth=Bearer {token}\x01\x01".encode()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


def _wait(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _accepts(source: JwksSource, message: bytes) -> bool:
    server = OAuthBearerServer(OAuthSettings(jwks=source))
    try:
        server.evaluate(message)
    except OAuthError:
        return False
    return server.user is not None


def test_keys_fetched_at_set_up_and_a_rotated_key_triggers_an_early_refresh(provider: Provider) -> None:
    old, new = Key("k1"), Key("k2")
    provider.keys = [old.jwk]
    source = JwksSource(provider.url, backoff_ms=50)
    assert provider.hits == 1 and _accepts(source, old.message())
    provider.keys = [old.jwk, new.jwk]  # the provider rotates
    assert not _accepts(source, new.message())  # unknown kid: refused, refresh started behind it
    _wait(lambda: source.fetches == 2)
    assert _accepts(source, new.message()) and _accepts(source, old.message())


def test_unknown_kids_do_not_hammer_the_provider(provider: Provider) -> None:
    provider.keys = [Key("k1").jwk]
    source = JwksSource(provider.url, backoff_ms=60_000)
    stranger = Key("zz")
    _accepts(source, stranger.message())  # the first one may refresh
    _wait(lambda: not source._fetching)
    hits = provider.hits
    for _ in range(20):
        assert not _accepts(source, stranger.message())
    time.sleep(0.2)
    assert provider.hits == hits  # within the backoff: no more fetches


def test_periodic_refresh(provider: Provider) -> None:
    key = Key("k1")
    provider.keys = [key.jwk]
    now = [1000.0]
    source = JwksSource(provider.url, refresh_ms=10_000, clock=lambda: now[0])
    provider.keys = []  # the key is withdrawn; nothing asks before the refresh is due
    assert _accepts(source, key.message()) and provider.hits == 1
    now[0] += 11
    source.keys()  # due: a refresh starts
    _wait(lambda: source.fetches == 2)
    assert not _accepts(source, key.message())


def test_a_failing_provider_is_retried_with_backoff_and_tokens_refused_meanwhile(provider: Provider) -> None:
    key = Key("k1")
    provider.keys = [key.jwk]
    provider.status = 500
    now = [0.0]
    source = JwksSource(provider.url, backoff_ms=1000, backoff_max_ms=4000, clock=lambda: now[0])
    assert source.keys() is None or source._fetching
    _wait(lambda: not source._fetching)
    assert not _accepts(source, key.message())
    provider.status = 200
    now[0] += 5  # past the (doubled) backoff
    source.keys()
    _wait(lambda: source.fetches == 1)
    assert _accepts(source, key.message())


def test_bad_urls_are_refused_at_set_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="unsupported scheme"):
        JwksSource("ftp://example.invalid/jwks")
    with pytest.raises(ValueError):
        JwksSource(f"file://{tmp_path}/missing.json")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [Key("f1").jwk]}))
    assert JwksSource(f"file://{tmp_path}/jwks.json").keys() is not None
