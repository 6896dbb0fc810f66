"""The factory builds the configured adapter; only ``store/`` talks to a database driver."""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import SecretStr

from schemas.settings import Settings
from store import MailStore, create_store
from store.mongodb import MongoStore
from store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
DRIVERS = {"sqlite3", "pymongo", "bson", "motor"}
PACKAGES = ("schemas", "bus", "ingest", "streams", "api", "deploy")


def test_create_store_builds_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "data" / "mail.sqlite3"
    store = create_store(Settings(store="sqlite", state_dir=tmp_path, sqlite_path=path))
    assert isinstance(store, SQLiteStore) and isinstance(store, MailStore)
    assert store.path == path


def test_create_store_builds_mongodb(tmp_path: Path) -> None:
    settings = Settings(
        store="mongodb",
        state_dir=tmp_path,
        mongo_url=SecretStr("mongodb://127.0.0.1:27099/"),
        mongo_database="mail",
    )
    store = create_store(settings)  # does not connect
    assert isinstance(store, MongoStore) and isinstance(store, MailStore)


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def test_no_database_driver_outside_store() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(_imported_modules(path) & DRIVERS)
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if _imported_modules(path) & DRIVERS
    }
    assert offenders == {}
