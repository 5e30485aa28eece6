"""SaslHandshake (key 17) and SaslAuthenticate (key 36): SASL mechanism and exchange."""

from moldau.protocol.schema import Api

SASL_HANDSHAKE = Api(
    key=17,
    name="SaslHandshake",
    versions="0-1",
    flexible="none",
    request="""
        mechanism: string
    """,
    response="""
        error_code: int16
        mechanisms: []string
    """,
)

SASL_AUTHENTICATE = Api(
    key=36,
    name="SaslAuthenticate",
    versions="0-2",
    flexible="2+",
    request="""
        auth_bytes: bytes
    """,
    response="""
        error_code: int16
        error_message: string?
        auth_bytes: bytes
        session_lifetime_ms: int64 1+ default=0
    """,
)
