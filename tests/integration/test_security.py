"""Listeners, TLS and SASL with real clients (docs/11-security.md).

One broker (module scope, ~3 s to start) with five listeners: PLAINTEXT, SSL, MTLS
(SSL with ``ssl.client.auth=required``), SASL_SSL and SASL_PLAINTEXT, with
certificates made by the test. SCRAM users are created through the PLAINTEXT listener
with AlterUserScramCredentials. Each client produces and consumes over each secured
protocol; refusals (wrong password, unknown user, a certificate of another CA, garbage
instead of TLS or SASL, requests before authentication) are checked at the socket and
followed by a round trip proving the broker undisturbed. Cost: ~30-40 s.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion
from tests.security.jwks_provider import JwksProvider

from . import raw_kafka as raw
from .broker_process import Broker, free_port
from .kafka_helpers import (
    admin_client,
    assert_delivered,
    assert_records,
    confluent_consume,
    confluent_produce,
    create_topic,
    producer_conf,
    roundtrip_ok,
    sample_records,
    unique_topic,
)
from .tls_certs import Pki, make_pki

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
SCRAM_USER, SCRAM_PASSWORD = "bob", "bob-secret"
class _JwtKey:
    """An RSA key that signs the JWTs of the JWKS listener's tests."""

    def __init__(self, kid: str = "k1") -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_jwk = {**json.loads(RSAAlgorithm.to_jwk(self.private.public_key())), "kid": kid, "alg": "RS256",
                           "use": "sig"}

    def token(self, sub: str, audience: str = "moldau", lifetime_s: int = 300) -> str:
        import jwt

        now = int(time.time())
        return jwt.encode({"sub": sub, "aud": audience, "iat": now, "exp": now + lifetime_s}, self.private,
                          algorithm="RS256", headers={"kid": self.kid})


JWT_KEY = _JwtKey()
ROTATED_KEY = _JwtKey("k2")  # published by the HTTP endpoint only after a rotation


REAUTH_MS = 1500  # on the REAUTH listener (SASL_PLAINTEXT): KIP-368 re-authentication every 1.5 s


