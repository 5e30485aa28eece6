"""Run a broker until a signal: start-up, serving, and clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moldau.broker.broker import Broker, Endpoint
from moldau.config.broker import BrokerConfig
from moldau.http.health import Readiness
from moldau.http.server import HttpServer, HttpSettings
from moldau.metastore.local import LocalMetaStore
from moldau.metastore.store import MetaStore
from moldau.security.listener_security import ListenerSecurity
from moldau.security.tls import client_context
from moldau.server.limits import ConnectionRegistry, ConnectionSettings, parse_overrides
from moldau.server.listeners import Listener, resolve_listeners, with_bound_port
from moldau.server.memory_pool import MemoryPool
from moldau.server.server import KafkaServer
from moldau.storage.errors import DataDirLockedError

log = logging.getLogger("moldau")


def _metastore(cluster: str | None, data_dir: Path) -> MetaStore:
    """The local file by default; etcd with ``--cluster`` (imported only then)."""
    if cluster is None:
        return LocalMetaStore(data_dir)
    from moldau.metastore.etcd import EtcdMetaStore

    return EtcdMetaStore(cluster)


async def serve(
    config: BrokerConfig,
    data_dir: Path,
    listen: Endpoint,
    advertise: Endpoint | None,
    started: float,
    cluster: str | None = None,
    hooks: ServeHooks | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, or with ``hooks`` (an embedded broker) until
    ``hooks.stop`` is set."""
    import moldau.handlers  # noqa: F401 - registers the API handlers
    from moldau.handlers.registry import Dispatcher

    check_connection_configs(config)
    try:
        listeners, inter_name = configured_listeners(config, listen, advertise)
        security = ListenerSecurity(config)
        for listener in listeners:
            security.for_listener(listener)  # refuse bad TLS or SASL settings before starting
    except ValueError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    try:
        http_settings = HttpSettings.from_config(config)
    except ValueError as exc:
        log.error("moldau.http.listener: %s", exc)
        raise SystemExit(1) from None
    inter = next(li for li in listeners if li.name == inter_name)
    client_ssl = client_sasl = None
    if cluster is not None and inter.uses_sasl:
        try:
            client_sasl = inter_broker_sasl(config, inter.name)
        except ValueError as exc:
            log.error("%s", exc)
            raise SystemExit(1) from None
    if cluster is not None and inter.uses_tls:
        try:
            client_ssl = client_context(lambda key, mech=None: config.for_listener(inter.name, key, mech))
        except (ValueError, OSError, ssl.SSLError) as exc:
            log.error("cannot make the inter-broker TLS context: %s", exc)
            raise SystemExit(1) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = Broker(config, data_dir, _metastore(cluster, data_dir), Endpoint(inter.host, inter.port),
                    Endpoint(inter.advertised_host, inter.advertised_port))
    try:
        broker.log_manager.lock()
    except DataDirLockedError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    # the HTTP listener comes up first, so /healthz answers (and /readyz says what is
    # missing) while the logs recover and the metadata loads
    readiness = Readiness(cluster=cluster is not None)
    http = None
    if http_settings is not None:
        http = HttpServer(broker, http_settings, readiness)
        try:
            http_port = await http.start()
        except OSError as exc:
            log.error("cannot listen for HTTP on %s:%d: %s", http_settings.host, http_settings.port, exc)
            raise SystemExit(1) from None
        log.info("HTTP (metrics, health) on http://%s:%d/", http_settings.host, http_port)
    try:
        await broker.start()
    except Exception as exc:
        if cluster is None:
            raise
        details = exc.details() if callable(getattr(exc, "details", None)) else exc  # gRPC's reason
        log.error("cannot load the cluster metadata from %s: %s", cluster, details)
        await broker.store.close()
        raise SystemExit(1) from None
    # every broker-to-broker connection (replica fetches, forwarded metadata writes,
    # transaction markers) speaks the inter-broker listener's TLS and SASL
    broker.replica_manager.client_ssl = broker.controller_channel.client_ssl = client_ssl
    broker.replica_manager.client_sasl = broker.controller_channel.client_sasl = client_sasl
    security.credentials.store = broker.store  # SCRAM credentials live in the metadata store
    loop = asyncio.get_running_loop()
    sendfile = hasattr(loop, "sendfile") and "uvloop" not in type(loop).__module__
    servers = []
    bound = []
    pool = MemoryPool(config.int("queued.max.request.bytes"))
    names = tuple(li.name for li in listeners)
    registry = ConnectionRegistry(lambda: connection_settings(config, names, inter_name))
    registry.quotas = broker.quotas  # the ip entities' connection_creation_rate
    dispatcher = Dispatcher(broker)
    broker.connection_registry = registry
    for listener in listeners:
        server = KafkaServer(
            dispatcher.measured if dispatcher.stats is not None else dispatcher,
            listener.host,
            listener.port,
            config.int("socket.request.max.bytes"),
            use_sendfile=sendfile and not listener.uses_tls,  # TLS encrypts in user space
            pool=pool,
            registry=registry,
            listener=listener,
            security=security.for_listener(listener),
        )
        try:
            _, port = await server.start()
        except OSError as exc:
            log.error("cannot listen on %s: %s", listener.url(), exc)
            for started_server in servers:
                await started_server.stop()
            await broker.stop()
            raise SystemExit(1) from None
        servers.append(server)
        bound.append(with_bound_port(listener, port))
    if hooks is not None:
        dispatcher.faults = hooks.faults
    broker.listeners = bound
    inter = next(li for li in bound if li.name == inter_name)
    broker.listen = Endpoint(inter.host, inter.port)
    broker.advertise = Endpoint(inter.advertised_host, inter.advertised_port)
    follower = None
    if cluster is not None:
        from moldau.broker.cluster import join_cluster
        from moldau.metastore.store import BrokerIdInUseError

        try:
            follower = await join_cluster(broker)
        except BrokerIdInUseError as exc:
            log.error("refusing to start: %s", exc)
            for server in servers:
                await server.stop()
            await broker.stop()
            raise SystemExit(1) from None
        log.info(
            "joined cluster %s as broker %d; controller is %d",
            cluster, broker.node_id, broker.controller_id(),
        )
    readiness.serving = True
    if hooks is None:
        quiet_garbage_collector()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    else:  # embedded in a test process: its collector and signals are not ours to change
        stop = hooks.stop
    log.info(
        "Moldau broker %d listening on %s (advertised as %s), data in %s, started in %.0f ms",
        broker.node_id,
        ", ".join(li.url() for li in bound),
        ", ".join(f"{li.name}://{li.advertised_host}:{li.advertised_port}" for li in bound),
        data_dir.resolve(),
        (time.perf_counter() - started) * 1000,
    )
    if hooks is not None:
        hooks.started(broker, servers)
    await stop.wait()
    if hooks is not None and hooks.crash:
        if http is not None:
            await http.stop()
        await _crash(broker, servers, follower)
        return
    log.info("shutting down")
    readiness.shutting_down = True
    if follower is not None:
        from moldau.broker.shutdown import controlled_shutdown

        await controlled_shutdown(broker)  # still serving: leadership moves away first
    for server in servers:
        await server.stop()
    if follower is not None:
        await follower.stop()
    await broker.stop()
    if http is not None:
        await http.stop()
    log.info("stopped cleanly")


