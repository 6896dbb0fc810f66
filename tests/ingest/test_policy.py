from datetime import UTC, datetime

from ingest import policy

DOMAINS = ["tmpmail.test", "xn--bcher-kva.test"]


def test_accepts_served_domains_case_and_idna_insensitively() -> None:
    for rcpt in ("a@tmpmail.test", "A+tag@TMPMAIL.TEST", "x@Bücher.test", "x@xn--bcher-kva.test"):
        assert (
            policy.check_recipient(rcpt, DOMAINS, 0, max_recipients=100, smtputf8=True) is None
        ), rcpt


def test_refuses_other_domains_with_550_5_7_1() -> None:
    reply = policy.check_recipient("a@example.com", DOMAINS, 0, max_recipients=100)
    assert reply is not None and reply.startswith("550 5.7.1 ")
    assert policy.check_recipient("a@sub.tmpmail.test", DOMAINS, 0, max_recipients=100) is not None


def test_refuses_bad_syntax_and_too_many_recipients() -> None:
    assert (
        policy.check_recipient("no-at-sign", DOMAINS, 0, max_recipients=100) == policy.BAD_ADDRESS
    )
    too_many = policy.check_recipient("a@tmpmail.test", DOMAINS, 100, max_recipients=100)
    assert too_many is not None and too_many.startswith("452 4.5.3")


def test_every_reply_has_an_enhanced_status_code() -> None:
    for reply in (
        policy.OK_RCPT,
        policy.REFUSED_DOMAIN,
        policy.BAD_ADDRESS,
        policy.TOO_MANY_RCPTS,
        policy.NOT_STORED,
        policy.NO_RECIPIENTS,
        policy.OK_QUEUED,
    ):
        code, enhanced = reply.split(" ")[:2]
        assert enhanced[0] == code[0] and enhanced.count(".") == 2, reply
    assert policy.NOT_STORED.startswith("451 4.3.0")


def test_received_header_is_one_folded_header_and_cannot_be_injected() -> None:
    line = policy.received_header(
        helo="evil\r\nX-Injected: 1",
        client_ip="127.0.0.1",
        hostname="mx.tmpmail.test",
        protocol="ESMTP",
        ingest_id="abc",
        recipient="a@tmpmail.test",
        received_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
    )
    text = line.decode()
    assert text.startswith("Received: from evil??X-Injected: 1 ([127.0.0.1])\r\n")
    assert text.endswith("\r\n")
    assert all(part.startswith("\t") for part in text.split("\r\n")[1:-1])
    assert "id abc" in text and "for <a@tmpmail.test>" in text and "+0000" in text


def test_protocol_names() -> None:
    assert policy.protocol_name(esmtp=False, tls=False, smtputf8=False) == "SMTP"
    assert policy.protocol_name(esmtp=True, tls=True, smtputf8=False) == "ESMTPS"
    assert policy.protocol_name(esmtp=True, tls=False, smtputf8=True) == "UTF8SMTP"


def test_paths_and_parameters_are_read_as_clients_send_them() -> None:
    assert policy.split_path("FROM:<a@b.test> SIZE=10 BODY=8BITMIME", "FROM") == (
        "a@b.test",
        ["SIZE=10", "BODY=8BITMIME"],
    )
    assert policy.split_path("from: <>", "FROM") == ("", [])
    assert policy.split_path("TO:<@relay.test:u@tmpmail.test>", "TO") == ("u@tmpmail.test", [])
    assert policy.split_path('TO:<"a >b"@tmpmail.test>', "TO") == ('"a >b"@tmpmail.test', [])
    assert policy.split_path("TO:bare@tmpmail.test", "TO") == ("bare@tmpmail.test", [])
    assert policy.split_path("TO:<unclosed@tmpmail.test", "TO") is None
    assert policy.split_path("FROM:<a@b.test>", "TO") is None
    params = policy.parse_mail_params(["size=42", "SMTPUTF8"], max_size=100)
    assert (params.size, params.smtputf8) == (42, True)


def test_the_default_limits_are_settings() -> None:
    from ingest.main import smtp_limits
    from schemas.settings import Settings

    limits = smtp_limits(Settings())
    assert (limits.max_connections_per_client, limits.max_recipients) == (20, 100)
    assert (limits.max_command_bytes, limits.max_bad_commands) == (2048, 10)
    assert (limits.idle_timeout_s, limits.data_timeout_s) == (300.0, 600.0)
    assert limits.recipient_budget_bytes == 200 * 1024 * 1024
