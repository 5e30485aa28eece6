"""The principal of a TLS client certificate: Kafka's ``ssl.principal.mapping.rules``.

Kafka names an SSL client by its certificate's subject distinguished name in RFC 2253
form (``CN=alice,OU=eng,O=acme``: the last RDN of the certificate first), then applies
the rules in order; the first that matches gives the name. A rule is
``RULE:pattern/replacement/[LU]`` (Java regex, ``$1`` for groups; L or U folds the
result's case) and ``DEFAULT`` keeps the DN as it is. No rule matching is an error
in Kafka (the connection fails); so it is here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moldau.security.principal import ANONYMOUS, USER_TYPE, KafkaPrincipal

_RULES = re.compile(r"\s*(DEFAULT|RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU]?))\s*(?:,|$)")
_ATTRIBUTES = {
    "commonName": "CN", "organizationalUnitName": "OU", "organizationName": "O", "localityName": "L",
    "stateOrProvinceName": "ST", "countryName": "C", "streetAddress": "STREET", "domainComponent": "DC",
    "userId": "UID",
}
_SPECIAL = re.compile(r'([,+"\\<>;])')


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, dn: str) -> str | None:
        if self.pattern is None:
            return dn
        if not self.pattern.fullmatch(dn):
            return None
        name = self.pattern.sub(self.replacement, dn, count=1)
        return name.lower() if self.case == "L" else name.upper() if self.case == "U" else name


def parse_rules(text: str) -> list[_Rule]:
    """Kafka's rule syntax; ValueError for text that is not rules."""
    rules: list[_Rule] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _RULES.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"ssl.principal.mapping.rules: invalid rule at {text[pos:]!r}")
        if match.group(1) == "DEFAULT":
            rules.append(_Rule(None))
        else:
            pattern = match.group(2).replace("\\/", "/")
            replacement = re.sub(r"\$(\d)", r"\\\1", match.group(3).replace("\\/", "/"))
            try:
                rules.append(_Rule(re.compile(pattern), replacement, match.group(4)))
            except re.error as exc:
                raise ValueError(f"ssl.principal.mapping.rules: {exc}") from None
        pos = match.end()
    return rules or [_Rule(None)]


def rfc2253(subject: tuple) -> str:  # type: ignore[type-arg]
    """The DN of ``ssl.getpeercert()['subject']`` as Java's X500Principal.getName() has it."""
    rdns = []
    for rdn in reversed(subject):
        parts = [_ATTRIBUTES.get(k, k) + "=" + _SPECIAL.sub(r"\\\1", v) for k, v in rdn]
        rdns.append("+".join(parts))
    return ",".join(rdns)


class SslPrincipalMapper:
    """Certificate -> KafkaPrincipal for one listener."""

    def __init__(self, rules: str) -> None:
        self.rules = parse_rules(rules)

    def principal(self, peercert: dict | None) -> KafkaPrincipal:  # type: ignore[type-arg]
        """The client's principal; ANONYMOUS without a certificate. ValueError when no
        rule matches (the connection is refused, as Kafka does)."""
        if not peercert or "subject" not in peercert:
            return ANONYMOUS
        dn = rfc2253(peercert["subject"])
        for rule in self.rules:
            name = rule.apply(dn)
            if name is not None:
                return KafkaPrincipal(USER_TYPE, name)
        raise ValueError(f"no ssl.principal.mapping.rules rule matches {dn!r}")
