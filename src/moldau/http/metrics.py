"""``/metrics``: the broker's state and counters in Prometheus' text format.

Theory of operation: nothing is counted through prometheus-client objects: the hot
paths add to plain ints in :class:`moldau.stats.BrokerStats`. A scrape takes a
:class:`Snapshot` on the event loop -- those counters, and the gauges computed from the
broker's state (log sizes and offsets, partition health, consumer lag): one pass over
the hosted partitions and the committed offsets, plain tuples only -- and renders it in
a worker thread: prometheus-client's exposition for the broker-wide families and the
process' standard collectors (in a ``CollectorRegistry`` of each broker's own, never the
global one, so brokers sharing a process keep apart), a direct writer for the series
per topic, partition and group partition (:func:`render_per_partition`), which are
nearly all of a large broker's and cost prometheus-client ~10 us each. Costs are
measured in docs/15-observability.md. :class:`BrokerCollector` offers the same
families to a caller's own registry (:func:`make_registry`).

Names follow Kafka's MBeans as the Prometheus JMX exporter's usual rules spell them
(``kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t`` becomes
``kafka_server_brokertopicmetrics_messagesin_total{topic="t"}``); consumer lag follows
kafka_exporter (``kafka_consumergroup_lag``); what Kafka has no MBean for is
``moldau_*``. docs/15-observability.md lists them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS
from moldau.stats import FLUSH_TIMES, Histogram

if TYPE_CHECKING:
    from moldau.broker.broker import Broker

#: how often the event loop's lag is sampled
LAG_PROBE_INTERVAL = 0.25


def _api_name(key: int) -> str:
    api = ALL_APIS.get(key)
    return api.name if api is not None else str(key)


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add_histogram(family: HistogramMetricFamily, values: list[str], histogram: Histogram) -> None:
    family.add_metric(values, histogram.cumulative(), histogram.total)


@dataclass
class Snapshot:
    """The broker's counters and state as plain values, taken on the event loop in one
    go (no await), so that building and formatting the metric families -- most of a
    scrape's cost -- can run in a worker thread without racing the loop."""

    topic_in: list[tuple[str, int, int]]
    topic_out: list[tuple[str, int, int]]
    requests: list[tuple[int, Histogram]]
    errors: list[tuple[tuple[int, int], int]]
    connections: dict[str, int]
    loop_lag: Histogram
    last_loop_lag: float
    #: (topic, partition, size, segments, start, end, leader?, isr, replicas, min isr)
    partitions: list[tuple[str, int, int, int, int, int, bool, int, int, int]]
    isr_shrinks: int
    isr_expands: int
    active_controller: bool
    offline: int
    #: (group, topic, partition, committed offset, high watermark or None)
    offsets: list[tuple[str, str, int, int, int | None]]
    flush_times: Histogram
    recovery_seconds: float


def take_snapshot(broker: Broker) -> Snapshot:
    """Read what /metrics shows (see :class:`Snapshot`); one pass over the partitions
    and the committed offsets, plain tuples only."""
    stats = broker.stats
    connections: dict[str, int] = {li.name: 0 for li in broker.listeners}
    registry = broker.connection_registry
    if registry is not None:
        for connection in registry.connections.values():
            name = getattr(connection, "listener_name", "PLAINTEXT")
            connections[name] = connections.get(name, 0) + 1
    partitions = []
    for (topic, index), partition in broker.partitions.items():
        log = partition.log
        if log.closed:
            continue
        partitions.append((topic, index, log.size_in_bytes, len(log.segments), log.log_start_offset,
                           log.log_end_offset, partition.is_leader, len(partition.isr), len(partition.replicas),
                           partition.min_insync_replicas))
    active = broker.controller_id() == broker.node_id
    offline = 0
    if active:  # as in Kafka, only the active controller reports it
        for record in broker.topics.values():
            offline += sum(1 for state in record.partitions.values() if state.leader < 0)
    offsets = []
    hosted = broker.partitions
    for group, committed in broker.group_coordinator.offsets.items():
        for (topic, index), value in committed.items():
            partition = hosted.get((topic, index))
            offsets.append((group, topic, index, value.offset, None if partition is None else partition.high_watermark))
    manager = broker.replica_manager
    return Snapshot(
        topic_in=[(t, c[0], c[1]) for t, c in stats.topic_in.items()],
        topic_out=[(t, c[0], c[1]) for t, c in stats.topic_out.items()],
        requests=[(key, h.copy()) for key, h in sorted(stats.requests.items())],
        errors=sorted(stats.errors.items()),
        connections=connections,
        loop_lag=stats.loop_lag.copy(),
        last_loop_lag=stats.last_loop_lag,
        partitions=partitions,
        isr_shrinks=manager.isr_shrinks,
        isr_expands=manager.isr_expands,
        active_controller=active,
        offline=offline,
        offsets=offsets,
        flush_times=FLUSH_TIMES.copy(),
        recovery_seconds=broker.log_recovery_seconds,
    )


