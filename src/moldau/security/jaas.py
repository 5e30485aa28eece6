"""Kafka's JAAS configuration syntax, as far as the broker reads it.

``org.apache.kafka.common.security.plain.PlainLoginModule required
username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice";``
gives the login module, its flag and its options; for PLAIN, each ``user_<name>``
option is a user the broker accepts with that password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ENTRY = re.compile(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*")
_OPTION = re.compile(r'\s*([\w.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)\s*')


@dataclass
class JaasEntry:
    login_module: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def parse_jaas(text: str) -> list[JaasEntry]:
    """Every ``LoginModule flag key=value ...;`` of a ``sasl.jaas.config``; ValueError
    for what is not that syntax."""
    entries, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _ENTRY.match(text, pos)
        if match is None:
            raise ValueError(f"sasl.jaas.config: expected 'LoginModule required ...;' at {text[pos:pos + 40]!r}")
        entry = JaasEntry(match.group(1), match.group(2))
        pos = match.end()
        while pos < len(text) and text[pos] != ";":
            option = _OPTION.match(text, pos)
            if option is None:
                raise ValueError(f"sasl.jaas.config: expected key=value at {text[pos:pos + 40]!r}")
            value = option.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            entry.options[option.group(1)] = value
            pos = option.end()
        if pos >= len(text):
            raise ValueError("sasl.jaas.config: an entry must end with ';'")
        pos += 1
        entries.append(entry)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return entries


def plain_users(text: str) -> dict[str, str]:
    """The ``user_<name>="<password>"`` options of a PlainLoginModule entry."""
    users: dict[str, str] = {}
    for entry in parse_jaas(text):
        for key, value in entry.options.items():
            if key.startswith("user_"):
                users[key[len("user_") :]] = value
    return users
