"""The control surface of a broker under test: the operations a test may ask for, run
on the broker's own event loop, and the channel that carries them to a broker process.

Theory of operation: :class:`Controls` holds what ``moldau.broker.runner.serve`` hands
an embedded broker once it listens (the broker, its servers) and the
:class:`~moldau.testing.faults.FaultInjector` its dispatcher consults. Each operation is
a method; :meth:`Controls.call` runs one by name with JSON arguments and returns a JSON
value. A broker in a thread of the test process is called with
``asyncio.run_coroutine_threadsafe``; a broker process (``python -m
moldau.testing.process``) serves the same calls on a **Unix socket** in its work
folder, one JSON line per request and answer.

Why a Unix socket: it is reachable only through the file system (mode 0600 in a
private temp folder), so no other user and no network peer can inject faults; it needs
no port (no race for a free one, nothing for a firewall) and it never exists in a
broker started by ``moldau serve``: only the test entry point opens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from moldau.testing.faults import FaultInjector


class ControlError(RuntimeError):
    """An operation the broker refused or failed; the message says why."""


class Controls:
    """Test operations on one running broker (call them on its event loop)."""

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults
        self.broker: Any = None
        self.servers: list[Any] = []

    def started(self, broker: Any, servers: list[Any]) -> None:
        self.broker = broker
        self.servers = servers

    async def call(self, op: str, args: dict[str, Any]) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise ControlError(f"unknown operation {op!r}")
        result = fn(**args)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    # -- operations -------------------------------------------------------------------

    def op_push_errors(self, api: str | int, errors: list[str | int], delay_ms: float = 0) -> None:
        self.faults.push_errors(api, errors, delay_ms)

    def op_clear_errors(self, api: str | int | None = None) -> None:
        self.faults.clear_errors(api)

    def op_set_latency(self, api: str | int | None, ms: float) -> None:
        self.faults.set_latency(api, ms)

    def op_reset(self) -> None:
        """No injected error, latency or pause left."""
        self.faults.errors.clear()
        self.faults.latency_s.clear()
        self.faults.resume()

    def op_pause(self) -> None:
        self.faults.pause()

    def op_resume(self) -> None:
        self.faults.resume()

    def op_drop_connections(self) -> int:
        """Cut every client connection (RST, as a dead broker's peer sees it)."""
        dropped = 0
        for server in self.servers:
            for connection in list(server.registry.connections.values()):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
                    dropped += 1
        return dropped

    async def op_set_down(self) -> int:
        """Stop listening and reset every connection (``rd_kafka_mock_broker_set_down``):
        clients see connections refused until :meth:`op_set_up`; the broker keeps its
        state, as a host cut off the network would. How many connections were reset."""
        dropped = self.op_drop_connections()
        for server in self.servers:
            await server.stop()
        return dropped + self.op_drop_connections()  # any accepted meanwhile

    async def op_set_up(self) -> None:
        """Listen again on the same ports (``rd_kafka_mock_broker_set_up``)."""
        for server in self.servers:
            if not server.is_serving:
                await server.start()

    def op_counts(self) -> dict[str, dict[str, int]]:
        return {"seen": {str(k): v for k, v in self.faults.seen.items()},
                "injected": {str(k): v for k, v in self.faults.injected.items()}}

    def op_rebalance(self, group_id: str) -> dict[str, Any]:
        """Make a consumer group rebalance now, as a new member joining would: a classic
        group goes to PreparingRebalance (members see REBALANCE_IN_PROGRESS on their next
        heartbeat and join again); a KIP-848 group gets a new group epoch and target
        assignment, which members take up on their next heartbeat."""
        coordinator = self.broker.group_coordinator
        group = coordinator.groups.get(group_id)
        if group is None:
            raise ControlError(f"group {group_id!r} is not on this broker (not its coordinator, or no group)")
        if hasattr(group, "group_epoch"):
            coordinator.consumer._bump(group)
            coordinator.consumer._maybe_new_target(group)
            coordinator.consumer._flush()
            return {"protocol": "consumer", "epoch": int(group.group_epoch)}
        coordinator.classic.prepare_rebalance(group, "forced by moldau.testing")
        return {"protocol": "classic", "generation": int(group.generation_id)}

    async def op_move_leader(self, topic: str, partition: int, broker_id: int) -> int:
        """Make ``broker_id`` (an in-sync replica) the partition's leader; its new epoch."""
        from moldau.controller import reassignment
        from moldau.controller.operations import change_partition, live_ids
        from moldau.protocol.errors import KafkaError

        live = live_ids(self.broker)

        def decide(state: Any) -> Any:
            if broker_id not in state.isr or broker_id not in live:
                raise ControlError(f"broker {broker_id} is not a live in-sync replica of {topic}-{partition} "
                                   f"(isr {state.isr})")
            if state.leader == broker_id:
                return None
            return reassignment._build(state, list(state.replicas), list(state.isr), state.adding_replicas,
                                       state.removing_replicas, live, leader=broker_id)

        try:
            new = await change_partition(self.broker, topic, partition, decide)
        except KafkaError as exc:
            raise ControlError(f"{exc.code.name}: {exc}") from None
        if new is None:
            return int(self.broker.topics[topic].partitions[partition].leader_epoch)
        return int(new.leader_epoch)

    def op_leader(self, topic: str, partition: int) -> int:
        record = self.broker.topics.get(topic)
        if record is None or partition not in record.partitions:
            raise ControlError(f"unknown partition {topic}-{partition}")
        return int(record.partitions[partition].leader)


# -- the channel to a broker process -------------------------------------------------------

async def serve_control(controls: Controls, path: Path) -> asyncio.AbstractServer:
    """Answer JSON-line calls on the Unix socket ``path`` (created 0600)."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                try:
                    answer = {"ok": await controls.call(request["op"], request.get("args", {}))}
                except Exception as exc:  # noqa: BLE001 - every failure goes back to the test
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(session, path=str(path))
    finally:
        os.umask(old)
    return server


class ControlClient:
    """The test side of the Unix socket: ``call(op, **args)``, one at a time."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None

    def call(self, op: str, **args: Any) -> Any:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(self.timeout)
            self._sock.connect(str(self.path))
            self._file = self._sock.makefile("rb")
        try:
            self._sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
            line = self._file.readline()
        except OSError:
            self.close()
            raise
        if not line:
            self.close()
            raise ControlError("the broker closed the control channel")
        answer = json.loads(line)
        if "error" in answer:
            raise ControlError(answer["error"])
        return answer["ok"]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None