class SecureBroker:
    def __init__(self, broker: Broker, ports: dict[str, int], pki: Pki, jwks: JwksProvider) -> None:
        self.broker, self.ports, self.pki, self.jwks = broker, ports, pki, jwks

    def addr(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def conf(self, listener: str, user: str = SCRAM_USER, password: str = SCRAM_PASSWORD,
             mechanism: str = "SCRAM-SHA-512", client_cert: bool = False) -> dict[str, object]:
        """librdkafka settings for a listener."""
        conf: dict[str, object] = {}
        if listener in ("SSL", "MTLS", "SASL_SSL"):
            conf["security.protocol"] = "SASL_SSL" if listener == "SASL_SSL" else "SSL"
            conf["ssl.ca.location"] = str(self.pki.ca)
            if client_cert:
                conf["ssl.certificate.location"] = str(self.pki.client_cert)
                conf["ssl.key.location"] = str(self.pki.client_key)
        if listener.startswith("SASL"):
            conf["security.protocol"] = listener
            conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
        return conf


@pytest.fixture(scope="module")
def secure() -> SecureBroker:
    folder = Path(tempfile.mkdtemp(prefix="moldau-it-pki-"))
    pki = make_pki(folder)
    jwks_file = folder / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [JWT_KEY.public_jwk]}))
    broker = Broker({}, name="secure")
    ports = {"PLAINTEXT": broker.port}
    jwks_endpoint = JwksProvider([JWT_KEY.public_jwk])
    for name in ("SSL", "MTLS", "SASL_SSL", "SASL_PLAINTEXT", "REAUTH", "OAUTH", "JWKS", "JWKSHTTP"):
        ports[name] = free_port()
    broker.settings.update({
        "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        "listener.security.protocol.map":
            "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,"
            "REAUTH:SASL_PLAINTEXT,OAUTH:SASL_PLAINTEXT,JWKS:SASL_SSL,JWKSHTTP:SASL_PLAINTEXT",
        "ssl.keystore.location": str(pki.broker_keystore_encrypted),
        "ssl.key.password": pki.key_password,
        "ssl.truststore.location": str(pki.ca),
        "listener.name.mtls.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),OU=eng.*$/$1/L,DEFAULT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.reauth.plain.sasl.jaas.config": PLAIN_JAAS,
        "listener.name.reauth.connections.max.reauth.ms": REAUTH_MS,
        "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.jwks.sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.jwks.sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks_file}",
        "listener.name.jwks.sasl.oauthbearer.expected.audience": "moldau",
        "listener.name.jwkshttp.sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.jwkshttp.sasl.oauthbearer.jwks.endpoint.url": jwks_endpoint.url,
        "listener.name.jwkshttp.sasl.oauthbearer.expected.audience": "moldau",
    })
    try:
        broker.start()
        admin = admin_client(broker.bootstrap)
        upserts = [UserScramCredentialUpsertion(SCRAM_USER, ScramCredentialInfo(mech, 4096), SCRAM_PASSWORD.encode())
                   for mech in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
        for future in admin.alter_user_scram_credentials(upserts).values():
            future.result(timeout=15)
        yield SecureBroker(broker, ports, pki, jwks_endpoint)
    finally:
        broker.dispose()
        jwks_endpoint.close()
        shutil.rmtree(folder, ignore_errors=True)


def _roundtrip(secure: SecureBroker, listener: str, **conf: object) -> None:
    bootstrap = secure.addr(listener)
    topic = unique_topic(listener.lower())
    create_topic(secure.broker.bootstrap, topic)
    recs = sample_records(20, seed=3)
    settings = secure.conf(listener, **conf)
    assert_delivered(confluent_produce(bootstrap, topic, recs, acks="all", **settings))
    assert_records(confluent_consume(bootstrap, topic, len(recs), **settings), recs)


# -- what works -------------------------------------------------------------------------

@pytest.mark.parametrize("listener,conf", [
    ("SSL", {}),
    ("MTLS", {"client_cert": True}),
    ("SASL_SSL", {"mechanism": "SCRAM-SHA-512"}),
    ("SASL_SSL", {"mechanism": "SCRAM-SHA-256"}),
    ("SASL_PLAINTEXT", {"mechanism": "PLAIN", "user": "alice", "password": "alice-secret"}),
    ("SASL_PLAINTEXT", {"mechanism": "SCRAM-SHA-512"}),
])
def test_confluent_kafka_produces_and_consumes(secure: SecureBroker, listener: str, conf: dict) -> None:
    _roundtrip(secure, listener, **conf)


def test_metadata_answers_with_the_listener_connected_to(secure: SecureBroker) -> None:
    for listener in ("PLAINTEXT", "SASL_PLAINTEXT", "SSL"):
        admin = admin_client(secure.addr(listener), **secure.conf(listener))
        brokers = admin.list_topics(timeout=10).brokers
        assert [(b.host, b.port) for b in brokers.values()] == [("127.0.0.1", secure.ports[listener])]


def test_kafka_python_over_ssl_mtls_and_sasl(secure: SecureBroker) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    for listener, extra in (
        ("SSL", {"security_protocol": "SSL"}),
        ("MTLS", {"security_protocol": "SSL", "ssl_certfile": str(secure.pki.client_cert),
                  "ssl_keyfile": str(secure.pki.client_key)}),
        ("SASL_SSL", {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                      "sasl_plain_username": SCRAM_USER, "sasl_plain_password": SCRAM_PASSWORD}),
        ("SASL_PLAINTEXT", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                            "sasl_plain_username": "alice", "sasl_plain_password": "alice-secret"}),
    ):
        if listener != "SASL_PLAINTEXT":
            extra = {**extra, "ssl_cafile": str(secure.pki.ca)}
        topic = create_topic(secure.broker.bootstrap, unique_topic("kp"))
        producer = KafkaProducer(bootstrap_servers=secure.addr(listener), acks="all", **extra)
        for i in range(10):
            producer.send(topic, value=b"v%d" % i, partition=0)
        producer.flush(15)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=secure.addr(listener), consumer_timeout_ms=10000, **extra)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek(TopicPartition(topic, 0), 0)
        values = [m.value for _, m in zip(range(10), consumer, strict=False)]
        consumer.close()
        assert values == [b"v%d" % i for i in range(10)], listener


