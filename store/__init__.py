"""tmpmail's storage: the port (:mod:`store.port`) and a factory for its adapters.

``streams`` and ``api`` import only this package; the drivers (``sqlite3``, ``pymongo``)
are imported by the adapter that needs them, when :func:`create_store` builds it::

    store = create_store(settings)
    await store.open()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.port import (
    CHUNK_SIZE,
    DEDUPE_WINDOW,
    MAILBOX_PURGE_LIMIT,
    Mailbox,
    MailStore,
    NewMessage,
    PendingLifecycleEvent,
    PurgeCounts,
    StoredMessage,
    StoreError,
    WriteResult,
    WriteStatus,
)

if TYPE_CHECKING:
    from schemas.settings import Settings

__all__ = [
    "CHUNK_SIZE",
    "DEDUPE_WINDOW",
    "MAILBOX_PURGE_LIMIT",
    "MailStore",
    "Mailbox",
    "NewMessage",
    "PendingLifecycleEvent",
    "PurgeCounts",
    "StoreError",
    "StoredMessage",
    "WriteResult",
    "WriteStatus",
    "create_store",
]


def create_store(settings: Settings) -> MailStore:
    """The adapter ``settings.store`` names, not yet opened."""
    if settings.store == "sqlite":
        from store.sqlite import SQLiteStore

        if settings.sqlite_path is None:  # filled in by Settings' validator
            raise StoreError("sqlite_path is not set")
        return SQLiteStore(settings.sqlite_path)
    if settings.store == "mongodb":
        from store.mongodb import MongoStore

        return MongoStore(settings.mongo_url.get_secret_value(), settings.mongo_database)
    raise StoreError(f"unknown store {settings.store!r}")
