"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side.

What is stored of a user is what RFC 5802 calls the credential: salt, iteration count,
StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
HMAC(SaltedPassword, "Server Key"). Neither can be replayed as a password or as a
client proof: the proof needs ClientKey, which only H(ClientKey) = StoredKey reveals.

An exchange is two round trips: client-first (``n,,n=user,r=nonce``) -> server-first
(``r=nonce+ours,s=salt,i=iterations``) -> client-final (``c=biws,r=...,p=proof``) ->
server-final (``v=signature``). Kafka's extensions (``tokenauth``, delegation tokens)
are not supported: a client-first asking for them fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

MECHANISMS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
#: the mechanism numbers of Describe/AlterUserScramCredentials
MECHANISM_CODES = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
MIN_ITERATIONS = 4096  # Kafka's bounds for stored credentials
MAX_ITERATIONS = 16384


class ScramError(Exception):
    """The exchange failed; the message is what the client is told."""


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> dict[str, Any]:
        b64 = base64.b64encode
        return {"salt": b64(self.salt).decode(), "stored_key": b64(self.stored_key).decode(),
                "server_key": b64(self.server_key).decode(), "iterations": self.iterations}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScramCredential:
        d = base64.b64decode
        return cls(d(data["salt"]), d(data["stored_key"]), d(data["server_key"]), int(data["iterations"]))


def credential_from_salted(mechanism: str, salt: bytes, salted_password: bytes, iterations: int) -> ScramCredential:
    """What AlterUserScramCredentials sends (salt and SaltedPassword) -> what is stored."""
    digest = MECHANISMS[mechanism]
    client_key = hmac.digest(salted_password, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    server_key = hmac.digest(salted_password, b"Server Key", digest)
    return ScramCredential(salt, stored_key, server_key, iterations)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) of RFC 5802 (PBKDF2 with HMAC-H)."""
    return hashlib.pbkdf2_hmac(MECHANISMS[mechanism], password.encode(), salt, iterations)


def new_credential(mechanism: str, password: str, iterations: int = MIN_ITERATIONS) -> ScramCredential:
    salt = os.urandom(32)
    return credential_from_salted(mechanism, salt, salted_password(mechanism, password, salt, iterations), iterations)


def _attributes(message: str) -> dict[str, str]:
    result = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError("Invalid SCRAM message")
        result[key] = value
    return result


def _saslname(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ScramError("Invalid user name")
    return name.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """One exchange. ``lookup(user)`` gives the user's credential or None.
    ``evaluate`` takes a client message and answers the server's; ScramError on failure.
    ``user`` is set once the exchange is complete."""

    def __init__(self, mechanism: str, lookup: Any) -> None:
        self.mechanism = mechanism
        self.digest = MECHANISMS[mechanism]
        self.lookup = lookup
        self.user: str | None = None
        self.complete = False
        self._step = 0
        self._client_first_bare = ""
        self._server_first = ""
        self._gs2 = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None
        self._name = ""

    def evaluate(self, token: bytes) -> bytes:
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("Invalid SCRAM message") from None
        if self._step == 0:
            self._step = 1
            return self._first(message)
        if self._step == 1:
            self._step = 2
            return self._final(message)
        raise ScramError("Unexpected SCRAM message after the exchange completed")

    def _first(self, message: str) -> bytes:
        parts = message.split(",", 2)
        if len(parts) != 3 or parts[0] not in ("n", "y"):
            raise ScramError("Invalid SCRAM client-first message (channel binding is not supported)")
        self._gs2 = f"{parts[0]},{parts[1]},"
        bare = parts[2]
        attrs = _attributes(bare)
        if "n" not in attrs or "r" not in attrs or not attrs["r"]:
            raise ScramError("Invalid SCRAM client-first message")
        extensions = set(attrs) - {"n", "r"}
        if extensions:
            raise ScramError("SCRAM extensions (delegation tokens) are not supported")
        self._name = _saslname(attrs["n"])
        self._credential = self.lookup(self._name)
        if self._credential is None:
            raise ScramError("Authentication failed: Invalid user credentials")
        self._client_first_bare = bare
        # letters and digits only, as Kafka's (librdkafka 2.0 mangles a nonce with '/' or '+')
        self._nonce = attrs["r"] + secrets.token_hex(16)
        salt = base64.b64encode(self._credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self._credential.iterations}"
        return self._server_first.encode()

    def _final(self, message: str) -> bytes:
        without_proof, sep, proof_part = message.rpartition(",p=")
        if not sep:
            raise ScramError("Invalid SCRAM client-final message")
        attrs = _attributes(without_proof)
        nonce = attrs.get("r")
        # librdkafka 2.0.x (Debian's kcat) sends the client nonce twice in front of ours
        # (client + client + server); it still carries our fresh part, and the proof is
        # computed over exactly what was sent, so accepting it replays nothing
        client_nonce = self._nonce[: len(self._nonce) - 32]
        if nonce != self._nonce and nonce != client_nonce + self._nonce:
            raise ScramError("Invalid SCRAM client nonce")
        if attrs.get("c") != base64.b64encode(self._gs2.encode()).decode():
            raise ScramError("Invalid SCRAM channel binding")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise ScramError("Invalid SCRAM client proof") from None
        credential = self._credential
        assert credential is not None
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self.digest)
        if len(proof) != len(signature):
            raise ScramError("Invalid SCRAM client proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.digest, client_key).digest(), credential.stored_key):
            raise ScramError(
                f"Authentication failed during authentication due to invalid credentials with SASL mechanism {self.mechanism}"
            )
        self.user = self._name
        self.complete = True
        server_signature = hmac.digest(credential.server_key, auth_message, self.digest)
        return b"v=" + base64.b64encode(server_signature)


class ScramClient:
    """The client side, for broker-to-broker connections: ``first()``, then
    ``final(server_first)``, then ``verify(server_final)`` (ScramError if the server
    does not prove it knows the credential)."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self.mechanism = mechanism
        self.digest = MECHANISMS[mechanism]
        self.password = password
        self.nonce = secrets.token_hex(16)
        self._bare = "n=" + user.replace("=", "=3D").replace(",", "=2C") + ",r=" + self.nonce
        self._server_signature = b""

    def first(self) -> bytes:
        return ("n,," + self._bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = _attributes(text)
        if not attrs.get("r", "").startswith(self.nonce) or "s" not in attrs or "i" not in attrs:
            raise ScramError("Invalid SCRAM server-first message")
        salted = salted_password(self.mechanism, self.password, base64.b64decode(attrs["s"]), int(attrs["i"]))
        credential = credential_from_salted(self.mechanism, b"", salted, int(attrs["i"]))
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self._bare},{text},{without_proof}".encode()
        client_key = hmac.digest(salted, b"Client Key", self.digest)
        signature = hmac.digest(credential.stored_key, auth_message, self.digest)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = hmac.digest(credential.server_key, auth_message, self.digest)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        expected = b"v=" + base64.b64encode(self._server_signature)
        if not hmac.compare_digest(server_final, expected):
            raise ScramError("the server's SCRAM signature does not match")
