"""DeleteTopics (key 20): delete topics by name or (from version 6) by topic ID.

Kafka 4.x states validVersions 1-6 (version 0 was removed in 4.0; older specs had
0-6). Field versions are written as the spec states them.
"""

from moldau.protocol.schema import Api

DELETE_TOPICS = Api(
    key=20,
    name="DeleteTopics",
    versions="1-6",  # older specs: 0-6
    flexible="4+",
    request="""
        topics: []DeleteTopicState 6+
            name: string? 6+ default=null
            topic_id: uuid 6+
        topic_names: []string 0-5
        timeout_ms: int32
    """,
    response="""
        throttle_time_ms: int32 1+
        responses: []DeletableTopicResult
            name: string null=6+
            topic_id: uuid 6+
            error_code: int16
            error_message: string? 5+ default=null
    """,
)
