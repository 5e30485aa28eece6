"""``moldau serve``: settings by Kafka name, clear errors, fast start, clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moldau", "serve", *args],
        capture_output=True, text=True, timeout=30,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "no.such.key=1"], "no.such.key"),
        (["--set", "num.partitions=abc"], "num.partitions"),
        (["--set", "message.max.bytes=-5"], "message.max.bytes"),
        (["--set", "novalue"], "KEY=VALUE"),
        (["--listen", "nonsense"], "--listen"),
    ],
)
def test_bad_settings_stop_with_a_message_naming_them(tmp_path: Path, args: list[str], named: str) -> None:
    result = _serve("--data-dir", str(tmp_path / "d"), *args)
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_properties_file_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "server.properties"
    config.write_text("num.partitions=3\nlog.retention.hours=soon\n")
    result = _serve("--data-dir", str(tmp_path / "d"), "--config", str(config))
    assert result.returncode == 2
    assert "log.retention.hours" in result.stderr


def test_starts_fast_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "server.properties"
    config.write_text("num.partitions=4\n")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moldau", "serve", "--data-dir", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{port}", "--config", str(config), "--set", "num.partitions=2"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        elapsed = time.monotonic() - started
        assert "listening on" in line and f"127.0.0.1:{port}" in line
        assert str((tmp_path / "data").resolve()) in line
        assert elapsed < 3.0  # well under a second on an idle machine; CI can be busy
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        rest = proc.stderr.read()
        assert "stopped cleanly" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "data" / ".kafka_cleanshutdown").exists()
    assert (tmp_path / "data" / "recovery-point-offset-checkpoint").exists()
