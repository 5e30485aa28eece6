"""What handlers call to authorize a request (glue between them and the authorizer).

Every function here answers "allowed" at the cost of one attribute test when no
authorizer is configured (``authorizer.class.name`` empty, the default), so handlers
call them unconditionally. With one, the principal and address are the connection's
(set by TLS/SASL, ``User:ANONYMOUS`` otherwise) and decisions are cached by the
authorizer (see :mod:`moldau.security.authorizer`).

For the transaction APIs (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
InitProducerId with a transactional id), Kafka checks WRITE on the TRANSACTIONAL_ID
first and answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED; then, per topic, WRITE on the
TOPIC (TOPIC_AUTHORIZATION_FAILED), and for TxnOffsetCommit/AddOffsetsToTxn READ on the
GROUP (GROUP_AUTHORIZATION_FAILED). :func:`transactional_id_error` and
:func:`topic_error` give those codes in one call each::

    code = transactional_id_error(broker, header, request.transactional_id)
    if code is not None:
        return <every item answered with code>
"""

from __future__ import annotations

import contextlib
from typing import Any

from moldau.broker.forwarding import forwarded_for, is_forwarded
from moldau.protocol.errors import ErrorCode
from moldau.security.acl import CLUSTER_NAME, SUPPORTED_OPERATIONS, AclOperation, ResourceType
from moldau.security.principal import KafkaPrincipal

READ = AclOperation.READ
WRITE = AclOperation.WRITE
CREATE = AclOperation.CREATE
DELETE = AclOperation.DELETE
ALTER = AclOperation.ALTER
DESCRIBE = AclOperation.DESCRIBE
CLUSTER_ACTION = AclOperation.CLUSTER_ACTION
DESCRIBE_CONFIGS = AclOperation.DESCRIBE_CONFIGS
ALTER_CONFIGS = AclOperation.ALTER_CONFIGS
IDEMPOTENT_WRITE = AclOperation.IDEMPOTENT_WRITE
TOPIC = ResourceType.TOPIC
GROUP = ResourceType.GROUP
CLUSTER = ResourceType.CLUSTER
TRANSACTIONAL_ID = ResourceType.TRANSACTIONAL_ID

#: Kafka's "authorized operations not requested" (INT32 min)
OPERATIONS_NOT_REQUESTED = -2147483648


