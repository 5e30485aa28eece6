"""The ``moldau`` client subcommands against a three-broker cluster (etcd and three
``moldau serve --cluster`` processes): brokers and controller, replicas and ISR of a
replicated topic, a group whose coordinator may be any broker, and the ISR shrinking
when a broker stops. Cost: etcd and three brokers, ~15 subprocesses: ~14 s measured here
(~22 s at load average 6)."""

from __future__ import annotations

import json
import subprocess

from .broker_process import broker_command
from .cluster_helpers import start_three
from .kafka_helpers import unique_topic, wait_until


def moldau(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*broker_command(), *args], input=input, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done


def test_the_cli_on_a_three_broker_cluster(cluster) -> None:
    brokers = start_three(cluster)
    everyone = ["-b", ",".join(b.bootstrap for b in brokers.values())]
    info = json.loads(moldau("cluster", "info", "--format", "json", *everyone).stdout)
    assert [b["id"] for b in info["brokers"]] == [1, 2, 3]
    assert info["controller"] in (1, 2, 3)
    table = moldau("cluster", "info", *everyone).stdout
    assert f"\n{info['controller']}* " in table  # the controller is starred

    topic = unique_topic("cli-cluster")
    moldau("topic", "create", topic, "-p", "3", "-r", "3", "-c", "min.insync.replicas=2", *everyone)

    def described(via: str) -> list[dict]:
        return json.loads(moldau("topic", "describe", topic, "--format", "json", "-b", via).stdout)["partitions"]

    wait_until(lambda: all(sorted(p["isr"]) == [1, 2, 3] for p in described(brokers[1].bootstrap)),
               timeout=30, message="a fully replicated topic")
    parts = described(brokers[2].bootstrap)
    assert all(sorted(p["replicas"]) == [1, 2, 3] and p["leader"] in p["replicas"] for p in parts)
    assert len({p["leader"] for p in parts}) > 1  # leaders spread over the brokers

    moldau("produce", topic, "-k", ":", "--acks", "all", *everyone,
           input="".join(f"k{i}:v{i}\n" for i in range(30)))
    group = unique_topic("cli-cluster-group")
    assert len(moldau("consume", topic, "-g", group, "-b", brokers[3].bootstrap).stdout.splitlines()) == 30
    g = json.loads(moldau("group", "describe", group, "--format", "json", *everyone).stdout)
    assert g["coordinator"] in (1, 2, 3) and sum(o["committed_offset"] for o in g["offsets"]) == 30
    moldau("group", "seek", group, "--all-topics", "--shift-by", "-2", "--execute", *everyone)
    again = moldau("consume", topic, "-g", group, "-f", "%k\\n", "-b", brokers[1].bootstrap).stdout.split()
    assert len(again) == 6

    brokers[3].dispose()
    wait_until(lambda: all(3 not in p["isr"] for p in described(brokers[1].bootstrap)), timeout=40,
               message="broker 3 out of every ISR")
    records = sum(p["records"] for p in described(brokers[2].bootstrap))
    assert records == 30
