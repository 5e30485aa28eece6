"""Topic names are checked as Kafka's ``Topic.validate`` does, to the last character."""

from __future__ import annotations

import pytest

from moldau.controller.controller import validate_topic_name
from moldau.protocol.errors import ErrorCode, KafkaError


@pytest.mark.parametrize("name", ["a", "orders.v1", "my_topic-2", "x" * 249])
def test_legal_names(name: str) -> None:
    validate_topic_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "x" * 250, "a b", "fuzz-\n", "\nfuzz", "caf\u00e9", "a/b", "a\x00"],
)
def test_illegal_names(name: str) -> None:
    with pytest.raises(KafkaError) as raised:
        validate_topic_name(name)
    assert raised.value.code == ErrorCode.INVALID_TOPIC_EXCEPTION