@dataclass
class ServeHooks:
    """How an embedded broker (:mod:`moldau.testing`) is told to stop, and learns what
    it runs: ``started(broker, servers)`` once it listens; ``faults`` goes to the
    dispatcher; with ``crash`` set when ``stop`` is, the broker stops as if killed."""

    stop: asyncio.Event
    started: Callable[[Broker, list[KafkaServer]], None]
    faults: object = None
    crash: bool = False


async def _crash(broker: Broker, servers: list[KafkaServer], follower: object) -> None:
    """Stop like a killed process: connections cut, no controlled shutdown, no fsync,
    checkpoint or clean-shutdown marker. What the kernel would release is let go (the
    data directory's lock, the files, the metadata store's connection), and the log
    cleaner's thread ends, so that the test process can start the broker again."""
    for server in servers:
        with contextlib.suppress(Exception):
            await server.stop()  # listening sockets and accept loops
        for connection in list(server.registry.connections.values()):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
    with contextlib.suppress(Exception):
        await broker.store.close()
    if broker.log_cleaner is not None:
        await asyncio.to_thread(broker.log_cleaner.shutdown)
    for _, _, partition_log in list(broker.log_manager.logs()):
        with contextlib.suppress(Exception):
            partition_log.close()  # handles dropped, nothing fsynced
    broker.log_manager.unlock()
    log.info("crashed on purpose (moldau.testing)")


