"""The bare reference sink: stock aiosmtpd on uvloop, answering 250 to every mail it discards.

    .venv/bin/python -m bench.sink --port 2526 [--host 127.0.0.1]

It is aiosmtpd's own ``SMTP`` class, unmodified and not subclassed, with a handler that
only implements ``handle_DATA``. Every recipient is accepted (aiosmtpd's default with no
``handle_RCPT``). The ``SMTP`` arguments are the ones ingest passes (banner name, size
limit, SMTPUTF8, bytes data, timeout), so that the two differ only in what ingest does
with a mail; the explicit hostname also spares aiosmtpd a ``getfqdn()`` per connection.
One process, one event loop; it prints one line once it listens and stops on SIGTERM or
SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session

HOSTNAME = "sink.bench.test"
DATA_SIZE_LIMIT = 10 * 1024 * 1024
TIMEOUT_S = 300


class DiscardHandler:
    """Accepts and forgets every mail."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


async def serve(host: str, port: int) -> None:
    handler = DiscardHandler()

    def make_session() -> SMTP:
        return SMTP(
            handler,
            hostname=HOSTNAME,
            ident="bench-sink",
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=TIMEOUT_S,
        )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(make_session, host=host, port=port, reuse_address=True)
    print(f"bench.sink: listening on {host}:{port} (aiosmtpd, uvloop)", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        sys.exit("bench.sink: uvloop is required (`.venv/bin/pip install uvloop`)")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
