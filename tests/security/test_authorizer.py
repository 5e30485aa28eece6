"""The authorizer's decision table: Kafka's semantics, one rule per test."""

from __future__ import annotations

import pytest

from moldau.security.acl import (
    AclBinding,
    AclFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.security.authorizer import AclAuthorizer, create_authorizer, parse_super_users
from moldau.security.principal import KafkaPrincipal

Op = AclOperation
T = ResourceType
ALICE = KafkaPrincipal("User", "alice")
BOB = KafkaPrincipal("User", "bob")
HOST = "10.0.0.1"


def acl(name: str, op: Op = Op.READ, principal: str = "User:alice", allow: bool = True, *,
        rtype: T = T.TOPIC, prefixed: bool = False, host: str = "*") -> AclBinding:
    return AclBinding(rtype, name, PatternType.PREFIXED if prefixed else PatternType.LITERAL, principal, host, op,
                      AclPermissionType.ALLOW if allow else AclPermissionType.DENY)


def authorizer(*bindings: AclBinding, super_users: str = "", allow_everyone: bool = False) -> AclAuthorizer:
    a = AclAuthorizer(parse_super_users(super_users), allow_everyone)
    a.replace(bindings)
    return a


def test_no_acl_denies_by_default_and_allows_when_configured() -> None:
    assert not authorizer().authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")
    assert authorizer(allow_everyone=True).authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")


def test_allow_everyone_applies_only_to_resources_without_any_acl() -> None:
    a = authorizer(acl("t", principal="User:bob"), allow_everyone=True)
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")  # t has an ACL, not for alice
    assert a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "other")


def test_literal_allow_grants_that_operation_on_that_resource_only() -> None:
    a = authorizer(acl("t"))
    assert a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")
    assert not a.authorize(ALICE, HOST, Op.WRITE, T.TOPIC, "t")
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t2")
    assert not a.authorize(BOB, HOST, Op.READ, T.TOPIC, "t")
    assert not a.authorize(ALICE, HOST, Op.READ, T.GROUP, "t")


@pytest.mark.parametrize("granted", [Op.READ, Op.WRITE, Op.DELETE, Op.ALTER, Op.DESCRIBE, Op.ALL])
def test_operations_that_imply_describe(granted: Op) -> None:
    assert authorizer(acl("t", granted)).authorize(ALICE, HOST, Op.DESCRIBE, T.TOPIC, "t")


@pytest.mark.parametrize("granted", [Op.CREATE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS])
def test_operations_that_do_not_imply_describe(granted: Op) -> None:
    assert not authorizer(acl("t", granted)).authorize(ALICE, HOST, Op.DESCRIBE, T.TOPIC, "t")


def test_alter_configs_implies_describe_configs_not_the_reverse() -> None:
    assert authorizer(acl("t", Op.ALTER_CONFIGS)).authorize(ALICE, HOST, Op.DESCRIBE_CONFIGS, T.TOPIC, "t")
    assert not authorizer(acl("t", Op.DESCRIBE_CONFIGS)).authorize(ALICE, HOST, Op.ALTER_CONFIGS, T.TOPIC, "t")


def test_describe_does_not_imply_read() -> None:
    assert not authorizer(acl("t", Op.DESCRIBE)).authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")


def test_deny_beats_allow() -> None:
    a = authorizer(acl("t"), acl("t", allow=False))
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")


def test_deny_all_beats_allow_of_any_operation_and_deny_read_leaves_describe() -> None:
    a = authorizer(acl("t", Op.ALL), acl("t", Op.ALL, allow=False))
    assert not a.authorize(ALICE, HOST, Op.DESCRIBE, T.TOPIC, "t")
    b = authorizer(acl("t", Op.ALL), acl("t", Op.READ, allow=False))
    assert not b.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")
    assert b.authorize(ALICE, HOST, Op.DESCRIBE, T.TOPIC, "t")
    assert b.authorize(ALICE, HOST, Op.WRITE, T.TOPIC, "t")


def test_prefixed_patterns_cover_names_with_the_prefix() -> None:
    a = authorizer(acl("orders-", prefixed=True))
    assert a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "orders-eu")
    assert a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "orders-")
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "order")


def test_prefixed_deny_overrides_literal_allow() -> None:
    a = authorizer(acl("orders-eu"), acl("orders-", prefixed=True, allow=False))
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "orders-eu")


def test_wildcard_resource_and_wildcard_principal() -> None:
    a = authorizer(acl("*", Op.WRITE, principal="User:*"))
    assert a.authorize(ALICE, HOST, Op.WRITE, T.TOPIC, "anything")
    assert a.authorize(BOB, HOST, Op.WRITE, T.TOPIC, "else")
    assert not a.authorize(BOB, HOST, Op.READ, T.TOPIC, "else")