def test_aiokafka_over_ssl_mtls_and_sasl(secure: SecureBroker) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.helpers import create_ssl_context

    async def run(listener: str, extra: dict) -> list[bytes]:
        topic = create_topic(secure.broker.bootstrap, unique_topic("aio"))
        producer = AIOKafkaProducer(bootstrap_servers=secure.addr(listener), acks="all", **extra)
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, b"a%d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=secure.addr(listener), **extra)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got: list[bytes] = []
            while len(got) < 10:
                batch = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), 15)
                got += [m.value for m in batch.get(tp, [])]
            return got
        finally:
            await consumer.stop()

    mtls = create_ssl_context(cafile=str(secure.pki.ca), certfile=str(secure.pki.client_cert),
                              keyfile=str(secure.pki.client_key))
    for listener, extra in (
        ("SSL", {"security_protocol": "SSL", "ssl_context": create_ssl_context(cafile=str(secure.pki.ca))}),
        ("MTLS", {"security_protocol": "SSL", "ssl_context": mtls}),
        ("SASL_SSL", {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                      "sasl_plain_username": SCRAM_USER, "sasl_plain_password": SCRAM_PASSWORD,
                      "ssl_context": create_ssl_context(cafile=str(secure.pki.ca))}),
        ("SASL_PLAINTEXT", {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                            "sasl_plain_username": "alice", "sasl_plain_password": "alice-secret"}),
    ):
        assert asyncio.run(run(listener, extra)) == [b"a%d" % i for i in range(10)], listener


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat_over_ssl_mtls_and_sasl(secure: SecureBroker) -> None:
    for listener, args in (
        ("SSL", ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secure.pki.ca}"]),
        ("MTLS", ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secure.pki.ca}",
                  "-X", f"ssl.certificate.location={secure.pki.client_cert}",
                  "-X", f"ssl.key.location={secure.pki.client_key}"]),
        ("SASL_SSL", ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={secure.pki.ca}",
                      "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", f"sasl.username={SCRAM_USER}",
                      "-X", f"sasl.password={SCRAM_PASSWORD}"]),
        ("SASL_PLAINTEXT", ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
                            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]),
    ):
        topic = create_topic(secure.broker.bootstrap, unique_topic("kcat"))
        lines = "\n".join(f"k{i}" for i in range(5)) + "\n"
        subprocess.run(["kcat", "-b", secure.addr(listener), "-P", "-t", topic, "-p", "0", *args],
                       input=lines.encode(), check=True, timeout=30)
        out = subprocess.run(["kcat", "-b", secure.addr(listener), "-C", "-t", topic, "-p", "0", "-o",
                              "beginning", "-c", "5", "-e", *args], capture_output=True, check=True, timeout=30)
        assert out.stdout.decode().split() == [f"k{i}" for i in range(5)], listener


def test_scram_credentials_are_described_and_not_stored_in_clear(secure: SecureBroker) -> None:
    admin = admin_client(secure.broker.bootstrap)
    described = admin.describe_user_scram_credentials([SCRAM_USER])
    infos = described[SCRAM_USER].result(timeout=10).scram_credential_infos
    assert sorted((i.mechanism, i.iterations) for i in infos) == sorted(
        [(ScramMechanism.SCRAM_SHA_256, 4096), (ScramMechanism.SCRAM_SHA_512, 4096)])
    text = "".join(p.read_text() for p in secure.broker.data_dir.glob("*.json"))
    assert f'"{SCRAM_USER}"' in text and SCRAM_PASSWORD not in text  # salted, hashed keys only


# -- what is refused --------------------------------------------------------------------

def _sasl_handshake(sock: socket.socket, mechanism: str, version: int = 1) -> int:
    sock.sendall(raw.request(17, version, 1, raw.string(mechanism)))
    answer = raw.read_response(sock)
    assert answer is not None
    return struct.unpack_from(">h", answer[1])[0]


