"""ApiVersions (key 18): the versions of every API this broker speaks, and its features.

Transcribed from Kafka's ApiVersionsRequest.json / ApiVersionsResponse.json (0-4).
A stored newer ApiVersionsResponse.json says 0-5 without any field change; the
matching request spec stops at 4, so 0-4 is what is stated here.
"""

from moldau.protocol.schema import Api

API_VERSIONS = Api(
    key=18,
    name="ApiVersions",
    versions="0-4",
    flexible="3+",
    request="""
        client_software_name: string 3+
        client_software_version: string 3+
    """,
    response="""
        error_code: int16
        api_keys: []ApiVersion
            api_key: int16
            min_version: int16
            max_version: int16
        throttle_time_ms: int32 1+
        supported_features: []SupportedFeatureKey 3+ tag=0
            name: string 3+
            min_version: int16 3+
            max_version: int16 3+
        finalized_features_epoch: int64 3+ tag=1 default=-1
        finalized_features: []FinalizedFeatureKey 3+ tag=2
            name: string 3+
            max_version_level: int16 3+
            min_version_level: int16 3+
        zk_migration_ready: bool 3+ tag=3 default=false
    """,
)