def test_host_must_match_or_be_the_wildcard() -> None:
    a = authorizer(acl("t", host="10.0.0.1"))
    assert a.authorize(ALICE, "10.0.0.1", Op.READ, T.TOPIC, "t")
    assert not a.authorize(ALICE, "10.0.0.2", Op.READ, T.TOPIC, "t")
    b = authorizer(acl("t"), acl("t", allow=False, host="10.0.0.2"))
    assert b.authorize(ALICE, "10.0.0.1", Op.READ, T.TOPIC, "t")
    assert not b.authorize(ALICE, "10.0.0.2", Op.READ, T.TOPIC, "t")


def test_super_users_may_do_anything_even_against_a_deny() -> None:
    a = authorizer(acl("t", Op.ALL, principal="User:*", allow=False), super_users="User:admin; User:ops")
    assert a.authorize(KafkaPrincipal("User", "ops"), HOST, Op.DELETE, T.TOPIC, "t")
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")


def test_decisions_follow_changes_to_the_bindings() -> None:
    a = authorizer()
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")  # cached as denied
    a.add([acl("t")])
    assert a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")
    a.remove([acl("t")])
    assert not a.authorize(ALICE, HOST, Op.READ, T.TOPIC, "t")


def test_authorize_by_resource_type() -> None:
    assert authorizer(acl("t", Op.WRITE)).authorize_by_resource_type(ALICE, HOST, Op.WRITE, T.TOPIC)
    assert not authorizer(acl("t", Op.READ)).authorize_by_resource_type(ALICE, HOST, Op.WRITE, T.TOPIC)
    denied = authorizer(acl("t", Op.WRITE), acl("*", Op.WRITE, allow=False))
    assert not denied.authorize_by_resource_type(ALICE, HOST, Op.WRITE, T.TOPIC)
    covered = authorizer(acl("t-1", Op.WRITE), acl("t-", Op.WRITE, allow=False, prefixed=True))
    assert not covered.authorize_by_resource_type(ALICE, HOST, Op.WRITE, T.TOPIC)


def test_authorized_operations_bit_field() -> None:
    bits = authorizer(acl("t", Op.WRITE)).authorized_operations(ALICE, HOST, T.TOPIC, "t")
    assert bits == (1 << Op.WRITE) | (1 << Op.DESCRIBE)


def test_filters_for_describe_and_delete() -> None:
    literal, prefixed, wildcard = acl("orders-eu"), acl("orders-", prefixed=True), acl("*", principal="User:bob")
    other = acl("g", rtype=T.GROUP)
    a = authorizer(literal, prefixed, wildcard, other)
    assert a.matching(AclFilter()) == sorted([literal, prefixed, wildcard, other], key=AclBinding.key)
    match = AclFilter(T.TOPIC, "orders-eu", PatternType.MATCH)
    assert set(a.matching(match)) == {literal, prefixed, wildcard}
    assert a.matching(AclFilter(T.TOPIC, "orders-", PatternType.PREFIXED)) == [prefixed]
    assert a.matching(AclFilter(T.TOPIC, "orders-", PatternType.LITERAL)) == []
    assert a.matching(AclFilter(principal="User:bob")) == [wildcard]


def test_validation_refuses_what_kafka_refuses() -> None:
    assert acl("t").validate() is None
    assert AclBinding(T.TOPIC, "t", PatternType.MATCH, "User:a", "*", Op.READ, AclPermissionType.ALLOW).validate()
    assert acl("t", Op.IDEMPOTENT_WRITE).validate()  # not a topic operation
    assert acl("t", principal="alice").validate()
    assert acl("other", Op.ALTER, rtype=T.CLUSTER).validate()
    assert acl("kafka-cluster", Op.ALTER, rtype=T.CLUSTER).validate() is None


def test_binding_keys_round_trip() -> None:
    binding = acl("a/b\"c", Op.WRITE, prefixed=True, host="::1")
    assert AclBinding.from_key(binding.key()) == binding


def test_create_authorizer_by_kafka_names() -> None:
    assert create_authorizer("", "", False) is None
    assert create_authorizer("org.apache.kafka.metadata.authorizer.StandardAuthorizer", "User:a", False) is not None
    assert create_authorizer("kafka.security.authorizer.AclAuthorizer", None, True) is not None
    with pytest.raises(ValueError):
        create_authorizer("com.example.Custom", "", False)
