"""Client quotas: DescribeClientQuotas (48) and AlterClientQuotas (49), KIP-546.

Both specs state validVersions 0-1, flexible from 1.
"""

from moldau.protocol.schema import Api

DESCRIBE_CLIENT_QUOTAS = Api(
    key=48,
    name="DescribeClientQuotas",
    versions="0-1",
    flexible="1+",
    request="""
        components: []ComponentData
            entity_type: string
            match_type: int8
            match: string?
        strict: bool
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        error_message: string?
        entries: []EntryData?
            entity: []EntityData
                entity_type: string
                entity_name: string?
            values: []ValueData
                key: string
                value: float64
    """,
)

ALTER_CLIENT_QUOTAS = Api(
    key=49,
    name="AlterClientQuotas",
    versions="0-1",
    flexible="1+",
    request="""
        entries: []EntryData
            entity: []EntityData
                entity_type: string
                entity_name: string?
            ops: []OpData
                key: string
                value: float64
                remove: bool
        validate_only: bool
    """,
    response="""
        throttle_time_ms: int32
        entries: []EntryData
            error_code: int16
            error_message: string?
            entity: []EntityData
                entity_type: string
                entity_name: string?
    """,
)
