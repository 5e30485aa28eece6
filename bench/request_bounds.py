"""How long each oversized-request reproducer of issue 8 (item 3) takes, and what another
client sees meanwhile.

Starts one ``moldau serve`` per reproducer (loopback, temporary data dir), creates a
4-partition topic, then sends the big request as a raw frame while a probe client on
another connection sends ApiVersions every 10 ms. Prints, per reproducer: seconds to the
answer, the probe's worst and 99th-percentile latency, and the broker's peak RSS
(VmHWM).

    .venv/bin/python bench/request_bounds.py              # all reproducers
    .venv/bin/python bench/request_bounds.py metadata     # those whose name contains "metadata"

The frame builders and the probe are the integration test's
(``tests/integration/test_request_bounds.py``), so the figures measure what it asserts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration import raw_kafka as raw  # noqa: E402
from tests.integration import test_request_bounds as t  # noqa: E402
from tests.integration.broker_process import Broker  # noqa: E402
from tests.integration.kafka_helpers import create_topic  # noqa: E402

TOPIC = "bounds"
CASES = {
    "create-partitions 8388608 (41-byte request)": (t.API_CREATE_PARTITIONS, 0, lambda: t.create_partitions_v0(TOPIC, 8_388_608)),
    "create-topics 20000 partitions": (t.API_CREATE_TOPICS, 4, lambda: t.create_topics_v4([("big", 20_000)])),
    "metadata one topic x 1,000,000": (raw.API_METADATA, 4, lambda: t.metadata_v4([TOPIC] * 1_000_000)),
    "metadata 200,000 missing topics": (raw.API_METADATA, 4, lambda: t.metadata_v4([f"m{i}" for i in range(200_000)])),
    "list-offsets 1,000,000 partitions": (t.API_LIST_OFFSETS, 1, lambda: t.list_offsets_v1(TOPIC, 1_000_000)),
    "describe-groups 1,000,000 groups": (t.API_DESCRIBE_GROUPS, 0, lambda: t.describe_groups_v0([f"g{i}" for i in range(1_000_000)])),
    "offset-fetch 1,000,000 partitions": (t.API_OFFSET_FETCH, 1, lambda: t.offset_fetch_v1("g", TOPIC, 1_000_000)),
    "delete-records 1,000,000 partitions": (t.API_DELETE_RECORDS, 0, lambda: t.delete_records_v0(TOPIC, 1_000_000)),
    "describe-configs 20,000 resources": (t.API_DESCRIBE_CONFIGS, 1, lambda: t.describe_configs_v1(TOPIC, 20_000)),
    "produce 1,000,000 partition entries": (raw.API_PRODUCE, 3, lambda: t.produce_v3_entries(TOPIC, 1_000_000)),
    "delete-groups 1,000,000 groups": (t.API_DELETE_GROUPS, 0, lambda: t.describe_groups_v0([f"g{i}" for i in range(1_000_000)])),
    "create-topics 300,000 invalid topics": (t.API_CREATE_TOPICS, 4, lambda: t.create_topics_v4([(f"x{i}", 0) for i in range(300_000)])),
    "fetch 1,000,000 partition entries": (t.API_FETCH, 4, lambda: t.fetch_v4(TOPIC, 1_000_000)),
    "offset-commit 200,000 partitions": (t.API_OFFSET_COMMIT, 2, lambda: t.offset_commit_v2("g", TOPIC, 200_000)),
    "create-topics 5,000 partitions (allowed)": (t.API_CREATE_TOPICS, 4, lambda: t.create_topics_v4([("ok", 5000)])),
}


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(name: str, api_key: int, version: int, body: bytes) -> str:
    broker = Broker({}, name="bench-bounds")
    try:
        broker.start()
        create_topic(broker.bootstrap, TOPIC, partitions=4)
        with t.probing(broker.bootstrap) as probe:
            try:
                _, elapsed = t.call(broker.bootstrap, api_key, version, body, timeout=300)
                answer = f"{elapsed:8.2f}"
            except (OSError, AssertionError) as exc:
                answer = f"{type(exc).__name__}"
            time.sleep(0.05)
        peak = peak_rss_mib(broker.pid)
        lat = sorted(probe.latencies) or [float("nan")]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return f"| {name:<45} | {len(body) / 1e6:7.1f} | {answer:>8} | {max(lat):8.3f} | {p99:8.3f} | {peak:7.0f} |"
    finally:
        broker.dispose()


def main() -> None:
    wanted = sys.argv[1:]
    print("| reproducer | request MB | answer s | probe worst s | probe p99 s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (key, version, build) in CASES.items():
        if wanted and not any(w in name for w in wanted):
            continue
        print(run(name, key, version, build()), flush=True)


if __name__ == "__main__":
    main()
