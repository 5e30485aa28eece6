"""OffsetForLeaderEpoch (key 23): where a leader epoch ended in the leader's history.

A follower asks it before fetching, to truncate a tail the leader does not have
(KIP-101, KIP-279). Kafka 4.x states validVersions 2-4 (versions 0-1 were removed in
4.0); field versions are written as the spec states them. ReplicaId's default is -2,
Kafka's "debug consumer".
"""

from moldau.protocol.schema import Api

OFFSET_FOR_LEADER_EPOCH = Api(
    key=23,
    name="OffsetForLeaderEpoch",
    versions="2-4",  # older specs: 0-4
    flexible="4+",
    request="""
        replica_id: int32 3+ default=-2
        topics: []OffsetForLeaderTopic
            topic: string
            partitions: []OffsetForLeaderPartition
                partition: int32
                current_leader_epoch: int32 2+ default=-1
                leader_epoch: int32
    """,
    response="""
        throttle_time_ms: int32 2+
        topics: []OffsetForLeaderTopicResult
            topic: string
            partitions: []EpochEndOffset
                error_code: int16
                partition: int32
                leader_epoch: int32 1+ default=-1
                end_offset: int64 default=-1
    """,
)
