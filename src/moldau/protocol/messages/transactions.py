"""Transactions: InitProducerId (22), AddPartitionsToTxn (24), AddOffsetsToTxn (25),
EndTxn (26), WriteTxnMarkers (27), TxnOffsetCommit (28), DescribeTransactions (65),
ListTransactions (66).

Kafka 4.x states validVersions 1-2 for WriteTxnMarkers (version 0 was removed in 4.0;
older specs had 0-1); its field versions are written as the spec states them.
"""

from moldau.protocol.schema import Api

INIT_PRODUCER_ID = Api(
    key=22,
    name="InitProducerId",
    versions="0-6",
    flexible="2+",
    request="""
        transactional_id: string?
        transaction_timeout_ms: int32
        producer_id: int64 3+ default=-1
        producer_epoch: int16 3+ default=-1
        enable2_pc: bool 6+ default=false
        keep_prepared_txn: bool 6+ default=false
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        producer_id: int64 default=-1
        producer_epoch: int16
        ongoing_txn_producer_id: int64 6+ default=-1
        ongoing_txn_producer_epoch: int16 6+ default=-1
    """,
)

ADD_PARTITIONS_TO_TXN = Api(
    key=24,
    name="AddPartitionsToTxn",
    versions="0-5",
    flexible="3+",
    request="""
        v3_and_below_transactional_id: string 0-3
        v3_and_below_producer_id: int64 0-3
        v3_and_below_producer_epoch: int16 0-3
        v3_and_below_topics: []AddPartitionsToTxnTopic 0-3
            name: string 0-3
            partitions: []int32 0-3
        transactions: []AddPartitionsToTxnTransaction 4+
            transactional_id: string 4+
            producer_id: int64 4+
            producer_epoch: int16 4+
            verify_only: bool 4+ default=false
            topics: []AddPartitionsToTxnTopic 4+
                name: string 4+
                partitions: []int32 4+
    """,
    response="""
        throttle_time_ms: int32
        results_by_topic_v3_and_below: []AddPartitionsToTxnTopicResult 0-3
            name: string 0-3
            results_by_partition: []AddPartitionsToTxnPartitionResult 0-3
                partition_index: int32 0-3
                partition_error_code: int16 0-3
        error_code: int16 4+
        results_by_transaction: []AddPartitionsToTxnResult 4+
            transactional_id: string 4+
            topic_results: []AddPartitionsToTxnTopicResult 4+
                name: string 4+
                results_by_partition: []AddPartitionsToTxnPartitionResult 4+
                    partition_index: int32 4+
                    partition_error_code: int16 4+
    """,
)

ADD_OFFSETS_TO_TXN = Api(
    key=25,
    name="AddOffsetsToTxn",
    versions="0-4",
    flexible="3+",
    request="""
        transactional_id: string
        producer_id: int64
        producer_epoch: int16
        group_id: string
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
    """,
)

END_TXN = Api(
    key=26,
    name="EndTxn",
    versions="0-5",
    flexible="3+",
    request="""
        transactional_id: string
        producer_id: int64
        producer_epoch: int16
        committed: bool
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        producer_id: int64 5+ default=-1
        producer_epoch: int16 5+ default=-1
    """,
)

WRITE_TXN_MARKERS = Api(
    key=27,
    name="WriteTxnMarkers",
    versions="1-2",  # older specs: 0-1
    flexible="1+",
    request="""
        markers: []WritableTxnMarker
            producer_id: int64
            producer_epoch: int16
            transaction_result: bool
            topics: []WritableTxnMarkerTopic
                name: string
                partition_indexes: []int32
            coordinator_epoch: int32
            transaction_version: int8 2+ default=0
    """,
    response="""
        markers: []WritableTxnMarkerResult
            producer_id: int64
            topics: []WritableTxnMarkerTopicResult
                name: string
                partitions: []WritableTxnMarkerPartitionResult
                    partition_index: int32
                    error_code: int16
    """,
)

TXN_OFFSET_COMMIT = Api(
    key=28,
    name="TxnOffsetCommit",
    versions="0-5",
    flexible="3+",
    request="""
        transactional_id: string
        group_id: string
        producer_id: int64
        producer_epoch: int16
        generation_id: int32 3+ default=-1
        member_id: string 3+
        group_instance_id: string? 3+ default=null
        topics: []TxnOffsetCommitRequestTopic
            name: string
            partitions: []TxnOffsetCommitRequestPartition
                partition_index: int32
                committed_offset: int64
                committed_leader_epoch: int32 2+ default=-1
                committed_metadata: string?
    """,
    response="""
        throttle_time_ms: int32
        topics: []TxnOffsetCommitResponseTopic
            name: string
            partitions: []TxnOffsetCommitResponsePartition
                partition_index: int32
                error_code: int16
    """,
)

DESCRIBE_TRANSACTIONS = Api(
    key=65,
    name="DescribeTransactions",
    versions="0",
    flexible="0+",
    request="""
        transactional_ids: []string
    """,
    response="""
        throttle_time_ms: int32
        transaction_states: []TransactionState
            error_code: int16
            transactional_id: string
            transaction_state: string
            transaction_timeout_ms: int32
            transaction_start_time_ms: int64
            producer_id: int64
            producer_epoch: int16
            topics: []TopicData
                topic: string
                partitions: []int32
    """,
)

LIST_TRANSACTIONS = Api(
    key=66,
    name="ListTransactions",
    versions="0-2",
    flexible="0+",
    request="""
        state_filters: []string
        producer_id_filters: []int64
        duration_filter: int64 1+ default=-1
        transactional_id_pattern: string? 2+ default=null
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        unknown_state_filters: []string
        transaction_states: []TransactionState
            transactional_id: string
            producer_id: int64
            transaction_state: string
    """,
)
