"""KIP-932's inter-broker share-group state APIs: InitializeShareGroupState (83),
ReadShareGroupState (84), WriteShareGroupState (85), DeleteShareGroupState (86) and
ReadShareGroupStateSummary (87, for DescribeShareGroupOffsets).

Transcribed from Kafka's *ShareGroupState*.json (version 0; WriteShareGroupState v1 adds
KIP-1226's DeliveryCompleteCount, which Moldau accepts and does not use). A share-partition's leader
(its persister) sends them to the share coordinator, the leader of the share-partition's
``__share_group_state`` partition; brokers only (CLUSTER_ACTION).
"""

from moldau.protocol.schema import Api

_RESULTS = """
        results: []{name}Result
            topic_id: uuid
            partitions: []PartitionResult
                partition: int32
                error_code: int16
                error_message: string? default=null
"""

INITIALIZE_SHARE_GROUP_STATE = Api(
    key=83,
    name="InitializeShareGroupState",
    versions="0",
    flexible="0+",
    request="""
        group_id: string
        topics: []InitializeStateData
            topic_id: uuid
            partitions: []PartitionData
                partition: int32
                state_epoch: int32
                start_offset: int64
    """,
    response=_RESULTS.format(name="InitializeState"),
)

READ_SHARE_GROUP_STATE = Api(
    key=84,
    name="ReadShareGroupState",
    versions="0",
    flexible="0+",
    request="""
        group_id: string
        topics: []ReadStateData
            topic_id: uuid
            partitions: []PartitionData
                partition: int32
                leader_epoch: int32
    """,
    response="""
        results: []ReadStateResult
            topic_id: uuid
            partitions: []PartitionResult
                partition: int32
                error_code: int16
                error_message: string? default=null
                state_epoch: int32
                start_offset: int64
                state_batches: []StateBatch
                    first_offset: int64
                    last_offset: int64
                    delivery_state: int8
                    delivery_count: int16
    """,
)

WRITE_SHARE_GROUP_STATE = Api(
    key=85,
    name="WriteShareGroupState",
    versions="0-1",
    flexible="0+",
    request="""
        group_id: string
        topics: []WriteStateData
            topic_id: uuid
            partitions: []PartitionData
                partition: int32
                state_epoch: int32
                leader_epoch: int32
                start_offset: int64
                delivery_complete_count: int32 1+ default=-1
                state_batches: []StateBatch
                    first_offset: int64
                    last_offset: int64
                    delivery_state: int8
                    delivery_count: int16
    """,
    response=_RESULTS.format(name="WriteState"),
)

DELETE_SHARE_GROUP_STATE = Api(
    key=86,
    name="DeleteShareGroupState",
    versions="0",
    flexible="0+",
    request="""
        group_id: string
        topics: []DeleteStateData
            topic_id: uuid
            partitions: []PartitionData
                partition: int32
    """,
    response=_RESULTS.format(name="DeleteState"),
)

READ_SHARE_GROUP_STATE_SUMMARY = Api(
    key=87,
    name="ReadShareGroupStateSummary",
    versions="0-1",
    flexible="0+",
    request="""
        group_id: string
        topics: []ReadStateSummaryData
            topic_id: uuid
            partitions: []PartitionData
                partition: int32
                leader_epoch: int32
    """,
    response="""
        results: []ReadStateSummaryResult
            topic_id: uuid
            partitions: []PartitionResult
                partition: int32
                error_code: int16
                error_message: string? default=null
                state_epoch: int32
                leader_epoch: int32
                start_offset: int64
                delivery_complete_count: int32 1+ default=-1
    """,
)
