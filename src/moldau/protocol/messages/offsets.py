"""OffsetCommit (key 8), OffsetFetch (key 9) and OffsetDelete (key 47): committed offsets.

Kafka 4.x states validVersions 2-10 for OffsetCommit and 1-10 for OffsetFetch (the
oldest versions were removed in 4.0; older specs had 0-9 for both). Field versions are
written as the specs state them, so the oldest versions are still described
(commit_timestamp exists in OffsetCommit version 1 only).
"""

from moldau.protocol.schema import Api

OFFSET_COMMIT = Api(
    key=8,
    name="OffsetCommit",
    versions="2-10",  # older specs: 0-9
    flexible="8+",
    request="""
        group_id: string
        generation_id_or_member_epoch: int32 1+ default=-1
        member_id: string 1+
        group_instance_id: string? 7+ default=null
        retention_time_ms: int64 2-4 default=-1
        topics: []OffsetCommitRequestTopic
            name: string 0-9
            topic_id: uuid 10+
            partitions: []OffsetCommitRequestPartition
                partition_index: int32
                committed_offset: int64
                committed_leader_epoch: int32 6+ default=-1
                commit_timestamp: int64 1 default=-1
                committed_metadata: string?
    """,
    response="""
        throttle_time_ms: int32 3+
        topics: []OffsetCommitResponseTopic
            name: string 0-9
            topic_id: uuid 10+
            partitions: []OffsetCommitResponsePartition
                partition_index: int32
                error_code: int16
    """,
)

OFFSET_FETCH = Api(
    key=9,
    name="OffsetFetch",
    versions="1-10",  # older specs: 0-9
    flexible="6+",
    request="""
        group_id: string 0-7
        topics: []OffsetFetchRequestTopic 0-7 null=2-7
            name: string 0-7
            partition_indexes: []int32 0-7
        groups: []OffsetFetchRequestGroup 8+
            group_id: string 8+
            member_id: string? 9+ default=null
            member_epoch: int32 9+ default=-1
            topics: []OffsetFetchRequestTopics? 8+
                name: string 8-9
                topic_id: uuid 10+
                partition_indexes: []int32 8+
        require_stable: bool 7+ default=false
    """,
    response="""
        throttle_time_ms: int32 3+
        topics: []OffsetFetchResponseTopic 0-7
            name: string 0-7
            partitions: []OffsetFetchResponsePartition 0-7
                partition_index: int32 0-7
                committed_offset: int64 0-7
                committed_leader_epoch: int32 5-7 default=-1
                metadata: string? 0-7
                error_code: int16 0-7
        error_code: int16 2-7 default=0
        groups: []OffsetFetchResponseGroup 8+
            group_id: string 8+
            topics: []OffsetFetchResponseTopics 8+
                name: string 8-9
                topic_id: uuid 10+
                partitions: []OffsetFetchResponsePartitions 8+
                    partition_index: int32 8+
                    committed_offset: int64 8+
                    committed_leader_epoch: int32 8+ default=-1
                    metadata: string? 8+
                    error_code: int16 8+
            error_code: int16 8+ default=0
    """,
)

OFFSET_DELETE = Api(
    key=47,
    name="OffsetDelete",
    versions="0",
    flexible="none",
    request="""
        group_id: string
        topics: []OffsetDeleteRequestTopic
            name: string
            partitions: []OffsetDeleteRequestPartition
                partition_index: int32
    """,
    response="""
        error_code: int16
        throttle_time_ms: int32
        topics: []OffsetDeleteResponseTopic
            name: string
            partitions: []OffsetDeleteResponsePartition
                partition_index: int32
                error_code: int16
    """,
)
