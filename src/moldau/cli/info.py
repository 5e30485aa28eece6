"""``moldau cluster info``: cluster id, controller, brokers and the API versions served.

Brokers, controller and cluster id come from DescribeCluster through confluent-kafka.
librdkafka keeps the ApiVersions answer to itself, so the versions are asked for here
with one ApiVersions v0 request on a socket of our own (TLS when the security protocol
says so; Kafka answers ApiVersions before SASL authentication): the request and answer
have a fixed, tiny layout, far from a hand-written client.
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

import click

from moldau.cli.client import (
    Conn,
    admin,
    connection_options,
    emit_json,
    format_option,
    pairs,
    result,
    table,
)

#: Kafka's ApiKeys, by key (clients/src/main/java/org/apache/kafka/common/protocol/ApiKeys.java)
API_NAMES = ["Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr", "StopReplica", "UpdateMetadata", "ControlledShutdown", "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "SaslHandshake", "ApiVersions", "CreateTopics", "DeleteTopics", "DeleteRecords", "InitProducerId", "OffsetForLeaderEpoch", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls", "CreateAcls", "DeleteAcls", "DescribeConfigs", "AlterConfigs", "AlterReplicaLogDirs", "DescribeLogDirs", "SaslAuthenticate", "CreatePartitions", "CreateDelegationToken", "RenewDelegationToken", "ExpireDelegationToken", "DescribeDelegationToken", "DeleteGroups", "ElectLeaders", "IncrementalAlterConfigs", "AlterPartitionReassignments", "ListPartitionReassignments", "OffsetDelete", "DescribeClientQuotas", "AlterClientQuotas", "DescribeUserScramCredentials", "AlterUserScramCredentials", "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum", "AlterPartition", "UpdateFeatures", "Envelope", "FetchSnapshot", "DescribeCluster", "DescribeProducers", "BrokerRegistration", "BrokerHeartbeat", "UnregisterBroker", "DescribeTransactions", "ListTransactions", "AllocateProducerIds", "ConsumerGroupHeartbeat", "ConsumerGroupDescribe", "ControllerRegistration", "GetTelemetrySubscriptions", "PushTelemetry", "AssignReplicasToDirs", "ListConfigResources", "DescribeTopicPartitions", "ShareGroupHeartbeat", "ShareGroupDescribe", "ShareFetch", "ShareAcknowledge", "AddRaftVoter", "RemoveRaftVoter", "UpdateRaftVoter", "InitializeShareGroupState", "ReadShareGroupState", "WriteShareGroupState", "DeleteShareGroupState", "ReadShareGroupStateSummary", "StreamsGroupHeartbeat", "StreamsGroupDescribe", "DescribeShareGroupOffsets", "AlterShareGroupOffsets", "DeleteShareGroupOffsets"]


def api_name(key: int) -> str:
    return API_NAMES[key] if 0 <= key < len(API_NAMES) else f"Unknown({key})"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def api_versions(conn: Conn, host: str, port: int) -> list[tuple[int, int, int]]:
    """(api_key, min, max) as ``host:port`` advertises them (ApiVersions v0)."""
    client_id = b"moldau-cli"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    conf = conn.config()
    protocol = str(conf.get("security.protocol", "PLAINTEXT")).upper()
    raw = socket.create_connection((host, port), timeout=min(conn.timeout, 5.0))
    sock: socket.socket = raw
    try:
        if protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=conf.get("ssl.ca.location"))
            if conf.get("ssl.certificate.location"):
                context.load_cert_chain(conf["ssl.certificate.location"], conf.get("ssl.key.location"))
            if str(conf.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
                context.check_hostname = False
            sock = context.wrap_socket(raw, server_hostname=host)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        answer = _recv_exact(sock, size)
    finally:
        sock.close()
    _corr, error, count = struct.unpack_from(">ihi", answer, 0)
    if error:
        raise ConnectionError(f"ApiVersions answered error code {error}")
    return [struct.unpack_from(">hhh", answer, 10 + 6 * i) for i in range(count)]


@click.command("info")
@connection_options
@format_option
def cluster_info(conn: Conn, fmt: str) -> None:
    """Brokers, controller, cluster id and the API versions served."""
    client = admin(conn)
    described = result(client.describe_cluster(request_timeout=conn.timeout), conn, "describe cluster")
    brokers = sorted(described.nodes, key=lambda n: n.id)
    controller = described.controller.id if described.controller is not None else None
    versions: list[dict[str, Any]] = []
    probe_error = None
    probed = None
    for node in brokers:
        try:
            versions = [{"api_key": k, "name": api_name(k), "min_version": lo, "max_version": hi}
                        for k, lo, hi in api_versions(conn, node.host, node.port)]
            probed = node.id
            break
        except (OSError, ConnectionError, struct.error) as exc:
            probe_error = f"{type(exc).__name__}: {exc}"
    info = {
        "cluster_id": described.cluster_id,
        "controller": controller,
        "brokers": [{"id": n.id, "host": n.host, "port": n.port, "rack": n.rack} for n in brokers],
        "api_versions_of_broker": probed,
        "api_versions": versions,
    }
    if fmt == "json":
        emit_json(info)
        return
    pairs([("CLUSTER", described.cluster_id), ("CONTROLLER", controller), ("BROKERS", len(brokers))])
    click.echo()
    table(["ID", "HOST", "PORT", "RACK"],
          [(f"{n.id}*" if n.id == controller else n.id, n.host, n.port, n.rack) for n in brokers])
    click.echo()
    if versions:
        click.echo(f"API versions served by broker {probed}:")
        table(["KEY", "API", "MIN", "MAX"],
              [(v["api_key"], v["name"], v["min_version"], v["max_version"]) for v in versions])
    else:
        click.echo(f"API versions: not available ({probe_error})")