def families(snap: Snapshot, per_partition: bool = True) -> Iterator[Metric]:
    """The metric families of a :class:`Snapshot` (safe in any thread); without the
    series per topic, per partition and per group partition when ``per_partition`` is
    False (:func:`render_per_partition` writes those)."""
    if per_partition:
        yield from _topics(snap)
    yield from _requests(snap)
    yield from _network(snap)
    yield from _partitions(snap, per_partition)
    if per_partition:
        yield from _groups(snap)
    yield from _storage(snap)


#: the families with a series per partition: (name, help), in the order written
PARTITION_FAMILIES = (
    ("kafka_log_log_size", "Bytes of the partition's log on this broker."),
    ("kafka_log_log_numlogsegments", "Segments of the partition's log."),
    ("kafka_log_log_logstartoffset", "The log's first offset."),
    ("kafka_log_log_logendoffset", "The offset the next record gets."),
    ("kafka_cluster_partition_underreplicated", "1 when a partition led here has fewer in-sync replicas than replicas."),
)
GROUP_FAMILIES = (
    ("kafka_consumergroup_current_offset", "The group's committed offset."),
    ("kafka_consumergroup_lag", "High watermark minus the committed offset, for the groups coordinated here "
                                "and the partitions hosted here."),
)


#: the counters with a series per topic: (name, help, which snapshot list, which column)
TOPIC_FAMILIES = (
    ("kafka_server_brokertopicmetrics_messagesin", "Messages appended by producers to partitions led here.",
     "topic_in", 1),
    ("kafka_server_brokertopicmetrics_bytesin", "Record batch bytes appended by producers.", "topic_in", 2),
    ("kafka_server_brokertopicmetrics_bytesout", "Record bytes sent to consumers in fetch answers.", "topic_out", 1),
    ("kafka_server_brokertopicmetrics_replicationbytesout", "Record bytes sent to follower replicas.", "topic_out", 2),
)


