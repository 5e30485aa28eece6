"""TLS for a listener, from Kafka's ssl.* settings, through Python's ssl module.

Kafka's PEM keystore is one file (``ssl.keystore.location``) holding the private key
and the certificate chain, or the same two inline (``ssl.keystore.key`` and
``ssl.keystore.certificate.chain``); an encrypted key is opened with
``ssl.key.password``. The truststore (``ssl.truststore.location`` or inline
``ssl.truststore.certificates``) holds the CAs client certificates must chain to.
``ssl.client.auth``: none (no certificate asked), requested (asked, optional),
required (no certificate, no connection). ``ssl.enabled.protocols`` bounds the TLS
versions (TLSv1.2, TLSv1.3).

Python's ssl module loads certificate chains from files only, so inline PEM is written
to a private temporary file (mode 0600) for the moment of loading, then removed.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from typing import Any

_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


@contextlib.contextmanager
def _pem_file(text: str) -> Iterator[str]:
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:  # mkstemp creates it 0600
            f.write(text)
        yield path
    finally:
        os.unlink(path)


def server_context(get: Any) -> ssl.SSLContext:
    """A server-side context; ``get(key)`` reads a setting as it applies on the listener.
    ValueError (naming the key) for settings that cannot work."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = [str(v) for v in get("ssl.enabled.protocols") or []]
    known = [v for v in versions if v in _VERSIONS]
    if not known:
        raise ValueError("ssl.enabled.protocols: none of TLSv1.2, TLSv1.3 is enabled")
    context.minimum_version = min(_VERSIONS[v] for v in known)
    context.maximum_version = max(_VERSIONS[v] for v in known)
    password = get("ssl.key.password") or get("ssl.keystore.password")
    location, chain, key = get("ssl.keystore.location"), get("ssl.keystore.certificate.chain"), get("ssl.keystore.key")
    try:
        if location:
            context.load_cert_chain(str(location), password=password)
        elif chain and key:
            with _pem_file(f"{key}\n{chain}\n") as path:
                context.load_cert_chain(path, password=password)
        else:
            raise ValueError(
                "a TLS listener needs ssl.keystore.location, or ssl.keystore.key with "
                "ssl.keystore.certificate.chain (PEM)"
            )
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load the TLS keystore: {exc}") from None
    client_auth = str(get("ssl.client.auth") or "none")
    context.verify_mode = _CLIENT_AUTH[client_auth]
    truststore, inline = get("ssl.truststore.location"), get("ssl.truststore.certificates")
    try:
        if truststore:
            context.load_verify_locations(cafile=str(truststore))
        elif inline:
            context.load_verify_locations(cadata=str(inline))
        elif client_auth != "none":
            raise ValueError(f"ssl.client.auth={client_auth} needs a truststore (ssl.truststore.location)")
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot load the TLS truststore: {exc}") from None
    ciphers = get("ssl.cipher.suites")
    if ciphers:
        try:
            context.set_ciphers(":".join(ciphers))
        except ssl.SSLError as exc:
            raise ValueError(f"ssl.cipher.suites: {exc}") from None
    return context


def client_context(get: Any) -> ssl.SSLContext:
    """A client-side context for broker-to-broker connections on a TLS listener: trusts
    the truststore, presents the keystore (for mTLS)."""
    context = ssl.create_default_context()
    truststore, inline = get("ssl.truststore.location"), get("ssl.truststore.certificates")
    if truststore:
        context.load_verify_locations(cafile=str(truststore))
    elif inline:
        context.load_verify_locations(cadata=str(inline))
    if str(get("ssl.endpoint.identification.algorithm") or "").lower() != "https":
        context.check_hostname = False
    password = get("ssl.key.password") or get("ssl.keystore.password")
    location, chain, key = get("ssl.keystore.location"), get("ssl.keystore.certificate.chain"), get("ssl.keystore.key")
    if location:
        context.load_cert_chain(str(location), password=password)
    elif chain and key:
        with _pem_file(f"{key}\n{chain}\n") as path:
            context.load_cert_chain(path, password=password)
    return context
