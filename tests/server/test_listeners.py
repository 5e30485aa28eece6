"""Parsing Kafka's listener settings."""

from __future__ import annotations

import pytest

from moldau.server.listeners import resolve_listeners


def test_named_listeners_map_and_advertised() -> None:
    listeners, inter = resolve_listeners(
        "PLAINTEXT://127.0.0.1:9092,INTERNAL://0.0.0.0:9093,SASL_SSL://127.0.0.1:9094",
        "INTERNAL://broker1.example:19093",
        "PLAINTEXT:PLAINTEXT,INTERNAL:SSL,SASL_SSL:SASL_SSL",
        "INTERNAL",
    )
    assert inter == "INTERNAL"
    by_name = {li.name: li for li in listeners}
    assert by_name["INTERNAL"].security_protocol == "SSL"
    assert (by_name["INTERNAL"].advertised_host, by_name["INTERNAL"].advertised_port) == ("broker1.example", 19093)
    assert (by_name["SASL_SSL"].advertised_host, by_name["SASL_SSL"].uses_sasl, by_name["SASL_SSL"].uses_tls) == (
        "127.0.0.1", True, True)
    # default inter-broker listener: the one speaking security.inter.broker.protocol
    assert resolve_listeners("SSL://:1,PLAINTEXT://:2", None, None, None)[1] == "PLAINTEXT"


@pytest.mark.parametrize("listeners,advertised,mapping,inter", [
    ("PLAINTEXT://127.0.0.1", None, None, None),  # no port
    ("PLAINTEXT://:1,PLAINTEXT://:2", None, None, None),  # a name twice
    ("CLIENT://:1", None, None, None),  # not in the protocol map
    ("PLAINTEXT://:1", "SSL://h:2", None, None),  # advertised for an unknown listener
    ("PLAINTEXT://:1", None, "PLAINTEXT:TLS", None),  # not a protocol
    ("PLAINTEXT://:1", None, None, "OTHER"),  # inter-broker listener unknown
    ("SSL://:1", None, None, None),  # no PLAINTEXT listener for the default inter-broker protocol
])
def test_refused_like_kafka(listeners: str, advertised: str | None, mapping: str | None, inter: str | None) -> None:
    with pytest.raises(ValueError):
        resolve_listeners(listeners, advertised, mapping, inter)
