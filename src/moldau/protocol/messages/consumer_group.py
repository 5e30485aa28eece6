"""KIP-848 consumer groups: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69)."""

from moldau.protocol.schema import Api

CONSUMER_GROUP_HEARTBEAT = Api(
    key=68,
    name="ConsumerGroupHeartbeat",
    versions="0-1",
    flexible="0+",
    request="""
        group_id: string
        member_id: string
        member_epoch: int32
        instance_id: string? default=null
        rack_id: string? default=null
        rebalance_timeout_ms: int32 default=-1
        subscribed_topic_names: []string? default=null
        subscribed_topic_regex: string? 1+ default=null
        server_assignor: string? default=null
        topic_partitions: []TopicPartitions?
            topic_id: uuid
            partitions: []int32
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        error_message: string? default=null
        member_id: string? default=null
        member_epoch: int32
        heartbeat_interval_ms: int32
        assignment: Assignment? default=null
            topic_partitions: []TopicPartitions
                topic_id: uuid
                partitions: []int32
    """,
)

CONSUMER_GROUP_DESCRIBE = Api(
    key=69,
    name="ConsumerGroupDescribe",
    versions="0-1",
    flexible="0+",
    request="""
        group_ids: []string
        include_authorized_operations: bool
    """,
    response="""
        throttle_time_ms: int32
        groups: []DescribedGroup
            error_code: int16
            error_message: string? default=null
            group_id: string
            group_state: string
            group_epoch: int32
            assignment_epoch: int32
            assignor_name: string
            members: []Member
                member_id: string
                instance_id: string? default=null
                rack_id: string? default=null
                member_epoch: int32
                client_id: string
                client_host: string
                subscribed_topic_names: []string
                subscribed_topic_regex: string? default=null
                assignment: Assignment
                    topic_partitions: []TopicPartitions
                        topic_id: uuid
                        topic_name: string
                        partitions: []int32
                target_assignment: Assignment
                    topic_partitions: []TopicPartitions
                        topic_id: uuid
                        topic_name: string
                        partitions: []int32
                member_type: int8 1+ default=-1
            authorized_operations: int32 default=-2147483648
    """,
)
