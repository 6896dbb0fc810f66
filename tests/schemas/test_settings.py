from pathlib import Path

import pytest

from schemas.settings import RECORD_OVERHEAD, Settings, SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("TMPMAIL_"):
            monkeypatch.delenv(name)
    s = load_settings()
    assert (s.smtp_host, s.smtp_port, s.http_host, s.http_port) == (
        "127.0.0.1",
        2525,
        "127.0.0.1",
        8000,
    )
    assert len(s.domains) == 3 and all(d.endswith(".test") for d in s.domains)
    assert s.max_message_bytes == 10 * 1024 * 1024
    assert s.store == "sqlite"
    assert s.state_dir.name == ".tmpmail"
    assert s.sqlite_path == s.state_dir / "data" / "tmpmail.sqlite3"
    assert s.message_ttl.days == 7 and s.mailbox_ttl.days == 15 and s.mailbox_cooldown.days == 30
    assert s.topic_partitions == 6 and s.raw_mail_retention_ms == 8 * 86_400_000


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TMPMAIL_DOMAINS", "Bücher.test, other.test")
    monkeypatch.setenv("TMPMAIL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TMPMAIL_STORE", "mongodb")
    monkeypatch.setenv("TMPMAIL_MONGO_URL", "mongodb://127.0.0.1:27018/")
    s = load_settings()
    assert s.domains == ["xn--bcher-kva.test", "other.test"]
    assert s.state_dir == tmp_path.resolve()
    assert s.store == "mongodb" and s.mongo_port == 27018
    assert "27018" not in repr(s)  # the URL is a secret


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("TMPMAIL_SMTP_PORT", "70000", "TMPMAIL_SMTP_PORT"),
        ("TMPMAIL_STORE", "postgres", "TMPMAIL_STORE"),
        ("TMPMAIL_MONGO_URL", "http://x", "TMPMAIL_MONGO_URL"),
        ("TMPMAIL_KAFKA_BOOTSTRAP", "nohostport", "TMPMAIL_KAFKA_BOOTSTRAP"),
        ("TMPMAIL_DOMAINS", "localhost", "TMPMAIL_DOMAINS"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, says: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert says in str(exc.value)
    assert "Fix the variable" in str(exc.value)


def test_mail_that_would_outlive_the_hold_on_its_address_is_refused() -> None:
    with pytest.raises(SettingsError, match="TMPMAIL_MESSAGE_TTL_DAYS"):
        load_settings(message_ttl_days=50, mailbox_ttl_days=15, mailbox_cooldown_days=30)
    assert load_settings(message_ttl_days=45, mailbox_ttl_days=15, mailbox_cooldown_days=30)


def test_no_more_streams_workers_than_raw_mail_partitions() -> None:
    with pytest.raises(SettingsError, match="TMPMAIL_TOPIC_PARTITIONS"):
        load_settings(streams_processes=4, topic_partitions=3)
    assert load_settings(streams_processes=3, topic_partitions=3).streams_processes == 3


def test_one_record_size_and_one_ready_file() -> None:
    s = Settings(max_message_bytes=2 * 1024 * 1024)
    assert s.max_record_bytes == 2 * 1024 * 1024 + RECORD_OVERHEAD
    assert s.streams_ready_file(1) == s.run_dir / "streams-1.ready"
