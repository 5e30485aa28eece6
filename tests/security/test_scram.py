"""SCRAM server against RFC 7677's SCRAM-SHA-256 example and a client written here."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from moldau.security.scram import (
    ScramCredential,
    ScramError,
    ScramServer,
    credential_from_salted,
    new_credential,
    salted_password,
)


def _client_final(mechanism: str, password: str, client_first_bare: str, server_first: str) -> str:
    digest = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = salted_password(mechanism, password, base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.digest(salted, b"Client Key", digest)
    stored = hashlib.new(digest, client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth = f"{client_first_bare},{server_first},{without_proof}".encode()
    proof = bytes(a ^ b for a, b in zip(client_key, hmac.digest(stored, auth, digest), strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}"


def test_rfc7677_stored_and_server_keys() -> None:
    # RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    cred = credential_from_salted("SCRAM-SHA-256", salt, salted_password("SCRAM-SHA-256", "pencil", salt, 4096), 4096)
    server = ScramServer("SCRAM-SHA-256", lambda user: cred if user == "user" else None)
    first = server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").decode()
    assert first.startswith("r=rOprNGfwEbeRWgbNEkqO") and ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" in first
    final = _client_final("SCRAM-SHA-256", "pencil", "n=user,r=rOprNGfwEbeRWgbNEkqO", first)
    answer = server.evaluate(final.encode())
    assert answer.startswith(b"v=") and server.complete and server.user == "user"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_wrong_password_unknown_user_and_bad_nonce_fail(mechanism: str) -> None:
    cred = new_credential(mechanism, "right")
    server = ScramServer(mechanism, lambda user: cred if user == "bob" else None)
    first = server.evaluate(b"n,,n=bob,r=abc").decode()
    with pytest.raises(ScramError):
        server.evaluate(_client_final(mechanism, "wrong", "n=bob,r=abc", first).encode())
    assert not server.complete
    with pytest.raises(ScramError):
        ScramServer(mechanism, lambda user: None).evaluate(b"n,,n=nobody,r=abc")
    server = ScramServer(mechanism, lambda user: cred)
    first = server.evaluate(b"n,,n=bob,r=abc").decode()
    tampered = _client_final(mechanism, "right", "n=bob,r=abc", first.replace("r=abc", "r=abcX"))
    with pytest.raises(ScramError):
        server.evaluate(tampered.encode())


def test_garbage_and_extensions_refused() -> None:
    cred = new_credential("SCRAM-SHA-512", "pw")
    for token in (b"\xff\xfe", b"garbage", b"p=tls-unique,,n=bob,r=x", b"n,,n=bob,r=x,tokenauth=true"):
        with pytest.raises(ScramError):
            ScramServer("SCRAM-SHA-512", lambda user: cred).evaluate(token)


def test_credential_json_keeps_no_password() -> None:
    cred = new_credential("SCRAM-SHA-512", "hunter2", iterations=4096)
    data = cred.to_json()
    assert set(data) == {"salt", "stored_key", "server_key", "iterations"}
    assert ScramCredential.from_json(data) == cred
    assert "hunter2" not in str(data)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_client_and_server_agree(mechanism: str) -> None:
    from moldau.security.scram import ScramClient

    cred = new_credential(mechanism, "pw")
    server = ScramServer(mechanism, lambda user: cred if user == "broker,1" else None)
    client = ScramClient(mechanism, "broker,1", "pw")
    client.verify(server.evaluate(client.final(server.evaluate(client.first()))))
    assert server.user == "broker,1"
    wrong = ScramClient(mechanism, "broker,1", "nope")
    server = ScramServer(mechanism, lambda user: cred)
    with pytest.raises(ScramError):
        server.evaluate(wrong.final(server.evaluate(wrong.first())))
