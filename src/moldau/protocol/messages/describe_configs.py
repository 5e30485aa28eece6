"""DescribeConfigs (key 32): configuration entries of topics, brokers and loggers.

Kafka 4.x states validVersions 1-4 (version 0 was removed in 4.0; older specs had
0-4). The version-0-only field is_default is kept from the older spec.
"""

from moldau.protocol.schema import Api

DESCRIBE_CONFIGS = Api(
    key=32,
    name="DescribeConfigs",
    versions="1-4",  # older specs: 0-4
    flexible="4+",
    request="""
        resources: []DescribeConfigsResource
            resource_type: int8
            resource_name: string
            configuration_keys: []string?
        include_synonyms: bool 1+ default=false
        include_documentation: bool 3+ default=false
    """,
    response="""
        throttle_time_ms: int32
        results: []DescribeConfigsResult
            error_code: int16
            error_message: string?
            resource_type: int8
            resource_name: string
            configs: []DescribeConfigsResourceResult
                name: string
                value: string?
                read_only: bool
                is_default: bool 0
                config_source: int8 1+ default=-1
                is_sensitive: bool
                synonyms: []DescribeConfigsSynonym 1+
                    name: string 1+
                    value: string? 1+
                    source: int8 1+
                config_type: int8 3+ default=0
                documentation: string? 3+
    """,
)
