"""CreatePartitions (key 37): add partitions to existing topics."""

from moldau.protocol.schema import Api

CREATE_PARTITIONS = Api(
    key=37,
    name="CreatePartitions",
    versions="0-3",
    flexible="2+",
    request="""
        topics: []CreatePartitionsTopic
            name: string
            count: int32
            assignments: []CreatePartitionsAssignment?
                broker_ids: []int32
        timeout_ms: int32
        validate_only: bool
    """,
    response="""
        throttle_time_ms: int32
        results: []CreatePartitionsTopicResult
            name: string
            error_code: int16
            error_message: string? default=null
    """,
)