def allowed(broker: Any, header: Any, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
    """Whether the request's principal may do ``operation`` on the resource.

    A request another broker forwarded to this controller is judged as the client it
    was forwarded for (its principal and address ride in the client id, as Kafka's
    Envelope carries them), provided the forwarding connection may CLUSTER_ACTION, the
    right Kafka asks of a broker sending an Envelope. A client merely naming itself
    like a forwarding broker has no CLUSTER_ACTION and is judged as itself.
    """
    authorizer = broker.authorizer
    if authorizer is None:
        return True
    connection = header.connection
    principal, address = connection.principal, connection.ip
    if is_forwarded(header.client_id):
        behalf = forwarded_for(header.client_id)
        if behalf is not None and authorizer.authorize(principal, address, CLUSTER_ACTION, CLUSTER, CLUSTER_NAME):
            with contextlib.suppress(ValueError):  # a broker sends TYPE:NAME; else: as itself
                principal, address = KafkaPrincipal.parse(behalf[0]), behalf[1]
    return authorizer.authorize(principal, address, operation, resource_type, name)  # type: ignore[no-any-return]


def cluster_allowed(broker: Any, header: Any, operation: AclOperation) -> bool:
    return allowed(broker, header, operation, CLUSTER, CLUSTER_NAME)


def allowed_on_some(broker: Any, header: Any, operation: AclOperation, resource_type: ResourceType) -> bool:
    """Whether the principal may do ``operation`` on some resource of the type."""
    authorizer = broker.authorizer
    if authorizer is None:
        return True
    connection = header.connection
    return authorizer.authorize_by_resource_type(  # type: ignore[no-any-return]
        connection.principal, connection.ip, operation, resource_type)


def topic_error(broker: Any, header: Any, operation: AclOperation, topic: str) -> ErrorCode | None:
    """TOPIC_AUTHORIZATION_FAILED if ``operation`` on ``topic`` is refused, else None."""
    if allowed(broker, header, operation, TOPIC, topic):
        return None
    return ErrorCode.TOPIC_AUTHORIZATION_FAILED


def group_error(broker: Any, header: Any, operation: AclOperation, group: str) -> ErrorCode | None:
    """GROUP_AUTHORIZATION_FAILED if ``operation`` on ``group`` is refused, else None."""
    if allowed(broker, header, operation, GROUP, group):
        return None
    return ErrorCode.GROUP_AUTHORIZATION_FAILED


def cluster_error(broker: Any, header: Any, operation: AclOperation) -> ErrorCode | None:
    """CLUSTER_AUTHORIZATION_FAILED if ``operation`` on the cluster is refused, else None."""
    if cluster_allowed(broker, header, operation):
        return None
    return ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def transactional_id_error(broker: Any, header: Any, transactional_id: str | None) -> ErrorCode | None:
    """TRANSACTIONAL_ID_AUTHORIZATION_FAILED unless WRITE on the transactional id is
    allowed (None: no transactional id, nothing to check)."""
    if transactional_id is None or allowed(broker, header, WRITE, TRANSACTIONAL_ID, transactional_id):
        return None
    return ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def authorized_operations(broker: Any, header: Any, resource_type: ResourceType, name: str) -> int:
    """The operations bit field a Metadata/DescribeCluster/DescribeGroups answer carries
    when the client asks for it (every supported one when there is no authorizer)."""
    authorizer = broker.authorizer
    if authorizer is None:
        return sum(1 << int(op) for op in SUPPORTED_OPERATIONS.get(resource_type, ()))
    connection = header.connection
    return authorizer.authorized_operations(connection.principal, connection.ip, resource_type, name)  # type: ignore[no-any-return]


def group_describe_access(broker: Any, header: Any, group_id: str, operations: bool) -> tuple[ErrorCode | None, int]:
    """DescribeGroups' and ConsumerGroupDescribe's check of one group, as Kafka's: the
    error if DESCRIBE on it is refused (else None), and its authorized operations when
    the client asked for them (else :data:`OPERATIONS_NOT_REQUESTED`)."""
    refused = group_error(broker, header, DESCRIBE, group_id)
    if refused is not None or not operations:
        return refused, OPERATIONS_NOT_REQUESTED
    return None, authorized_operations(broker, header, GROUP, group_id)


#: config resource types (DescribeConfigs, AlterConfigs): topic, broker, broker logger
_CONFIG_GROUP = 32
_CONFIG_TOPIC = 2


def config_resource_error(
    broker: Any, header: Any, operation: AclOperation, config_resource_type: int, name: str
) -> ErrorCode | None:
    """Kafka's check for DescribeConfigs/AlterConfigs: a topic needs ``operation`` on the
    topic (TOPIC_AUTHORIZATION_FAILED), a broker or broker logger on the cluster
    (CLUSTER_AUTHORIZATION_FAILED)."""
    if broker.authorizer is None:
        return None
    if config_resource_type == _CONFIG_TOPIC:
        return topic_error(broker, header, operation, name)
    if config_resource_type == _CONFIG_GROUP:  # KIP-848 group configs: the operation on the group
        return group_error(broker, header, operation, name)
    return cluster_error(broker, header, operation)


def cluster_operations(broker: Any, header: Any) -> int:
    """The cluster's authorized operations as Kafka reports them: 0 unless DESCRIBE."""
    if not cluster_allowed(broker, header, DESCRIBE):
        return 0
    return authorized_operations(broker, header, CLUSTER, CLUSTER_NAME)
