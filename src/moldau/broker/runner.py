"""Run a broker until a signal: start-up, serving, and clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import time
from pathlib import Path

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.metastore.local import LocalMetaStore
from moldau.server.limits import ConnectionRegistry, ConnectionSettings, parse_overrides
from moldau.server.memory_pool import MemoryPool
from moldau.server.server import KafkaServer
from moldau.storage.errors import DataDirLockedError

log = logging.getLogger("moldau")


async def serve(
    config: BrokerConfig, data_dir: Path, listen: Endpoint, advertise: Endpoint | None, started: float
) -> None:
    import moldau.handlers  # noqa: F401 - registers the API handlers
    from moldau.handlers.registry import Dispatcher

    check_connection_configs(config)
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = Broker(config, data_dir, LocalMetaStore(data_dir), listen, advertise)
    try:
        broker.log_manager.lock()
    except DataDirLockedError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    await broker.start()
    loop = asyncio.get_running_loop()
    server = KafkaServer(
        Dispatcher(broker),
        listen.host,
        listen.port,
        config.int("socket.request.max.bytes"),
        use_sendfile=hasattr(loop, "sendfile") and "uvloop" not in type(loop).__module__,
        pool=MemoryPool(config.int("queued.max.request.bytes")),
        registry=ConnectionRegistry(lambda: connection_settings(config)),
    )
    host, port = await server.start()
    if listen.port == 0:
        broker.listen = Endpoint(listen.host, port)
        if advertise is None:
            broker.advertise = broker.listen
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "Moldau broker %d listening on %s:%d (advertised as %s:%d), data in %s, started in %.0f ms",
        broker.node_id,
        host,
        port,
        broker.advertise.host,
        broker.advertise.port,
        data_dir.resolve(),
        (time.perf_counter() - started) * 1000,
    )
    await stop.wait()
    log.info("shutting down")
    await server.stop()
    await broker.stop()
    log.info("stopped cleanly")


def check_connection_configs(config: BrokerConfig) -> None:
    """Refuse to start on connection settings Kafka refuses, and let the broker use
    all the file descriptors it may (a connection is one)."""
    queued = config.int("queued.max.request.bytes")
    request_max = config.int("socket.request.max.bytes")
    problem = None
    if 0 < queued < request_max:
        problem = "queued.max.request.bytes must be larger or equal to socket.request.max.bytes"
    else:
        try:
            parse_overrides(str(config["max.connections.per.ip.overrides"]))
        except ValueError as exc:
            problem = str(exc)
    no_overrides = not config["max.connections.per.ip.overrides"]
    if problem is None and config.int("max.connections.per.ip") == 0 and no_overrides:
        problem = "max.connections.per.ip.overrides must be set when max.connections.per.ip is 0"
    if problem is not None:
        log.error("%s", problem)
        raise SystemExit(1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):  # an unlimited hard limit, say
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def connection_settings(config: BrokerConfig) -> ConnectionSettings:
    """The connection limits as they stand (dynamic broker configs included)."""
    return ConnectionSettings(
        max_connections=config.int("max.connections"),
        max_per_ip=config.int("max.connections.per.ip"),
        per_ip_overrides=str(config["max.connections.per.ip.overrides"] or ""),
        max_idle_ms=config.int("connections.max.idle.ms"),
    )


def run(
    config: BrokerConfig,
    data_dir: Path,
    listen: Endpoint,
    advertise: Endpoint | None,
    started: float,
    loop: str = "asyncio",
) -> None:
    """Run the broker on the chosen event loop (uvloop serves small requests faster,
    the default loop has native sendfile for large fetches)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(serve(config, data_dir, listen, advertise, started))
    else:
        asyncio.run(serve(config, data_dir, listen, advertise, started))
