"""bench.fanout's arithmetic and its clients' parsing: a mistake there would not fail the
bench, it would print wrong figures."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from bench import fanout
from bench.fanout import SseClient, Worker, api_parts_ms, match_receipts, per_connection_kib

EVENT = (
    b"1a5\r\nid: 3\r\nevent: message\r\n"
    b'data: {"subject":"id: 9 is not an id line","seq":3}\r\n\r\n\r\n'
)
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def test_latency_is_receipt_minus_publication_per_client() -> None:
    sent = {0: 10.0, 1: 10.5, 2: 11.0}
    receipts = [(1, 7, 10.75), (0, 7, 10.25), (0, 7, 12.0), (2, 6, 11.5), (9, 7, 11.0)]
    result = match_receipts(sent, 7, receipts)
    assert sorted(result.latencies_ms) == [250.0, 250.0]
    assert result.received_at == {0: 10.25, 1: 10.75}
    assert (result.missing, result.duplicates, result.stray) == (1, 1, 2)
    assert result.window_s == pytest.approx(0.75)  # first publication -> last receipt


def test_a_round_nobody_received() -> None:
    result = match_receipts({0: 1.0}, 1, [])
    assert (result.latencies_ms, result.missing, result.window_s) == ([], 1, None)


def test_the_api_part_is_taken_per_event_from_both_receipts() -> None:
    sent = {0: 1.0, 1: 1.0}
    clients = match_receipts(sent, 1, [(0, 1, 1.3), (1, 1, 1.5)])
    probe = match_receipts(sent, 1, [(0, 1, 1.1)])
    assert api_parts_ms(clients, probe) == [pytest.approx(200.0)]


def test_memory_per_connection() -> None:
    assert per_connection_kib(70_000, 120_000, 1000) == 50.0
    assert per_connection_kib(70_000, 120_000, 0) is None


class FakeTransport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def _client(worker: Worker) -> tuple[SseClient, FakeTransport]:
    client = SseClient(4, b"GET /api/events HTTP/1.1\r\n\r\n", worker)
    transport = FakeTransport()
    client.connection_made(cast(asyncio.Transport, transport))
    return client, transport


async def test_a_client_finds_each_id_line_however_the_bytes_are_cut() -> None:
    stream = HEAD + EVENT + b"9\r\n: ping\r\n\r\n\r\n" + EVENT.replace(b"id: 3", b"id: 4")
    for cut in range(1, len(stream)):
        worker = Worker()
        client, transport = _client(worker)
        assert transport.written.startswith(b"GET /api/events")
        client.data_received(stream[:cut])
        client.data_received(stream[cut:])
        assert client.answered.done() and client.answered.result() == ""
        assert [(index, seq) for index, seq, _ in worker.receipts] == [(4, 3), (4, 4)], cut


async def test_a_refused_stream_is_a_failure_with_its_status_line() -> None:
    worker = Worker()
    client, transport = _client(worker)
    client.data_received(b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}")
    assert client.answered.result() == "HTTP/1.1 429 Too Many Requests"
    assert transport.closed and not worker.receipts


async def test_a_stream_the_server_ends_is_counted() -> None:
    worker = Worker()
    client, _ = _client(worker)
    client.data_received(HEAD)
    client.connection_lost(None)
    assert worker.closed_by_server == 1
    other, _ = _client(worker)
    other.data_received(HEAD)
    other.close()
    other.connection_lost(None)  # we closed it: not the server's doing
    assert worker.closed_by_server == 1


def test_the_target_is_judged_at_live_mail_rates_and_faster_modes_are_stress() -> None:
    judged = {
        rate: fanout.mode_summary(rate, [])["judged"] for rate in (500.0, 2000.0, 5000.0, 0.0)
    }
    assert judged == {500.0: True, 2000.0: True, 5000.0: False, 0.0: False}
