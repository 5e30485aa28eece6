"""DescribeCluster (key 60): cluster ID, controller and brokers (KIP-700)."""

from moldau.protocol.schema import Api

DESCRIBE_CLUSTER = Api(
    key=60,
    name="DescribeCluster",
    versions="0-2",
    flexible="0+",
    request="""
        include_cluster_authorized_operations: bool
        endpoint_type: int8 1+ default=1
        include_fenced_brokers: bool 2+
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        error_message: string? default=null
        endpoint_type: int8 1+ default=1
        cluster_id: string
        controller_id: int32 default=-1
        brokers: []DescribeClusterBroker
            broker_id: int32
            host: string
            port: int32
            rack: string? default=null
            is_fenced: bool 2+
        cluster_authorized_operations: int32 default=-2147483648
    """,
)
