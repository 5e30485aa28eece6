"""AlterConfigs (33) and IncrementalAlterConfigs (44): change topic and broker configs."""

from moldau.protocol.schema import Api

ALTER_CONFIGS = Api(
    key=33,
    name="AlterConfigs",
    versions="0-2",
    flexible="2+",
    request="""
        resources: []AlterConfigsResource
            resource_type: int8
            resource_name: string
            configs: []AlterableConfig
                name: string
                value: string?
        validate_only: bool
    """,
    response="""
        throttle_time_ms: int32
        responses: []AlterConfigsResourceResponse
            error_code: int16
            error_message: string?
            resource_type: int8
            resource_name: string
    """,
)

INCREMENTAL_ALTER_CONFIGS = Api(
    key=44,
    name="IncrementalAlterConfigs",
    versions="0-1",
    flexible="1+",
    request="""
        resources: []AlterConfigsResource
            resource_type: int8
            resource_name: string
            configs: []AlterableConfig
                name: string
                config_operation: int8
                value: string?
        validate_only: bool
    """,
    response="""
        throttle_time_ms: int32
        responses: []AlterConfigsResourceResponse
            error_code: int16
            error_message: string?
            resource_type: int8
            resource_name: string
    """,
)
