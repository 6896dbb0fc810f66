"""MongoDB adapter of the storage port, on PyMongo's native asyncio client.

It uses only what MongoDB and FerretDB v1 both support (see the platform notes): no
transactions, no partial indexes, no change streams, no aggregation. Writes are made
idempotent by unique indexes instead:

* ``mailboxes``: ``_id`` = address, unique ``token_hash``; ``last_seq`` is the counter.
* ``messages``: ``_id`` = message id, unique ``(address, seq desc)``.
* ``message_chunks``: ``_id`` = ``"<message id>:<n>"``, unique ``(message_id, n)``; each
  chunk carries its message's ``expires_at``, so a purge finds orphans too.
* ``message_documents``: the document's JSON in chunks, unique ``(message_id,
  parser_version, n)``; ``message_attachments``: each attachment in chunks, unique
  ``(message_id, parser_version, attachment_id, n)``. Both carry the expiry too.
* ``tombstones``: ``_id`` = message id.
* ``dedupe_keys``: ``_id`` = ``"<address>\\x00<key>"`` (the unique index: FerretDB v1 has
  no partial indexes), naming the message that holds the key and when it was received.
* ``lifecycle_outbox``: pending lifecycle events, ``_id`` = a time-ordered string, each
  inserted before its change and deleted again if the change did not apply.
* ``meta``: ``{"_id": "schema", "version": n}``, and the migration lease while one runs.

A message document holds the :class:`~schemas.mail.MailSummary` fields and its
``parser_version`` beside its own; the summary is written and read generically, so a
new summary field needs no change here. Lists read only ``messages``.

**Without transactions**, a batch is written in an order that a crash can interrupt
anywhere: chunks, documents and attachments before the message that makes them
visible, the dedupe key after it (an ``existing`` replay writes a key that is missing).
A re-parse writes the new version's pieces, then switches the message's
``parser_version`` (compare-and-set: only upward), then deletes the older pieces;
readers follow the message's version, so they never see a mix. Results are decided as
if the batch's messages were written one after the other (as SQLite does).

TTL indexes on ``messages.expires_at`` and ``tombstones.expires_at`` are created when the
server has them; FerretDB answers NotImplemented (238), which is logged and left to
:meth:`MongoStore.purge_expired`. Any driver error becomes :class:`~store.port.StoreError`.

Messages and chunks are written with unordered bulk *inserts* (``InsertOne``), not
``$setOnInsert`` upserts: FerretDB v1's reply to an update batch with a write error lacks
``nModified`` (PyMongo then fails with ``KeyError``), and its ``upserted`` indexes are
wrong. Inserts report duplicates as a proper ``BulkWriteError`` (code 11000), which is the
idempotent case.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, InsertOne, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from schemas.mail import ParsedMail, summary_fields
from schemas.records import MailboxLifecycleEvent
from store._common import (
    attachment_chunks,
    document_chunks,
    join_attachment,
    join_document,
    read_now,
    split_chunks,
    to_ms,
    utc_ms,
)
from store.port import (
    DELETE_BATCH,
    MAILBOX_PURGE_LIMIT,
    Mailbox,
    NewMessage,
    PendingLifecycleEvent,
    PurgeCounts,
    StoredMessage,
    StoreError,
    WriteResult,
)
from store.rules import (
    KeyHolder,
    MessageFacts,
    StoredCopy,
    WriteDecision,
    address_is_free,
    decide_write,
    dedupe_key_expires_at,
    dedupe_key_moves,
    owner_of,
    reparsed,
    take_over_seq,
)

log = logging.getLogger(__name__)

Doc = dict[str, Any]
DUPLICATE_KEY = 11000

#: The schema version this code writes; :data:`MIGRATIONS` brings older stores to it.
SCHEMA_VERSION = 2
#: How long a migration lease lasts (a crashed migrator's lease is taken over after it),
#: and how long an opener waits for another process's migration.
LEASE_S = 60.0
LEASE_WAIT_S = 120.0
_SCHEMA_ID = "schema"
_LEASE_ID = "migration-lease"
_TAKE_OVER_ATTEMPTS = 3


@contextmanager
def _driver_errors(what: str) -> Iterator[None]:
    """Turn any PyMongo error inside the block into :class:`StoreError`."""
    try:
        yield
    except PyMongoError as exc:
        raise StoreError(f"MongoDB {what}: {exc}") from exc


class MongoStore:
    """The storage port on one MongoDB (or FerretDB) database."""

    def __init__(self, url: str, database: str, *, server_selection_timeout_ms: int = 5000) -> None:
        self._url = url
        self._database_name = database
        self._timeout_ms = server_selection_timeout_ms
        self._client: AsyncMongoClient[Doc] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        self._client = AsyncMongoClient(
            self._url,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._timeout_ms,
            connectTimeoutMS=self._timeout_ms,
            appname="tmpmail",
        )
        try:
            with _driver_errors("opening the schema"):
                await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        with _driver_errors("ping"):
            await self._db.command("ping")

    async def drop_database(self) -> None:
        """Drop this store's whole database (for tests and resets; not part of the port)."""
        with _driver_errors("drop_database"):
            await self._db.client.drop_database(self._database_name)

    # --- mailboxes ------------------------------------------------------------------------
    async def create_mailbox(
        self, mailbox: Mailbox, now: datetime, *, event: MailboxLifecycleEvent | None = None
    ) -> bool:
        """Insert or take over ``mailbox`` (:meth:`_create_mailbox`), ``event`` first."""
        if event is None:
            return await self._create_mailbox(mailbox, now)
        return await self._with_event(event, self._create_mailbox(mailbox, now))

    async def touch_mailbox(self, address: str, visited_at: datetime) -> None:
        with _driver_errors("touch_mailbox"):
            await self._mailboxes.update_one(
                {"_id": address}, {"$set": {"visited_at": utc_ms(visited_at)}}
            )

    async def extend_mailbox(
        self,
        address: str,
        *,
        expires_at_was: datetime,
        expires_at: datetime,
        purge_after: datetime,
        event: MailboxLifecycleEvent,
    ) -> bool:
        async def extend() -> bool:
            with _driver_errors("extend_mailbox"):
                moved = await self._mailboxes.update_one(
                    {
                        "_id": address,
                        "expires_at": utc_ms(expires_at_was),
                        "deleted": {"$ne": True},
                    },
                    {
                        "$set": {
                            "expires_at": utc_ms(expires_at),
                            "purge_after": utc_ms(purge_after),
                        }
                    },
                )
            return moved.matched_count == 1

        return await self._with_event(event, extend())

    async def mark_mailbox_deleted(
        self, address: str, *, now: datetime, purge_after: datetime, event: MailboxLifecycleEvent
    ) -> bool:
        async def mark() -> bool:
            with _driver_errors("mark_mailbox_deleted"):
                marked = await self._mailboxes.update_one(
                    {"_id": address, "deleted": {"$ne": True}},
                    {
                        "$set": {"deleted": True, "purge_after": utc_ms(purge_after)},
                        "$min": {"expires_at": utc_ms(now)},
                    },
                )
            return marked.matched_count == 1

        return await self._with_event(event, mark())

    async def count_messages(self, address: str, *, now: datetime | None = None) -> int:
        with _driver_errors("count_messages"):
            query = {"address": address, "expires_at": {"$gt": read_now(now)}}
            return await self._messages.count_documents(query)

    # --- lifecycle outbox -------------------------------------------------------------------
    async def pending_lifecycle_events(self, limit: int) -> list[PendingLifecycleEvent]:
        if limit <= 0:
            return []
        with _driver_errors("pending_lifecycle_events"):
            cursor = self._outbox.find({}).sort("_id", ASCENDING).limit(limit)
            return [
                PendingLifecycleEvent(
                    doc["_id"], MailboxLifecycleEvent.model_validate(doc["event"])
                )
                async for doc in cursor
            ]

    async def remove_lifecycle_event(self, event_id: str) -> None:
        with _driver_errors("remove_lifecycle_event"):
            await self._outbox.delete_one({"_id": event_id})

    async def _with_event(
        self, event: MailboxLifecycleEvent, change: Coroutine[Any, Any, bool]
    ) -> bool:
        """Insert ``event`` into the outbox, then make ``change``; take the event back if
        the change did not apply (or failed). No transactions: an event may outlive a
        change that a crash interrupted, never the other way round."""
        event_id = f"{time.time_ns():020d}-{secrets.token_hex(4)}"
        doc = {"_id": event_id, "address": event.address, "event": event.model_dump(mode="json")}
        try:
            with _driver_errors("lifecycle outbox"):
                await self._outbox.insert_one(doc)
        except BaseException:
            change.close()
            raise
        applied = False
        try:
            applied = await change
        finally:
            if not applied:
                with _driver_errors("lifecycle outbox"):
                    await self._outbox.delete_one({"_id": event_id})
        return applied

    async def _create_mailbox(self, mailbox: Mailbox, now: datetime) -> bool:
        """Insert ``mailbox``, or take over a record past its ``purge_after``.

        Without transactions, the take-over replaces the old record only if its counter
        has not moved since it was read (compare-and-set, retried a few times), then
        deletes every message received before the new record was created.
        """
        with _driver_errors("create_mailbox"):
            for _attempt in range(_TAKE_OVER_ATTEMPTS):
                held = await self._mailboxes.find_one(
                    {"_id": mailbox.address}, projection={"purge_after": 1, "last_seq": 1}
                )
                if not address_is_free(None if held is None else held["purge_after"], now):
                    return False
                holder = await self._mailboxes.find_one(
                    {"token_hash": mailbox.token_hash}, projection={"_id": 1}
                )
                if holder is not None and holder["_id"] != mailbox.address:
                    return False
                old_seq = None if held is None else held.get("last_seq", 0)
                doc = _mailbox_doc(mailbox)
                doc["last_seq"] = take_over_seq(
                    old_seq, await self._highest_seq(mailbox.address), mailbox.last_seq
                )
                if held is None:
                    try:
                        await self._mailboxes.insert_one(doc)
                    except DuplicateKeyError:
                        continue  # created meanwhile, or the token clashed: look again
                else:
                    fields = {k: v for k, v in doc.items() if k != "_id"}
                    try:
                        replaced = await self._mailboxes.find_one_and_update(
                            {
                                "_id": mailbox.address,
                                "purge_after": held["purge_after"],
                                "last_seq": old_seq,
                            },
                            {"$set": fields},
                        )
                    except DuplicateKeyError:
                        return False  # the token hash was taken meanwhile
                    if replaced is None:
                        continue  # the record changed since it was read: look again
                await self._delete_received_before(mailbox.address, utc_ms(mailbox.created_at))
                return True
        return False

    async def get_mailbox(self, address: str) -> Mailbox | None:
        with _driver_errors("get_mailbox"):
            doc = await self._mailboxes.find_one({"_id": address})
        return None if doc is None else _mailbox(doc)

    async def get_mailbox_by_token(self, token_hash: str) -> Mailbox | None:
        with _driver_errors("get_mailbox_by_token"):
            doc = await self._mailboxes.find_one({"token_hash": token_hash})
        return None if doc is None else _mailbox(doc)

    # --- messages -------------------------------------------------------------------------
    async def store_messages(self, batch: Sequence[NewMessage], now: datetime) -> list[WriteResult]:
        """Gather the facts for the whole batch, decide each message with the one rule
        (in batch order, on a view that each decision updates), allocate seqs per
        mailbox, then write: new messages' pieces, the messages, re-parses, keys."""
        if not batch:
            return []
        for message in batch:  # refuse naive datetimes before anything is written
            to_ms(message.received_at)
            to_ms(message.expires_at)
        with _driver_errors("store_messages"):
            facts = await self._batch_facts(batch)
            plan = _plan_batch(batch, facts, now)
            by_address: dict[str, list[NewMessage]] = {}
            for message in plan.inserts.values():
                by_address.setdefault(message.address, []).append(message)
            seqs = await self._allocate_seqs(by_address)
            to_insert = [m for m in plan.inserts.values() if m.id in seqs]
            await asyncio.gather(
                self._insert_chunks(to_insert),
                self._insert_pieces(to_insert, {m.id: m.expires_at for m in to_insert}),
            )
            raced = await self._insert_messages(to_insert, seqs)
            not_updated = await self._reparse(plan.updates, facts.existing)
            stored = {**seqs, **raced}
            await self._hold_keys(
                [
                    (key_id, m, exp)
                    for key_id, (m, exp) in plan.keys.items()
                    if _kept(m.id, plan, stored)
                ],
                facts.holders,
            )
        results = [
            _result(message, decision, plan, stored, raced, not_updated)
            for message, decision in zip(batch, plan.decisions, strict=True)
        ]
        return [  # a mailbox that vanished before its seq was allocated owns nothing
            replace(result, mailbox_id=owner) if result.status != "no_mailbox" else result
            for result, owner in zip(results, plan.owners, strict=True)
        ]

    async def list_messages(
        self,
        address: str,
        *,
        limit: int,
        before_seq: int | None = None,
        now: datetime | None = None,
    ) -> list[StoredMessage]:
        query: Doc = {"address": address, "expires_at": {"$gt": read_now(now)}}
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        return await self._summaries(query, DESCENDING, limit)

    async def list_messages_after(
        self, address: str, after_seq: int, *, limit: int, now: datetime | None = None
    ) -> list[StoredMessage]:
        query = {
            "address": address,
            "seq": {"$gt": after_seq},
            "expires_at": {"$gt": read_now(now)},
        }
        return await self._summaries(query, ASCENDING, limit)

    async def get_message(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> StoredMessage | None:
        with _driver_errors("get_message"):
            doc = await self._messages.find_one(_visible(address, message_id, now))
        return None if doc is None else _stored(doc)

    async def get_raw(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> bytes | None:
        with _driver_errors("get_raw"):
            doc = await self._messages.find_one(
                _visible(address, message_id, now), projection={"size": 1}
            )
            if doc is None:
                return None
            cursor = self._chunks.find({"message_id": message_id}).sort("n", ASCENDING)
            raw = b"".join([chunk["data"] async for chunk in cursor])
        if len(raw) != doc["size"]:
            raise StoreError(f"raw bytes of message {message_id} are incomplete")
        return raw

    async def get_document(
        self, address: str, message_id: str, *, now: datetime | None = None
    ) -> ParsedMail | None:
        with _driver_errors("get_document"):
            version = await self._visible_version(address, message_id, now)
            if version is None:
                return None
            query = {"message_id": message_id, "parser_version": version}
            cursor = self._documents.find(query).sort("n", ASCENDING)
            chunks = [chunk["data"] async for chunk in cursor]
        return join_document(chunks, message_id)

    async def get_attachment(
        self, address: str, message_id: str, attachment_id: str, *, now: datetime | None = None
    ) -> bytes | None:
        with _driver_errors("get_attachment"):
            version = await self._visible_version(address, message_id, now)
            if version is None:
                return None
            query = {
                "message_id": message_id,
                "parser_version": version,
                "attachment_id": attachment_id,
            }
            cursor = self._attachments.find(query).sort("n", ASCENDING)
            chunks = [(chunk["size"], chunk["data"]) async for chunk in cursor]
        return join_attachment(chunks, message_id)

    async def delete_message(self, address: str, message_id: str) -> bool:
        """Tombstone first, then the message, then its chunks: a crash never resurrects it."""
        with _driver_errors("delete_message"):
            doc = await self._messages.find_one(
                {"_id": message_id, "address": address}, projection={"expires_at": 1}
            )
            if doc is None:
                return False
            try:
                await self._tombstones.insert_one(
                    {"_id": message_id, "address": address, "expires_at": doc["expires_at"]}
                )
            except DuplicateKeyError:
                pass
            await self._messages.delete_one({"_id": message_id, "address": address})
            for pieces in (self._chunks, self._documents, self._attachments):
                await pieces.delete_many({"message_id": message_id})
            return True

    async def delete_messages(self, address: str) -> int:
        """As :meth:`delete_message`, :data:`DELETE_BATCH` messages per round: their
        tombstones in one unordered bulk insert, then the messages, then their pieces."""
        total = 0
        with _driver_errors("delete_messages"):
            while True:
                cursor = self._messages.find(
                    {"address": address}, projection={"expires_at": 1}
                ).limit(DELETE_BATCH)
                docs = [doc async for doc in cursor]
                if not docs:
                    return total
                tombstones = [
                    InsertOne({"_id": d["_id"], "address": address, "expires_at": d["expires_at"]})
                    for d in docs
                ]
                await _insert_idempotently(self._tombstones, tombstones)
                ids = [doc["_id"] for doc in docs]
                deleted = await self._messages.delete_many(
                    {"_id": {"$in": ids}, "address": address}
                )
                for pieces in (self._chunks, self._documents, self._attachments):
                    await pieces.delete_many({"message_id": {"$in": ids}})
                total += deleted.deleted_count
                if len(docs) < DELETE_BATCH:
                    return total

    async def set_seen(
        self, address: str, message_id: str, seen: bool, *, now: datetime | None = None
    ) -> bool:
        with _driver_errors("set_seen"):
            result = await self._messages.update_one(
                _visible(address, message_id, now), {"$set": {"seen": seen}}
            )
        return result.matched_count > 0

    async def purge_expired(
        self, now: datetime, *, mailbox_limit: int = MAILBOX_PURGE_LIMIT
    ) -> PurgeCounts:
        expired = {"$lte": utc_ms(now)}
        with _driver_errors("purge_expired"):
            counts = {}
            for name, collection in (
                ("messages", self._messages),
                ("chunks", self._chunks),
                ("document_chunks", self._documents),
                ("attachment_chunks", self._attachments),
                ("tombstones", self._tombstones),
                ("dedupe_keys", self._keys),
            ):
                deleted = await collection.delete_many({"expires_at": expired})
                counts[name] = deleted.deleted_count
            addresses = await self._purge_mailboxes(expired, mailbox_limit)
        return PurgeCounts(**counts, mailboxes=len(addresses), addresses=tuple(addresses))

    # --- helpers --------------------------------------------------------------------------
    @property
    def _db(self) -> AsyncDatabase[Doc]:
        if self._client is None:
            raise StoreError("MongoDB store is not open")
        return self._client[self._database_name]

    @property
    def _mailboxes(self) -> AsyncCollection[Doc]:
        return self._db["mailboxes"]

    @property
    def _messages(self) -> AsyncCollection[Doc]:
        return self._db["messages"]

    @property
    def _chunks(self) -> AsyncCollection[Doc]:
        return self._db["message_chunks"]

    @property
    def _documents(self) -> AsyncCollection[Doc]:
        return self._db["message_documents"]

    @property
    def _attachments(self) -> AsyncCollection[Doc]:
        return self._db["message_attachments"]

    @property
    def _tombstones(self) -> AsyncCollection[Doc]:
        return self._db["tombstones"]

    @property
    def _keys(self) -> AsyncCollection[Doc]:
        return self._db["dedupe_keys"]

    @property
    def _outbox(self) -> AsyncCollection[Doc]:
        return self._db["lifecycle_outbox"]

    @property
    def _meta(self) -> AsyncCollection[Doc]:
        return self._db["meta"]

    async def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` under a lease, so that processes
        opening the store at once migrate it once."""
        recorded = await self._meta.find_one({"_id": _SCHEMA_ID})
        if recorded is not None and recorded.get("version") == SCHEMA_VERSION:
            return
        owner = secrets.token_hex(8)
        await self._acquire_lease(owner)
        try:
            version = await self._schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store's schema is version {version}, newer than this code's "
                    f"{SCHEMA_VERSION}: run the tmpmail release that wrote it, or a newer one"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                await MIGRATIONS[target - 1](self)
                await self._record_version(target)
                log.info("MongoDB store migrated to schema version %d", target)
            await self._record_version(SCHEMA_VERSION)
        finally:
            await self._meta.delete_one({"_id": _LEASE_ID, "owner": owner})

    async def _record_version(self, version: int) -> None:
        await self._meta.update_one(
            {"_id": _SCHEMA_ID}, {"$set": {"version": version}}, upsert=True
        )

    async def _schema_version(self) -> int:
        """The recorded version; a database written before versions were recorded is 1."""
        doc = await self._meta.find_one({"_id": _SCHEMA_ID})
        if doc is not None:
            return int(doc["version"])
        names = set(await self._db.list_collection_names())
        return 1 if names & {"mailboxes", "messages"} else 0

    async def _acquire_lease(self, owner: str) -> None:
        deadline = time.monotonic() + LEASE_WAIT_S
        while True:
            now = datetime.now(UTC)
            lease = {"_id": _LEASE_ID, "owner": owner, "until": now + timedelta(seconds=LEASE_S)}
            try:
                await self._meta.insert_one(lease)
                return
            except DuplicateKeyError:
                # Held by another process; a lease past its time belonged to one that died.
                await self._meta.delete_one({"_id": _LEASE_ID, "until": {"$lt": now}})
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"another process has been migrating the MongoDB store for over "
                    f"{LEASE_WAIT_S:.0f}s; if none is, delete the '{_LEASE_ID}' document "
                    "from the meta collection"
                )
            await asyncio.sleep(0.2)

    async def _create_v1_indexes(self) -> None:
        await self._mailboxes.create_index("token_hash", unique=True, name="mailboxes_by_token")
        await self._mailboxes.create_index("purge_after", name="mailboxes_by_purge_after")
        await self._messages.create_index(
            [("address", ASCENDING), ("seq", DESCENDING)],
            unique=True,
            name="messages_by_address_seq",
        )
        await self._chunks.create_index(
            [("message_id", ASCENDING), ("n", ASCENDING)], unique=True, name="chunks_by_message"
        )
        await self._chunks.create_index("expires_at", name="chunks_by_expiry")
        await self._expiry_index(self._messages, "messages_by_expiry")
        await self._expiry_index(self._tombstones, "tombstones_by_expiry")

    async def _create_v2_indexes(self) -> None:
        """Version 2: the whole parse (documents, attachments), dedupe keys, and a
        ``parser_version`` on every message."""
        await self._documents.create_index(
            [("message_id", ASCENDING), ("parser_version", ASCENDING), ("n", ASCENDING)],
            unique=True,
            name="documents_by_message",
        )
        await self._documents.create_index("expires_at", name="documents_by_expiry")
        await self._attachments.create_index(
            [
                ("message_id", ASCENDING),
                ("parser_version", ASCENDING),
                ("attachment_id", ASCENDING),
                ("n", ASCENDING),
            ],
            unique=True,
            name="attachments_by_message",
        )
        await self._attachments.create_index("expires_at", name="attachments_by_expiry")
        await self._keys.create_index(
            [("address", ASCENDING), ("received_at", ASCENDING)], name="keys_by_address"
        )
        await self._expiry_index(self._keys, "keys_by_expiry")
        await self._messages.update_many(
            {"parser_version": {"$exists": False}}, {"$set": {"parser_version": 0}}
        )

    async def _expiry_index(self, collection: AsyncCollection[Doc], name: str) -> None:
        """A TTL index on ``expires_at``, or a plain one where TTL is not implemented."""
        try:
            await collection.create_index("expires_at", name=name, expireAfterSeconds=0)
        except OperationFailure as exc:
            log.info(
                "%s: no TTL index (%s, code %s); purge_expired removes expired documents",
                collection.name,
                exc.details.get("errmsg", exc) if exc.details else exc,
                exc.code,
            )
            await collection.create_index("expires_at", name=name)

    async def _batch_facts(self, batch: Sequence[NewMessage]) -> _BatchFacts:
        ids = list(dict.fromkeys(message.id for message in batch))
        existing = await self._stored_copies(ids)
        tombstoned = await self._tombstoned([i for i in ids if i not in existing])
        mailboxes = await self._mailboxes_of({message.address for message in batch})
        key_ids = sorted({_key_id(m) for m in batch if m.dedupe_key})
        key_docs = []
        if key_ids:
            key_docs = [doc async for doc in self._keys.find({"_id": {"$in": key_ids}})]
        held = await self._stored_copies(
            [d["message_id"] for d in key_docs if d["message_id"] not in existing]
        )
        holders = {
            doc["_id"]: KeyHolder(
                doc["message_id"],
                doc["received_at"],
                existing.get(doc["message_id"]) or held.get(doc["message_id"]),
            )
            for doc in key_docs
        }
        return _BatchFacts(existing, tombstoned, mailboxes, holders)

    async def _stored_copies(self, ids: list[str]) -> dict[str, StoredCopy]:
        if not ids:
            return {}
        cursor = self._messages.find(
            {"_id": {"$in": ids}}, projection={"seq": 1, "expires_at": 1, "parser_version": 1}
        )
        return {
            doc["_id"]: StoredCopy(doc["seq"], doc["expires_at"], doc.get("parser_version", 0))
            async for doc in cursor
        }

    async def _seqs_of(self, ids: list[str]) -> dict[str, int]:
        return {mid: copy.seq for mid, copy in (await self._stored_copies(ids)).items()}

    async def _visible_version(
        self, address: str, message_id: str, now: datetime | None
    ) -> int | None:
        """The parser version of a visible message, or ``None``."""
        doc = await self._messages.find_one(
            _visible(address, message_id, now), projection={"parser_version": 1}
        )
        return None if doc is None else int(doc.get("parser_version", 0))

    async def _mailboxes_of(self, addresses: set[str]) -> dict[str, tuple[datetime, str]]:
        """By address: the mailbox record's creation and id."""
        cursor = self._mailboxes.find(
            {"_id": {"$in": sorted(addresses)}}, projection={"created_at": 1, "id": 1}
        )
        return {doc["_id"]: (doc["created_at"], doc["id"]) async for doc in cursor}

    async def _highest_seq(self, address: str) -> int | None:
        doc = await self._messages.find_one(
            {"address": address}, projection={"seq": 1}, sort=[("seq", DESCENDING)]
        )
        return None if doc is None else int(doc["seq"])

    async def _tombstoned(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        cursor = self._tombstones.find({"_id": {"$in": ids}}, projection={"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def _allocate_seqs(self, by_address: dict[str, list[NewMessage]]) -> dict[str, int]:
        """Reserve ``len(group)`` seqs from each mailbox's counter; none for a missing one."""

        async def reserve(address: str, group: list[NewMessage]) -> dict[str, int]:
            counter = await self._mailboxes.find_one_and_update(
                {"_id": address},
                {"$inc": {"last_seq": len(group)}},
                return_document=ReturnDocument.AFTER,
            )
            if counter is None:
                return {}
            first = counter["last_seq"] - len(group) + 1
            return {message.id: first + i for i, message in enumerate(group)}

        seqs: dict[str, int] = {}
        for part in await asyncio.gather(*(reserve(a, g) for a, g in by_address.items())):
            seqs.update(part)
        return seqs

    async def _insert_chunks(self, messages: list[NewMessage]) -> None:
        ops = [
            InsertOne(
                {
                    "_id": f"{message.id}:{n}",
                    "message_id": message.id,
                    "n": n,
                    "data": chunk,
                    "expires_at": utc_ms(message.expires_at),
                }
            )
            for message in messages
            for n, chunk in enumerate(split_chunks(message.raw))
        ]
        if ops:
            await _insert_idempotently(self._chunks, ops)

    async def _insert_pieces(
        self, messages: Iterable[NewMessage], expiry: dict[str, datetime]
    ) -> None:
        """The documents and attachments of ``messages``, under their parser versions."""
        documents: list[InsertOne[Doc]] = []
        attachments: list[InsertOne[Doc]] = []
        for message in messages:
            mid, version = message.id, message.parser_version
            expires_at = utc_ms(expiry[mid])
            documents += [
                InsertOne(
                    {
                        "_id": f"{mid}\x00{version}\x00{n}",
                        "message_id": mid,
                        "parser_version": version,
                        "n": n,
                        "data": chunk,
                        "expires_at": expires_at,
                    }
                )
                for n, chunk in enumerate(document_chunks(message))
            ]
            attachments += [
                InsertOne(
                    {
                        "_id": f"{mid}\x00{version}\x00{attachment_id}\x00{n}",
                        "message_id": mid,
                        "parser_version": version,
                        "attachment_id": attachment_id,
                        "n": n,
                        "size": size,
                        "data": chunk,
                        "expires_at": expires_at,
                    }
                )
                for attachment_id, n, size, chunk in attachment_chunks(message)
            ]
        if documents:
            await _insert_idempotently(self._documents, documents)
        if attachments:
            await _insert_idempotently(self._attachments, attachments)

    async def _reparse(
        self, updates: dict[str, NewMessage], existing: dict[str, StoredCopy]
    ) -> set[str]:
        """Write the new parses of stored messages; return the ids a newer one beat."""
        if not updates:
            return set()
        await self._insert_pieces(
            updates.values(), {mid: existing[mid].expires_at for mid in updates}
        )

        async def switch(message: NewMessage) -> str | None:
            version = message.parser_version
            switched = await self._messages.update_one(
                {"_id": message.id, "parser_version": {"$lt": version}},
                {"$set": {**_summary_doc(message), "parser_version": version}},
            )
            older = {"message_id": message.id, "parser_version": {"$lt": version}}
            await self._documents.delete_many(older)
            await self._attachments.delete_many(older)
            return None if switched.matched_count else message.id

        results = await asyncio.gather(*(switch(message) for message in updates.values()))
        return {mid for mid in results if mid is not None}

    async def _hold_keys(
        self, keys: list[tuple[str, NewMessage, datetime]], before: dict[str, KeyHolder]
    ) -> None:
        """Point each key at its new holder: insert a missing key, or move one from the
        holder read before (compare-and-set; another writer's move wins)."""
        inserts: list[InsertOne[Doc]] = []
        moves = []
        for key_id, message, expires_at in keys:
            doc = {
                "_id": key_id,
                "address": message.address,
                "dedupe_key": message.dedupe_key,
                "message_id": message.id,
                "received_at": utc_ms(message.received_at),
                "expires_at": utc_ms(dedupe_key_expires_at(expires_at)),
            }
            held = before.get(key_id)
            if held is None:
                inserts.append(InsertOne(doc))
            else:
                fields = {k: v for k, v in doc.items() if k != "_id"}
                moves.append(
                    self._keys.update_one(
                        {"_id": key_id, "message_id": held.message_id}, {"$set": fields}
                    )
                )
        if inserts:
            await _insert_idempotently(self._keys, inserts)
        await asyncio.gather(*moves)

    async def _purge_mailboxes(self, expired: Doc, limit: int) -> list[str]:
        """Delete at most ``limit`` records past ``purge_after``; return their addresses
        (not those taken over between the read and the delete)."""
        if limit <= 0:
            return []
        query = {"purge_after": expired}
        cursor = self._mailboxes.find(query, projection={"_id": 1}).limit(limit)
        addresses = [doc["_id"] async for doc in cursor]
        if not addresses:
            return []
        deleted = await self._mailboxes.delete_many({"_id": {"$in": addresses}, **query})
        if deleted.deleted_count == len(addresses):
            return addresses
        left = self._mailboxes.find({"_id": {"$in": addresses}}, projection={"_id": 1})
        kept = {doc["_id"] async for doc in left}
        return [address for address in addresses if address not in kept]

    async def _insert_messages(
        self, messages: list[NewMessage], seqs: dict[str, int]
    ) -> dict[str, int]:
        """Insert; return the seqs of those another writer had already stored (duplicates)."""
        if not messages:
            return {}
        duplicates = await _insert_idempotently(
            self._messages, [InsertOne(_message_doc(m, seqs[m.id])) for m in messages]
        )
        if not duplicates:
            return {}
        ids = [messages[index].id for index in duplicates]
        found = await self._seqs_of(ids)
        if len(found) != len(ids):  # a duplicate (address, seq), not a duplicate id
            raise StoreError(f"sequence numbers clash for messages {sorted(set(ids) - set(found))}")
        return found

    async def _delete_received_before(self, address: str, created_at: datetime) -> None:
        """Delete an address's messages received before ``created_at`` (a previous owner's)."""
        query = {"address": address, "received_at": {"$lt": created_at}}
        ids = [doc["_id"] async for doc in self._messages.find(query, projection={"_id": 1})]
        if ids:
            await self._messages.delete_many({"_id": {"$in": ids}})
            for pieces in (self._chunks, self._documents, self._attachments):
                await pieces.delete_many({"message_id": {"$in": ids}})
        await self._keys.delete_many(query)

    async def _summaries(self, query: Doc, direction: int, limit: int) -> list[StoredMessage]:
        if limit <= 0:  # MongoDB reads limit(0) as "no limit"
            return []
        with _driver_errors("list_messages"):
            cursor = self._messages.find(query).sort("seq", direction).limit(limit)
            return [_stored(doc) async for doc in cursor]


async def _insert_idempotently(
    collection: AsyncCollection[Doc], ops: list[InsertOne[Doc]]
) -> list[int]:
    """One unordered bulk insert; return the indexes of ops that hit a duplicate key."""
    try:
        await collection.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(
            e.get("code") != DUPLICATE_KEY for e in errors
        ):
            raise
        return [e["index"] for e in errors]
    return []


# --- one batch, decided in order --------------------------------------------------------------
@dataclass(slots=True)
class _BatchFacts:
    """What the store held before the batch."""

    existing: dict[str, StoredCopy]
    tombstoned: set[str]
    #: By address: the mailbox record's creation and id.
    mailboxes: dict[str, tuple[datetime, str]]
    #: By key id (:func:`_key_id`).
    holders: dict[str, KeyHolder]


@dataclass(slots=True)
class _Plan:
    """The batch's decisions, and what to write for them."""

    decisions: list[WriteDecision] = field(default_factory=list)
    #: Each message's owner (:func:`~store.rules.owner_of`), beside its decision.
    owners: list[str | None] = field(default_factory=list)
    #: New messages by id, with the parse of any later re-parse in the batch.
    inserts: dict[str, NewMessage] = field(default_factory=dict)
    #: Messages stored before the batch, with their new parse.
    updates: dict[str, NewMessage] = field(default_factory=dict)
    #: Key id -> its new holder and that copy's expiry.
    keys: dict[str, tuple[NewMessage, datetime]] = field(default_factory=dict)


def _plan_batch(batch: Sequence[NewMessage], facts: _BatchFacts, now: datetime) -> _Plan:
    """Decide each message in order, as if the ones before it had been written."""
    plan = _Plan()
    existing = dict(facts.existing)
    holders = dict(facts.holders)
    for message in batch:
        key_id = _key_id(message) if message.dedupe_key else ""
        created, mailbox_id = facts.mailboxes.get(message.address, (None, None))
        message_facts = MessageFacts(
            existing=existing.get(message.id),
            tombstoned=message.id in facts.tombstoned,
            mailbox_created_at=created,
            key_holder=holders.get(key_id),
            mailbox_id=mailbox_id,
        )
        decision = decide_write(message, message_facts, now)
        plan.decisions.append(decision)
        plan.owners.append(owner_of(message, message_facts))
        if decision.status == "inserted":
            plan.inserts[message.id] = message
            # seq 0 until allocated; results that need it take the allocated one
            copy = StoredCopy(0, message.expires_at, message.parser_version)
        elif decision.status == "updated":
            if message.id in plan.inserts:
                plan.inserts[message.id] = reparsed(plan.inserts[message.id], message)
            else:
                plan.updates[message.id] = message
            copy = replace(existing[message.id], parser_version=message.parser_version)
        elif decision.status == "existing":
            copy = existing[message.id]
        else:
            continue
        existing[message.id] = copy
        if key_id and dedupe_key_moves(message, holders.get(key_id)):
            holders[key_id] = KeyHolder(message.id, message.received_at, copy)
            plan.keys[key_id] = (message, copy.expires_at)
    return plan


def _kept(message_id: str, plan: _Plan, stored: dict[str, int]) -> bool:
    """Whether ``message_id`` is stored after the batch's writes (a new message whose
    mailbox vanished before its seq was allocated is not)."""
    return message_id not in plan.inserts or message_id in stored


def _result(
    message: NewMessage,
    decision: WriteDecision,
    plan: _Plan,
    stored: dict[str, int],
    raced: dict[str, int],
    not_updated: set[str],
) -> WriteResult:
    """The result of ``decision`` once the batch is written: seqs of this batch's new
    messages filled in, and what other writers did meanwhile."""
    mid, address, status = message.id, message.address, decision.status
    if status in ("inserted", "updated", "existing") and mid in plan.inserts:
        if mid not in stored:
            return WriteResult(mid, address, "no_mailbox")
        if mid in raced:  # another writer stored it meanwhile
            return WriteResult(mid, address, "existing", raced[mid])
        return WriteResult(mid, address, status, stored[mid])
    if status == "updated" and mid in not_updated:
        return WriteResult(mid, address, "existing", decision.seq)
    if status == "duplicate" and decision.duplicate_of in plan.inserts:
        first = decision.duplicate_of
        return WriteResult(mid, address, status, stored.get(first), first)
    return WriteResult(mid, address, status, decision.seq, decision.duplicate_of)


# --- documents to port records and back -------------------------------------------------------
def _key_id(message: NewMessage) -> str:
    return f"{message.address}\x00{message.dedupe_key}"


def _visible(address: str, message_id: str, now: datetime | None) -> Doc:
    return {"_id": message_id, "address": address, "expires_at": {"$gt": read_now(now)}}


def _summary_doc(message: NewMessage) -> Doc:
    return {**summary_fields(message), "parse_errors": list(message.parse_errors)}


def _mailbox_doc(mailbox: Mailbox) -> Doc:
    return {
        "_id": mailbox.address,
        "id": mailbox.id,
        "token_hash": mailbox.token_hash,
        "created_at": utc_ms(mailbox.created_at),
        "expires_at": utc_ms(mailbox.expires_at),
        "purge_after": utc_ms(mailbox.purge_after),
        "last_seq": mailbox.last_seq,
        "deleted": mailbox.deleted,
        "visited_at": None if mailbox.visited_at is None else utc_ms(mailbox.visited_at),
    }


def _mailbox(doc: Doc) -> Mailbox:
    return Mailbox(
        id=doc["id"],
        address=doc["_id"],
        token_hash=doc["token_hash"],
        created_at=doc["created_at"],
        expires_at=doc["expires_at"],
        purge_after=doc["purge_after"],
        last_seq=doc.get("last_seq", 0),
        deleted=bool(doc.get("deleted", False)),
        visited_at=doc.get("visited_at"),
    )


def _message_doc(message: NewMessage, seq: int) -> Doc:
    return {
        **_summary_doc(message),
        "parser_version": message.parser_version,
        "_id": message.id,
        "address": message.address,
        "seq": seq,
        "ingest_id": message.ingest_id,
        "received_at": utc_ms(message.received_at),
        "expires_at": utc_ms(message.expires_at),
        "size": len(message.raw),
        "seen": False,
    }


def _stored(doc: Doc) -> StoredMessage:
    fields = {key: value for key, value in doc.items() if key != "_id"}
    fields["id"] = doc["_id"]
    return StoredMessage.model_validate(fields)


#: ``MIGRATIONS[n - 1]`` takes a store from version ``n - 1`` to ``n``.
MIGRATIONS = (MongoStore._create_v1_indexes, MongoStore._create_v2_indexes)
