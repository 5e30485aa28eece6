"""The ``moldau`` client subcommands, run as a user runs them: a subprocess per command
against one real broker for the module (``auto.create.topics.enable=false``, so that
an unknown topic stays unknown). Every subcommand's table and JSON output, its errors
(unknown topic, broker down, bad arguments) with their exit codes, and ``group seek``
on a real group followed by a consumer that starts from the new offsets.

Cost: ~50 subprocesses of ~0.2-0.5 s each (Python, click and confluent-kafka's import)
plus one broker start: ~31 s measured on the 2 cores here (~50 s at load average 6).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from .broker_process import Broker, broker_command, free_port
from .kafka_helpers import consumer_conf, now_ms, unique_topic, wait_until


@pytest.fixture(scope="module")
def cli_broker():
    b = Broker({"auto.create.topics.enable": "false", "group.initial.rebalance.delay.ms": 0}, name="cli")
    try:
        b.start()
        yield b
    finally:
        b.dispose()


def moldau(*args: str, broker: Broker | None = None, input: str | None = None, rc: int = 0,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``moldau ARGS -b BOOTSTRAP``; asserts the exit status and that no traceback leaked."""
    cmd = [*broker_command(), *args]
    if broker is not None:
        cmd += ["-b", broker.bootstrap]
    done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == rc, f"{cmd}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> object:
    return json.loads(done.stdout)


def lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return done.stdout.splitlines()


# -- cluster info ---------------------------------------------------------------------------------

def test_cluster_info_table_and_json(cli_broker: Broker) -> None:
    table = moldau("cluster", "info", broker=cli_broker).stdout
    assert "CLUSTER" in table and "CONTROLLER" in table
    assert f"127.0.0.1  {cli_broker.port}" in table
    assert "ApiVersions" in table and "Produce" in table
    info = as_json(moldau("cluster", "info", "--format", "json", broker=cli_broker))
    assert info["cluster_id"]
    assert [(b["host"], b["port"]) for b in info["brokers"]] == [("127.0.0.1", cli_broker.port)]
    assert info["controller"] == info["brokers"][0]["id"]
    served = {v["name"]: (v["min_version"], v["max_version"]) for v in info["api_versions"]}
    assert served["ApiVersions"][1] >= 3 and served["Fetch"][1] >= 12


# -- topics ---------------------------------------------------------------------------------------

def test_topic_lifecycle_tables_and_json(cli_broker: Broker) -> None:
    topic = unique_topic("cli-topic")
    made = moldau("topic", "create", topic, "-p", "3", "-r", "1", "-c", "retention.ms=123456",
                  broker=cli_broker)
    assert lines(made) == ["TOPIC" + " " * (len(topic) - 3) + "STATUS", f"{topic}  created"]
    again = moldau("topic", "create", topic, broker=cli_broker, rc=1)
    assert "TOPIC_ALREADY_EXISTS" in again.stderr and len(again.stderr.strip().splitlines()) == 1

    listed = moldau("topic", "list", broker=cli_broker)
    assert any(line.split() == [topic, "3", "1"] for line in lines(listed))
    assert "__consumer_offsets" not in listed.stdout
    listed_json = as_json(moldau("topic", "list", "--format", "json", broker=cli_broker))
    assert {"topic": topic, "partitions": 3, "replicas": 1} in listed_json

    described = moldau("topic", "describe", topic, broker=cli_broker).stdout
    assert "HIGH-WATERMARK" in described and "retention.ms" in described
    assert "DYNAMIC_TOPIC_CONFIG" in described and "DEFAULT_CONFIG" not in described
    d = as_json(moldau("topic", "describe", topic, "--format", "json", broker=cli_broker))
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2]
    assert all(p["replicas"] == [p["leader"]] == p["isr"] and p["records"] == 0 for p in d["partitions"])
    assert {"name": "retention.ms", "value": "123456", "source": "DYNAMIC_TOPIC_CONFIG"} in d["configs"]

    altered = as_json(moldau("topic", "alter-config", topic, "--set", "cleanup.policy=compact",
                             "--delete", "retention.ms", "--format", "json", broker=cli_broker))
    assert altered["changes"][0] == {"config": "cleanup.policy", "operation": "set", "value": "compact"}
    d = as_json(moldau("topic", "describe", topic, "--all-configs", "--format", "json", broker=cli_broker))
    configs = {c["name"]: c for c in d["configs"]}
    assert configs["cleanup.policy"]["value"] == "compact"
    assert configs["retention.ms"]["source"] == "DEFAULT_CONFIG"

    added = moldau("topic", "add-partitions", topic, "--num", "2", broker=cli_broker)
    assert lines(added)[1].split() == [topic, "3", "5"]
    shrink = moldau("topic", "add-partitions", topic, "--to", "2", broker=cli_broker, rc=1)
    assert "INVALID_PARTITIONS" in shrink.stderr
    assert as_json(moldau("topic", "add-partitions", topic, "--to", "6", "--format", "json",
                          broker=cli_broker))["partitions"] == 6

    gone = as_json(moldau("topic", "delete", topic, "--format", "json", broker=cli_broker))
    assert gone == [{"topic": topic, "status": "deleted"}]
    missing = moldau("topic", "describe", topic, broker=cli_broker, rc=1)
    assert missing.stderr.strip() == (f"moldau: topic {topic!r}: Broker: Unknown topic or partition "
                                      "(UNKNOWN_TOPIC_OR_PART)")


