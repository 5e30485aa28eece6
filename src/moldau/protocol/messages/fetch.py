"""Fetch (key 1): consumers and followers read record batches from partitions.

Kafka 4.x states validVersions 4-18 (versions 0-3 were removed in 4.0; Kafka 3.x
had 0-17). Field versions are written as the spec states them and cover 0-3 too.
"""

from moldau.protocol.schema import Api

FETCH = Api(
    key=1,
    name="Fetch",
    versions="4-18",  # older specs: 0-17
    flexible="12+",
    request="""
        cluster_id: string? 12+ tag=0 default=null
        replica_id: int32 0-14 default=-1
        replica_state: ReplicaState 15+ tag=1
            replica_id: int32 15+ default=-1
            replica_epoch: int64 15+ default=-1
        max_wait_ms: int32
        min_bytes: int32
        max_bytes: int32 3+ default=2147483647
        isolation_level: int8 4+ default=0
        session_id: int32 7+ default=0
        session_epoch: int32 7+ default=-1
        topics: []FetchTopic
            topic: string 0-12
            topic_id: uuid 13+
            partitions: []FetchPartition
                partition: int32
                current_leader_epoch: int32 9+ default=-1
                fetch_offset: int64
                last_fetched_epoch: int32 12+ default=-1
                log_start_offset: int64 5+ default=-1
                partition_max_bytes: int32
                replica_directory_id: uuid 17+ tag=0
                high_watermark: int64 18+ tag=1 default=9223372036854775807
        forgotten_topics_data: []ForgottenTopic 7+
            topic: string 7-12
            topic_id: uuid 13+
            partitions: []int32 7+
        rack_id: string 11+ default=""
    """,
    response="""
        throttle_time_ms: int32 1+
        error_code: int16 7+
        session_id: int32 7+ default=0
        responses: []FetchableTopicResponse
            topic: string 0-12
            topic_id: uuid 13+
            partitions: []PartitionData
                partition_index: int32
                error_code: int16
                high_watermark: int64
                last_stable_offset: int64 4+ default=-1
                log_start_offset: int64 5+ default=-1
                diverging_epoch: EpochEndOffset 12+ tag=0
                    epoch: int32 12+ default=-1
                    end_offset: int64 12+ default=-1
                current_leader: LeaderIdAndEpoch 12+ tag=1
                    leader_id: int32 12+ default=-1
                    leader_epoch: int32 12+ default=-1
                snapshot_id: SnapshotId 12+ tag=2
                    end_offset: int64 12+ default=-1
                    epoch: int32 12+ default=-1
                aborted_transactions: []AbortedTransaction? 4+
                    producer_id: int64 4+
                    first_offset: int64 4+
                preferred_read_replica: int32 11+ default=-1
                records: records?
        node_endpoints: []NodeEndpoint 16+ tag=0
            node_id: int32 16+
            host: string 16+
            port: int32 16+
            rack: string? 16+ default=null
    """,
)
