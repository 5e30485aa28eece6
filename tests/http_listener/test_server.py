"""The HTTP listener in process, on a real Broker (in-memory metadata store): /readyz
before and after start, one registry per broker, metrics off. Cost: ~1 s."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from prometheus_client import generate_latest

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.handlers.registry import Dispatcher
from moldau.http.health import Readiness
from moldau.http.metrics import make_registry
from moldau.http.server import HttpServer, HttpSettings, parse_address
from moldau.metastore.memory import MemoryMetaStore


def _broker(path, **settings: str) -> Broker:
    return Broker(BrokerConfig(settings), path, MemoryMetaStore(), Endpoint("127.0.0.1", 9))


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as answer:
        return answer.status, await answer.text()


def test_readyz_names_what_is_missing_until_the_broker_serves(tmp_path):
    async def scenario() -> None:
        broker = _broker(tmp_path)
        readiness = Readiness()
        http = HttpServer(broker, HttpSettings("127.0.0.1", 0), readiness)
        port = await http.start()
        try:
            assert await _get(port, "/healthz") == (200, "ok\n")
            status, body = await _get(port, "/readyz")
            assert status == 503
            assert json.loads(body)["failed"] == ["metadata not loaded", "storage not recovered",
                                                  "listeners not started"]
            await broker.start()
            readiness.serving = True
            status, body = await _get(port, "/readyz")
            assert (status, json.loads(body)) == (200, {"ready": True, "failed": []})
            readiness.shutting_down = True
            assert (await _get(port, "/readyz"))[0] == 503
            await broker.stop()
        finally:
            await http.stop()

    asyncio.run(scenario())


def test_each_broker_has_its_own_metrics(tmp_path):
    async def scenario() -> None:
        one, two = _broker(tmp_path / "1"), _broker(tmp_path / "2", **{"node.id": "2"})
        one.stats.topic_in["only-in-one"][0] += 7
        servers = [HttpServer(b, HttpSettings("127.0.0.1", 0), Readiness()) for b in (one, two)]
        ports = [await s.start() for s in servers]
        try:
            _, first = await _get(ports[0], "/metrics")
            _, second = await _get(ports[1], "/metrics")
        finally:
            for s in servers:
                await s.stop()
        assert 'kafka_server_brokertopicmetrics_messagesin_total{topic="only-in-one"} 7\n' in first
        assert "only-in-one" not in second
        assert "process_cpu_seconds_total" in first
        # the same through prometheus-client's own path: a registry per broker
        assert b'messagesin_total{topic="only-in-one"} 7.0' in generate_latest(make_registry(one))
        assert b"only-in-one" not in generate_latest(make_registry(two))

    asyncio.run(scenario())


def test_metrics_off_means_no_measuring_dispatcher(tmp_path):
    assert Dispatcher(_broker(tmp_path / "on")).stats is not None
    assert Dispatcher(_broker(tmp_path / "off", **{"moldau.metrics.enable": "false"})).stats is None


def test_listener_addresses():
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address(":9644") == ("0.0.0.0", 9644)
    assert parse_address("[::1]:80") == ("::1", 80)
    settings = HttpSettings.from_config(BrokerConfig({"moldau.http.listener": "localhost:0"}))
    assert settings is not None and (settings.host, settings.port, settings.max_connections) == ("localhost", 0, 64)
    assert HttpSettings.from_config(BrokerConfig({})) is None
