"""Test certificates, made at run time with ``cryptography`` (never committed keys).

:func:`make_pki` writes into a folder: a CA, a broker certificate for 127.0.0.1 and
localhost signed by it (key and chain in one PEM file, as Kafka's PEM keystore), a
client certificate for ``CN=alice,OU=eng,O=moldau`` signed by it, and a second,
unrelated CA with a client certificate of its own (one the broker must refuse).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Pki:
    ca: Path  # the trusted CA's certificate
    broker_keystore: Path  # key + chain, unencrypted
    broker_keystore_encrypted: Path  # key encrypted with ``key_password``
    key_password: str
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by another CA
    other_client_key: Path
    other_ca: Path


def _name(**parts: str) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in reversed(list(parts.items()))])


def _cert(subject: x509.Name, key, issuer: x509.Name, issuer_key, ca: bool, san: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key, password: str | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(CN="moldau test CA")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = _cert(_name(CN="localhost", O="moldau"), broker_key, ca_name, ca_key, ca=False, san=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert(_name(CN="alice", OU="eng", O="moldau"), client_key, ca_name, ca_key, ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_name = _name(CN="another CA")
    other_ca = _cert(other_name, other_key, other_name, other_key, ca=True)
    mallory_key = ec.generate_private_key(ec.SECP256R1())
    mallory = _cert(_name(CN="mallory", O="moldau"), mallory_key, other_name, other_key, ca=False)
    paths = {
        "ca": _pem(ca),
        "broker.pem": _pem_key(broker_key) + _pem(broker) + _pem(ca),
        "broker-encrypted.pem": _pem_key(broker_key, "s3cret") + _pem(broker) + _pem(ca),
        "client.crt": _pem(client),
        "client.key": _pem_key(client_key),
        "mallory.crt": _pem(mallory),
        "mallory.key": _pem_key(mallory_key),
        "other-ca.crt": _pem(other_ca),
    }
    for name, data in paths.items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)
    return Pki(folder / "ca", folder / "broker.pem", folder / "broker-encrypted.pem", "s3cret",
               folder / "client.crt", folder / "client.key", folder / "mallory.crt", folder / "mallory.key",
               folder / "other-ca.crt")
