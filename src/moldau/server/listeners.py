"""Named listeners, as Kafka configures them.

``listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093`` names each listener
(the part before ``://``); ``listener.security.protocol.map`` gives each name its
security protocol (by default a name that is a protocol's own name maps to it);
``advertised.listeners`` says what clients are told per listener (by default what is
bound, with a wildcard host replaced by this machine's name); and
``inter.broker.listener.name`` is the listener other brokers reach this one on
(Kafka's default: the one whose protocol is ``security.inter.broker.protocol``,
PLAINTEXT). ``--listen HOST:PORT`` is the simple form of one PLAINTEXT listener.

Metadata answers a client with the endpoints of the listener it connected through, so
every broker registers one endpoint per listener (see
:class:`~moldau.metastore.store.BrokerInfo`).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, replace

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_LISTENER = re.compile(r"^([A-Za-z0-9_.-]+)://(\[[^\]]*\]|[^:]*):(\d+)$")


@dataclass(frozen=True)
class Listener:
    """One listener: where it binds, what clients are told, how it is secured."""

    name: str
    security_protocol: str
    host: str
    port: int
    advertised_host: str
    advertised_port: int

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def url(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


def parse_listener_list(text: str, what: str) -> list[tuple[str, str, int]]:
    """``NAME://HOST:PORT,...`` -> [(NAME, host, port)]; ValueError names ``what``."""
    result: list[tuple[str, str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = _LISTENER.match(item)
        if match is None or not 0 <= int(match.group(3)) <= 65535:
            raise ValueError(f"{what}: expected NAME://HOST:PORT, got {item!r}")
        host = match.group(2).strip("[]")
        result.append((match.group(1).upper(), host, int(match.group(3))))
    names = [name for name, _, _ in result]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: each listener must have a distinct name, got {text!r}")
    return result


def parse_protocol_map(text: str | None) -> dict[str, str]:
    """``listener.security.protocol.map``; Kafka's default maps each protocol to itself."""
    mapping = {p: p for p in PROTOCOLS}
    if not text:
        return mapping
    mapping = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, protocol = item.partition(":")
        protocol = protocol.strip().upper()
        if not sep or protocol not in PROTOCOLS:
            raise ValueError(
                f"listener.security.protocol.map: expected NAME:PROTOCOL with PROTOCOL one of "
                f"{', '.join(PROTOCOLS)}, got {item!r}"
            )
        mapping[name.strip().upper()] = protocol
    return mapping


def resolve_listeners(
    listeners: str,
    advertised: str | None,
    protocol_map: str | None,
    inter_broker_name: str | None,
    inter_broker_protocol: str = "PLAINTEXT",
) -> tuple[list[Listener], str]:
    """The listeners and the inter-broker listener's name; ValueError for what Kafka refuses."""
    bound = parse_listener_list(listeners, "listeners")
    if not bound:
        raise ValueError("listeners: at least one listener is needed")
    mapping = parse_protocol_map(protocol_map)
    told = {name: (host, port) for name, host, port in parse_listener_list(advertised or "", "advertised.listeners")}
    for name in told:
        if name not in {n for n, _, _ in bound}:
            raise ValueError(f"advertised.listeners: {name} is not one of the listeners")
    result = []
    for name, host, port in bound:
        if name not in mapping:
            raise ValueError(f"listener {name} has no entry in listener.security.protocol.map")
        adv_host, adv_port = told.get(name, (host, port))
        if adv_host in ("", "0.0.0.0", "::"):
            adv_host = socket.gethostname()
        result.append(Listener(name, mapping[name], host or "0.0.0.0", port, adv_host, adv_port))
    if inter_broker_name:
        inter = inter_broker_name.upper()
        if inter not in {listener.name for listener in result}:
            raise ValueError(f"inter.broker.listener.name: {inter} is not one of the listeners")
    else:
        matching = [listener.name for listener in result if listener.security_protocol == inter_broker_protocol]
        if not matching:
            raise ValueError(
                f"no listener uses security.inter.broker.protocol {inter_broker_protocol}: "
                "set inter.broker.listener.name"
            )
        inter = matching[0]
    return result, inter


def with_bound_port(listener: Listener, port: int) -> Listener:
    """The listener once bound (port 0 asks the system for one): advertise that port."""
    advertised = listener.advertised_port if listener.advertised_port else port
    return replace(listener, port=port, advertised_port=advertised)