def _sasl_authenticate(sock: socket.socket, token: bytes) -> tuple[int, str] | None:
    sock.sendall(raw.request(36, 1, 2, struct.pack(">i", len(token)) + token))
    answer = raw.read_response(sock)
    if answer is None:
        return None
    reader = raw.Reader(answer[1])
    code = reader.i16()
    message = reader.string()
    return code, message or ""


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("nobody", "alice-secret")])
def test_plain_refused_with_sasl_authentication_failed_and_closed(secure: SecureBroker, user: str,
                                                                 password: str) -> None:
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:
        assert _sasl_handshake(sock, "PLAIN") == 0
        answer = _sasl_authenticate(sock, b"\0" + user.encode() + b"\0" + password.encode())
        assert answer is not None and answer[0] == 58, answer  # SASL_AUTHENTICATION_FAILED
        assert raw.closed_by_peer(sock)
    roundtrip_ok(secure.broker.bootstrap)


def test_pipelined_retries_after_a_failure_get_nothing(secure: SecureBroker) -> None:
    def auth(correlation: int, password: bytes) -> bytes:
        token = b"\0alice\0" + password
        return raw.request(36, 1, correlation, struct.pack(">i", len(token)) + token)

    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:
        sock.sendall(raw.request(17, 1, 1, raw.string("PLAIN")) + auth(2, b"wrong") + auth(3, b"alice-secret")
                     + raw.request(3, 1, 4, struct.pack(">i", -1)))
        answers = []
        while (answer := raw.read_response(sock)) is not None:
            answers.append(answer[0])
        assert answers[0] == 1 and 3 not in answers and 4 not in answers, answers


def test_clients_see_authentication_errors(secure: SecureBroker) -> None:
    for listener, conf in (("SASL_SSL", {"password": "wrong"}), ("SASL_SSL", {"user": "nobody"}),
                           ("SASL_PLAINTEXT", {"mechanism": "PLAIN", "user": "alice", "password": "x"})):
        admin = admin_client(secure.addr(listener), **secure.conf(listener, **conf))
        with pytest.raises(KafkaException) as info:
            admin.list_topics(timeout=5)
        assert "uthentication" in str(info.value) or "TRANSPORT" in str(info.value), info.value


def test_unsupported_mechanism_answered_and_closed(secure: SecureBroker) -> None:
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:
        assert _sasl_handshake(sock, "GSSAPI") == 33  # UNSUPPORTED_SASL_MECHANISM
        assert raw.closed_by_peer(sock)


def test_requests_before_authentication_close_the_connection(secure: SecureBroker) -> None:
    metadata_v1 = raw.request(3, 1, 7, struct.pack(">i", -1))
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:
        sock.sendall(metadata_v1)
        assert raw.read_response(sock) is None
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:  # after the handshake, still not
        assert _sasl_handshake(sock, "PLAIN") == 0
        sock.sendall(metadata_v1)
        assert raw.read_response(sock) is None
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:  # ApiVersions is allowed
        sock.sendall(raw.request(18, 0, 3))
        assert raw.read_response(sock) is not None
    # the PLAINTEXT listener next door serves, and it never opens the SASL listener's door
    with raw.connect(secure.broker.bootstrap) as sock:
        sock.sendall(metadata_v1)
        assert raw.read_response(sock) is not None
        # SASL on a listener without it: Kafka's ILLEGAL_SASL_STATE, and the connection stays
        assert _sasl_handshake(sock, "PLAIN") == 34
        sock.sendall(metadata_v1)
        assert raw.read_response(sock) is not None


def test_large_frame_before_authentication_closes(secure: SecureBroker) -> None:
    """Kafka reads at most sasl.server.max.receive.size (512 KiB) before authentication."""
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:
        sock.sendall(struct.pack(">i", 1 << 20) + b"\0" * 1024)
        assert raw.closed_by_peer(sock)


