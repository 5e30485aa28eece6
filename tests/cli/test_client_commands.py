"""The client subcommands' pure parts (kcat formats, start positions, reset plans, JSON
records) and the promise that ``moldau serve`` loads none of them: they run end to end
against a real broker in tests/integration/test_cli_client.py."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from moldau.cli.consume import compile_format, parse_start, render
from moldau.cli.groups import plan_offset
from moldau.cli.produce import parse_json_record


class _Msg:
    def __init__(self, key: bytes | None, value: bytes | None, headers: list | None = None) -> None:
        self._key, self._value, self._headers = key, value, headers

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list | None:
        return self._headers

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_123)


def test_kcat_format_tokens_and_escapes() -> None:
    parts = compile_format("%t[%p]@%o %T %k=%v|%s (%K/%S) {%h} 100%%\\t\\n")
    msg = _Msg(b"key", b"value", [("a", b"1"), ("b", None)])
    assert render(parts, msg) == b"t[2]@41 1700000000123 key=value|value (3/5) {a=1,b=} 100%\t\n"
    assert render(compile_format("%K %S %k%v\\n"), _Msg(None, None)) == b"-1 -1 \n"


@pytest.mark.parametrize("bad", ["%q", "%z\\n", "\\x"])
def test_unknown_format_tokens_are_refused(bad: str) -> None:
    with pytest.raises(click.BadParameter):
        compile_format(bad)


def test_start_positions() -> None:
    assert parse_start("earliest") == parse_start("beginning") == ("earliest", 0)
    assert parse_start("latest") == parse_start("end") == ("latest", 0)
    assert parse_start("12") == ("offset", 12)
    assert parse_start("-3") == ("relative", 3)
    assert parse_start("@1700000000000") == ("time", 1_700_000_000_000)
    assert parse_start("@2023-11-14T22:13:20Z") == ("time", 1_700_000_000_000)
    for bad in ("soon", "@yesterday"):
        with pytest.raises(click.BadParameter):
            parse_start(bad)


def test_reset_plans_are_clamped_to_the_log_as_kafka_does() -> None:
    assert plan_offset("earliest", 0, 7, 2, 10, None) == 2
    assert plan_offset("latest", 0, 7, 2, 10, None) == 10
    assert plan_offset("offset", 99, 7, 2, 10, None) == 10
    assert plan_offset("offset", 0, 7, 2, 10, None) == 2
    assert plan_offset("shift", -3, 7, 2, 10, None) == 4
    assert plan_offset("shift", -30, 7, 2, 10, None) == 2
    assert plan_offset("shift", 1, None, 2, 10, None) == 3  # no commit yet: from the log start
    assert plan_offset("datetime", 0, 7, 2, 10, 5) == 5
    assert plan_offset("datetime", 0, 7, 2, 10, -1) == 10  # nothing that late: the end


def test_json_records() -> None:
    rec = parse_json_record(b'{"key": "k", "value": {"a": 1}, "headers": {"h": 1}, "partition": 2}', 1)
    assert rec == {"key": b"k", "value": b'{"a": 1}', "headers": [("h", b"1")], "partition": 2}
    assert parse_json_record(b'{"value": null, "headers": [["x", null]]}', 1) == {
        "key": None, "value": None, "headers": [("x", None)]}


def test_serve_loads_neither_the_client_commands_nor_confluent_kafka() -> None:
    code = ("import sys; from moldau.cli.main import main\n"
            "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
            "loaded = [m for m in sys.modules if m.startswith(('confluent_kafka', 'moldau.cli.'))]\n"
            "print(sorted(loaded))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['moldau.cli.main']"


def test_help_lists_the_client_commands() -> None:
    done = subprocess.run([sys.executable, "-m", "moldau", "--help"], capture_output=True, text=True, timeout=30)
    for name in ("serve", "cluster", "topic", "produce", "consume", "group"):
        assert f"  {name} " in done.stdout


def test_every_connection_option_is_documented() -> None:
    from pathlib import Path

    from moldau.cli.topics import list_

    doc = (Path(__file__).resolve().parents[2] / "docs" / "13-cli.md").read_text()
    options = [opt for param in list_.params for opt in param.opts if param.name not in ("fmt", "internal")]
    assert options and all(f"`{opt}" in doc or f", {opt}" in doc for opt in options), options


def test_the_client_commands_import_nothing_of_the_broker() -> None:
    """ARCHITECTURE.md: the command line is a client like any other; the client
    subcommands reach the cluster only through confluent-kafka (and one socket)."""
    import ast
    from pathlib import Path

    import moldau.cli

    folder = Path(moldau.cli.__file__).parent
    for name in ("client", "topics", "produce", "consume", "groups", "info"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert {m for m in imported if m.startswith("moldau")} <= {"moldau.cli.client"}, name
