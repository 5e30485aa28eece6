"""The web console over plain HTTP: login against the broker's SASL users (PLAIN and
SCRAM), sessions and CSRF, ACLs (what a principal may see and do), escaping of hostile
keys, values, headers and group ids, the bounds on reads and lists, and no offset reset
of a group with members.

Cost: one broker process (PLAINTEXT for the test's own clients, SASL_PLAINTEXT for the
users, StandardAuthorizer), ~12 s.
"""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from .broker_process import Broker, free_port
from .kafka_helpers import Rec, admin_client, assert_delivered, confluent_produce, consumer_conf

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
HOSTILE = '<script>alert("x")</script>'
HOSTILE_GROUP = "g-<img src=x onerror=alert(1)>"
BIG_VALUE = 20 * 1024
BIG_COUNT = 200


@dataclass
class Secured:
    broker: Broker
    base: str


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    http_port, sasl_port = free_port(), free_port()
    b = Broker({}, name="console-http")
    b.settings.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "authorizer.class.name": STANDARD,
        # the test's own PLAINTEXT clients (ANONYMOUS) and admin may do anything
        "super.users": "User:ANONYMOUS;User:admin",
        "moldau.http.listener": f"127.0.0.1:{http_port}",
    })
    try:
        b.start()
        admin = admin_client(b.bootstrap)
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("pub-data", "pub-big", "secret")],
                                     request_timeout=15).values():
            f.result(timeout=15)
        acls = [AclBinding(rtype, "pub-", ResourcePatternType.PREFIXED, "User:alice", "*", op, AclPermissionType.ALLOW)
                for rtype, op in ((ResourceType.TOPIC, AclOperation.READ), (ResourceType.TOPIC, AclOperation.DESCRIBE),
                                  (ResourceType.GROUP, AclOperation.READ))]
        for f in admin.create_acls(acls, request_timeout=15).values():
            f.result(timeout=15)
        upsert = UserScramCredentialUpsertion("bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret")
        for f in admin.alter_user_scram_credentials([upsert]).values():
            f.result(timeout=15)
        hostile = [Rec(HOSTILE.encode(), HOSTILE.encode(), ((HOSTILE, HOSTILE.encode()),))]
        assert_delivered(confluent_produce(b.bootstrap, "pub-data", hostile))
        big = [Rec(None, bytes([i % 256]) * BIG_VALUE) for i in range(BIG_COUNT)]
        assert_delivered(confluent_produce(b.bootstrap, "pub-big", big))
        consumer = Consumer(consumer_conf(b.bootstrap, **{"group.id": HOSTILE_GROUP}))
        try:
            consumer.commit(offsets=[TopicPartition("pub-data", 0, 1)], asynchronous=False)
        finally:
            consumer.close()
        yield Secured(b, f"http://127.0.0.1:{http_port}/console")
    finally:
        b.dispose()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        data = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(self.base + path, data=data, method="POST"))

    def _open(self, req: urllib.request.Request) -> tuple[int, str, dict[str, str]]:
        try:
            with self.opener.open(req, timeout=15) as answer:
                return answer.status, answer.read().decode(), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def csrf(self, path: str) -> str:
        status, body, _ = self.get(path)
        assert status == 200, body
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found is not None
        return found.group(1)

    def login(self, user: str, password: str) -> int:
        token = self.csrf("/login")
        status, _, _ = self.post("/login", {"csrf": token, "username": user, "password": password, "next": "/console/"})
        return status


def test_login_is_required_and_checks_plain_and_scram(secured: Secured) -> None:
    anonymous = Browser(secured.base)
    status, _, headers = anonymous.get("/topics")
    assert status == 303 and headers["Location"].startswith("/console/login")
    assert anonymous.post("/topics/pub-data/produce", {"value": "x"})[0] == 403
    assert anonymous.login("alice", "wrong") == 401
    assert anonymous.login("nobody", "alice-secret") == 401
    assert anonymous.get("/topics")[0] == 303
    alice = Browser(secured.base)
    assert alice.login("alice", "alice-secret") == 303  # PLAIN, from the JAAS users
    status, body, _ = alice.get("/")
    assert status == 200 and "User:alice" in body
    bob = Browser(secured.base)
    assert bob.login("bob", "bob-secret") == 303  # SCRAM-SHA-256, from the metadata store
    assert "User:bob" in bob.get("/")[1]
    # logging out ends the session
    token = bob.csrf("/")
    assert bob.post("/logout", {"csrf": token})[0] == 303
    assert bob.get("/")[0] == 303


def test_acls_decide_what_a_principal_sees_and_does(secured: Secured) -> None:
    alice = Browser(secured.base)
    assert alice.login("alice", "alice-secret") == 303
    listed = alice.get("/topics")[1]
    assert "pub-data" in listed and "secret" not in listed
    assert alice.get("/topics/secret")[0] == 404
    assert alice.get("/topics/secret/messages")[0] == 404
    assert alice.get("/topics/pub-data/messages?partition=0&offset=0")[0] == 200
    # READ but no WRITE: the produce handler refuses, as it would refuse a client
    token = alice.csrf("/topics/pub-data")
    status, body, _ = alice.post("/topics/pub-data/produce", {"csrf": token, "partition": "0", "value": "v"})
    assert status == 400 and "TOPIC_AUTHORIZATION_FAILED" in body
    # the admin may
    admin = Browser(secured.base)
    assert admin.login("admin", "admin-secret") == 303
    token = admin.csrf("/topics/secret")
    status, _, headers = admin.post("/topics/secret/produce", {"csrf": token, "partition": "0", "value": "v"})
    assert status == 303 and "produced=0" in headers["Location"]
    assert "secret" in admin.get("/topics")[1]
    # no CREATE: refused by the CreateTopics handler
    token = alice.csrf("/topics")
    status, body, _ = alice.post("/topics", {"csrf": token, "name": "pub-new"})
    assert status == 400 and "TOPIC_AUTHORIZATION_FAILED" in body
    # no DESCRIBE_CONFIGS on the cluster: alice is told so, the admin sees them
    assert "CLUSTER_AUTHORIZATION_FAILED" in alice.get("/broker")[1]
    assert "num.partitions" in admin.get("/broker")[1]


