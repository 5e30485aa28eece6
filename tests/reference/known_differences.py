"""Every known difference between Apache Kafka's and Moldau's answers in the differential
scenarios, with its reason; docs/differences-from-kafka.md says the same for readers.

Keys are ``"<scenario>: <observation>"`` (tests/reference/differential.py).
"""

from __future__ import annotations

KNOWN: dict[str, str] = {}

#: {api_key: reason} where ApiVersions' highest version differs
KNOWN_API_VERSIONS: dict[int, str] = {}
