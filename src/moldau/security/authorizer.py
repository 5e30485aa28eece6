"""The ACL authorizer: may this principal, from this host, do this to that resource?

Theory of operation (Kafka's ``StandardAuthorizer`` semantics, item by item):

* a principal listed in ``super.users`` (``User:admin;User:ops``) may do anything;
* the bindings that *apply* to a resource are those on its literal name, on the
  wildcard ``*`` of its type, and on every prefix of its name (PREFIXED); of these, a
  binding *matches* a request when its principal is the requester's or ``User:*`` and
  its host is the requester's address or ``*``;
* a matching DENY of the operation (or of ALL) refuses, whatever allows it: deny
  beats allow;
* when no binding at all applies to the resource (whoever it names), the answer is
  ``allow.everyone.if.no.acl.found`` (false by default: a secured cluster is closed);
* otherwise a matching ALLOW of the operation, or of ALL, or -- for DESCRIBE -- of
  READ, WRITE, DELETE or ALTER, or -- for DESCRIBE_CONFIGS -- of ALTER_CONFIGS, allows.

Cost: the hot path (Produce, Fetch) asks once per topic of a request. Decisions are
cached by (principal, host, operation, resource) and the cache is dropped whenever the
bindings change, so a steady workload pays one dictionary lookup per topic. The
bindings are indexed by resource type, literal names in a dictionary, prefixes in a
short list, so a cache miss touches only the bindings of that type.

The bindings themselves live in the metadata store (see :mod:`moldau.security.acl_store`);
this class holds the broker's copy, replaced as changes arrive.
"""

from __future__ import annotations

from collections.abc import Iterable