def test_v0_handshake_then_raw_tokens(secure: SecureBroker) -> None:
    with raw.connect(secure.addr("SASL_PLAINTEXT")) as sock:
        assert _sasl_handshake(sock, "PLAIN", version=0) == 0
        token = b"\0alice\0alice-secret"
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert raw.recv_exact(sock, 4) == b"\0\0\0\0"  # PLAIN's empty answer
        sock.sendall(raw.request(3, 1, 9, struct.pack(">i", -1)))
        answer = raw.read_response(sock)
        assert answer is not None and answer[0] == 9


@pytest.mark.parametrize("listener", ["SSL", "SASL_PLAINTEXT", "SASL_SSL"])
def test_garbage_is_refused_and_nothing_else_disturbed(secure: SecureBroker, listener: str) -> None:
    with raw.connect(secure.addr(listener)) as sock:
        sock.sendall(b"\x16\x03\x01\xff\xff" + b"GET / HTTP/1.1\r\n\r\n" * 50
                     if listener != "SASL_PLAINTEXT" else struct.pack(">i", 40) + b"\xff" * 40)
        assert raw.closed_by_peer(sock)
    _roundtrip(secure, "SASL_SSL")


def test_certificate_of_another_ca_refused(secure: SecureBroker) -> None:
    context = ssl.create_default_context(cafile=str(secure.pki.ca))
    context.load_cert_chain(str(secure.pki.other_client_cert), str(secure.pki.other_client_key))
    refused = False
    with socket.create_connection(("127.0.0.1", secure.ports["MTLS"]), timeout=10) as tcp:
        try:
            with context.wrap_socket(tcp, server_hostname="localhost") as tls:
                tls.sendall(raw.request(18, 0, 1))
                refused = raw.read_response(tls) is None  # TLS 1.3: the alert comes after
        except (ssl.SSLError, ConnectionError):
            refused = True
    assert refused
    # without any certificate on the MTLS listener: refused too
    with pytest.raises(KafkaException):
        admin_client(secure.addr("MTLS"), **secure.conf("MTLS")).list_topics(timeout=5)
    _roundtrip(secure, "MTLS", client_cert=True)


def test_reauthentication_kip368(secure: SecureBroker) -> None:
    """The answer completing authentication carries session_lifetime_ms; a request after
    the session expired closes the connection; clients re-authenticate in time on their
    own and keep producing on the same connections."""
    with raw.connect(secure.addr("REAUTH")) as sock:
        assert _sasl_handshake(sock, "PLAIN") == 0
        token = b"\0alice\0alice-secret"
        sock.sendall(raw.request(36, 1, 2, struct.pack(">i", len(token)) + token))
        answer = raw.read_response(sock)
        assert answer is not None
        reader = raw.Reader(answer[1])
        assert reader.i16() == 0
        reader.string()
        reader.take(reader.i32())  # auth_bytes
        assert reader.i64() == REAUTH_MS
        time.sleep(REAUTH_MS / 1000 + 0.5)
        sock.sendall(raw.request(3, 1, 9, struct.pack(">i", -1)))
        assert raw.read_response(sock) is None
    # librdkafka re-authenticates before the session ends: a producer keeps delivering
    topic = create_topic(secure.broker.bootstrap, unique_topic("reauth"))
    producer = Producer(producer_conf(secure.addr("REAUTH"), **secure.conf("SASL_PLAINTEXT", mechanism="PLAIN", user="alice", password="alice-secret")))
    delivered: list[object] = []
    deadline = time.monotonic() + 3 * REAUTH_MS / 1000 + 1
    while time.monotonic() < deadline:
        producer.produce(topic, b"x", partition=0, on_delivery=lambda err, msg: delivered.append(err))
        producer.flush(10)
        time.sleep(0.2)
    assert delivered and all(err is None for err in delivered), delivered[:3]
    # ... by re-authenticating, not by being cut off and reconnecting
    assert "API key 0 before SASL authentication" not in secure.broker.log_text()
    assert "SASL" in secure.broker.log_text()  # (the raw client above was cut off: logged)


def test_passwords_are_not_described(secure: SecureBroker) -> None:
    from confluent_kafka.admin import ConfigResource

    admin = admin_client(secure.broker.bootstrap)
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    assert entries["ssl.key.password"].is_sensitive and entries["ssl.key.password"].value is None
    assert entries["ssl.keystore.location"].value == str(secure.pki.broker_keystore_encrypted)
    assert entries["listeners"].value.count("://") == len(secure.ports)


