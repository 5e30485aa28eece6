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


