"""``python -m moldau.testing.process``: a broker process with a test control socket.

What :class:`moldau.testing.Broker` runs with ``process=True`` (and every broker of a
:class:`moldau.testing.Cluster`): ``moldau serve`` plus the Unix socket of
:mod:`moldau.testing.control`, so that a test can SIGKILL, SIGSTOP and restart a real
process and still inject faults into it. ``moldau serve`` itself never opens it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(prog="python -m moldau.testing.process")
    parser.add_argument("--control", type=Path, required=True, help="the Unix socket to serve test calls on")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--cluster", default=None, help="etcd://HOST:PORT[/prefix]")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moldau.broker.broker import Endpoint
    from moldau.broker.runner import ServeHooks, quiet_garbage_collector, serve
    from moldau.config.broker import BrokerConfig
    from moldau.testing.control import Controls, serve_control
    from moldau.testing.faults import FaultInjector

    raw = dict(item.split("=", 1) for item in args.settings)
    if "broker.id" in raw and "node.id" not in raw:
        raw["node.id"] = raw["broker.id"]
    config = BrokerConfig(raw)
    host, _, port = args.listen.rpartition(":")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        controls = Controls(FaultInjector())
        servers: list[asyncio.AbstractServer] = []

        def on_started(broker: object, kafka_servers: list[object]) -> None:
            controls.started(broker, kafka_servers)
            quiet_garbage_collector()

            async def open_control() -> None:
                servers.append(await serve_control(controls, args.control))

            loop.create_task(open_control())

        await serve(config, args.data_dir, Endpoint(host, int(port)), None, started, args.cluster,
                    hooks=ServeHooks(stop, on_started, controls.faults))
        for server in servers:
            server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
