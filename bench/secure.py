"""A Moldau broker with a SASL_SSL listener next to its PLAINTEXT one, for the bench.

Certificates are made at start (tests/integration/tls_certs.py, with ``cryptography``);
the SCRAM-SHA-512 user is created through the PLAINTEXT listener with
AlterUserScramCredentials, as an operator would. Clients then use SASL_SSL with
SCRAM-SHA-512, TLS 1.3 (the default of both sides).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench", "bench-secret"


def settings(folder: Path, plain_port: int, secure_port: int) -> tuple[list[str], dict[str, str]]:
    """(broker --set values, librdkafka settings for the SASL_SSL listener)."""
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from tls_certs import make_pki

    pki = make_pki(folder)
    broker = [
        f"listeners=PLAINTEXT://127.0.0.1:{plain_port},SASL_SSL://127.0.0.1:{secure_port}",
        f"ssl.keystore.location={pki.broker_keystore}",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
    ]
    client = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(pki.ca), "sasl.mechanism": "SCRAM-SHA-512",
              "sasl.username": USER, "sasl.password": PASSWORD}
    return broker, client


def create_user(plain_bootstrap: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": plain_bootstrap})
    upsert = UserScramCredentialUpsertion(USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                          PASSWORD.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=20)
