"""DescribeCluster (key 60): the cluster id, the controller and the brokers."""

from __future__ import annotations

from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles, listener_of
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

DESCRIBE_CLUSTER = ALL_APIS[60]
_codec = codec_for(DESCRIBE_CLUSTER)
_Broker = _codec.Response.of("brokers")


@handles(DESCRIBE_CLUSTER, 0, 2)
def describe_cluster(broker: Any, header: Any, request: Any) -> Any:
    """v2 (KIP-1073) adds ``include_fenced_brokers`` and ``is_fenced``: a Moldau broker
    that loses its lease leaves the cluster's broker list at once (docs/08-cluster.md),
    so there is no fenced broker to list and every listed one answers ``is_fenced``
    false."""
    if header.api_version >= 1 and request.endpoint_type not in (1,):
        return _codec.Response(
            error_code=int(ErrorCode.UNSUPPORTED_ENDPOINT_TYPE),
            error_message="Only brokers can be described",
            endpoint_type=request.endpoint_type,
        )
    operations = authz.OPERATIONS_NOT_REQUESTED
    if request.include_cluster_authorized_operations:  # as Kafka: 0 without DESCRIBE
        operations = authz.cluster_operations(broker, header)
    return _codec.Response(
        throttle_time_ms=0,
        error_code=0,
        error_message=None,
        endpoint_type=1,
        cluster_id=broker.cluster_id,
        controller_id=broker.controller_id(),
        brokers=[_Broker(broker_id=b.broker_id, host=b.host, port=b.port, rack=b.rack) for b in broker.live_brokers(listener_of(header))],
        cluster_authorized_operations=operations,
    )
