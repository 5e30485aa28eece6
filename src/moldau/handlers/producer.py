"""InitProducerId (key 22): producer ids and epochs for idempotent and transactional
producers.

Idempotence is on by default in current clients (kafka-python 3, the Java client,
librdkafka with enable.idempotence): a producer without a transactional id gets a
fresh id and epoch 0. With a transactional id the transaction coordinator answers:
the id's producer with its epoch bumped (fencing older incarnations), after the
transaction a previous incarnation left open is aborted (CONCURRENT_TRANSACTIONS
meanwhile), or KIP-360's bump when the request names the current id and epoch (v3+).
v6 (KIP-939's two-phase commit) is not served.
"""

from __future__ import annotations

from typing import Any

from moldau.handlers import authorize as authz
from moldau.handlers.registry import codec_for, handles
from moldau.handlers.transactions import fenced_for
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
    version = header.api_version
    if request.transactional_id is not None:
        refused = authz.transactional_id_error(broker, header, request.transactional_id)
        if refused is not None:  # Kafka: WRITE on the transactional id
            return _codec.Response(throttle_time_ms=0, error_code=int(refused), producer_id=-1, producer_epoch=-1)
        code, producer_id, epoch = await broker.transaction_coordinator.init_producer_id(
            request.transactional_id,
            request.transaction_timeout_ms,
            request.producer_id if version >= 3 else -1,
            request.producer_epoch if version >= 3 else -1,
        )
        return _codec.Response(
            throttle_time_ms=0,
            error_code=int(fenced_for(code, version, 4)),
            producer_id=producer_id,
            producer_epoch=epoch,
        )
    producer_id = await broker.producer_ids.generate()
    return _codec.Response(throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0)
