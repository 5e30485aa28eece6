"""CreateTopics (key 19): create topics with partition counts, replicas and configs.

Kafka 4.x states validVersions 2-7 (versions 0-1 were removed in 4.0; older specs
had 0-7). Field versions are written as the spec states them.
"""

from moldau.protocol.schema import Api

CREATE_TOPICS = Api(
    key=19,
    name="CreateTopics",
    versions="2-7",  # older specs: 0-7
    flexible="5+",
    request="""
        topics: []CreatableTopic
            name: string
            num_partitions: int32
            replication_factor: int16
            assignments: []CreatableReplicaAssignment
                partition_index: int32
                broker_ids: []int32
            configs: []CreatableTopicConfig
                name: string
                value: string?
        timeout_ms: int32 default=60000
        validate_only: bool 1+ default=false
    """,
    response="""
        throttle_time_ms: int32 2+
        topics: []CreatableTopicResult
            name: string
            topic_id: uuid 7+
            error_code: int16
            error_message: string? 1+
            topic_config_error_code: int16 5+ tag=0
            num_partitions: int32 5+ default=-1
            replication_factor: int16 5+ default=-1
            configs: []CreatableTopicConfigs? 5+
                name: string 5+
                value: string? 5+
                read_only: bool 5+
                config_source: int8 5+ default=-1
                is_sensitive: bool 5+
    """,
)
