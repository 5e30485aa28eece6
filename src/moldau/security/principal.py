"""The identity a connection acts as, in Kafka's terms.

Kafka names every client by a principal, ``type:name`` (``User:alice``); a connection
that has not authenticated (PLAINTEXT, or SSL without a client certificate) is
``User:ANONYMOUS``. The authorizer (ACLs) and quotas key on the principal; the server
sets it on the connection once TLS or SASL has established who is at the other end,
and handlers read it from ``header.connection.principal``.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_TYPE = "User"


@dataclass(frozen=True)
class KafkaPrincipal:
    """``principal_type:name``, compared and hashed by both parts, as Kafka does."""

    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        """``User:alice`` -> KafkaPrincipal("User", "alice"); ValueError without a type."""
        kind, sep, name = text.partition(":")
        if not sep or not kind:
            raise ValueError(f"a principal is TYPE:NAME, got {text!r}")
        return cls(kind, name)


ANONYMOUS = KafkaPrincipal(USER_TYPE, "ANONYMOUS")
