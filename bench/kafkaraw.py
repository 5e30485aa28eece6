"""Just enough of the Kafka wire protocol to probe a broker without a client library.

The bench uses it to time start-up (first answered ApiVersions) and to ask whether a
broker advertises the consumer-group APIs before running the group workload. Written
from the protocol guide: request header v1, ApiVersions v0, FindCoordinator v0.
"""

from __future__ import annotations

import socket
import struct
import time

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 18: "ApiVersions",
}
GROUP_APIS = (10, 11, 12, 13, 14)


def _request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    client = b"moldau-bench"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        out += chunk
    return bytes(out)


def _roundtrip(host: str, port: int, frame: bytes, timeout: float) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(frame)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        return _recv_exact(sock, size)


def api_versions(host: str, port: int, timeout: float = 1.0) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: {api_key: (min_version, max_version)}; raises if not answered."""
    body = _roundtrip(host, port, _request(18, 0, 7, b""), timeout)
    (correlation_id, error, count) = struct.unpack_from(">ihi", body, 0)
    if correlation_id != 7:
        raise ValueError("correlation id mismatch")
    if error != 0:
        raise ValueError(f"ApiVersions error {error}")
    out = {}
    pos = 10
    for _ in range(count):
        key, lo, hi = struct.unpack_from(">hhh", body, pos)
        pos += 6
        out[key] = (lo, hi)
    return out


def find_coordinator(host: str, port: int, group: str, timeout: float = 1.0) -> int:
    """FindCoordinator v0 for a group; returns the error code (0 = found)."""
    g = group.encode()
    body = _roundtrip(host, port, _request(10, 0, 9, struct.pack(">h", len(g)) + g), timeout)
    (correlation_id, error) = struct.unpack_from(">ih", body, 0)
    return error


def wait_answering(host: str, port: int, deadline_s: float, alive=lambda: True) -> float | None:
    """Poll with ApiVersions until answered; the perf_counter time of the answer, or None."""
    end = time.perf_counter() + deadline_s
    while time.perf_counter() < end and alive():
        try:
            api_versions(host, port, timeout=0.5)
            return time.perf_counter()
        except (OSError, ValueError, struct.error):
            time.sleep(0.002)
    return None