from moldau.security.acl import (
    IMPLIES,
    SUPPORTED_OPERATIONS,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AclBinding,
    AclFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.security.principal import KafkaPrincipal

#: ``authorizer.class.name`` values that turn ACLs on (Kafka's two, and our own)
AUTHORIZER_NAMES = frozenset({
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
    "kafka.security.auth.SimpleAclAuthorizer",
    "moldau.security.authorizer.AclAuthorizer",
})
CACHE_LIMIT = 100_000
_ALLOW = AclPermissionType.ALLOW
_DENY = AclPermissionType.DENY


def parse_super_users(text: str | None) -> frozenset[str]:
    """``super.users``: principals separated by semicolons (``User:a;User:b``)."""
    return frozenset(p.strip() for p in (text or "").split(";") if p.strip())


class _TypeIndex:
    """The bindings of one resource type: literal ones by name, prefixed ones listed."""

    __slots__ = ("literal", "prefixed")

    def __init__(self) -> None:
        self.literal: dict[str, list[AclBinding]] = {}
        self.prefixed: list[AclBinding] = []

    def applying(self, name: str) -> list[AclBinding]:
        found = list(self.literal.get(name, ()))
        if name != WILDCARD_RESOURCE:
            found += self.literal.get(WILDCARD_RESOURCE, ())
        found += [b for b in self.prefixed if name.startswith(b.resource_name)]
        return found


class AclAuthorizer:
    """Kafka's authorizer semantics over an in-memory copy of the bindings."""

    def __init__(self, super_users: Iterable[str] = (), allow_everyone_if_no_acl_found: bool = False) -> None:
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self._bindings: set[AclBinding] = set()
        self._index: dict[ResourceType, _TypeIndex] = {}
        self._cache: dict[tuple[KafkaPrincipal, str, int, int, str], bool] = {}

    # the bindings ---------------------------------------------------------------------

    @property
    def bindings(self) -> frozenset[AclBinding]:
        return frozenset(self._bindings)

    def replace(self, bindings: Iterable[AclBinding]) -> None:
        self._bindings = set(bindings)
        self._reindex()

    def add(self, bindings: Iterable[AclBinding]) -> None:
        """Add bindings (one at a time as the store's watch delivers them: each costs
        the update of its index entry, not a rebuild)."""
        for binding in bindings:
            if binding not in self._bindings:
                self._bindings.add(binding)
                self._index_entry(binding).append(binding)
        self._cache = {}

    def remove(self, bindings: Iterable[AclBinding]) -> None:
        for binding in bindings:
            if binding in self._bindings:
                self._bindings.discard(binding)
                self._index_entry(binding).remove(binding)
        self._cache = {}

    def _index_entry(self, binding: AclBinding) -> list[AclBinding]:
        entry = self._index.setdefault(binding.resource_type, _TypeIndex())
        if binding.pattern_type == PatternType.PREFIXED:
            return entry.prefixed
        return entry.literal.setdefault(binding.resource_name, [])

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        return sorted((b for b in self._bindings if acl_filter.matches(b)), key=AclBinding.key)

    def _reindex(self) -> None:
        self._index = {}
        for binding in self._bindings:
            self._index_entry(binding).append(binding)
        self._cache = {}

    # decisions ------------------------------------------------------------------------

    def authorize(
        self, principal: KafkaPrincipal, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        """Whether ``principal`` from ``host`` may do ``operation`` on the resource."""
        key = (principal, host, operation, resource_type, name)
        decision = self._cache.get(key)
        if decision is None:
            decision = self._decide(principal, host, operation, resource_type, name)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache = {}
            self._cache[key] = decision
        return decision

    def _decide(
        self, principal: KafkaPrincipal, host: str, operation: AclOperation, resource_type: ResourceType, name: str
    ) -> bool:
        who = str(principal)
        if who in self.super_users:
            return True
        index = self._index.get(resource_type)
        applying = index.applying(name) if index is not None else []
        if not applying:
            return self.allow_everyone_if_no_acl_found
        principals = (who, WILDCARD_PRINCIPAL)
        hosts = (host, WILDCARD_HOST)
        matching = [b for b in applying if b.principal in principals and b.host in hosts]
        for b in matching:
            if b.permission == _DENY and b.operation in (operation, AclOperation.ALL):
                return False
        allowed_by = IMPLIES.get(operation, frozenset({operation}))
        return any(
            b.permission == _ALLOW and (b.operation == AclOperation.ALL or b.operation in allowed_by) for b in matching
        )

    def authorize_by_resource_type(
        self, principal: KafkaPrincipal, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Whether the principal may do ``operation`` on *some* resource of the type
        (Kafka's ``authorizeByResourceType``, used for IDEMPOTENT_WRITE: an idempotent
        producer needs WRITE on some topic): an ALLOW not covered by a DENY."""
        who = str(principal)
        if who in self.super_users:
            return True
        index = self._index.get(resource_type)
        if index is None:
            return self.allow_everyone_if_no_acl_found
        principals = (who, WILDCARD_PRINCIPAL)
        hosts = (host, WILDCARD_HOST)
        relevant = [
            b for names in (index.literal.values(), [index.prefixed]) for group in names for b in group
            if b.principal in principals and b.host in hosts and b.operation in (operation, AclOperation.ALL)
        ]
        deny_literal = {b.resource_name for b in relevant if b.permission == _DENY and b.pattern_type == PatternType.LITERAL}
        if WILDCARD_RESOURCE in deny_literal:
            return False
        deny_prefixes = [b.resource_name for b in relevant if b.permission == _DENY and b.pattern_type == PatternType.PREFIXED]
        for b in relevant:
            if b.permission != _ALLOW:
                continue
            if b.pattern_type == PatternType.LITERAL and b.resource_name == WILDCARD_RESOURCE:
                return True
            if any(b.resource_name.startswith(p) for p in deny_prefixes):
                continue
            if b.pattern_type == PatternType.LITERAL and b.resource_name in deny_literal:
                continue
            return True
        return False

    def authorized_operations(self, principal: KafkaPrincipal, host: str, resource_type: ResourceType, name: str) -> int:
        """The bit field (1 << operation code) of the operations allowed on a resource,
        as Metadata, DescribeCluster and DescribeGroups report them when asked."""
        bits = 0
        for operation in SUPPORTED_OPERATIONS.get(resource_type, ()):
            if self.authorize(principal, host, operation, resource_type, name):
                bits |= 1 << int(operation)
        return bits


def create_authorizer(class_name: str | None, super_users: str | None, allow_everyone: bool) -> AclAuthorizer | None:
    """The authorizer ``authorizer.class.name`` asks for; None when it is empty (every
    request allowed, no authorization work at all). ValueError for an unknown class."""
    if not class_name:
        return None
    if class_name not in AUTHORIZER_NAMES:
        raise ValueError(
            f"authorizer.class.name={class_name}: supported are " + ", ".join(sorted(AUTHORIZER_NAMES))
        )
    return AclAuthorizer(parse_super_users(super_users), allow_everyone)
