"""Every known difference between Apache Kafka's (4.2.1) and Moldau's answers in the
differential scenarios, with its reason; docs/differences-from-kafka.md says the same for
readers. Keys are ``"<scenario>: <observation>"`` (tests/reference/differential.py).

When another branch fixes one, test_differential reports "difference gone": delete the
line here and in the doc. The list is main's as of 2026-12-02 with branches fixes and
kafka4 merged (on branch kafkaref alone, before that merge, those two still differed).
"""

from __future__ import annotations

_FORMAT_MIN_ISR = ("Kafka 4's kafka-storage format writes a cluster-wide min.insync.replicas=1 record "
                   "(KIP-966, eligible leader replicas), so Kafka reports DYNAMIC_DEFAULT_BROKER_CONFIG; "
                   "Moldau has no such record and reports the static default (same value)")

KNOWN: dict[str, str] = {
    "configs: broker min.insync.replicas": _FORMAT_MIN_ISR,
    "configs: topic min.insync.replicas": _FORMAT_MIN_ISR,
    "kafka_python: create: returned min.insync.replicas": _FORMAT_MIN_ISR + " (CreateTopics v5+ returns the configs too)",
    "kafka_python: create: returned config names only in this broker": "as 'configs: topic: config names only in "
                                                                        "this broker' (CreateTopics v5+ returns them)",
    "configs: topic: config names only in this broker": (
        "not implemented: the KIP-390 compression levels (compression.gzip/lz4/zstd.level; Moldau "
        "recompresses at each codec's default level) and the tiered-storage switches "
        "remote.log.copy.disable/remote.log.delete.on.disable (Moldau has no tiered storage)"),
    "topic_errors: metadata: unknown topic, from an admin client": (
        "deliberate: both auto-create the topic; Kafka answers the first Metadata with "
        "UNKNOWN_TOPIC_OR_PARTITION while its controller creates it, Moldau creates it before answering "
        "(clients retry either way; 2 s later both have it)"),
}

_SHARE_STATE = "share-group state RPCs between broker and share coordinator: inter-broker, not for clients"

#: {api_key: reason} where ApiVersions' highest version differs (None: not served)
KNOWN_API_VERSIONS: dict[int, str] = {
    38: "CreateDelegationToken: not implemented (delegation tokens are out of scope, docs/11-security.md)",
    39: "RenewDelegationToken: not implemented (delegation tokens)",
    40: "ExpireDelegationToken: not implemented (delegation tokens)",
    41: "DescribeDelegationToken: not implemented (delegation tokens)",
    55: "DescribeQuorum: no KRaft quorum (Moldau's metadata lives in etcd or one broker)",
    57: "UpdateFeatures: no finalized feature levels to change",
    64: "UnregisterBroker: KRaft administration, no KRaft here",
    74: "ListConfigResources (was ListClientMetricsResources): not served (no client-metrics resources to list)",
    78: "ShareFetch 1 vs 2: v2 (KIP-1222 acquire modes, RENEW) not served yet (docs/12-share-groups.md)",
    79: "ShareAcknowledge 1 vs 2: as ShareFetch",
    80: "AddRaftVoter: KRaft administration, no KRaft here",
    81: "RemoveRaftVoter: KRaft administration, no KRaft here",
    83: "InitializeShareGroupState: " + _SHARE_STATE,
    84: "ReadShareGroupState: " + _SHARE_STATE,
    85: "WriteShareGroupState: " + _SHARE_STATE,
    86: "DeleteShareGroupState: " + _SHARE_STATE,
    87: "ReadShareGroupStateSummary: " + _SHARE_STATE,
    88: "StreamsGroupHeartbeat (KIP-1071, the streams rebalance protocol): not implemented; Kafka Streams "
        "uses the classic protocol by default (group.protocol=classic), as tests/reference/test_clients.py runs it",
    89: "StreamsGroupDescribe (KIP-1071): not implemented",
}
