"""Security entries (ACLs, quotas) in etcd: one key each, seen by every broker's watch.
Cost: one etcd process for the module, ~1 s."""

from __future__ import annotations

import asyncio
import uuid

from moldau.metastore.etcd import EtcdTarget
from moldau.metastore.store import SecurityChanged

from .test_etcd import _close, _fresh_image, _next, _stores, etcd  # noqa: F401 - the module's etcd fixture


def test_security_entries_reach_other_brokers(etcd) -> None:  # noqa: F811
    target = EtcdTarget.parse(f"{etcd.url}/sec-{uuid.uuid4().hex[:8]}")

    async def scenario() -> None:
        writer, reader = await _stores(target, 2)
        try:
            changes = reader.watch()
            await writer.update_security("acls", {'[2,"t/x"]': "", "k2": ""})
            await writer.update_security("acls", {"k2": None})
            seen = [await _next(changes) for _ in range(3)]
            assert all(isinstance(c, SecurityChanged) for c in seen)
            assert {(c.key, c.value) for c in seen[:2]} == {('[2,"t/x"]', ""), ("k2", "")}
            assert (seen[2].key, seen[2].value) == ("k2", None)
            image = await _fresh_image(target)
            assert image.security == {"acls": {'[2,"t/x"]': ""}}
            assert (await writer.load()).security == {"acls": {'[2,"t/x"]': ""}}
        finally:
            await _close([writer, reader])

    asyncio.run(scenario())




def test_an_ip_quota_set_through_one_broker_is_enforced_by_another(etcd) -> None:  # noqa: F811
    from moldau.security.quotas import IP, QUOTA_KIND, ClientQuotas, entity_key

    target = EtcdTarget.parse(f"{etcd.url}/ipq-{uuid.uuid4().hex[:8]}")
    key = entity_key(((IP, "fd00::7"),))

    async def scenario() -> None:
        writer, reader = await _stores(target, 2)
        try:
            changes = reader.watch()
            await writer.update_security(QUOTA_KIND, {key: '{"connection_creation_rate": 5.0}'})
            seen = await _next(changes)
            assert isinstance(seen, SecurityChanged) and seen.key == key
            quotas = ClientQuotas()  # the other broker's, fed from its watch
            quotas.apply(seen.key, seen.value)
            assert quotas.ip_connection_rate("fd00::7") == 5.0 and quotas.ip_connection_rate("10.0.0.1") is None
        finally:
            await _close([writer, reader])

    asyncio.run(scenario())
