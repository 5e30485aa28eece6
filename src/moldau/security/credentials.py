"""The SCRAM credentials a SASL listener checks, read from the metadata store.

The store (local file or etcd) is the source of truth, written by
AlterUserScramCredentials; its backends keep what they hold in memory (etcd's through
its watch, so a credential set through any broker is known to all), so a lookup at
authentication costs no I/O.
"""

from __future__ import annotations

from typing import Any

from moldau.security.scram import ScramCredential


class ScramCredentials:
    def __init__(self, store: Any = None) -> None:
        self.store = store  # set by the runner once the broker (and its store) exists

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        if self.store is None:
            return None
        stored = self.store.scram_credentials().get(user, {}).get(mechanism)
        return None if stored is None else ScramCredential.from_json(stored)
