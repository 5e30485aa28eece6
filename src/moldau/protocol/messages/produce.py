"""Produce (key 0): clients append record batches to partitions.

Kafka 4.x states validVersions 3-13 (versions 0-2 were removed in 4.0; older specs
had 0-11). Field versions are written as the spec states them, so they also cover
versions 0-2 (e.g. for clients such as librdkafka that still expect them listed).
"""

from moldau.protocol.schema import Api

PRODUCE = Api(
    key=0,
    name="Produce",
    versions="0-13",  # Kafka 4 states 3-13; older specs had 0-11 with these same fields
    flexible="9+",
    request="""
        transactional_id: string? 3+ default=null
        acks: int16
        timeout_ms: int32
        topic_data: []TopicProduceData
            name: string 0-12
            topic_id: uuid 13+
            partition_data: []PartitionProduceData
                index: int32
                records: records?
    """,
    response="""
        responses: []TopicProduceResponse
            name: string 0-12
            topic_id: uuid 13+
            partition_responses: []PartitionProduceResponse
                index: int32
                error_code: int16
                base_offset: int64
                log_append_time_ms: int64 2+ default=-1
                log_start_offset: int64 5+ default=-1
                record_errors: []BatchIndexAndErrorMessage 8+
                    batch_index: int32 8+
                    batch_index_error_message: string? 8+ default=null
                error_message: string? 8+ default=null
                current_leader: LeaderIdAndEpoch 10+ tag=0
                    leader_id: int32 10+ default=-1
                    leader_epoch: int32 10+ default=-1
        throttle_time_ms: int32 1+ default=0
        node_endpoints: []NodeEndpoint 10+ tag=0
            node_id: int32 10+
            host: string 10+
            port: int32 10+
            rack: string? 10+ default=null
    """,
)
