"""The aiosmtpd hooks: thin. They ask :mod:`ingest.policy` and hand records to a sink.

``handle_DATA`` answers 250 only after the sink reports that the broker acknowledged
every record of the mail; any failure of ours answers 451 (never aiosmtpd's default 500).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from bus import AsyncProducer
from ingest import policy
from schemas.records import RawMailEnvelope, new_ingest_id, utcnow
from schemas.topics import raw_mail_topic

log = logging.getLogger(__name__)


class RawMailSink(Protocol):
    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        """Durably publish every record, or raise."""


class KafkaRawMailSink:
    """Publishes raw-mail records, keyed by normalised recipient, and waits for every ack."""

    def __init__(self, producer: AsyncProducer, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s

    async def publish(self, records: list[tuple[RawMailEnvelope, bytes]]) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._producer.publish_many(raw_mail_topic, records)


class RawMailHandler:
    """aiosmtpd handler: accepts mail for our domains and publishes it raw."""

    def __init__(self, sink: RawMailSink, *, domains: list[str], hostname: str) -> None:
        self._sink = sink
        self._domains = domains
        self._hostname = hostname

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = policy.check_recipient(address, self._domains, len(envelope.rcpt_tos))
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return policy.OK_RCPT

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not envelope.rcpt_tos:
            return policy.NO_RECIPIENTS
        ingest_id = new_ingest_id()
        try:
            records = self._records(session, envelope, ingest_id)
            await self._sink.publish(records)
        except Exception as exc:
            log.warning("mail %s not stored: %s", ingest_id, exc or type(exc).__name__)
            return policy.NOT_STORED
        return policy.OK_QUEUED.format(ingest_id=ingest_id)

    def _records(
        self, session: Any, envelope: Any, ingest_id: str
    ) -> list[tuple[RawMailEnvelope, bytes]]:
        content: bytes = envelope.original_content or b""
        received_at = utcnow()
        tls = session.ssl is not None
        client_ip = str(session.peer[0]) if session.peer else "unknown"
        helo = session.host_name or ""
        protocol = policy.protocol_name(
            esmtp=bool(session.extended_smtp), tls=tls, smtputf8=bool(envelope.smtp_utf8)
        )
        records = []
        for recipient in envelope.rcpt_tos:
            env = RawMailEnvelope(
                ingest_id=ingest_id,
                sender=envelope.mail_from or "",
                recipient=recipient,
                client_address=client_ip,
                helo=helo,
                tls=tls,
                received_at=received_at,
            )
            trace = policy.received_header(
                helo=helo,
                client_ip=client_ip,
                hostname=self._hostname,
                protocol=protocol,
                ingest_id=ingest_id,
                recipient=recipient,
                received_at=received_at,
            )
            records.append((env, trace + content))
        return records
