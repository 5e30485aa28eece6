"""The per-partition series written by hand parse, with prometheus-client's own
parser, into exactly what prometheus-client's exposition gives for them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from moldau.http.metrics import (
    GROUP_FAMILIES,
    PARTITION_FAMILIES,
    TOPIC_FAMILIES,
    Snapshot,
    families,
    render,
    render_per_partition,
)
from moldau.stats import Histogram

SCALED = {name for name, _ in (*PARTITION_FAMILIES, *GROUP_FAMILIES)} | {f[0] for f in TOPIC_FAMILIES}


def _snapshot() -> Snapshot:
    return Snapshot(
        topic_in=[("t", 3, 300), ("u", 1, 10)], topic_out=[("t", 100, 0)], requests=[(0, Histogram())], errors=[((0, 6), 2)],
        connections={"PLAINTEXT": 1}, loop_lag=Histogram(), last_loop_lag=0.001,
        partitions=[("t", 0, 1234, 2, 5, 77, True, 1, 2, 1), ("t", 1, 0, 1, 0, 0, False, 2, 2, 1),
                    ("other.topic-x", 0, 9, 1, 0, 3, True, 2, 2, 2)],
        isr_shrinks=1, isr_expands=0, active_controller=True, offline=0,
        offsets=[('odd "group"\\with\nnewline', "t", 0, 70, 77), ("g", "t", 1, 0, None)],
        flush_times=Histogram(), recovery_seconds=0.5,
    )


def _samples(text: str) -> dict[str, set]:
    out: dict[str, set] = {}
    for family in text_string_to_metric_families(text):
        if family.name in SCALED:
            out[family.name] = {(tuple(sorted(s.labels.items())), s.value) for s in family.samples}
    return out


class _Families:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self):
        return families(self.snap)


def test_hand_written_series_equal_prometheus_clients():
    snap = _snapshot()
    ours = _samples(render_per_partition(snap))
    theirs = _samples(generate_latest(_Families(snap)).decode())  # type: ignore[arg-type]
    assert ours == theirs
    assert ours["kafka_consumergroup_lag"] == {
        ((("consumergroup", 'odd "group"\\with\nnewline'), ("partition", "0"), ("topic", "t")), 7.0)}
    assert ours["kafka_server_brokertopicmetrics_bytesin"] == {((("topic", "t"),), 300.0), ((("topic", "u"),), 10.0)}
    assert len(ours["kafka_log_log_size"]) == 3 and len(ours["kafka_cluster_partition_underreplicated"]) == 2


def test_the_whole_answer_parses_and_names_each_family_once():
    text = render(CollectorRegistry(auto_describe=False), _snapshot()).decode()
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names))
    assert set(names) >= SCALED
    assert "kafka_server_brokertopicmetrics_messagesin" in names
