"""ListConfigResources (key 74): the resources that have configs (KIP-1142; v0 was
KIP-714's ListClientMetricsResources)."""

from moldau.protocol.schema import Api

LIST_CONFIG_RESOURCES = Api(
    key=74,
    name="ListConfigResources",
    versions="0-1",
    flexible="0+",
    request="""
        resource_types: []int8 1+
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        config_resources: []ConfigResource
            resource_name: string
            resource_type: int8 1+ default=16
    """,
)
