"""A restarted follower keeps its replication state: the high-watermark checkpoint
(``replication-offset-checkpoint``) and a log without leader-epoch history.

What is proven here, with real processes: a follower writes the high watermark it
learned to ``replication-offset-checkpoint`` (Kafka's format, every
``replica.high.watermark.checkpoint.interval.ms`` and at shutdown); restarted with its
``leader-epoch-checkpoint`` gone (a log from before the cache), it truncates to that
high watermark -- not to offset 0 -- fetches only what it misses, rejoins the ISR, and
its log ends up identical to the others'.

Cost: about 10 s (three brokers).
"""

from __future__ import annotations

import re

from moldau.replication.hw_checkpoint import REPLICATION_OFFSET_CHECKPOINT
from moldau.storage.leader_epoch import LEADER_EPOCH_CHECKPOINT

from .kafka_helpers import (
    assert_delivered,
    confluent_produce,
    sample_records,
    unique_topic,
    wait_until,
)
from .test_replication import _create_replicated, _fully_replicated, _log_values, _records_on_disk


def _checkpointed(data_dir, topic: str) -> int | None:
    try:
        text = (data_dir / REPLICATION_OFFSET_CHECKPOINT).read_text()
    except FileNotFoundError:
        return None
    found = re.search(rf"^{re.escape(topic)} 0 (\d+)$", text, re.M)
    return int(found.group(1)) if found else None


def test_a_follower_without_epoch_history_truncates_to_its_checkpointed_high_watermark(cluster) -> None:
    settings = {"replica.lag.time.max.ms": 10000, "replica.high.watermark.checkpoint.interval.ms": 200}
    brokers = {i: cluster(i, **settings) for i in (1, 2, 3)}
    topic = _create_replicated(brokers[1].bootstrap, unique_topic("hwckpt"))
    leader = wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=30, message="ISR 1,2,3")
    assert_delivered(confluent_produce(brokers[leader].bootstrap, topic, sample_records(200, seed=5), acks="all"))
    follower = brokers[next(i for i in brokers if i != leader)]
    # the follower learns the high watermark with its next fetch and checkpoints it
    wait_until(lambda: _checkpointed(follower.data_dir, topic) == 200, timeout=10,
               message="the follower's checkpointed high watermark")
    assert follower.stop() == 0
    assert _checkpointed(follower.data_dir, topic) == 200
    (follower.data_dir / f"{topic}-0" / LEADER_EPOCH_CHECKPOINT).unlink()
    assert_delivered(confluent_produce(brokers[leader].bootstrap, topic, sample_records(50, seed=6), acks="all"),
                     first_offset=200)
    mark = follower.log_size()
    follower.start()
    wait_until(lambda: _fully_replicated(brokers, topic, [1, 2, 3]), timeout=30, interval=0.2,
               message="the follower back in the ISR")
    text = follower.log_text(mark)
    assert not re.search(r"truncating from \d+ to 0\b", text), text[-3000:]
    logs = wait_until(lambda: (lambda v: v if v[0] == v[1] == v[2] else None)(
        [_log_values(b.data_dir, topic) for b in brokers.values()]), timeout=20, message="three equal logs")
    assert [o for o, _ in logs[0]] == list(range(250))
    assert _records_on_disk(follower.data_dir, topic) == 250
    wait_until(lambda: _checkpointed(follower.data_dir, topic) == 250, timeout=10,
               message="the new high watermark checkpointed")