def quiet_garbage_collector() -> None:
    """Keep CPython's full collections off the request path.

    The objects of start-up (modules, generated codecs; with ``--cluster`` also grpc and
    protobuf: about 30,000) live as long as the process, yet every full collection
    scanned them all: a leader serving acks=all at 5,000 msg/s ran one every 2-5 s, and
    each paused the event loop for 30-100 ms on this shared machine. Frozen, they are
    out of the collector's sight; a larger young generation (7,000 allocations instead of
    700) lets a request's objects die young instead of being promoted while it waits for
    replication. Measured: no full collection left in that run.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)


def inter_broker_sasl(config: BrokerConfig, listener: str) -> tuple[str, str, str]:
    """(mechanism, username, password) this broker authenticates with on the
    inter-broker listener: ``sasl.mechanism.inter.broker.protocol`` and the
    ``username``/``password`` options of that mechanism's JAAS config there."""
    from moldau.security.jaas import parse_jaas

    mechanism = str(config.for_listener(listener, "sasl.mechanism.inter.broker.protocol")).upper()
    if mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ValueError(f"sasl.mechanism.inter.broker.protocol {mechanism}: brokers authenticate to each other "
                         "with PLAIN or SCRAM-SHA-256/512")
    jaas = config.for_listener(listener, "sasl.jaas.config", mechanism)
    options: dict[str, str] = {}
    for entry in parse_jaas(str(jaas)) if jaas else []:
        options.update(entry.options)
    if "username" not in options or "password" not in options:
        raise ValueError(f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config needs username "
                         "and password for the broker's own connections")
    return mechanism, options["username"], options["password"]


def configured_listeners(
    config: BrokerConfig, listen: Endpoint, advertise: Endpoint | None
) -> tuple[list[Listener], str]:
    """Kafka's ``listeners`` when set; else ``--listen`` (and ``--advertise``) as the one
    PLAINTEXT listener. Returns the listeners and the inter-broker listener's name."""
    if not config.is_set("listeners"):
        adv = advertise or listen
        return [Listener("PLAINTEXT", "PLAINTEXT", listen.host, listen.port, adv.host, adv.port)], "PLAINTEXT"
    return resolve_listeners(
        str(config["listeners"]),
        config["advertised.listeners"],  # type: ignore[arg-type]
        str(config["listener.security.protocol.map"]),
        config["inter.broker.listener.name"],  # type: ignore[arg-type]
        str(config["security.inter.broker.protocol"]),
    )


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


def connection_settings(
    config: BrokerConfig, listener_names: tuple[str, ...] = (), inter_broker: str | None = None
) -> ConnectionSettings:
    """The connection limits as they stand (dynamic broker configs included); each
    listener's creation rate is its ``listener.name.<l>.`` value, else the broker's."""
    return ConnectionSettings(
        max_connections=config.int("max.connections"),
        max_per_ip=config.int("max.connections.per.ip"),
        per_ip_overrides=str(config["max.connections.per.ip.overrides"] or ""),
        max_idle_ms=config.int("connections.max.idle.ms"),
        max_creation_rate=config.int("max.connection.creation.rate"),
        listener_creation_rates={
            name: int(config.for_listener(name, "max.connection.creation.rate"))  # type: ignore[call-overload]
            for name in listener_names
        },
        listener_max_connections={
            name: int(config.for_listener(name, "max.connections"))  # type: ignore[call-overload]
            for name in listener_names
            if config.is_set(f"listener.name.{name.lower()}.max.connections")
        },
        protected_listener=inter_broker,
        listener_count=max(1, len(listener_names)),
        quota_samples=config.int("quota.window.num"),
        quota_window_s=float(config.int("quota.window.size.seconds")),
    )


def run(
    config: BrokerConfig,
    data_dir: Path,
    listen: Endpoint,
    advertise: Endpoint | None,
    started: float,
    loop: str = "asyncio",
    cluster: str | None = None,
) -> None:
    """Run the broker on the chosen event loop (uvloop serves small requests faster,
    the default loop has native sendfile for large fetches)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(serve(config, data_dir, listen, advertise, started, cluster))
    else:
        asyncio.run(serve(config, data_dir, listen, advertise, started, cluster))