def _label(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def render_per_partition(snap: Snapshot) -> str:
    """The per-topic counters, the per-partition and per-group-partition gauges in
    Prometheus' text format,
    written directly: they are nearly all of a large broker's series, and
    prometheus-client spends ~10 us on each (a Sample per series, escaping every label
    of every line); this spends well under 1 us (docs/15-observability.md)."""
    columns: list[list[str]] = [[] for _ in PARTITION_FAMILIES]
    size, segments, start, end, under = columns
    for topic, index, nbytes, nsegments, first, next_offset, leads, isr, replicas, _ in snap.partitions:
        labels = f'{{topic="{_label(topic)}",partition="{index}"}} '
        size.append(labels + str(nbytes))
        segments.append(labels + str(nsegments))
        start.append(labels + str(first))
        end.append(labels + str(next_offset))
        if leads:
            under.append(labels + ("1" if isr < replicas else "0"))
    current: list[str] = []
    lag: list[str] = []
    for group, topic, index, offset, high_watermark in snap.offsets:
        labels = f'{{consumergroup="{_label(group)}",topic="{_label(topic)}",partition="{index}"}} '
        current.append(labels + str(offset))
        if high_watermark is not None:
            lag.append(labels + str(max(0, high_watermark - offset)))
    out = []
    for name, doc, source, column in TOPIC_FAMILIES:
        out.append(f"# HELP {name}_total {doc}\n# TYPE {name}_total counter\n")
        out.extend(f'{name}_total{{topic="{_label(row[0])}"}} {row[column]}\n' for row in getattr(snap, source))
    for (name, doc), lines in zip((*PARTITION_FAMILIES, *GROUP_FAMILIES), (*columns, current, lag), strict=True):
        out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
        out.extend(f"{name}{line}\n" for line in lines)
    return "".join(out)


class BrokerCollector:
    """A prometheus-client collector for one broker: a snapshot, then its families.
    (``/metrics`` itself snapshots on the loop and renders in a thread.)"""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def describe(self) -> list[Metric]:
        return []  # not described up front: collect() would run at registration

    def collect(self) -> Iterator[Metric]:
        return families(take_snapshot(self.broker))


def _topics(snap: Snapshot) -> Iterator[Metric]:
    for name, doc, source, column in TOPIC_FAMILIES:
        family = CounterMetricFamily(name, doc, labels=["topic"])
        for row in getattr(snap, source):
            family.add_metric([row[0]], row[column])
        yield family


def _requests(snap: Snapshot) -> Iterator[Metric]:
    total = CounterMetricFamily("kafka_network_requestmetrics_requests", "Requests answered, by API.",
                                labels=["request"])
    times = _histogram("kafka_network_requestmetrics_totaltime_seconds",
                       "Time from a request's arrival until its answer is ready (the long poll of a "
                       "fetch and the replication wait of acks=all included).", ["request"])
    for key, histogram in snap.requests:
        name = _api_name(key)
        total.add_metric([name], histogram.count)
        _add_histogram(times, [name], histogram)
    errors = CounterMetricFamily("kafka_network_requestmetrics_errors",
                                 "Error codes in answers (each partition's counted), by API and error.",
                                 labels=["request", "error"])
    for (key, code), count in snap.errors:
        errors.add_metric([_api_name(key), _error_name(code)], count)
    yield from (total, times, errors)


def _network(snap: Snapshot) -> Iterator[Metric]:
    connections = GaugeMetricFamily("kafka_server_socketservermetrics_connection_count",
                                    "Open client connections, by listener.", labels=["listener"])
    for name, count in sorted(snap.connections.items()):
        connections.add_metric([name], count)
    lag = _histogram("moldau_eventloop_lag_seconds",
                     "How late a timer fires on the broker's event loop (Kafka's idle ratios' stand-in: "
                     "a busy loop is a late loop).", [])
    _add_histogram(lag, [], snap.loop_lag)
    last = GaugeMetricFamily("moldau_eventloop_lag_last_seconds", "The last event loop lag measured.",
                             value=snap.last_loop_lag)
    yield from (connections, lag, last)


def _partitions(snap: Snapshot, per_partition: bool = True) -> Iterator[Metric]:
    labels = ["topic", "partition"]
    size, segments, start, end, under = (GaugeMetricFamily(name, doc, labels=labels)
                                         for name, doc in PARTITION_FAMILIES)
    leaders = under_count = under_min_isr = 0
    for topic, index, nbytes, nsegments, first, next_offset, leads, isr, replicas, min_isr in snap.partitions:
        values = [topic, str(index)]
        if per_partition:
            size.add_metric(values, nbytes)
            segments.add_metric(values, nsegments)
            start.add_metric(values, first)
            end.add_metric(values, next_offset)
        if leads:
            leaders += 1
            if per_partition:
                under.add_metric(values, 1 if isr < replicas else 0)
            under_count += isr < replicas
            under_min_isr += isr < min_isr
    if per_partition:
        yield from (size, segments, start, end, under)
    yield GaugeMetricFamily("kafka_server_replicamanager_partitioncount", "Partitions hosted here.",
                            value=len(snap.partitions))
    yield GaugeMetricFamily("kafka_server_replicamanager_leadercount", "Partitions led here.", value=leaders)
    yield GaugeMetricFamily("kafka_server_replicamanager_underreplicatedpartitions",
                            "Partitions led here with fewer in-sync replicas than replicas.", value=under_count)
    yield GaugeMetricFamily("kafka_server_replicamanager_underminisrpartitioncount",
                            "Partitions led here with fewer in-sync replicas than min.insync.replicas.",
                            value=under_min_isr)
    yield CounterMetricFamily("kafka_server_replicamanager_isrshrinks", "ISR shrinks written by this leader.",
                              value=snap.isr_shrinks)
    yield CounterMetricFamily("kafka_server_replicamanager_isrexpands", "ISR expansions written by this leader.",
                              value=snap.isr_expands)
    yield GaugeMetricFamily("kafka_controller_kafkacontroller_activecontrollercount",
                            "1 on the active controller.", value=1 if snap.active_controller else 0)
    yield GaugeMetricFamily("kafka_controller_kafkacontroller_offlinepartitionscount",
                            "Partitions without a leader (reported by the active controller).", value=snap.offline)


def _groups(snap: Snapshot) -> Iterator[Metric]:
    labels = ["consumergroup", "topic", "partition"]
    current, lag = (GaugeMetricFamily(name, doc, labels=labels) for name, doc in GROUP_FAMILIES)
    for group, topic, index, offset, high_watermark in snap.offsets:
        values = [group, topic, str(index)]
        current.add_metric(values, offset)
        if high_watermark is not None:
            lag.add_metric(values, max(0, high_watermark - offset))
    yield from (current, lag)


def _storage(snap: Snapshot) -> Iterator[Metric]:
    flush = _histogram("kafka_log_logflushstats_logflushtime_seconds",
                       "Time to fsync a log's segments (Kafka's LogFlushRateAndTimeMs).", [])
    _add_histogram(flush, [], snap.flush_times)
    yield flush
    yield GaugeMetricFamily("moldau_log_recovery_seconds",
                            "Time the broker took at start to load and recover its logs.",
                            value=snap.recovery_seconds)


class _Scrape:
    """What one scrape renders: the registry's standard collectors and a snapshot."""

    def __init__(self, standard: CollectorRegistry, snap: Snapshot) -> None:
        self.standard = standard
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snap, per_partition=False)
        yield from self.standard.collect()