@pytest.mark.parametrize("settings,reason", [
    ({"ssl.keystore.location": "/nonexistent/broker.pem"}, "cannot load the TLS keystore"),
    ({"sasl.enabled.mechanisms": "GSSAPI"}, "sasl.enabled.mechanisms"),
])
def test_broker_refuses_to_start_on_security_settings_that_cannot_work(settings: dict, reason: str) -> None:
    from .broker_process import BrokerError

    broker = Broker({}, name="refused")
    try:
        broker.settings.update({"listeners": f"SSL://127.0.0.1:{broker.port}", "inter.broker.listener.name": "SSL",
                                **settings})
        if "sasl.enabled.mechanisms" in settings:
            broker.settings["listeners"] = f"SASL_PLAINTEXT://127.0.0.1:{broker.port}"
            broker.settings["inter.broker.listener.name"] = "SASL_PLAINTEXT"
        with pytest.raises(BrokerError):
            broker.start(timeout=20)
        assert reason in broker.log_text()
    finally:
        broker.dispose()


def test_oauthbearer_unsecured_mode_with_librdkafka(secure: SecureBroker) -> None:
    topic = create_topic(secure.broker.bootstrap, unique_topic("oauth"))
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt": True, "sasl.oauthbearer.config": "principal=alice"}
    recs = sample_records(5, seed=8)
    assert_delivered(confluent_produce(secure.addr("OAUTH"), topic, recs, acks="all", **conf))
    assert_records(confluent_consume(secure.addr("OAUTH"), topic, len(recs), **conf), recs)


def _oauth_token(sock: socket.socket, token: str) -> tuple[int, str] | None:
    assert _sasl_handshake(sock, "OAUTHBEARER") == 0
    return _sasl_authenticate(sock, f"n,,\x01auth=Bearer {token}\x01\x01".encode())


def test_oauthbearer_signed_tokens_against_a_jwks(secure: SecureBroker) -> None:
    topic = create_topic(secure.broker.bootstrap, unique_topic("jwks"))
    conf = {"security.protocol": "SASL_SSL", "ssl.ca.location": str(secure.pki.ca), "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: (JWT_KEY.token("svc-a"), time.time() + 300)}
    recs = sample_records(5, seed=9)
    assert_delivered(confluent_produce(secure.addr("JWKS"), topic, recs, acks="all", **conf))
    assert_records(confluent_consume(secure.addr("JWKS"), topic, len(recs), **conf), recs)
    context = ssl.create_default_context(cafile=str(secure.pki.ca))
    unsigned = "eyJhbGciOiJub25lIn0." + JWT_KEY.token("x").split(".")[1] + "."
    for bad in (JWT_KEY.token("svc-a", audience="other"), JWT_KEY.token("svc-a", lifetime_s=-120), unsigned,
                JWT_KEY.token("svc-a")[:-4] + "AAAA"):
        with socket.create_connection(("127.0.0.1", secure.ports["JWKS"]), timeout=10) as tcp, \
                context.wrap_socket(tcp, server_hostname="localhost") as tls:
            answer = _oauth_token(tls, bad)
            assert answer is not None and answer[0] == 58, answer
            assert raw.read_response(tls) is None  # closed


def test_oauthbearer_keys_from_an_http_jwks_endpoint_and_their_rotation(secure: SecureBroker) -> None:
    """The listener fetched the provider's keys over HTTP; a token signed with a key the
    provider publishes later is refused once, starts an early refresh, and librdkafka's
    next attempt gets through."""
    topic = create_topic(secure.broker.bootstrap, unique_topic("jwkshttp"))
    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda _config: (JWT_KEY.token("svc-a"), time.time() + 300)}
    recs = sample_records(3, seed=10)
    assert_delivered(confluent_produce(secure.addr("JWKSHTTP"), topic, recs, acks="all", **conf))
    with socket.create_connection(("127.0.0.1", secure.ports["JWKSHTTP"]), timeout=10) as sock:
        answer = _oauth_token(sock, ROTATED_KEY.token("svc-b"))  # not published yet
        assert answer is not None and answer[0] == 58, answer
    secure.jwks.keys = [JWT_KEY.public_jwk, ROTATED_KEY.public_jwk]  # the provider rotates
    rotated = {**conf, "oauth_cb": lambda _config: (ROTATED_KEY.token("svc-b"), time.time() + 300),
               "reconnect.backoff.ms": 200}
    more = sample_records(3, seed=11)
    assert_delivered(confluent_produce(secure.addr("JWKSHTTP"), topic, more, acks="all", **rotated), first_offset=3)
    assert_records(confluent_consume(secure.addr("JWKSHTTP"), topic, 6, **conf), recs + more)


