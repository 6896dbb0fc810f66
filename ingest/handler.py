"""The SMTP session's hooks: thin. They ask :mod:`ingest.policy` and hand records to a sink.

``handle_DATA`` answers 250 only after the sink reports that the broker acknowledged
every record of the mail; any failure of ours answers 451 (never a 5xx).

A mail is held once, whatever its number of recipients: every recipient's record shares
one value (our ``Received:`` line and the exact bytes), and only the envelope in the
record's header differs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Protocol

from bus import AsyncProducer
from ingest import policy
from ingest.smtp import Envelope, Session
from schemas.records import RawMailEnvelope, new_ingest_id, utcnow
from schemas.topics import raw_mail_topic

log = logging.getLogger(__name__)

#: Bodies larger than this are hashed on a thread (hashlib releases the GIL).
HASH_ON_THREAD_BYTES = 256 * 1024


class RawMailSink(Protocol):
    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        """Durably publish every record, or raise."""


class KafkaRawMailSink:
    """Publishes raw-mail records and waits for every ack, within ``timeout_s``.

    Latency when idle, batches under load: a mail goes through ``producer`` (no linger)
    unless ``busy_at`` mails of this process already await their ack; then through
    ``busy`` (a producer with a small linger), whose requests carry many records. With
    one producer, linger 0 made one connection fast and many connections pay a request
    each; linger 1 ms the reverse (``docs/performance.md``). Mails of one SMTP connection
    stay in order (each waits for its 250); mails of different connections have no order.
    """

    def __init__(
        self,
        producer: AsyncProducer,
        timeout_s: float,
        *,
        busy: AsyncProducer | None = None,
        busy_at: int = 4,
    ) -> None:
        self._producer = producer
        self._busy = busy
        self._busy_at = busy_at
        self._timeout_s = timeout_s
        self.in_flight = 0

    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        producer = self._producer
        if self._busy is not None and self.in_flight >= self._busy_at:
            producer = self._busy
        self.in_flight += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                await producer.publish_many(raw_mail_topic, records)
        finally:
            self.in_flight -= 1


class RawMailHandler:
    """Accepts mail for our domains and publishes it raw, one record per recipient."""

    def __init__(
        self,
        sink: RawMailSink,
        *,
        domains: list[str],
        hostname: str,
        max_recipients: int = 100,
        recipient_budget_bytes: int | None = None,
    ) -> None:
        self._sink = sink
        self._domains = domains
        self._hostname = hostname
        self._max_recipients = max_recipients
        self._budget = recipient_budget_bytes

    def handle_RCPT(self, session: Session, envelope: Envelope, address: str) -> str:
        refusal = policy.check_recipient(
            address,
            self._domains,
            len(envelope.rcpt_tos),
            max_recipients=self._max_recipients,
            smtputf8=envelope.smtputf8,
            declared_size=envelope.declared_size,
            budget_bytes=self._budget,
        )
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return policy.OK_RCPT

    async def handle_DATA(self, session: Session, envelope: Envelope) -> str:
        if not envelope.rcpt_tos:
            return policy.NO_RECIPIENTS
        ingest_id = new_ingest_id()
        try:
            records = await self._records(session, envelope, ingest_id)
            await self._sink.publish(records)
        except Exception as exc:
            log.warning("mail %s not stored: %s", ingest_id, exc or type(exc).__name__)
            return policy.NOT_STORED
        return policy.OK_QUEUED.format(ingest_id=ingest_id)

    async def _records(
        self, session: Session, envelope: Envelope, ingest_id: str
    ) -> list[tuple[RawMailEnvelope, bytes]]:
        content = envelope.content
        digest = await _sha256(content)
        received_at = utcnow()
        recipients = envelope.rcpt_tos
        trace = policy.received_header(
            helo=session.helo,
            client_ip=session.peer,
            hostname=self._hostname,
            protocol=policy.protocol_name(
                esmtp=session.esmtp, tls=session.tls, smtputf8=envelope.smtputf8
            ),
            ingest_id=ingest_id,
            recipient=recipients[0] if len(recipients) == 1 else None,
            received_at=received_at,
        )
        value = trace + content  # one copy, shared by every recipient's record
        envelope.content = b""
        return [
            (
                RawMailEnvelope(
                    ingest_id=ingest_id,
                    sender=envelope.mail_from,
                    recipient=recipient,
                    client_address=session.peer,
                    helo=session.helo,
                    tls=session.tls,
                    received_at=received_at,
                    body_sha256=digest,
                    recipients=len(recipients),
                ),
                value,
            )
            for recipient in recipients
        ]


async def _sha256(content: bytes) -> str:
    if len(content) > HASH_ON_THREAD_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(content).hexdigest())
    return hashlib.sha256(content).hexdigest()