def test_forms_need_the_session_csrf_token(secured: Secured) -> None:
    admin = Browser(secured.base)
    assert admin.login("admin", "admin-secret") == 303
    assert admin.post("/topics/pub-data/produce", {"partition": "0", "value": "v"})[0] == 403
    assert admin.post("/topics/pub-data/produce", {"csrf": "forged", "partition": "0", "value": "v"})[0] == 403
    other = Browser(secured.base)
    assert other.login("alice", "alice-secret") == 303
    foreign = other.csrf("/")  # another session's token does not do
    assert admin.post("/topics/pub-data/produce", {"csrf": foreign, "partition": "0", "value": "v"})[0] == 403


def test_hostile_keys_values_headers_and_group_ids_are_escaped(secured: Secured) -> None:
    admin = Browser(secured.base)
    assert admin.login("admin", "admin-secret") == 303
    for fmt in ("auto", "text", "json", "hex"):
        status, body, headers = admin.get(f"/topics/pub-data/messages?partition=0&offset=0&format={fmt}")
        assert status == 200
        assert "<script>alert" not in body
        assert "Content-Security-Policy" in headers
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in admin.get("/topics/pub-data/messages?offset=0")[1]
    listed = admin.get("/groups")[1]
    assert "<img" not in listed and "g-&lt;img src=x onerror=alert(1)&gt;" in listed
    status, body, _ = admin.get("/groups/" + urllib.parse.quote(HOSTILE_GROUP, safe=""))
    assert status == 200 and "<img" not in body and "Empty" in body
    # a search for markup is shown as text too
    assert "<script>alert" not in admin.get("/topics/pub-data/messages?offset=0&q=" + urllib.parse.quote(HOSTILE))[1]


def _rows(body: str) -> list[int]:
    table = body.split('<table class="messages">', 1)[1]
    return [int(x) for x in re.findall(r"<tr><td><span[^>]*>(\d+)</span>", table)]


def test_reads_are_bounded(secured: Secured) -> None:
    admin = Browser(secured.base)
    assert admin.login("admin", "admin-secret") == 303
    # 200 records of 20 KiB: a page asks for 1,000 and gets at most 100 records, from at
    # most 1 MiB of log
    started = time.perf_counter()
    status, body, headers = admin.get("/topics/pub-big/messages?partition=0&offset=0&limit=1000&format=hex")
    assert status == 200
    rows = _rows(body)
    assert 0 < len(rows) <= 100 and rows == list(range(len(rows)))
    read = re.search(r"read ([\d.]+) (KiB|MiB)", body)
    assert read is not None
    assert float(read.group(1)) * (1024 if read.group(2) == "KiB" else 1024 * 1024) <= 1 << 20
    assert len(body) < 4 * 1024 * 1024  # each value is shown cut at 4 KiB
    assert "first 4096 shown" in body
    assert float(headers["X-Moldau-Render-Ms"]) < 2000 and time.perf_counter() - started < 10
    # a search that finds nothing scans the partition within its bound, and says where it stopped
    status, body, _ = admin.get("/topics/pub-big/messages?partition=0&offset=0&q=no-such-bytes")
    assert status == 200 and "0 match(es)" in body and f"offsets 0–{BIG_COUNT - 1}" in body
    # nonsense parameters are refused, not crashed on
    assert admin.get("/topics/pub-big/messages?offset=abc")[0] == 400
    assert admin.get("/topics/pub-big/messages?partition=7")[0] == 404
    assert admin.get("/topics?page=-5")[0] == 200


def test_offsets_of_a_group_with_members_are_not_reset(secured: Secured) -> None:
    admin = Browser(secured.base)
    assert admin.login("admin", "admin-secret") == 303
    consumer = Consumer(consumer_conf(secured.broker.bootstrap, **{"group.id": "pub-active"}))
    try:
        consumer.subscribe(["pub-data"])
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment()
        consumer.commit(offsets=[TopicPartition("pub-data", 0, 1)], asynchronous=False)
        status, body, _ = admin.get("/groups/pub-active")
        assert status == 200 and "Stable" in body and "reset-preview" not in body
        token = admin.csrf("/groups/pub-active")
        for step in ("preview", "confirm"):
            status, body, _ = admin.post("/groups/pub-active/reset", {
                "csrf": token, "step": step, "topic": "pub-data", "strategy": "earliest", "value": ""})
            assert status == 409 and "must be empty" in body
        committed = consumer.committed([TopicPartition("pub-data", 0)], timeout=10)
        assert committed[0].offset == 1
    finally:
        consumer.close()
