"""The SASL state machine of a connection."""

from __future__ import annotations

import pytest

from moldau.security.authenticator import AuthenticationFailed, SaslAuthenticator, SaslSettings
from moldau.security.principal import KafkaPrincipal


def _auth(**kw: object) -> SaslAuthenticator:
    return SaslAuthenticator(SaslSettings(["PLAIN"], {"alice": "pw"}, **kw))  # type: ignore[arg-type]


def test_only_api_versions_and_handshake_before_authentication() -> None:
    auth = _auth()
    assert auth.allows(18) and auth.allows(17)
    assert not auth.allows(3) and not auth.allows(0) and not auth.allows(36)
    assert auth.handshake("PLAIN", 1)
    assert auth.allows(36) and not auth.allows(3) and not auth.allows(18)
    auth.authenticate(b"\0alice\0pw")
    assert auth.complete and auth.principal == KafkaPrincipal("User", "alice")
    assert auth.allows(3) and auth.allows(17)


def test_nothing_is_served_after_a_failure() -> None:
    """Requests a client pipelined behind a failed attempt get no second try."""
    auth = _auth()
    assert not auth.handshake("SCRAM-SHA-512", 1)  # not enabled
    assert not any(auth.allows(key) for key in (17, 18, 36, 0, 3))
    auth = _auth()
    auth.handshake("PLAIN", 1)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(b"\0alice\0wrong")
    assert not any(auth.allows(key) for key in (17, 18, 36, 0, 3)) and not auth.raw_tokens


@pytest.mark.parametrize("token", [b"\0alice\0wrong", b"\0bob\0pw", b"garbage", b"bob\0alice\0pw", b"\0\0"])
def test_plain_failures(token: bytes) -> None:
    auth = _auth()
    auth.handshake("PLAIN", 1)
    with pytest.raises(AuthenticationFailed):
        auth.authenticate(token)
    assert not auth.complete


def test_session_expiry_and_reauthentication_keeps_the_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    import moldau.security.authenticator as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    auth = _auth(max_reauth_ms=1000)
    auth.handshake("PLAIN", 1)
    auth.authenticate(b"\0alice\0pw")
    assert auth.session_lifetime_ms() == 1000 and auth.allows(0)
    now[0] += 1.5
    assert not auth.allows(0)  # expired: the connection closes
    assert auth.allows(17)  # but may re-authenticate
    auth.handshake("PLAIN", 1)
    auth.authenticate(b"\0alice\0pw")
    assert auth.allows(0)
    auth.settings.plain_users["bob"] = "pw2"
    auth.handshake("PLAIN", 1)
    with pytest.raises(AuthenticationFailed):  # Kafka: no change of principal on re-authentication
        auth.authenticate(b"\0bob\0pw2")
