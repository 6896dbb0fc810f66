import asyncio
from datetime import UTC, datetime

from api.hub import LiveHub
from schemas.records import DeliveryEvent


def _event(address: str, seq: int) -> DeliveryEvent:
    return DeliveryEvent(
        address=address, message_id=f"m{seq}", seq=seq, received_at=datetime.now(UTC)
    )


async def test_events_reach_only_their_mailbox() -> None:
    hub = LiveHub(queue_size=8)
    alice, bob = hub.subscribe("alice@tmpmail.test"), hub.subscribe("bob@tmpmail.test")
    hub.publish(_event("alice@tmpmail.test", 1))
    assert (await asyncio.wait_for(alice.queue.get(), 1)).seq == 1  # type: ignore[union-attr]
    assert bob.queue.empty()


async def test_slow_client_is_dropped_not_buffered_forever() -> None:
    hub = LiveHub(queue_size=3)
    slow = hub.subscribe("a@tmpmail.test")
    for seq in range(1, 10):
        hub.publish(_event("a@tmpmail.test", seq))
    assert slow.dropped
    assert slow.queue.qsize() == 1 and slow.queue.get_nowait() is None  # end-of-stream
    assert hub.subscriber_count == 0


async def test_unsubscribe_forgets_the_address() -> None:
    hub = LiveHub(queue_size=3)
    sub = hub.subscribe("a@tmpmail.test")
    hub.unsubscribe(sub)
    hub.unsubscribe(sub)
    assert hub.subscriber_count == 0