def test_scram_credential_errors_and_deletion(secure: SecureBroker) -> None:
    from confluent_kafka.admin import UserScramCredentialDeletion

    admin = admin_client(secure.broker.bootstrap)
    low = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 1000), b"pw")
    with pytest.raises(KafkaException) as info:
        admin.alter_user_scram_credentials([low])["dave"].result(timeout=10)
    assert info.value.args[0].code() == 93  # UNACCEPTABLE_CREDENTIAL
    missing = UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)
    with pytest.raises(KafkaException) as info:
        admin.alter_user_scram_credentials([missing])["nobody"].result(timeout=10)
    assert info.value.args[0].code() == 91  # RESOURCE_NOT_FOUND
    with pytest.raises(KafkaException) as info:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(timeout=10)
    assert info.value.args[0].code() == 91
    # a deleted credential no longer authenticates
    erin = UserScramCredentialUpsertion("erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"erin-pw")
    admin.alter_user_scram_credentials([erin])["erin"].result(timeout=10)
    conf = secure.conf("SASL_PLAINTEXT", user="erin", password="erin-pw")
    assert admin_client(secure.addr("SASL_PLAINTEXT"), **conf).list_topics(timeout=10).brokers
    gone = UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([gone])["erin"].result(timeout=10)
    with pytest.raises(KafkaException):
        admin_client(secure.addr("SASL_PLAINTEXT"), **conf).list_topics(timeout=5)


def test_the_moldau_cli_connects_with_its_security_options(secure: SecureBroker) -> None:
    """``moldau`` client subcommands over SASL_SSL, mutual TLS and SASL_PLAINTEXT (-X), and
    a wrong password as one plain sentence naming the error (docs/13-cli.md)."""
    import subprocess

    from .broker_process import broker_command

    def moldau(*args: str, rc: int = 0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*broker_command(), *args], input=stdin, capture_output=True, text=True, timeout=60)
        assert done.returncode == rc, done.stderr
        assert "Traceback" not in done.stderr
        return done

    ca = str(secure.pki.ca)
    topic = unique_topic("cli-sec")
    create_topic(secure.broker.bootstrap, topic)
    info = json.loads(moldau("cluster", "info", "--format", "json", "-b", secure.addr("SASL_SSL"),
                             "--sasl-mechanism", "SCRAM-SHA-512", "--user", SCRAM_USER, "--password",
                             SCRAM_PASSWORD, "--tls-ca", ca).stdout)
    assert any(v["name"] == "SaslHandshake" for v in info["api_versions"])  # asked over TLS
    mtls = ["-b", secure.addr("MTLS"), "--tls-ca", ca, "--tls-cert", str(secure.pki.client_cert),
            "--tls-key", str(secure.pki.client_key)]
    moldau("produce", topic, "-k", ":", *mtls, stdin="k:over mutual TLS\n")
    sasl = ["-b", secure.addr("SASL_PLAINTEXT"), "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
    assert moldau("consume", topic, "-f", "%k=%v\\n", *sasl).stdout == "k=over mutual TLS\n"
    started = time.monotonic()
    wrong = moldau("topic", "list", "-b", secure.addr("SASL_PLAINTEXT"), "--sasl-mechanism", "PLAIN",
                   "--user", "alice", "--password", "wrong", rc=1)
    assert time.monotonic() - started < 8
    assert "(_AUTHENTICATION)" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