# -- produce and consume --------------------------------------------------------------------------

def test_produce_lines_with_keys_and_headers_then_consume_with_a_kcat_format(cli_broker: Broker) -> None:
    topic = unique_topic("cli-pc")
    moldau("topic", "create", topic, "-p", "2", broker=cli_broker)
    before = now_ms()
    done = moldau("produce", topic, "-k", ":", "-H", "origin=cli", "-H", "n=1", "-p", "1",
                  "-z", "zstd", "--acks", "1", input="k1:hello\nk2:wor:ld\nnokey\n", broker=cli_broker)
    assert lines(done)[1].split() == [topic, "1", "3", "0", "2"]
    out = moldau("consume", topic, "-f", "%p/%o %k=%v (%K,%S) [%h] %t\\n", broker=cli_broker)
    assert lines(out) == [f"1/0 k1=hello (2,5) [origin=cli,n=1] {topic}",
                          f"1/1 k2=wor:ld (2,6) [origin=cli,n=1] {topic}",
                          f"1/2 =nokey (-1,5) [origin=cli,n=1] {topic}"]
    stamps = moldau("consume", topic, "-f", "%T\\n", broker=cli_broker)
    assert all(before - 1000 <= int(t) <= now_ms() for t in lines(stamps))
    assert lines(moldau("consume", topic, "-p", "0", broker=cli_broker)) == []


