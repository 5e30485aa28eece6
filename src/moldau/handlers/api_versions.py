"""ApiVersions (key 18): what this broker serves, derived from the handler table.

Share groups are gated as Kafka 4.2 gates them, by the ``share.version`` feature: with
``group.share.enable`` (Moldau's switch for it, on by default) the feature is
finalized at level 1 and the share APIs are advertised; without it the feature is
at level 0 and they are not, so clients do not try them.

KIP-714 client telemetry is advertised only with ``moldau.client.telemetry.enable``:
Kafka lists it only when a client-telemetry metrics reporter is installed, and
librdkafka, once it sees it, asks for a subscription and logs about it at info level.
"""

from __future__ import annotations

from typing import Any

from moldau.handlers.registry import api_versions_response, handles
from moldau.protocol.messages import ALL_APIS

#: ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch, ShareAcknowledge, the share state and offsets APIs
SHARE_API_KEYS = frozenset({76, 77, 78, 79, 83, 84, 85, 86, 87, 90, 91, 92})
SHARE_VERSION = "share.version"
#: GetTelemetrySubscriptions, PushTelemetry: advertised only with ``moldau.client.telemetry.enable``
TELEMETRY_API_KEYS = frozenset({71, 72})


@handles(ALL_APIS[18], 0, 4)
def api_versions(broker: Any, header: Any, request: Any) -> Any:
    response = api_versions_response()
    share_enabled = broker.config.bool("group.share.enable")
    hidden = set() if share_enabled else set(SHARE_API_KEYS)
    if not broker.config.bool("moldau.client.telemetry.enable"):
        hidden |= TELEMETRY_API_KEYS
    if hidden:
        response.api_keys = [k for k in response.api_keys if k.api_key not in hidden]
    if header.api_version >= 3:
        Supported = type(response).of("supported_features")
        Finalized = type(response).of("finalized_features")
        response.supported_features = [Supported(name=SHARE_VERSION, min_version=0, max_version=1)]
        response.finalized_features_epoch = 0
        response.finalized_features = [
            Finalized(name=SHARE_VERSION, max_version_level=1 if share_enabled else 0,
                      min_version_level=1 if share_enabled else 0)
        ]
    return response
