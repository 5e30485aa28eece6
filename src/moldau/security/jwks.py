"""Where OAUTHBEARER's signing keys come from: ``sasl.oauthbearer.jwks.endpoint.url``.

As Kafka's two verification-key resolvers do it:

* a file (``file:/path``, or a bare path) is read once, when the listener is set up;
* an ``http://`` or ``https://`` endpoint (an identity provider's ``jwks_uri``) is
  fetched when the listener is set up and again every
  ``sasl.oauthbearer.jwks.endpoint.refresh.ms`` (default one hour); a token whose
  ``kid`` is not among the keys asks for an early refresh (the provider may have rotated
  its keys), at most once per ``sasl.oauthbearer.jwks.endpoint.retry.backoff.ms``, and
  failed fetches are retried with that backoff doubling up to
  ``sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms``. Until a fetch has succeeded,
  every signed token is refused.

Fetches run in a short-lived worker thread started by the validation that finds the
keys due (there is no thread to stop: an idle listener fetches nothing), so the event
loop never waits on the network; a token is checked against the keys as they are at
that moment (Kafka's RefreshingHttpsJwks answers a missing ``kid`` the same way: the
token is refused, the refresh goes on behind it).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

#: seconds a fetch of the endpoint may take
FETCH_TIMEOUT_S = 10.0
#: the most a JWKS document may weigh (a provider's has a handful of keys)
MAX_JWKS_BYTES = 1 << 20


def _parse(text: str | bytes) -> list[Any]:
    """The usable keys of a JWKS document (an empty set is a valid answer: every key
    withdrawn, every token refused)."""
    import json

    import jwt

    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    if not document["keys"]:
        return []
    return list(jwt.PyJWKSet.from_dict(document).keys)


class JwksSource:
    """The JSON Web Key Set of one listener; :meth:`keys` gives it as it stands."""

    def __init__(
        self,
        url: str,
        refresh_ms: int = 3_600_000,
        backoff_ms: int = 100,
        backoff_max_ms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parsed = urlparse(url)
        self.url = url
        self.remote = parsed.scheme in ("http", "https")
        if not self.remote and parsed.scheme not in ("", "file"):
            raise ValueError(f"sasl.oauthbearer.jwks.endpoint.url: unsupported scheme {parsed.scheme!r} "
                             "(file, http or https)")
        self.refresh_s = refresh_ms / 1000
        self.backoff_s = backoff_ms / 1000
        self.backoff_max_s = max(backoff_max_ms, backoff_ms) / 1000
        self.clock = clock
        self._keys: list[Any] | None = None
        self._lock = threading.Lock()
        self._fetching = False
        self._failures = 0
        self._next_refresh = 0.0
        self._next_expedite = 0.0
        self.fetches = 0
        if not self.remote:
            import jwt

            try:
                self._keys = _parse(Path(unquote(parsed.path)).read_text())
            except (OSError, jwt.PyJWTError, ValueError) as exc:
                raise ValueError(f"sasl.oauthbearer.jwks.endpoint.url: {exc}") from None
            return
        try:  # at set-up, before the listener serves: a failure is retried, not fatal
            self._fetch()
        except Exception as exc:  # noqa: BLE001 - any failure of the provider is retried
            self._failed(exc)

    def keys(self, kid: str | None = None) -> list[Any] | None:
        """The keys now (None before a first successful fetch); starts a refresh in
        the background when one is due, or early when ``kid`` is not in the set."""
        if self.remote:
            now = self.clock()
            keys = self._keys
            missing = kid is not None and (keys is None or all(k.key_id != kid for k in keys))
            if now >= self._next_refresh or (missing and now >= self._next_expedite):
                self._refresh_in_background()
        return self._keys

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._fetching:
                return
            self._fetching = True
            self._next_expedite = self.clock() + self.backoff_s
        threading.Thread(target=self._refresh, name="jwks-refresh", daemon=True).start()

    def _refresh(self) -> None:
        try:
            self._fetch()
        except Exception as exc:  # noqa: BLE001 - any failure of the provider is retried
            self._failed(exc)
        finally:
            with self._lock:
                self._fetching = False

    def _fetch(self) -> None:
        context = ssl.create_default_context() if self.url.startswith("https:") else None
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S, context=context) as answer:  # noqa: S310
            body = answer.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
        keys = _parse(body)
        self._keys = keys
        self._failures = 0
        self._next_refresh = self.clock() + self.refresh_s
        self.fetches += 1
        log.info("JWKS from %s: %d key(s)", self.url, len(keys))

    def _failed(self, exc: Exception) -> None:
        delay = min(self.backoff_s * (2 ** self._failures), self.backoff_max_s)
        self._failures += 1
        self._next_refresh = self.clock() + delay
        log.warning("cannot fetch the JWKS from %s (%s); retrying in %.1f s", self.url, exc, delay)
