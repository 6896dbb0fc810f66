"""The reference tools of bench/: Postfix's smtp-source sends to the stock aiosmtpd sink."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.refs import smtp_source

REPO = Path(__file__).resolve().parents[2]
SINK_READY_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def sink_port() -> Iterator[int]:
    """``python -m bench.sink`` on a free port, until the test ends."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sink", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + SINK_READY_TIMEOUT_S
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                output = proc.communicate()[0].decode(errors="replace")
                pytest.fail(f"bench.sink did not listen on {port}:\n{output}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("reuse", [False, True], ids=["new-connections", "reused-connections"])
def test_smtp_source_sends_20_mails_to_the_stock_sink(sink_port: int, reuse: bool) -> None:
    tool = smtp_source()
    cmd = [str(tool.path), "-s", "4", "-m", "20", "-l", "5120"]
    cmd += ["-f", "sender@example.test", "-t", "someone@tmpmail.test", "-M", "bench.test"]
    if reuse:
        cmd.append("-d")
    sent = subprocess.run(
        [*cmd, f"127.0.0.1:{sink_port}"],
        env=tool.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # smtp-source exits non-zero at the first reply it did not expect.
    assert sent.returncode == 0, sent.stdout + sent.stderr
