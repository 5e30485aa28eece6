"""Checkpoint files in Kafka's text format and the clean-shutdown marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.storage.checkpoint import (
    CleanShutdownFile,
    OffsetCheckpointFile,
    parse_checkpoint,
)
from moldau.storage.errors import CorruptCheckpointError


def test_write_uses_kafkas_format(tmp_path: Path) -> None:
    path = tmp_path / "recovery-point-offset-checkpoint"
    OffsetCheckpointFile(path).write({("orders", 1): 99, ("orders", 0): 1234, ("a.b-c_d", 7): 0})
    assert path.read_text() == "0\n3\na.b-c_d 7 0\norders 0 1234\norders 1 99\n"
    assert not (tmp_path / "recovery-point-offset-checkpoint.tmp").exists()


def test_round_trip_and_replace(tmp_path: Path) -> None:
    checkpoint = OffsetCheckpointFile(tmp_path / "cp")
    checkpoint.write({("t", 0): 5})
    checkpoint.write({("t", 0): 6, ("u", 2): 8})
    assert checkpoint.read() == {("t", 0): 6, ("u", 2): 8}


def test_missing_or_empty_file_has_no_entries(tmp_path: Path) -> None:
    assert OffsetCheckpointFile(tmp_path / "missing").read() == {}
    (tmp_path / "empty").write_text("")
    assert OffsetCheckpointFile(tmp_path / "empty").read() == {}
    assert parse_checkpoint("0\n") == {}
    assert parse_checkpoint("0\n0\n") == {}


def test_reads_a_file_written_by_kafka() -> None:
    # Kafka writes with BufferedWriter.newLine(): "\n" on Linux.
    text = "0\n2\n__consumer_offsets 13 0\nmy-topic 0 42\n"
    assert parse_checkpoint(text) == {("__consumer_offsets", 13): 0, ("my-topic", 0): 42}


@pytest.mark.parametrize(
    "text",
    [
        "1\n0\n",  # unknown version
        "x\n0\n",  # not a number
        "0\n2\nt 0 1\n",  # fewer entries than announced
        "0\n1\nt 0 1\nt 1 2\n",  # more entries than announced
        "0\n1\nt 0\n",  # missing field
        "0\n1\nt zero 1\n",  # not a number
        "0\n1\nt 0 1 extra\n",
    ],
)
def test_malformed_files_are_rejected(text: str) -> None:
    with pytest.raises(CorruptCheckpointError):
        parse_checkpoint(text)


def test_topic_names_with_spaces_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        OffsetCheckpointFile(tmp_path / "cp").write({("a b", 0): 1})


def test_clean_shutdown_marker(tmp_path: Path) -> None:
    marker = CleanShutdownFile(tmp_path)
    assert not marker.exists()
    marker.write()
    assert marker.exists()
    assert (tmp_path / ".kafka_cleanshutdown").read_text() == (
        '{"version":"0","broker_epoch":"-1"}'
    )
    marker.delete()
    assert not marker.exists()
    marker.delete()  # idempotent
