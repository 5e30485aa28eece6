"""The ``moldau`` command line."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

import click

from moldau import __version__


def _endpoint(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint=option)
    return host or "0.0.0.0", int(port)


class LazyGroup(click.Group):
    """A group whose subcommands named in ``lazy`` are imported only when run (or listed
    in ``--help``): the client subcommands and confluent-kafka stay out of ``moldau serve``,
    which starts exactly as fast as before they existed."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


#: the client subcommands (any Kafka cluster, through confluent-kafka): module:attribute
CLIENT_COMMANDS = {
    "topic": "moldau.cli.topics:topic",
    "produce": "moldau.cli.produce:produce",
    "consume": "moldau.cli.consume:consume",
    "group": "moldau.cli.groups:group",
}


@click.group(cls=LazyGroup, lazy=CLIENT_COMMANDS)
@click.version_option(__version__, prog_name="moldau")
def main() -> None:
    """Moldau: a Kafka-compatible event streaming platform."""


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("moldau-data"),
              show_default=True, help="Where partition data and metadata live.")
@click.option("--listen", default="127.0.0.1:9092", show_default=True, help="HOST:PORT to accept clients on.")
@click.option("--advertise", default=None, help="HOST:PORT clients are told to connect to (default: --listen).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A Kafka server.properties file.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any broker property by its Kafka name; repeatable; wins over --config.")
@click.option("--loop", "loop_name", default="asyncio", show_default=True, envvar="MOLDAU_LOOP",
              type=click.Choice(["asyncio", "uvloop"]),
              help="Event loop: asyncio (sendfile for fetches) or uvloop (faster small requests).")
@click.option("--broker-id", type=click.IntRange(min=0), default=None,
              help="This broker's id (node.id / broker.id); unique in a cluster.")
@click.option("--rack", default=None, help="This broker's rack (broker.rack), for rack-aware replica placement.")
@click.option("--cluster", default=None, metavar="etcd://HOST:PORT[,HOST:PORT...]",
              help="Join the cluster whose metadata lives in this etcd (default: a single broker).")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--log-format", default=None, type=click.Choice(["text", "json"]),
              help="Log lines as text or one JSON object each (moldau.log.format; default text).")
@click.option("--http", "http_listener", default=None, metavar="HOST:PORT",
              help="Serve /metrics, /healthz and /readyz over HTTP here (moldau.http.listener).")
def serve(data_dir: Path, listen: str, advertise: str | None, config_file: Path | None,
          settings: tuple[str, ...], loop_name: str, broker_id: int | None, rack: str | None,
          cluster: str | None, log_level: str, log_format: str | None, http_listener: str | None) -> None:
    """Run one broker."""
    started = time.perf_counter()
    from moldau.log_format import configure_logging

    configure_logging(log_level, log_format or "text")
    from moldau.broker.broker import Endpoint
    from moldau.broker.runner import run
    from moldau.config.broker import BrokerConfig, read_properties

    raw: dict[str, str] = {}
    try:
        if config_file is not None:
            raw.update(read_properties(config_file))
        for item in settings:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
            raw[key.strip()] = value.strip()
        if broker_id is not None:
            raw["node.id"] = raw["broker.id"] = str(broker_id)
        elif "broker.id" in raw and "node.id" not in raw:
            raw["node.id"] = raw["broker.id"]  # Kafka's older name for the same id
        if rack is not None:
            raw["broker.rack"] = rack
        if http_listener is not None:
            _endpoint(http_listener, "--http")
            raw["moldau.http.listener"] = http_listener
        if log_format is not None:
            raw["moldau.log.format"] = log_format
        config = BrokerConfig(raw)
        if log_format is None and config["moldau.log.format"] != "text":
            configure_logging(log_level, str(config["moldau.log.format"]))
        if cluster is not None:
            from moldau.metastore.etcd import EtcdTarget

            EtcdTarget.parse(cluster)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    listen_host, listen_port = _endpoint(listen, "--listen")
    adv = _endpoint(advertise, "--advertise") if advertise else None
    if adv is None and listen_host in ("0.0.0.0", "::"):
        import socket

        adv = (socket.gethostname(), listen_port)
    run(config, data_dir, Endpoint(listen_host, listen_port), Endpoint(*adv) if adv else None, started,
        loop_name, cluster)


@main.group(cls=LazyGroup, lazy={"info": "moldau.cli.info:cluster_info"}, invoke_without_command=True)
@click.option("--brokers", type=click.IntRange(min=1, max=64), default=3, show_default=True,
              help="How many brokers (ids 1..N).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("moldau-cluster"),
              show_default=True, help="etcd's and every broker's data, and their logs (kept between runs).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=9092, show_default=True,
              help="Broker 1 listens on 127.0.0.1:PORT, broker i on PORT+i-1 (0: free ports).")
@click.option("--etcd-port", type=click.IntRange(min=0, max=65535), default=0,
              help="etcd's client port on 127.0.0.1 (default: a free one).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A broker property for every broker; repeatable.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.pass_context
def cluster(ctx: click.Context, brokers: int, data_dir: Path, port: int, etcd_port: int,
            settings: tuple[str, ...], log_level: str) -> None:
    """Run a local cluster: etcd plus N brokers, until Ctrl-C.

    `moldau cluster info -b HOST:PORT` describes any cluster instead.
    """
    if ctx.invoked_subcommand is not None:
        return  # `moldau cluster info ...` asks any cluster; its options are its own
    from moldau.cli.local_cluster import ClusterError, LocalCluster, run_local_cluster

    raw: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        raw[key.strip()] = value.strip()
    from moldau.config.broker import BrokerConfig

    try:
        BrokerConfig(raw)  # the brokers would refuse it: say so before starting anything
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if port and port + brokers - 1 > 65535:
        raise click.BadParameter(f"ports {port}..{port + brokers - 1} do not fit", param_hint="--port")
    try:
        local = LocalCluster(brokers, data_dir, port=port, etcd_port=etcd_port, settings=raw,
                             log_level=log_level.upper())
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(run_local_cluster(local))


if __name__ == "__main__":
    main()
