"""A stand-in identity provider's ``jwks_uri`` for tests: a real HTTP server on
127.0.0.1 serving a JSON Web Key Set that a test may rotate or break. Shared by the
JWKS source's unit tests (tests/security/test_jwks.py) and the OAUTHBEARER listener's
real-client tests (tests/integration/test_security.py)."""

from __future__ import annotations

import http.server
import json
import threading


class JwksProvider:
    """Serves ``{"keys": keys}`` with HTTP ``status`` at ``url``; counts the ``hits``."""

    def __init__(self, keys: list[dict] | None = None) -> None:
        self.keys: list[dict] = list(keys or [])
        self.status = 200
        self.hits = 0
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                provider.hits += 1
                body = json.dumps({"keys": provider.keys}).encode()
                self.send_response(provider.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
