"""``moldau cluster``: bad options and a missing etcd stop it with a clear message
before any process is left behind (the running cluster is tested end to end in
tests/integration/test_local_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from moldau.cli.main import main


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "no.such.key=1"], "no.such.key"),
        (["--set", "novalue"], "KEY=VALUE"),
        (["--port", "65535", "--brokers", "3"], "--port"),
        (["--brokers", "0"], "--brokers"),
    ],
)
def test_bad_options_stop_with_a_message_naming_them(tmp_path: Path, args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, ["cluster", "--data-dir", str(tmp_path / "c"), *args])
    assert result.exit_code == 2
    assert named in result.output
    assert not (tmp_path / "c").exists()


def test_an_etcd_that_cannot_start_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLDAU_ETCD", str(tmp_path / "no-such-etcd"))
    result = CliRunner().invoke(main, ["cluster", "--data-dir", str(tmp_path / "c"), "--port", "0"])
    assert result.exit_code == 1
    assert "no-such-etcd" in result.output and "did not start" in result.output
