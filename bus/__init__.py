"""One typed wrapper over the Kafka clients, shared by every process.

* :class:`AsyncProducer`: records whose acks are asyncio futures;
* :class:`BroadcastConsumer`: every instance sees every record (live fan-out);
* :func:`ensure_topics`: every topic, with its partition count, before workers start;
* :func:`cluster_id` and :func:`broker_registered`: what the broker says about itself.
"""

from bus.admin import TopicError, broker_registered, cluster_id, ensure_topics
from bus.config import client_config, producer_config
from bus.consumer import BroadcastConsumer
from bus.producer import Ack, AsyncProducer, ProduceError

__all__ = [
    "Ack",
    "AsyncProducer",
    "BroadcastConsumer",
    "ProduceError",
    "TopicError",
    "broker_registered",
    "client_config",
    "cluster_id",
    "ensure_topics",
    "producer_config",
]
