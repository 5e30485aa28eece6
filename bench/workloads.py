"""Client side of the benchmark: one workload per process, driven by confluent-kafka.

Run as ``python workloads.py '<json spec>'``; prints progress to stderr and one line
``RESULT {json}`` to stdout. Every workload is bounded by ``deadline_s``: past it, it
stops sending, reports what it got and marks the result ``timed_out``. Client CPU
seconds are this process's (and its children's) user+system time over the measured
section, librdkafka's threads included.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import struct
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafkaraw  # noqa: E402

WORDS = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf", b"hotel",
         b"india", b"juliet", b"kilo", b"lima", b"mike", b"november", b"oscar", b"papa"]


def payloads(size: int, count: int = 256, seed: int = 1) -> list[bytes]:
    """JSON-like values of exactly ``size`` bytes: realistic, and compressible by lz4 (~2-3x)."""
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        body = bytearray(b'{"id":%d,"user":"u%05d","event":"%s","ts":%d,"pad":"'
                         % (i, rnd.randrange(100000), rnd.choice(WORDS), 1700000000000 + rnd.randrange(10**9)))
        while len(body) < size:
            body += rnd.choice(WORDS) + b" %d " % rnd.randrange(1000)
        out.append(bytes(body[: size - 2]) + b'"}' if size >= 64 else bytes(body[:size]))
    return out


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def ensure_topic(bs: str, topic: str, partitions: int, timeout: float = 20.0, replication_factor: int = 1,
                 conf: dict | None = None) -> None:
    """Create the topic and wait until every partition has a leader (and, replicated,
    every replica in its ISR), so that the clock starts on a ready topic."""
    admin = AdminClient({"bootstrap.servers": bs, **(conf or {})})
    fut = admin.create_topics([NewTopic(topic, partitions, replication_factor)], operation_timeout=10)[topic]
    try:
        fut.result(timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
            raise
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 and len(p.isrs) >= replication_factor for p in t.partitions.values()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {topic} not ready with {partitions} partitions")


# --- produce -----------------------------------------------------------------------------

def produce(spec: dict) -> dict:
    bs, topic, n, size = spec["bootstrap"], spec["topic"], spec["count"], spec["size"]
    ensure_topic(bs, topic, spec["partitions"], replication_factor=spec.get("replication_factor", 1),
                 conf=spec.get("client_conf"))
    values = payloads(size)
    errors: list[str] = []

    def on_delivery(err, _msg):
        if err is not None and len(errors) < 1000:
            errors.append(str(err))

    p = Producer({
        "bootstrap.servers": bs, "acks": spec["acks"], "linger.ms": 5, "batch.size": 1048576,
        "compression.type": spec.get("compression", "none"), "enable.idempotence": False,
        "queue.buffering.max.messages": 2000000, "queue.buffering.max.kbytes": 2097151,
        "delivery.report.only.error": True, "on_delivery": on_delivery, **spec.get("client_conf", {}),
    })
    p.list_topics(topic, timeout=10)  # connected and metadata known before the clock starts
    c0, t0 = cpu_now(), time.perf_counter()
    end = t0 + spec["deadline_s"]
    sent = 0
    timed_out = False
    prod, poll = p.produce, p.poll
    while sent < n:
        try:
            prod(topic, values[sent & 255])
            sent += 1
        except BufferError:
            poll(0.002)
            if time.perf_counter() > end:
                timed_out = True
                break
    left = p.flush(max(0.0, end - time.perf_counter()))
    t1, c1 = time.perf_counter(), cpu_now()
    if left:
        timed_out = True
    delivered = sent - left - len(errors)
    return {"elapsed_s": t1 - t0, "messages": delivered, "bytes": delivered * size,
            "client_cpu_s": c1 - c0, "timed_out": timed_out, "errors": len(errors),
            "error_sample": errors[:3], "expected": n}


# --- consume -----------------------------------------------------------------------------

def consume(spec: dict) -> dict:
    bs, topic, expect = spec["bootstrap"], spec["topic"], spec["count"]
    errors: list[str] = []
    c = Consumer({
        "bootstrap.servers": bs, "group.id": "bench-reader-" + topic, "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
        # librdkafka pauses fetching for fetch.queue.backoff.ms (1 s by default) whenever its
        # local queue passes queued.min.messages; that stall is the client's, not the broker's.
        "fetch.queue.backoff.ms": 10,
        "error_cb": lambda e: errors.append(str(e)) if len(errors) < 100 else None,
        **spec.get("client_conf", {}),
    })
    # Throughput is clocked from the first message on (the fetch path in steady state);
    # first_message_s is the time from assign() to it (connect, ListOffsets, first fetch).
    c0, t0 = cpu_now(), time.perf_counter()
    c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(spec["partitions"])])
    end = t0 + spec["deadline_s"]
    got = nbytes = bad = 0
    first = None
    cons = c.consume
    while got < expect and time.perf_counter() < end:
        batch = cons(10000, 0.05)
        if batch and first is None:
            first = time.perf_counter()
        for m in batch:
            if m.error() is None:
                got += 1
                nbytes += len(m)
            else:
                bad += 1
    t1, c1 = time.perf_counter(), cpu_now()
    c.close()
    return {"elapsed_s": t1 - (first or t0), "total_s": t1 - t0, "messages": got, "bytes": nbytes,
            "client_cpu_s": c1 - c0, "first_message_s": None if first is None else first - t0,
            "timed_out": got < expect, "errors": bad, "error_sample": errors[:3], "expected": expect}


# --- end-to-end latency ------------------------------------------------------------------

def latency(spec: dict) -> dict:
    import threading

    bs, topic, size, rate = spec["bootstrap"], spec["topic"], spec["size"], spec["rate"]
    duration, warmup = spec["duration_s"], spec.get("warmup_s", 2.0)
    ensure_topic(bs, topic, 1, replication_factor=spec.get("replication_factor", 1))
    pad = payloads(size)[0]
    stamp = struct.Struct("<qB")  # wall-clock ns at produce(), and 1 when inside the measured window
    c = Consumer({"bootstrap.servers": bs, "group.id": "bench-latency", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 500})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 0, "enable.idempotence": False,
                  **spec.get("producer", {})})
    p.list_topics(topic, timeout=10)
    state = {"sent": 0, "measured": 0, "done": False}

    def pace():
        start = time.perf_counter()
        stop_measure = start + warmup + duration
        sent = 0
        while True:
            now = time.perf_counter()
            if now >= stop_measure:
                break
            flag = 1 if now >= start + warmup else 0
            due = int((now - start) * rate) - sent
            for _ in range(due):
                p.produce(topic, stamp.pack(time.time_ns(), flag) + pad[stamp.size:])
                sent += 1
                state["measured"] += flag
            p.poll(0)
            time.sleep(0.0005)
        p.flush(10)
        state["sent"] = sent
        state["done"] = True

    c0 = cpu_now()
    th = threading.Thread(target=pace, daemon=True)
    th.start()
    lat_us: list[float] = []
    received = 0
    deadline = time.perf_counter() + warmup + duration + spec.get("drain_s", 10)
    while time.perf_counter() < deadline:
        m = c.poll(0.05)
        if m is None:
            if state["done"] and received >= state["sent"]:
                break
            continue
        if m.error() is not None:
            continue
        now = time.time_ns()
        received += 1
        ts, flag = stamp.unpack_from(m.value(), 0)
        if flag:
            lat_us.append((now - ts) / 1000.0)
    th.join(5)
    c1 = cpu_now()
    c.close()
    lat_us.sort()

    def pct(q: float) -> float | None:
        if not lat_us:
            return None
        return lat_us[min(len(lat_us) - 1, int(q * len(lat_us)))] / 1000.0

    return {"elapsed_s": duration, "messages": len(lat_us), "bytes": len(lat_us) * size,
            "client_cpu_s": c1 - c0, "expected": state["measured"],
            "timed_out": len(lat_us) < state["measured"],
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": lat_us[-1] / 1000.0 if lat_us else None}


# --- many small requests -----------------------------------------------------------------

def _small_member(bs: str, topic: str, partition: int, start_at: float, duration: float, q) -> None:
    acked = [0]
    errors = [0]

    def on_delivery(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            errors[0] += 1

    # batch.num.messages=1: every Produce request carries exactly one record.
    p = Producer({"bootstrap.servers": bs, "acks": 1, "linger.ms": 0, "batch.num.messages": 1,
                  "enable.idempotence": False, "on_delivery": on_delivery})
    p.list_topics(topic, timeout=10)
    value = payloads(100)[partition]
    while time.time() < start_at:
        time.sleep(0.001)
    c0 = cpu_now()
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        if len(p) < 200:  # keep a bounded window of requests in flight
            p.produce(topic, value, partition=partition)
            p.poll(0)
        else:
            p.poll(0.0005)
    count = acked[0]
    c1 = cpu_now()
    p.flush(5)
    q.put({"acked": count, "errors": errors[0], "cpu": c1 - c0})


def small_requests(spec: dict) -> dict:
    bs, topic, producers, duration = spec["bootstrap"], spec["topic"], spec["producers"], spec["duration_s"]
    ensure_topic(bs, topic, producers)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [ctx.Process(target=_small_member, args=(bs, topic, i, start_at, duration, q))
             for i in range(producers)]
    for pr in procs:
        pr.start()
    results = []
    for _ in procs:
        try:
            results.append(q.get(timeout=duration + 30))
        except Exception:
            break
    for pr in procs:
        pr.join(5)
        if pr.is_alive():
            pr.kill()
    acked = sum(r["acked"] for r in results)
    return {"elapsed_s": duration, "messages": acked, "bytes": acked * 100,
            "client_cpu_s": sum(r["cpu"] for r in results), "requests_per_s": acked / duration,
            "errors": sum(r["errors"] for r in results), "timed_out": len(results) < producers,
            "expected": None}


# --- consumer group ----------------------------------------------------------------------

def _group_member(bs: str, topic: str, group: str, name: int, q, session_ms: int) -> None:
    def report(kind, parts):
        q.put({"member": name, "event": kind, "t": time.time(),
               "partitions": sorted(p.partition for p in parts)})

    c = Consumer({"bootstrap.servers": bs, "group.id": group, "session.timeout.ms": session_ms,
                  "heartbeat.interval.ms": 1000, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "partition.assignment.strategy": "range",
                  "error_cb": lambda e: q.put({"member": name, "event": "error", "t": time.time(),
                                               "error": str(e)})})
    q.put({"member": name, "event": "subscribe", "t": time.time(), "partitions": []})
    c.subscribe([topic], on_assign=lambda _c, ps: report("assign", ps),
                on_revoke=lambda _c, ps: report("revoke", ps))
    end = time.time() + 120
    while time.time() < end:
        c.poll(0.1)
    c.close()


def consumer_group(spec: dict) -> dict:
    bs = spec["bootstrap"]
    host, port = bs.rsplit(":", 1)
    port = int(port)
    try:
        apis = kafkaraw.api_versions(host, port)
    except Exception as exc:  # noqa: BLE001
        return {"skipped": True, "note": f"ApiVersions failed: {exc}"}
    missing = [kafkaraw.API_NAMES[k] for k in kafkaraw.GROUP_APIS if k not in apis]
    if missing:
        return {"skipped": True, "note": "broker does not advertise " + ", ".join(missing)}
    group = spec["topic"] + "-group"
    err = None
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            err = kafkaraw.find_coordinator(host, port, group)
        except Exception as exc:  # noqa: BLE001
            err = f"{type(exc).__name__}: {exc}"
        if err == 0:
            break
        time.sleep(0.2)
    if err != 0:
        return {"skipped": True, "note": f"FindCoordinator answered error {err}"}

    topic, members, session_ms = spec["topic"], spec.get("members", 3), spec.get("session_ms", 6000)
    partitions = spec.get("partitions", 6)
    ensure_topic(bs, topic, partitions)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    c0 = cpu_now()
    procs = [ctx.Process(target=_group_member, args=(bs, topic, group, i, q, session_ms))
             for i in range(members)]
    for pr in procs:
        pr.start()
    assigned: dict[int, list[int]] = {}
    subscribed: dict[int, float] = {}
    errors: list[str] = []
    all_parts = list(range(partitions))

    def covered(alive: list[int]) -> bool:
        got = sorted(p for m in alive for p in assigned.get(m, []))
        return got == all_parts and all(assigned.get(m) for m in alive)

    def pump(until: float, alive: list[int], after: float) -> float | None:
        while time.time() < until:
            try:
                ev = q.get(timeout=0.1)
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
            if ev["event"] == "subscribe":
                subscribed[ev["member"]] = ev["t"]
            elif ev["event"] == "assign":
                assigned[ev["member"]] = ev["partitions"]
                if ev["t"] >= after and covered(alive):
                    return ev["t"]
            elif ev["event"] == "revoke":
                assigned[ev["member"]] = []
            elif ev["event"] == "error" and len(errors) < 20:
                errors.append(ev["error"])
        return None

    result: dict = {"members": members, "session_timeout_s": session_ms / 1000}
    try:
        alive = list(range(members))
        formed_at = pump(time.time() + spec.get("form_deadline_s", 30), alive, 0.0)
        if formed_at is None:
            return {"skipped": True, "note": "group did not form: " + ("; ".join(sorted(set(errors))[:3])
                                                                      or "no assignment within the deadline")}
        result["formation_s"] = formed_at - min(subscribed.values())
        victim = 0
        killed_at = time.time()
        os.kill(procs[victim].pid, signal.SIGKILL)
        alive = [m for m in alive if m != victim]
        assigned.pop(victim, None)
        done_at = pump(killed_at + session_ms / 1000 + spec.get("rebalance_grace_s", 15), alive, killed_at)
        result["rebalance_s"] = None if done_at is None else done_at - killed_at
        result["timed_out"] = done_at is None
        result["errors"] = len(errors)
        result["error_sample"] = errors[:3]
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
            pr.join(5)
    result["client_cpu_s"] = cpu_now() - c0
    return result


WORKLOADS = {"produce": produce, "consume": consume, "latency": latency,
             "small_requests": small_requests, "consumer_group": consumer_group}

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    try:
        res = WORKLOADS[spec["kind"]](spec)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the run goes on
        res = {"failed": True, "note": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps(res), flush=True)
    os._exit(0)
