"""The README's tables match the code: supported APIs are exactly what ApiVersions
advertises, and every ``moldau serve`` option is documented."""

from __future__ import annotations

import re
from pathlib import Path

import moldau.handlers  # noqa: F401 - registers the handlers
from moldau.handlers.registry import HANDLERS

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(r"^\| (?P<name>\w+) \| (?P<key>\d+) \| (?P<low>\d+)(?:–(?P<high>\d+))? \|", re.M)


def test_api_table_matches_the_handler_registry() -> None:
    documented = {
        int(m["key"]): (m["name"], int(m["low"]), int(m["high"] or m["low"]))
        for m in ROW.finditer(README.read_text(encoding="utf-8"))
    }
    served = {key: (h.api.name, h.min_version, h.max_version) for key, h in HANDLERS.items()}
    assert documented == served


def test_serve_options_table_lists_every_option() -> None:
    from moldau.cli.main import serve

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## `moldau serve`"):]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `(--[a-z-]+)", section, re.M))
    options = {opt for param in serve.params for opt in param.opts if opt.startswith("--")}
    assert documented == options


def test_cluster_options_table_lists_every_option() -> None:
    from moldau.cli.main import cluster

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## `moldau cluster`"):]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `(--[a-z-]+)", section, re.M))
    options = {opt for param in cluster.params for opt in param.opts if opt.startswith("--")}
    assert documented == options
