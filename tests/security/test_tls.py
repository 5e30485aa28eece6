"""TLS contexts from Kafka's ssl.* settings, with certificates made here."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from tests.integration.tls_certs import Pki, make_pki

from moldau.config.broker import BrokerConfig
from moldau.security.listener_security import ListenerSecurity
from moldau.security.tls import server_context
from moldau.server.listeners import Listener


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _get(settings: dict[str, object]):  # type: ignore[no-untyped-def]
    config = BrokerConfig({k: str(v) for k, v in settings.items()})
    return lambda key, mechanism=None: config.for_listener("SSL", key, mechanism)


def test_keystore_by_location_inline_and_encrypted(pki: Pki) -> None:
    ctx = server_context(_get({"ssl.keystore.location": pki.broker_keystore}))
    assert ctx.verify_mode == ssl.CERT_NONE and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    pem = Path(pki.broker_keystore).read_text()
    key = pem[: pem.index("-----BEGIN CERTIFICATE")]
    chain = pem[len(key):]
    server_context(_get({"ssl.keystore.certificate.chain": chain, "ssl.keystore.key": key}))
    server_context(_get({"ssl.keystore.location": pki.broker_keystore_encrypted, "ssl.key.password": pki.key_password}))
    ctx = server_context(_get({"ssl.keystore.location": pki.broker_keystore, "ssl.truststore.location": pki.ca,
                               "ssl.client.auth": "required", "ssl.enabled.protocols": "TLSv1.3"}))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize("settings", [
    {},  # no keystore
    {"ssl.keystore.location": "/nonexistent.pem"},
    {"ssl.keystore.location": "ENCRYPTED", "ssl.key.password": "wrong"},
    {"ssl.keystore.location": "PLAIN", "ssl.client.auth": "required"},  # no truststore
])
def test_settings_that_cannot_work_are_refused(pki: Pki, settings: dict[str, object]) -> None:
    fixed = {k: (pki.broker_keystore_encrypted if v == "ENCRYPTED" else pki.broker_keystore if v == "PLAIN" else v)
             for k, v in settings.items()}
    with pytest.raises(ValueError):
        server_context(_get(fixed))


def test_per_listener_settings_and_sasl_mechanisms(pki: Pki) -> None:
    config = BrokerConfig({
        "ssl.keystore.location": str(pki.broker_keystore),
        "listener.name.internal.ssl.client.auth": "required",
        "listener.name.internal.ssl.truststore.location": str(pki.ca),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "listener.name.clients.plain.sasl.jaas.config":
            'org.apache.kafka.common.security.plain.PlainLoginModule required user_a="b";',
    })
    security = ListenerSecurity(config)
    internal = security.for_listener(Listener("INTERNAL", "SSL", "h", 1, "h", 1))
    assert internal.ssl_context is not None and internal.ssl_context.verify_mode == ssl.CERT_REQUIRED
    clients = security.for_listener(Listener("CLIENTS", "SASL_SSL", "h", 2, "h", 2))
    assert clients.ssl_context.verify_mode == ssl.CERT_NONE and clients.sasl is not None
    assert clients.sasl.plain_users == {"a": "b"}
    with pytest.raises(ValueError):  # PLAIN without users on this listener
        security.for_listener(Listener("OTHER", "SASL_PLAINTEXT", "h", 3, "h", 3))
    with pytest.raises(ValueError):
        ListenerSecurity(BrokerConfig({"sasl.enabled.mechanisms": "GSSAPI"})).for_listener(
            Listener("X", "SASL_PLAINTEXT", "h", 3, "h", 3))
    with pytest.raises(ValueError):  # an unknown key under listener.name. is refused
        BrokerConfig({"listener.name.x.no.such.key": "1"})
