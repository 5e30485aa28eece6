"""ApiVersions (key 18): what this broker serves, derived from the handler table."""

from __future__ import annotations

from typing import Any

from moldau.handlers.registry import api_versions_response, handles
from moldau.protocol.messages import ALL_APIS


@handles(ALL_APIS[18], 0, 4)
def api_versions(broker: Any, header: Any, request: Any) -> Any:
    return api_versions_response()
