"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51) (KIP-554)."""

from moldau.protocol.schema import Api

DESCRIBE_USER_SCRAM_CREDENTIALS = Api(
    key=50,
    name="DescribeUserScramCredentials",
    versions="0",
    flexible="0+",
    request="""
        users: []UserName?
            name: string
    """,
    response="""
        throttle_time_ms: int32
        error_code: int16
        error_message: string?
        results: []DescribeUserScramCredentialsResult
            user: string
            error_code: int16
            error_message: string?
            credential_infos: []CredentialInfo
                mechanism: int8
                iterations: int32
    """,
)

ALTER_USER_SCRAM_CREDENTIALS = Api(
    key=51,
    name="AlterUserScramCredentials",
    versions="0",
    flexible="0+",
    request="""
        deletions: []ScramCredentialDeletion
            name: string
            mechanism: int8
        upsertions: []ScramCredentialUpsertion
            name: string
            mechanism: int8
            iterations: int32
            salt: bytes
            salted_password: bytes
    """,
    response="""
        throttle_time_ms: int32
        results: []AlterUserScramCredentialsResult
            user: string
            error_code: int16
            error_message: string?
    """,
)
