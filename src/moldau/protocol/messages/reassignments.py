"""Replica placement administration: AlterReplicaLogDirs (34),
AlterPartitionReassignments (45) and ListPartitionReassignments (46).

AlterPartitionReassignments v1 is KIP-860's: ``allow_replication_factor_change``
(default true) lets a client refuse reassignments that change a partition's
replica count.
"""

from moldau.protocol.schema import Api

ALTER_REPLICA_LOG_DIRS = Api(
    key=34,
    name="AlterReplicaLogDirs",
    versions="0-2",
    flexible="2+",
    request="""
        dirs: []AlterReplicaLogDir
            path: string
            topics: []AlterReplicaLogDirTopic
                name: string
                partitions: []int32
    """,
    response="""
        throttle_time_ms: int32
        results: []AlterReplicaLogDirTopicResult
            topic_name: string
            partitions: []AlterReplicaLogDirPartitionResult
                partition_index: int32
                error_code: int16
    """,
)

ALTER_PARTITION_REASSIGNMENTS = Api(
    key=45,
    name="AlterPartitionReassignments",
    versions="0-1",
    flexible="0+",
    request="""
        timeout_ms: int32 default=60000
        allow_replication_factor_change: bool 1+ default=true
        topics: []ReassignableTopic
            name: string
            partitions: []ReassignablePartition
                partition_index: int32
                replicas: []int32? default=null
    """,
    response="""
        throttle_time_ms: int32
        allow_replication_factor_change: bool 1+ default=true
        error_code: int16
        error_message: string?
        responses: []ReassignableTopicResponse
            name: string
            partitions: []ReassignablePartitionResponse
                partition_index: int32
                error_code: int16
                error_message: string?
    """,
)

LIST_PARTITION_REASSIGNMENTS = Api(
    key=46,
    name="ListPartitionReassignments",
    versions="0",
    flexible="0+",
    request="""
        timeout_ms: int32 default=60000
        topics: []ListPartitionReassignmentsTopics? default=null
            name: string
            partition_indexes: []int32
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        error_message: string?
        topics: []OngoingTopicReassignment
            name: string
            partitions: []OngoingPartitionReassignment
                partition_index: int32
                replicas: []int32
                adding_replicas: []int32
                removing_replicas: []int32
    """,
)
