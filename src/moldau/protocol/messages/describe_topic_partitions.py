"""DescribeTopicPartitions (key 75): topics and their partitions, a page at a time (KIP-966).

Kafka 3.8+ states validVersions 0. Metadata answers every partition of every topic it
is asked about at once; this API bounds an answer by ``response_partition_limit`` and
hands back a cursor to continue from.
"""

from moldau.protocol.schema import Api

DESCRIBE_TOPIC_PARTITIONS = Api(
    key=75,
    name="DescribeTopicPartitions",
    versions="0",
    flexible="0+",
    request="""
        topics: []TopicRequest
            name: string
        response_partition_limit: int32 default=2000
        cursor: Cursor? default=null
            topic_name: string
            partition_index: int32
    """,
    response="""
        throttle_time_ms: int32
        topics: []DescribeTopicPartitionsResponseTopic
            error_code: int16
            name: string?
            topic_id: uuid
            is_internal: bool default=false
            partitions: []DescribeTopicPartitionsResponsePartition
                error_code: int16
                partition_index: int32
                leader_id: int32
                leader_epoch: int32 default=-1
                replica_nodes: []int32
                isr_nodes: []int32
                eligible_leader_replicas: []int32? default=null
                last_known_elr: []int32? default=null
                offline_replicas: []int32
            topic_authorized_operations: int32 default=-2147483648
        next_cursor: Cursor? default=null
            topic_name: string
            partition_index: int32
    """,
)
