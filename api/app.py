"""The API process's one wiring point: store, producer, delivery consumer, hub, routes.

``create_app(settings)`` builds the FastAPI app; its lifespan opens the store, starts
the lifecycle producer, the broadcast consumer of ``tmpmail.delivery.v1`` (a consumer
group of this process's own, so every API replica sees every delivery) and the
lifecycle outbox relay (:mod:`api.outbox`), and stops them in reverse order. Every
``/api`` request passes :class:`api.origin.OriginGuard` first.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import Runtime
from api.errors import install_error_handlers
from api.hub import LiveHub
from api.mailbox_routes import mailbox_router
from api.message_routes import message_router
from api.origin import OriginGuard
from api.outbox import OutboxRelay
from api.page_routes import page_router
from api.routes import health_router, router
from api.signed_urls import UrlSigner
from bus import AsyncProducer, BroadcastConsumer, client_config, producer_config
from schemas.records import DeliveryEvent, MailboxLifecycleEvent, RecordError
from schemas.settings import Settings
from schemas.topics import DELIVERY_TOPIC, mailbox_lifecycle_topic
from store import create_store

log = logging.getLogger("tmpmail.api")


class KafkaLifecyclePublisher:
    def __init__(self, producer: AsyncProducer) -> None:
        self._producer = producer

    async def publish_lifecycle(self, event: MailboxLifecycleEvent) -> None:
        await self._producer.publish(mailbox_lifecycle_topic, event)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = create_store(settings)
        await store.open()
        producer = AsyncProducer(producer_config(settings))
        await producer.start()
        hub = LiveHub(settings.sse_queue_size)

        def on_delivery(key: bytes | None, value: bytes | None) -> None:
            try:
                hub.publish(DeliveryEvent.from_bytes(value))
            except RecordError as exc:
                log.warning("skipping unreadable delivery record: %s", exc)

        consumer = BroadcastConsumer(
            client_config(settings), DELIVERY_TOPIC, on_delivery, group_prefix="tmpmail-api"
        )
        await consumer.start()
        publisher = KafkaLifecyclePublisher(producer)
        relay = OutboxRelay(store, publisher, publish_timeout_s=settings.produce_timeout_s + 5)
        relay.start()
        app.state.runtime = Runtime(
            settings=settings,
            store=store,
            hub=hub,
            publisher=publisher,
            consumer=consumer,
            relay=relay,
        )
        log.info("api up on %s (store: %s)", settings.http_url, settings.store)
        try:
            yield
        finally:
            await relay.stop()
            await consumer.stop()
            await producer.stop()
            await store.close()
            log.info("api stopped")

    app = FastAPI(
        title="tmpmail",
        version="0.1.0",
        summary="Throwaway mailboxes with live delivery.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.state.url_signer = UrlSigner.from_settings(settings)
    app.include_router(router)
    app.include_router(message_router)
    app.include_router(mailbox_router)
    app.add_middleware(OriginGuard, allowed=settings.origins)
    app.include_router(health_router)
    app.include_router(page_router)
    return app
