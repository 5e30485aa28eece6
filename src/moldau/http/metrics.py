"""``/metrics``: the broker's state and counters in Prometheus' text format.

Theory of operation: one :class:`BrokerCollector` per broker, registered in a
``CollectorRegistry`` of that broker's own (never prometheus-client's global one, so
several brokers in one process -- tests, ``moldau.testing`` -- keep apart). Nothing is
counted through prometheus-client objects: the hot paths add to plain ints in
:class:`moldau.stats.BrokerStats`, and ``collect()`` reads them, and computes the gauges
(log sizes, offsets, lag, partition health) from the broker's state, when scraped.
That costs one pass over the hosted partitions and the committed offsets per scrape
(measured in docs/15-observability.md), nothing per request.

Names follow Kafka's MBeans as the Prometheus JMX exporter's usual rules spell them
(``kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=t`` becomes
``kafka_server_brokertopicmetrics_messagesin_total{topic="t"}``); consumer lag follows
kafka_exporter (``kafka_consumergroup_lag``); what Kafka has no MBean for is
``moldau_*``. docs/15-observability.md lists them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
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


class BrokerCollector:
    """Reads one broker's counters and state at scrape time (see the module docstring)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def describe(self) -> list[Metric]:
        return []  # not described up front: collect() would run at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._topics()
        yield from self._requests()
        yield from self._network()
        yield from self._partitions()
        yield from self._groups()
        yield from self._storage()

    # counters of the hot paths -----------------------------------------------------------

    def _topics(self) -> Iterator[Metric]:
        stats = self.broker.stats
        messages = CounterMetricFamily("kafka_server_brokertopicmetrics_messagesin",
                                       "Messages appended by producers to partitions led here.", labels=["topic"])
        bytes_in = CounterMetricFamily("kafka_server_brokertopicmetrics_bytesin",
                                       "Record batch bytes appended by producers.", labels=["topic"])
        for topic, (count, size) in list(stats.topic_in.items()):
            messages.add_metric([topic], count)
            bytes_in.add_metric([topic], size)
        bytes_out = CounterMetricFamily("kafka_server_brokertopicmetrics_bytesout",
                                        "Record bytes sent to consumers in fetch answers.", labels=["topic"])
        replication = CounterMetricFamily("kafka_server_brokertopicmetrics_replicationbytesout",
                                          "Record bytes sent to follower replicas.", labels=["topic"])
        for topic, (consumers, followers) in list(stats.topic_out.items()):
            bytes_out.add_metric([topic], consumers)
            replication.add_metric([topic], followers)
        yield from (messages, bytes_in, bytes_out, replication)

    def _requests(self) -> Iterator[Metric]:
        stats = self.broker.stats
        total = CounterMetricFamily("kafka_network_requestmetrics_requests", "Requests answered, by API.",
                                    labels=["request"])
        times = _histogram("kafka_network_requestmetrics_totaltime_seconds",
                           "Time from a request's arrival until its answer is ready (the long poll of a "
                           "fetch and the replication wait of acks=all included).", ["request"])
        for key, histogram in sorted(stats.requests.items()):
            name = _api_name(key)
            total.add_metric([name], histogram.count)
            _add_histogram(times, [name], histogram)
        errors = CounterMetricFamily("kafka_network_requestmetrics_errors",
                                     "Error codes in answers (each partition's counted), by API and error.",
                                     labels=["request", "error"])
        for (key, code), count in sorted(stats.errors.items()):
            errors.add_metric([_api_name(key), _error_name(code)], count)
        yield from (total, times, errors)

    def _network(self) -> Iterator[Metric]:
        broker = self.broker
        counts: dict[str, int] = {li.name: 0 for li in broker.listeners}
        registry = broker.connection_registry
        if registry is not None:
            for connection in list(registry.connections.values()):
                name = getattr(connection, "listener_name", "PLAINTEXT")
                counts[name] = counts.get(name, 0) + 1
        connections = GaugeMetricFamily("kafka_server_socketservermetrics_connection_count",
                                        "Open client connections, by listener.", labels=["listener"])
        for name, count in sorted(counts.items()):
            connections.add_metric([name], count)
        stats = broker.stats
        lag = _histogram("moldau_eventloop_lag_seconds",
                         "How late a timer fires on the broker's event loop (Kafka's idle ratios' stand-in: "
                         "a busy loop is a late loop).", [])
        _add_histogram(lag, [], stats.loop_lag)
        last = GaugeMetricFamily("moldau_eventloop_lag_last_seconds", "The last event loop lag measured.",
                                 value=stats.last_loop_lag)
        yield from (connections, lag, last)

    # computed at scrape time -------------------------------------------------------------

    def _partitions(self) -> Iterator[Metric]:
        broker = self.broker
        labels = ["topic", "partition"]
        size = GaugeMetricFamily("kafka_log_log_size", "Bytes of the partition's log on this broker.", labels=labels)
        segments = GaugeMetricFamily("kafka_log_log_numlogsegments", "Segments of the partition's log.",
                                     labels=labels)
        start = GaugeMetricFamily("kafka_log_log_logstartoffset", "The log's first offset.", labels=labels)
        end = GaugeMetricFamily("kafka_log_log_logendoffset", "The offset the next record gets.", labels=labels)
        under = GaugeMetricFamily("kafka_cluster_partition_underreplicated",
                                  "1 when a partition led here has fewer in-sync replicas than replicas.",
                                  labels=labels)
        leaders = partitions = under_count = under_min_isr = 0
        for (topic, index), partition in list(broker.partitions.items()):
            log = partition.log
            if log.closed:
                continue
            values = [topic, str(index)]
            size.add_metric(values, log.size_in_bytes)
            segments.add_metric(values, len(log.segments))
            start.add_metric(values, log.log_start_offset)
            end.add_metric(values, log.log_end_offset)
            partitions += 1
            if partition.is_leader:
                leaders += 1
                lagging = len(partition.isr) < len(partition.replicas)
                under.add_metric(values, 1 if lagging else 0)
                under_count += lagging
                under_min_isr += len(partition.isr) < partition.min_insync_replicas
        yield from (size, segments, start, end, under)
        yield GaugeMetricFamily("kafka_server_replicamanager_partitioncount", "Partitions hosted here.",
                                value=partitions)
        yield GaugeMetricFamily("kafka_server_replicamanager_leadercount", "Partitions led here.", value=leaders)
        yield GaugeMetricFamily("kafka_server_replicamanager_underreplicatedpartitions",
                                "Partitions led here with fewer in-sync replicas than replicas.",
                                value=under_count)
        yield GaugeMetricFamily("kafka_server_replicamanager_underminisrpartitioncount",
                                "Partitions led here with fewer in-sync replicas than min.insync.replicas.",
                                value=under_min_isr)
        manager = broker.replica_manager
        yield CounterMetricFamily("kafka_server_replicamanager_isrshrinks", "ISR shrinks written by this leader.",
                                  value=manager.isr_shrinks)
        yield CounterMetricFamily("kafka_server_replicamanager_isrexpands", "ISR expansions written by this leader.",
                                  value=manager.isr_expands)
        active = broker.controller_id() == broker.node_id
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_activecontrollercount",
                                "1 on the active controller.", value=1 if active else 0)
        offline = 0
        if active:  # as in Kafka, only the active controller reports it
            for record in list(broker.topics.values()):
                offline += sum(1 for state in record.partitions.values() if state.leader < 0)
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_offlinepartitionscount",
                                "Partitions without a leader (reported by the active controller).", value=offline)

    def _groups(self) -> Iterator[Metric]:
        broker = self.broker
        labels = ["consumergroup", "topic", "partition"]
        lag = GaugeMetricFamily("kafka_consumergroup_lag",
                                "High watermark minus the committed offset, for the groups coordinated here "
                                "and the partitions hosted here.", labels=labels)
        current = GaugeMetricFamily("kafka_consumergroup_current_offset", "The group's committed offset.",
                                    labels=labels)
        partitions = broker.partitions
        for group, offsets in list(broker.group_coordinator.offsets.items()):
            for (topic, index), value in list(offsets.items()):
                values = [group, topic, str(index)]
                current.add_metric(values, value.offset)
                partition = partitions.get((topic, index))
                if partition is not None:
                    lag.add_metric(values, max(0, partition.high_watermark - value.offset))
        yield from (current, lag)

    def _storage(self) -> Iterator[Metric]:
        flush = _histogram("kafka_log_logflushstats_logflushtime_seconds",
                           "Time to fsync a log's segments (Kafka's LogFlushRateAndTimeMs).", [])
        _add_histogram(flush, [], FLUSH_TIMES)
        yield flush
        yield GaugeMetricFamily("moldau_log_recovery_seconds",
                                "Time the broker took at start to load and recover its logs.",
                                value=self.broker.log_recovery_seconds)


def make_registry(broker: Broker) -> CollectorRegistry:
    """A registry of this broker's own: its collector and the process' standard ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(broker))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


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
    registry = make_registry(broker)

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def lag_probe(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.ensure_future(probe_loop_lag(broker.stats)) if broker.stats.enabled else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.router.add_get("/metrics", metrics)
    app.cleanup_ctx.append(lag_probe)
