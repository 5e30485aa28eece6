"""Differential tests: the same scenarios with confluent-kafka against Apache Kafka and
Moldau (tests/reference/differential.py), every difference held against a list with its
reason (docs/differences-from-kafka.md).

Cost: one Kafka node (about 30 s to format and start on a loaded 2-core machine, jars
cached) and one Moldau broker per module, then about 40 s of scenarios. Gated by
MOLDAU_REFERENCE=1 (tests/reference/conftest.py).

``MOLDAU_REFERENCE_REPORT=path.json`` also writes every observation of both brokers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .differential import SCENARIOS, api_versions, compare
from .known_differences import KNOWN, KNOWN_API_VERSIONS

_REPORT: dict[str, dict] = {}


def _explain(diffs: dict[str, tuple[object, object]], known: dict[str, str]) -> list[str]:
    problems = []
    for key, (k, m) in diffs.items():
        if key not in known:
            problems.append(f"new difference {key!r}: kafka {k!r}, moldau {m!r}")
    for key in known:
        if key not in diffs:
            problems.append(f"difference gone {key!r}: update known_differences.py and the doc")
    return problems


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_answers(pair: dict, scenario: str) -> None:
    run = SCENARIOS[scenario]
    seen = {name: run(broker.bootstrap) for name, broker in pair.items()}
    diffs = compare(seen["kafka"], seen["moldau"])
    _REPORT[scenario] = {"kafka": seen["kafka"], "moldau": seen["moldau"],
                         "differences": {k: list(v) for k, v in diffs.items()}}
    known = {k.split(": ", 1)[1]: why for k, why in KNOWN.items() if k.startswith(scenario + ": ")}
    problems = _explain(diffs, known)
    assert not problems, "\n".join(problems)


def test_api_versions(pair: dict) -> None:
    """Highest version per API: Moldau serves at least what Kafka does, except the listed ones."""
    kafka, moldau = (api_versions(pair[n].bootstrap) for n in ("kafka", "moldau"))
    diffs = {str(key): (kafka.get(key), moldau.get(key)) for key in sorted(set(kafka) | set(moldau))
             if kafka.get(key) != moldau.get(key)}
    _REPORT["api_versions"] = {"kafka": kafka, "moldau": moldau, "differences": diffs}
    problems = _explain(diffs, {str(k): v for k, v in KNOWN_API_VERSIONS.items()})
    assert not problems, "\n".join(problems)


def teardown_module() -> None:
    path = os.environ.get("MOLDAU_REFERENCE_REPORT")
    if path and _REPORT:
        Path(path).write_text(json.dumps(_REPORT, indent=1, default=str))