def render(standard: CollectorRegistry, snap: Snapshot) -> bytes:
    """The whole /metrics answer: prometheus-client's text for all but the series per
    partition, then those (:func:`render_per_partition`)."""
    return generate_latest(_Scrape(standard, snap)) + render_per_partition(snap).encode()  # type: ignore[arg-type]


def make_registry(broker: Broker) -> CollectorRegistry:
    """A registry of this broker's own: its collector and the process' standard ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(broker))  # type: ignore[arg-type]
    _standard(registry)
    return registry


def _standard(registry: CollectorRegistry) -> None:
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)


async def probe_loop_lag(stats: Any, interval: float = LAG_PROBE_INTERVAL) -> None:
    """Sleep ``interval`` again and again; the overshoot is the loop's lag."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - before - interval)
        stats.last_loop_lag = lag
        stats.loop_lag.observe(lag)


def routes(app: web.Application, broker: Broker) -> None:
    """Add ``/metrics`` to ``app``, and the event loop lag probe to its life."""
    standard = CollectorRegistry(auto_describe=False)
    _standard(standard)

    async def metrics(_request: web.Request) -> web.Response:
        # the snapshot holds the loop for one pass over plain values; building the
        # families and the text (~10x that) runs in a worker thread
        started, cpu = time.perf_counter(), time.thread_time()
        snap = take_snapshot(broker)
        snapped, cpu = time.perf_counter(), time.thread_time() - cpu
        body = await asyncio.to_thread(render, standard, snap)
        timing = (f"snapshot;dur={(snapped - started) * 1000:.1f}, snapshot-cpu;dur={cpu * 1000:.1f}, "
                  f"render;dur={(time.perf_counter() - snapped) * 1000:.1f}")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Server-Timing": timing})

    async def lag_probe(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.ensure_future(probe_loop_lag(broker.stats)) if broker.stats.enabled else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(lag_probe)
