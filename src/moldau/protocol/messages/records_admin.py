"""Partition administration: DeleteRecords (21), DescribeLogDirs (35), ElectLeaders (43),
DescribeProducers (61).

Kafka 4.x states validVersions 1-5 for DescribeLogDirs (version 0 was removed in 4.0;
older specs had 0-4); its field versions are written as the spec states them.
"""

from moldau.protocol.schema import Api

DELETE_RECORDS = Api(
    key=21,
    name="DeleteRecords",
    versions="0-2",
    flexible="2+",
    request="""
        topics: []DeleteRecordsTopic
            name: string
            partitions: []DeleteRecordsPartition
                partition_index: int32
                offset: int64
        timeout_ms: int32
    """,
    response="""
        throttle_time_ms: int32
        topics: []DeleteRecordsTopicResult
            name: string
            partitions: []DeleteRecordsPartitionResult
                partition_index: int32
                low_watermark: int64
                error_code: int16
    """,
)

DESCRIBE_LOG_DIRS = Api(
    key=35,
    name="DescribeLogDirs",
    versions="1-5",  # older specs: 0-4
    flexible="2+",
    request="""
        topics: []DescribableLogDirTopic?
            topic: string
            partitions: []int32
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16 3+
        results: []DescribeLogDirsResult
            error_code: int16
            log_dir: string
            topics: []DescribeLogDirsTopic
                name: string
                partitions: []DescribeLogDirsPartition
                    partition_index: int32
                    partition_size: int64
                    offset_lag: int64
                    is_future_key: bool
            total_bytes: int64 4+ default=-1
            usable_bytes: int64 4+ default=-1
            is_cordoned: bool 5+ default=false
    """,
)

ELECT_LEADERS = Api(
    key=43,
    name="ElectLeaders",
    versions="0-2",
    flexible="2+",
    request="""
        election_type: int8 1+
        topic_partitions: []TopicPartitions?
            topic: string
            partitions: []int32
        timeout_ms: int32 default=60000
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16 1+
        replica_election_results: []ReplicaElectionResult
            topic: string
            partition_result: []PartitionResult
                partition_id: int32
                error_code: int16
                error_message: string?
    """,
)

DESCRIBE_PRODUCERS = Api(
    key=61,
    name="DescribeProducers",
    versions="0",
    flexible="0+",
    request="""
        topics: []TopicRequest
            name: string
            partition_indexes: []int32
    """,
    response="""
        throttle_time_ms: int32
        topics: []TopicResponse
            name: string
            partitions: []PartitionResponse
                partition_index: int32
                error_code: int16
                error_message: string? default=null
                active_producers: []ProducerState
                    producer_id: int64
                    producer_epoch: int32
                    last_sequence: int32 default=-1
                    last_timestamp: int64 default=-1
                    coordinator_epoch: int32
                    current_txn_start_offset: int64 default=-1
    """,
)
