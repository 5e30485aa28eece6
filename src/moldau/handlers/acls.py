"""DescribeAcls (29), CreateAcls (30), DeleteAcls (31).

As Kafka: without an authorizer every answer is SECURITY_DISABLED; describing needs
DESCRIBE on the cluster, creating and deleting ALTER (CLUSTER_AUTHORIZATION_FAILED);
a binding Kafka would refuse (an ANY or MATCH pattern, an operation its resource type
lacks, a malformed principal) is INVALID_REQUEST for that creation alone. Changes are
written to the metadata store first, then applied here; other brokers apply them from
their watch.
"""

from __future__ import annotations

from typing import Any

from moldau.handlers.authorize import ALTER, DESCRIBE, cluster_error
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages.acls import CREATE_ACLS, DELETE_ACLS, DESCRIBE_ACLS
from moldau.security.acl import (
    ACL_KIND,
    AclBinding,
    AclFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)

_describe = codec_for(DESCRIBE_ACLS)
_create = codec_for(CREATE_ACLS)
_delete = codec_for(DELETE_ACLS)
_Resource = _describe.Response.of("resources")
_Description = _Resource.of("acls")
_CreationResult = _create.Response.of("results")
_FilterResult = _delete.Response.of("filter_results")
_MatchingAcl = _FilterResult.of("matching_acls")


def _enum(kind: Any, value: int) -> Any:
    try:
        return kind(value)
    except ValueError:
        return kind(0)  # UNKNOWN


def _filter(item: Any) -> AclFilter:
    return AclFilter(
        _enum(ResourceType, item.resource_type_filter),
        item.resource_name_filter,
        _enum(PatternType, item.pattern_type_filter),
        item.principal_filter,
        item.host_filter,
        _enum(AclOperation, item.operation),
        _enum(AclPermissionType, item.permission_type),
    )


@handles(DESCRIBE_ACLS, 1, 3)
def describe_acls(broker: Any, header: Any, request: Any) -> Any:
    response = _describe.Response(throttle_time_ms=0, error_code=0, error_message=None, resources=[])
    if broker.authorizer is None:
        response.error_code = int(ErrorCode.SECURITY_DISABLED)
        response.error_message = "No Authorizer is configured."
        return response
    refused = cluster_error(broker, header, DESCRIBE)
    if refused is not None:
        response.error_code = int(refused)
        return response
    acl_filter = _filter(request)
    invalid = acl_filter.invalid()
    if invalid is not None:
        response.error_code = int(ErrorCode.INVALID_REQUEST)
        response.error_message = invalid
        return response
    grouped: dict[tuple[int, str, int], list[Any]] = {}
    for b in broker.authorizer.matching(acl_filter):
        grouped.setdefault((int(b.resource_type), b.resource_name, int(b.pattern_type)), []).append(
            _Description(principal=b.principal, host=b.host, operation=int(b.operation), permission_type=int(b.permission))
        )
    response.resources = [
        _Resource(resource_type=rt, resource_name=name, pattern_type=pt, acls=acls)
        for (rt, name, pt), acls in grouped.items()
    ]
    return response


@handles(CREATE_ACLS, 1, 3)
async def create_acls(broker: Any, header: Any, request: Any) -> Any:
    results = []
    if broker.authorizer is None or cluster_error(broker, header, ALTER) is not None:
        code = ErrorCode.SECURITY_DISABLED if broker.authorizer is None else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        message = "No Authorizer is configured." if broker.authorizer is None else None
        results = [_CreationResult(error_code=int(code), error_message=message) for _ in request.creations]
        return _create.Response(throttle_time_ms=0, results=results)
    valid: list[AclBinding] = []
    for item in request.creations:
        binding = AclBinding(
            _enum(ResourceType, item.resource_type), item.resource_name, _enum(PatternType, item.resource_pattern_type),
            item.principal, item.host, _enum(AclOperation, item.operation), _enum(AclPermissionType, item.permission_type),
        )
        problem = binding.validate()
        if problem is None:
            valid.append(binding)
            results.append(_CreationResult(error_code=0, error_message=None))
        else:
            results.append(_CreationResult(error_code=int(ErrorCode.INVALID_REQUEST), error_message=problem))
    if valid:
        try:
            await _write(broker, {b.key(): "" for b in valid})
        except Exception as exc:
            for result in results:
                if result.error_code == 0:
                    result.error_code = int(ErrorCode.UNKNOWN_SERVER_ERROR)
                    result.error_message = f"could not store the ACLs: {exc}"
    return _create.Response(throttle_time_ms=0, results=results)


@handles(DELETE_ACLS, 1, 3)
async def delete_acls(broker: Any, header: Any, request: Any) -> Any:
    if broker.authorizer is None or cluster_error(broker, header, ALTER) is not None:
        code = ErrorCode.SECURITY_DISABLED if broker.authorizer is None else ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        results = [_FilterResult(error_code=int(code), error_message=None, matching_acls=[]) for _ in request.filters]
        return _delete.Response(throttle_time_ms=0, filter_results=results)
    results = []
    doomed: dict[str, None] = {}
    for item in request.filters:
        acl_filter = _filter(item)
        invalid = acl_filter.invalid()
        if invalid is not None:
            results.append(_FilterResult(error_code=int(ErrorCode.INVALID_REQUEST), error_message=invalid, matching_acls=[]))
            continue
        matched = broker.authorizer.matching(acl_filter)
        doomed.update((b.key(), None) for b in matched)
        results.append(_FilterResult(error_code=0, error_message=None, matching_acls=[
            _MatchingAcl(error_code=0, error_message=None, resource_type=int(b.resource_type),
                         resource_name=b.resource_name, pattern_type=int(b.pattern_type), principal=b.principal,
                         host=b.host, operation=int(b.operation), permission_type=int(b.permission))
            for b in matched
        ]))
    if doomed:
        try:
            await _write(broker, doomed)
        except Exception as exc:
            for result in results:
                for acl in result.matching_acls:
                    acl.error_code = int(ErrorCode.UNKNOWN_SERVER_ERROR)
                    acl.error_message = f"could not store the change: {exc}"
    return _delete.Response(throttle_time_ms=0, filter_results=results)


async def _write(broker: Any, changes: dict[str, str | None]) -> None:
    """Store the changes, then apply them here (as one step no hang-up can cut)."""

    async def step() -> None:
        await broker.store.update_security(ACL_KIND, changes)
        for key, value in changes.items():
            broker.apply_security(ACL_KIND, key, value)

    await broker.changes.run(step)
