"""InitProducerId (key 22): producer ids and epochs for idempotent producers.

Idempotence is on by default in current clients (kafka-python 3, the Java client,
librdkafka with enable.idempotence), so this answers every producer without a
transactional id with a fresh id and epoch 0. Transactional ids need the transaction
coordinator, which is not built yet: they are refused with a clear error rather than
left to hang.
"""

from __future__ import annotations

from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.protocol.errors import ErrorCode
from moldau.protocol.messages import ALL_APIS

INIT_PRODUCER_ID = ALL_APIS[22]
_codec = codec_for(INIT_PRODUCER_ID)


@handles(INIT_PRODUCER_ID, 0, 5)
async def init_producer_id(broker: Any, header: Any, request: Any) -> Any:
    if request.transactional_id is None and broker.authorizer is not None and not (
        authz.cluster_allowed(broker, header, authz.IDEMPOTENT_WRITE)
        or authz.allowed_on_some(broker, header, authz.WRITE, authz.TOPIC)
    ):  # Kafka (KIP-679): IDEMPOTENT_WRITE on the cluster, or WRITE on some topic
        return _codec.Response(throttle_time_ms=0, error_code=int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                               producer_id=-1, producer_epoch=-1)
    if request.transactional_id is not None:
        return _codec.Response(
            throttle_time_ms=0,
            error_code=int(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            producer_id=-1,
            producer_epoch=-1,
        )
    producer_id = await broker.producer_ids.generate()
    return _codec.Response(throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0)
