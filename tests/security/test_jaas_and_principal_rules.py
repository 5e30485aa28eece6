"""JAAS parsing (PLAIN users) and ssl.principal.mapping.rules."""

from __future__ import annotations

import pytest

from moldau.security.jaas import parse_jaas, plain_users
from moldau.security.principal import ANONYMOUS, KafkaPrincipal
from moldau.security.ssl_principal import SslPrincipalMapper, rfc2253

SUBJECT = ((("organizationName", "moldau"),), (("organizationalUnitName", "eng"),), (("commonName", "Alice"),))


def test_plain_users_from_kafka_jaas() -> None:
    text = ('org.apache.kafka.common.security.plain.PlainLoginModule required\n'
            '  username="admin" password="admin-secret"\n'
            '  user_admin="admin-secret" user_alice="a \\"quoted\\" secret";')
    assert plain_users(text) == {"admin": "admin-secret", "alice": 'a "quoted" secret'}
    assert parse_jaas(text)[0].flag == "required"
    for bad in ("PlainLoginModule", "X required user_a=1", "X required user_a;b"):
        with pytest.raises(ValueError):
            parse_jaas(bad)


def test_dn_in_rfc2253_order() -> None:
    assert rfc2253(SUBJECT) == "CN=Alice,OU=eng,O=moldau"
    assert rfc2253(((("commonName", "a,b"),),)) == "CN=a\\,b"


def test_mapping_rules() -> None:
    cert = {"subject": SUBJECT}
    assert SslPrincipalMapper("DEFAULT").principal(cert) == KafkaPrincipal("User", "CN=Alice,OU=eng,O=moldau")
    assert SslPrincipalMapper("RULE:^CN=(.*?),OU=eng.*$/$1/L,DEFAULT").principal(cert) == KafkaPrincipal("User", "alice")
    assert SslPrincipalMapper("RULE:^CN=(.*?),OU=ops.*$/$1/,RULE:^CN=(.*?),.*$/$1/U").principal(cert).name == "ALICE"
    assert SslPrincipalMapper("DEFAULT").principal({}) == ANONYMOUS
    with pytest.raises(ValueError):  # no rule matches: Kafka refuses the connection
        SslPrincipalMapper("RULE:^CN=bob$/bob/").principal(cert)
    with pytest.raises(ValueError):
        SslPrincipalMapper("RULE:broken")
