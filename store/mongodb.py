"""MongoDB adapter of the storage port, on PyMongo's native asyncio client.

It uses only what MongoDB and FerretDB v1 both support (see the platform notes): no
transactions, no partial indexes, no change streams, no aggregation. Writes are made
idempotent by unique indexes instead:

* ``mailboxes``: ``_id`` = address, unique ``token_hash``; ``last_seq`` is the counter.
* ``messages``: ``_id`` = message id, unique ``(address, seq desc)``.
* ``message_chunks``: ``_id`` = ``"<message id>:<n>"``, unique ``(message_id, n)``; each
  chunk carries its message's ``expires_at``, so a purge finds orphans too.
* ``tombstones``: ``_id`` = message id.
* ``meta``: ``{"_id": "schema", "version": n}``, and the migration lease while one runs.

A message document holds the :class:`~schemas.mail.MailSummary` fields beside its own;
they are written and read generically, so a new summary field needs no change here.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, InsertOne, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from schemas.mail import summary_fields
from store._common import split_chunks, to_ms, utc_ms
from store.port import (
    Mailbox,
    NewMessage,
    PurgeCounts,
    StoredMessage,
    StoreError,
    WriteResult,
    WriteStatus,
)
from store.rules import MessageFacts, address_is_free, decide_write, take_over_seq

log = logging.getLogger(__name__)

Doc = dict[str, Any]
DUPLICATE_KEY = 11000

#: The schema version this code writes; :data:`MIGRATIONS` brings older stores to it.
SCHEMA_VERSION = 1
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
    async def create_mailbox(self, mailbox: Mailbox, now: datetime) -> bool:
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
        """Gather the facts for the whole batch, decide each message with the one rule,
        allocate seqs per mailbox, then bulk-insert chunks and messages.

        Chunks go first, so a visible message always has its raw bytes.
        """
        if not batch:
            return []
        for message in batch:  # refuse naive datetimes before anything is written
            to_ms(message.received_at)
            to_ms(message.expires_at)
        with _driver_errors("store_messages"):
            ids = list(dict.fromkeys(message.id for message in batch))
            stored = await self._seqs_of(ids)
            tombstoned = await self._tombstoned([i for i in ids if i not in stored])
            created = await self._created_at({message.address for message in batch})

            # First occurrence of each id, decided; new ones grouped by mailbox.
            decided: dict[str, WriteResult] = {}
            new_by_address: dict[str, list[NewMessage]] = {}
            for message in batch:
                if message.id in decided:
                    continue
                facts = MessageFacts(
                    existing_seq=stored.get(message.id),
                    tombstoned=message.id in tombstoned,
                    mailbox_created_at=created.get(message.address),
                )
                status = decide_write(message, facts, now)
                decided[message.id] = _result(message, status, facts.existing_seq)
                if status == "inserted":
                    decided[message.id] = _result(message, "no_mailbox")  # until a seq is set
                    new_by_address.setdefault(message.address, []).append(message)

            seqs = await self._allocate_seqs(new_by_address)
            to_write = [m for group in new_by_address.values() for m in group if m.id in seqs]
            await self._insert_chunks(to_write)
            raced = await self._insert_messages(to_write, seqs)
            for message in to_write:
                if message.id in raced:  # another writer stored it meanwhile
                    decided[message.id] = _result(message, "existing", raced[message.id])
                else:
                    decided[message.id] = _result(message, "inserted", seqs[message.id])

        results = []
        seen: set[str] = set()
        for message in batch:
            first = decided[message.id]
            if message.id in seen and first.status == "inserted":
                results.append(_result(message, "existing", first.seq))
            else:
                results.append(first)
            seen.add(message.id)
        return results

    async def list_messages(
        self, address: str, *, limit: int, before_seq: int | None = None
    ) -> list[StoredMessage]:
        query: Doc = {"address": address}
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        return await self._summaries(query, DESCENDING, limit)

    async def list_messages_after(
        self, address: str, after_seq: int, *, limit: int
    ) -> list[StoredMessage]:
        return await self._summaries(
            {"address": address, "seq": {"$gt": after_seq}}, ASCENDING, limit
        )

    async def get_message(self, address: str, message_id: str) -> StoredMessage | None:
        with _driver_errors("get_message"):
            doc = await self._messages.find_one({"_id": message_id, "address": address})
        return None if doc is None else _stored(doc)

    async def get_raw(self, address: str, message_id: str) -> bytes | None:
        with _driver_errors("get_raw"):
            doc = await self._messages.find_one(
                {"_id": message_id, "address": address}, projection={"size": 1}
            )
            if doc is None:
                return None
            cursor = self._chunks.find({"message_id": message_id}).sort("n", ASCENDING)
            raw = b"".join([chunk["data"] async for chunk in cursor])
        if len(raw) != doc["size"]:
            raise StoreError(f"raw bytes of message {message_id} are incomplete")
        return raw

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
            await self._chunks.delete_many({"message_id": message_id})
            return True

    async def purge_expired(self, now: datetime) -> PurgeCounts:
        expired = {"$lte": utc_ms(now)}
        with _driver_errors("purge_expired"):
            messages = await self._messages.delete_many({"expires_at": expired})
            chunks = await self._chunks.delete_many({"expires_at": expired})
            tombstones = await self._tombstones.delete_many({"expires_at": expired})
            mailboxes = await self._mailboxes.delete_many({"purge_after": expired})
        return PurgeCounts(
            messages=messages.deleted_count,
            chunks=chunks.deleted_count,
            tombstones=tombstones.deleted_count,
            mailboxes=mailboxes.deleted_count,
        )

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
    def _tombstones(self) -> AsyncCollection[Doc]:
        return self._db["tombstones"]

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

    async def _seqs_of(self, ids: list[str]) -> dict[str, int]:
        cursor = self._messages.find({"_id": {"$in": ids}}, projection={"seq": 1})
        return {doc["_id"]: doc["seq"] async for doc in cursor}

    async def _created_at(self, addresses: set[str]) -> dict[str, datetime]:
        cursor = self._mailboxes.find(
            {"_id": {"$in": sorted(addresses)}}, projection={"created_at": 1}
        )
        return {doc["_id"]: doc["created_at"] async for doc in cursor}

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
            await self._chunks.delete_many({"message_id": {"$in": ids}})

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


# --- documents to port records and back -------------------------------------------------------
def _result(message: NewMessage, status: WriteStatus, seq: int | None = None) -> WriteResult:
    return WriteResult(message.id, message.address, status, seq)


def _mailbox_doc(mailbox: Mailbox) -> Doc:
    return {
        "_id": mailbox.address,
        "id": mailbox.id,
        "token_hash": mailbox.token_hash,
        "created_at": utc_ms(mailbox.created_at),
        "expires_at": utc_ms(mailbox.expires_at),
        "purge_after": utc_ms(mailbox.purge_after),
        "last_seq": mailbox.last_seq,
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
    )


def _message_doc(message: NewMessage, seq: int) -> Doc:
    return {
        **summary_fields(message),
        "parse_errors": list(message.parse_errors),
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
MIGRATIONS = (MongoStore._create_v1_indexes,)
