"""ListOffsets (key 2): offsets by timestamp (earliest, latest, max timestamp, ...).

Kafka 4.x states validVersions 1-11 (version 0 was removed in 4.0; older specs had
0-10). The version-0-only fields (max_num_offsets, old_style_offsets) are kept from
the older spec so that the statement still describes version 0.
"""

from moldau.protocol.schema import Api

LIST_OFFSETS = Api(
    key=2,
    name="ListOffsets",
    versions="1-11",  # older specs: 0-10
    flexible="6+",
    request="""
        replica_id: int32
        isolation_level: int8 2+
        topics: []ListOffsetsTopic
            name: string
            partitions: []ListOffsetsPartition
                partition_index: int32
                current_leader_epoch: int32 4+ default=-1
                timestamp: int64
                max_num_offsets: int32 0 default=1
        timeout_ms: int32 10+
    """,
    response="""
        throttle_time_ms: int32 2+
        topics: []ListOffsetsTopicResponse
            name: string
            partitions: []ListOffsetsPartitionResponse
                partition_index: int32
                error_code: int16
                old_style_offsets: []int64 0
                timestamp: int64 1+ default=-1
                offset: int64 1+ default=-1
                leader_epoch: int32 4+ default=-1
    """,
)