def test_produce_json_records_and_consume_json(cli_broker: Broker, tmp_path: Path) -> None:
    topic = unique_topic("cli-json")
    moldau("topic", "create", topic, "-p", "3", broker=cli_broker)
    records = [{"key": f"k{i}", "value": {"n": i}, "headers": {"h": str(i)}, "partition": i % 3,
                "timestamp": 1_700_000_000_000 + i} for i in range(6)]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = as_json(moldau("produce", topic, "--file", str(path), "--format", "json", "--progress",
                             broker=cli_broker))
    assert summary["records"] == 6
    assert [(p["partition"], p["records"], p["first_offset"], p["last_offset"]) for p in summary["partitions"]] \
        == [(0, 2, 0, 1), (1, 2, 0, 1), (2, 2, 0, 1)]
    got = [json.loads(line) for line in lines(moldau("consume", topic, "--format", "json", broker=cli_broker))]
    assert sorted((g["partition"], g["offset"], g["key"], g["value"], g["headers"], g["timestamp"]) for g in got) \
        == sorted((i % 3, i // 3, f"k{i}", json.dumps({"n": i}), [["h", str(i)]], 1_700_000_000_000 + i)
                  for i in range(6))
    paced = as_json(moldau("produce", topic, "--rate", "40", "--format", "json", broker=cli_broker,
                           input="".join(json.dumps({"value": str(i)}) + "\n" for i in range(21))))
    assert paced["records"] == 21 and paced["seconds"] >= 0.48  # the 21st record waits 20/40 s
    bad = moldau("produce", topic, "--format", "json", input="{not json\n", broker=cli_broker, rc=1)
    assert "line 1 is not JSON" in bad.stderr


def test_consume_start_positions_count_and_follow(cli_broker: Broker) -> None:
    topic = unique_topic("cli-from")
    moldau("topic", "create", topic, "-p", "1", broker=cli_broker)
    moldau("produce", topic, "--format", "json", broker=cli_broker,
           input="".join(json.dumps({"value": f"v{i}", "timestamp": 1_000_000 + i * 1000}) + "\n"
                         for i in range(10)))
    read = lambda *a: lines(moldau("consume", topic, *a, "-f", "%o:%v\\n", broker=cli_broker))  # noqa: E731
    assert read() == [f"{i}:v{i}" for i in range(10)]
    assert read("-o", "latest") == []
    assert read("-o", "7") == ["7:v7", "8:v8", "9:v9"]
    assert read("-o", "-2") == ["8:v8", "9:v9"]
    assert read("-o", "@1004500") == ["5:v5", "6:v6", "7:v7", "8:v8", "9:v9"]
    assert read("-o", "@1970-01-01T00:16:48Z") == ["8:v8", "9:v9"]  # 1 008 000 ms
    assert read("-o", "3", "-n", "2") == ["3:v3", "4:v4"]
    # --follow waits at the end for new records; -n ends it
    # (from offset 10, the end: no race with the produce below however slow the start)
    follower = subprocess.Popen([*broker_command(), "consume", topic, "-o", "10", "--follow", "-n", "2",
                                 "-f", "%v\\n", "-b", cli_broker.bootstrap],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # long enough to have reached the end, where it waits
        assert follower.poll() is None
        moldau("produce", topic, input="new1\nnew2\n", broker=cli_broker)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert out.splitlines() == ["new1", "new2"]
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


# -- groups ---------------------------------------------------------------------------------------

def test_group_describe_seek_and_a_consumer_starting_from_the_new_offsets(cli_broker: Broker) -> None:
    topic = unique_topic("cli-grp")
    group = unique_topic("cli-group")
    moldau("topic", "create", topic, "-p", "2", broker=cli_broker)
    moldau("produce", topic, "--format", "json", broker=cli_broker,
           input="".join(json.dumps({"value": f"v{i}", "partition": i % 2, "timestamp": 2_000_000 + i * 1000})
                         + "\n" for i in range(10)))
    first = moldau("consume", topic, "-g", group, "-f", "%p:%o\\n", broker=cli_broker)
    assert sorted(lines(first)) == sorted(f"{i % 2}:{i // 2}" for i in range(10))

    listed = moldau("group", "list", broker=cli_broker)
    assert any(line.split()[:2] == [group, "EMPTY"] for line in lines(listed))
    assert any(g["group"] == group for g in as_json(moldau("group", "list", "--format", "json", broker=cli_broker)))
    table = moldau("group", "describe", group, broker=cli_broker).stdout
    assert "LOG-END-OFFSET" in table and "LAG" in table
    d = as_json(moldau("group", "describe", group, "--format", "json", broker=cli_broker))
    assert d["state"] == "EMPTY" and d["members"] == []
    assert [(o["partition"], o["committed_offset"], o["log_end_offset"], o["lag"]) for o in d["offsets"]] \
        == [(0, 5, 5, 0), (1, 5, 5, 0)]

    # a dry run shows the plan and commits nothing
    plan = moldau("group", "seek", group, "--all-topics", "--shift-by", "-2", broker=cli_broker)
    assert [line.split()[2:] for line in lines(plan)[1:]] == [["0", "5", "3"], ["1", "5", "3"]]
    assert "dry run" in plan.stderr
    d = as_json(moldau("group", "describe", group, "--format", "json", broker=cli_broker))
    assert [o["committed_offset"] for o in d["offsets"]] == [5, 5]

    def seek(*how: str) -> list[tuple[int, int]]:
        done = as_json(moldau("group", "seek", group, "--topic", topic, *how, "--execute", "--format", "json",
                              broker=cli_broker))
        assert done["executed"] is True
        return [(r["partition"], r["new_offset"]) for r in done["plan"]]

    assert seek("--to-offset", "99") == [(0, 5), (1, 5)]  # clamped to the log end, as Kafka does
    assert seek("--to-earliest") == [(0, 0), (1, 0)]
    assert seek("--shift-by", "3") == [(0, 3), (1, 3)]
    # partition 0 holds timestamps 2 000 000, 2 002 000, ...; partition 1 2 001 000, 2 003 000, ...
    assert seek("--to-datetime", "2006000") == [(0, 3), (1, 3)]
    assert seek("--to-latest") == [(0, 5), (1, 5)]
    part = as_json(moldau("group", "seek", group, "--topic", f"{topic}:1", "--to-offset", "4", "--execute",
                          "--format", "json", broker=cli_broker))
    assert [(r["partition"], r["new_offset"]) for r in part["plan"]] == [(1, 4)]

    # a consumer of the group starts where the reset put it
    after = moldau("consume", topic, "-g", group, "-f", "%p:%o:%v\\n", broker=cli_broker)
    assert lines(after) == ["1:4:v9"]
    # an explicit -o wins over the committed offsets, in a group too
    override = moldau("consume", topic, "-g", group, "-o", "4", "-f", "%p:%o:%v\\n", broker=cli_broker)
    assert sorted(lines(override)) == ["0:4:v8", "1:4:v9"]

    # while the group has a member, --execute refuses (a dry run only warns)
    member = Consumer(consumer_conf(cli_broker.bootstrap, **{"group.id": group, "session.timeout.ms": 6000}))
    try:
        member.subscribe([topic])
        wait_until(lambda: member.poll(0.2) is None and member.assignment(), timeout=20,
                   message="the member's assignment")
        d = as_json(moldau("group", "describe", group, "--format", "json", broker=cli_broker))
        assert d["state"] == "STABLE" and len(d["members"]) == 1
        assert sorted(a["partition"] for a in d["members"][0]["assignment"]) == [0, 1]
        assert {o["member_id"] for o in d["offsets"]} == {d["members"][0]["member_id"]}
        refused = moldau("group", "seek", group, "--all-topics", "--to-earliest", "--execute",
                         broker=cli_broker, rc=1)
        assert "NON_EMPTY_GROUP" in refused.stderr and "active member" in refused.stderr
        dry = moldau("group", "seek", group, "--all-topics", "--to-earliest", broker=cli_broker)
        assert "will refuse" in dry.stderr
        busy = moldau("group", "delete", group, broker=cli_broker, rc=1)
        assert "NON_EMPTY_GROUP" in busy.stderr
        committed = member.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [tp.offset for tp in committed] == [5, 5]
    finally:
        member.close()

    assert as_json(moldau("group", "delete", group, "--format", "json", broker=cli_broker)) \
        == [{"group": group, "status": "deleted"}]
    unknown = moldau("group", "describe", group, broker=cli_broker, rc=1)
    assert "GROUP_ID_NOT_FOUND" in unknown.stderr


# -- errors ---------------------------------------------------------------------------------------

def test_unknown_topics_are_one_plain_sentence_naming_the_error(cli_broker: Broker) -> None:
    for args in (["consume", "no-such-topic"], ["produce", "no-such-topic"],
                 ["topic", "delete", "no-such-topic"], ["topic", "alter-config", "no-such-topic", "--set", "a=b"]):
        done = moldau(*args, broker=cli_broker, input="x\n", rc=1)
        assert "UNKNOWN_TOPIC" in done.stderr, args
        assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == "", args


def test_a_broker_that_is_down_fails_quickly_and_plainly() -> None:
    down = f"127.0.0.1:{free_port()}"
    for args in (["topic", "list"], ["cluster", "info"], ["produce", "t"], ["consume", "t"], ["group", "list"]):
        started = time.monotonic()
        done = moldau(*args, "-b", down, input="x\n", rc=1)
        assert time.monotonic() - started < 5.0, args  # ~0.5 s on an idle machine
        assert done.stderr.startswith(f"moldau: could not reach the cluster at {down}")
        assert "(_TRANSPORT)" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ["topic", "create"],
    ["topic", "create", "t", "-p", "0"],
    ["topic", "create", "t", "-c", "novalue"],
    ["topic", "add-partitions", "t"],
    ["consume", "t", "-o", "yesterday"],
    ["consume", "t", "-f", "%q"],
    ["consume", "t", "-g", "g", "-p", "0"],
    ["produce", "t", "-X", "novalue"],
    ["group", "seek", "g", "--all-topics", "--to-earliest", "--to-latest"],
    ["group", "seek", "g", "--to-earliest"],
    ["topic", "list", "--format", "yaml"],
])
def test_bad_arguments_exit_2_with_a_usage_message(args: list[str]) -> None:
    done = moldau(*args, "-b", "127.0.0.1:1", rc=2)
    assert "Error:" in done.stderr
