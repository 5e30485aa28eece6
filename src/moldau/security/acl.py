"""ACL bindings and filters, with Kafka's wire codes and matching rules.

An ACL binding says: ``principal`` from ``host`` is ALLOWed (or DENYed) ``operation``
on the resources a *pattern* names -- one resource (LITERAL), every resource whose name
starts with a prefix (PREFIXED), or every resource of a type (LITERAL ``*``). A filter
selects bindings for DescribeAcls and DeleteAcls: ANY matches every value of a field,
and the MATCH pattern type matches every binding that would apply to the named
resource (its literal, the wildcard, and prefixes of its name), as Kafka's
``ResourcePatternFilter`` does. The numbers are the wire codes of Kafka's
``ResourceType``, ``PatternType``, ``AclOperation`` and ``AclPermissionType``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermissionType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
CLUSTER_NAME = "kafka-cluster"
#: the metadata store's kind for ACL bindings (key: :meth:`AclBinding.key`, value "")
ACL_KIND = "acls"

#: the operations each resource type has (Kafka's ``AclEntry.supportedOperations``)
SUPPORTED_OPERATIONS: dict[ResourceType, frozenset[AclOperation]] = {
    ResourceType.TOPIC: frozenset({
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE, AclOperation.DELETE,
        AclOperation.ALTER, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
    }),
    ResourceType.GROUP: frozenset({AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE,
                                   AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}),
    ResourceType.CLUSTER: frozenset({
        AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE,
    }),
    ResourceType.TRANSACTIONAL_ID: frozenset({AclOperation.DESCRIBE, AclOperation.WRITE}),
    ResourceType.DELEGATION_TOKEN: frozenset({AclOperation.DESCRIBE}),
    ResourceType.USER: frozenset({AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS}),
}

#: an ALLOW of one of these operations also allows DESCRIBE (or DESCRIBE_CONFIGS)
IMPLIES: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset({
        AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE, AclOperation.ALTER,
    }),
    AclOperation.DESCRIBE_CONFIGS: frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}),
}


@dataclass(frozen=True)
class AclBinding:
    """One ACL: a resource pattern and an access control entry."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    def key(self) -> str:
        """The binding as one canonical string (its key in the metadata store)."""
        return json.dumps([int(self.resource_type), self.resource_name, int(self.pattern_type), self.principal,
                           self.host, int(self.operation), int(self.permission)], separators=(",", ":"))

    @classmethod
    def from_key(cls, text: str) -> AclBinding:
        rt, name, pt, principal, host, op, perm = json.loads(text)
        return cls(ResourceType(rt), name, PatternType(pt), principal, host, AclOperation(op),
                   AclPermissionType(perm))

    def validate(self) -> str | None:
        """Why Kafka refuses to create this binding (INVALID_REQUEST), or None."""
        if self.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN) or self.resource_type not in SUPPORTED_OPERATIONS:
            return f"invalid resource type {self.resource_type.name}"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"invalid pattern type {self.pattern_type.name}: only LITERAL and PREFIXED ACLs can be created"
        if self.operation in (AclOperation.ANY, AclOperation.UNKNOWN):
            return f"invalid operation {self.operation.name}"
        if self.permission not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
            return f"invalid permission type {self.permission.name}"
        if not self.resource_name:
            return "resource name must not be empty"
        if self.resource_type == ResourceType.CLUSTER and (
            self.resource_name != CLUSTER_NAME or self.pattern_type != PatternType.LITERAL
        ):
            return f"the only cluster resource is the LITERAL {CLUSTER_NAME}"
        if self.pattern_type == PatternType.PREFIXED and self.resource_name == WILDCARD_RESOURCE:
            return "a PREFIXED pattern cannot be the wildcard"
        kind, sep, _ = self.principal.partition(":")
        if not sep or not kind:
            return f"could not parse principal {self.principal!r}"
        if self.operation != AclOperation.ALL and self.operation not in SUPPORTED_OPERATIONS[self.resource_type]:
            return f"operation {self.operation.name} is not supported on {self.resource_type.name}"
        return None

    def applies_to(self, resource_type: ResourceType, name: str) -> bool:
        """Whether this binding's pattern covers the resource ``resource_type:name``."""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.LITERAL:
            return self.resource_name == name or self.resource_name == WILDCARD_RESOURCE
        return self.pattern_type == PatternType.PREFIXED and name.startswith(self.resource_name)


@dataclass(frozen=True)
class AclFilter:
    """Selects bindings (DescribeAcls, DeleteAcls); None fields and ANY codes match all."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermissionType = AclPermissionType.ANY

    def invalid(self) -> str | None:
        for value in (self.resource_type, self.pattern_type, self.operation, self.permission):
            if value == 0:
                return f"the filter has an UNKNOWN {type(value).__name__}"
        return None

    def matches(self, binding: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and binding.resource_type != self.resource_type:
            return False
        if not self._pattern_matches(binding):
            return False
        if self.principal is not None and binding.principal != self.principal:
            return False
        if self.host is not None and binding.host != self.host:
            return False
        if self.operation != AclOperation.ANY and binding.operation != self.operation:
            return False
        return self.permission == AclPermissionType.ANY or binding.permission == self.permission

    def _pattern_matches(self, binding: AclBinding) -> bool:
        pattern = self.pattern_type
        if pattern == PatternType.MATCH:
            if self.resource_name is None:
                return True
            if binding.pattern_type == PatternType.LITERAL:
                return binding.resource_name in (self.resource_name, WILDCARD_RESOURCE)
            return self.resource_name.startswith(binding.resource_name)
        if pattern != PatternType.ANY and binding.pattern_type != pattern:
            return False
        return self.resource_name is None or binding.resource_name == self.resource_name
