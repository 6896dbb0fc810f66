"""End to end, sustained: one smtp-source load into tmpmail, then the same into Mailpit.

``make bench`` (:mod:`bench.run`) runs it; it has no command line of its own.

The load is ``mails`` mails of ``size`` bytes over ``connections`` reused connections
(smtp-source ``-d``), to ``mailboxes`` existing mailboxes: one smtp-source process per
mailbox, all started at once, each with its share of the mails and connections.

* **tmpmail**: the mailboxes are created through the API, and each has a live client
  (``GET /api/events``, :func:`bench.live.listen`) connected before the first mail and a
  store poll (its newest ``seq``, :class:`bench.live.StorePoller`; SQLite's seq has no
  gaps). Each mail is counted three times: acknowledged (smtp-source exits 0 after the
  last 250), stored, and received by the live client. Each rate runs from the first
  mail sent (smtp-source started) to the last one counted; the end-to-end rate is the
  received one.
* **Mailpit**: its messages deleted first, the same smtp-source processes to its SMTP
  port with the same recipients, and ``GET /api/v1/messages`` polled for its total until
  every mail is stored: its storing rate runs from the first mail sent to the first poll
  that sees them all.

Both polls time a sample at the middle of its request, and a count is taken as reached
midway between the last poll below it and the first at it. The CPU of every process is
measured over each half (:mod:`bench.cpu`), from the first mail to the last counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.cpu import CpuMeter
from bench.ingest import Scenario, smtp_source_command
from bench.live import StorePoller, listen, tick
from bench.mailpit import Mailpit, MailpitError, delete_all, stored_total
from bench.refs import SmtpSource
from bench.report import ratio
from bench.stack import BenchError, BenchStack, create_mailbox, progress

now = time.perf_counter

#: Points kept of each count-over-time series (for the plot).
SERIES_POINTS = 400


@dataclass(frozen=True)
class Load:
    mails: int
    connections: int
    mailboxes: int
    size: int = 5120
    reuse: bool = True

    def describe(self) -> str:
        mode = "reused connections" if self.reuse else "a connection per mail"
        return (
            f"{self.mails:,} mails of {self.size} bytes over {self.connections} "
            f"{mode}, to {self.mailboxes} mailbox{'es' if self.mailboxes > 1 else ''}"
        )


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` whole numbers that differ by at most one, larger first."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    base, extra = divmod(total, parts)
    return [base + (1 if n < extra else 0) for n in range(parts)]


def cumulative(times: Sequence[float], first: float, points: int = SERIES_POINTS) -> list[list]:
    """``[[s after first, count so far], ...]`` of sorted event ``times``, at most about
    ``points`` of them (the last one always kept)."""
    ordered = sorted(times)
    if not ordered:
        return []
    step = max(1, len(ordered) // points)
    kept = [[round(t - first, 4), n + 1] for n, t in enumerate(ordered) if (n + 1) % step == 0]
    if kept[-1][1] != len(ordered):
        kept.append([round(ordered[-1] - first, 4), len(ordered)])
    return kept


def rate(count: int, first: float, last: float | None) -> dict[str, float | int | None]:
    window = None if last is None else last - first
    return {
        "count": count,
        "last_after_first_s": None if window is None else round(window, 3),
        "per_s": round(count / window, 1) if window and window > 0 and count else None,
    }


async def send_all(
    tool: SmtpSource, port: int, recipients: Sequence[str], load: Load, timeout_s: float
) -> tuple[float, float]:
    """One smtp-source per recipient, all at once; (first started, last finished)."""
    mails = split(load.mails, len(recipients))
    conns = split(max(load.connections, len(recipients)), len(recipients))
    procs: list[asyncio.subprocess.Process] = []
    began = now()
    try:
        for recipient, count, connections in zip(recipients, mails, conns, strict=True):
            scenario = Scenario(connections, load.reuse, count)
            procs.append(
                await asyncio.create_subprocess_exec(
                    *smtp_source_command(tool, scenario, load.size, port, recipient),
                    env=tool.env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
            )

        async def finish(proc: asyncio.subprocess.Process) -> tuple[int, bytes, float]:
            output, _ = await proc.communicate()
            return (proc.returncode if proc.returncode is not None else -1), output, now()

        done = await asyncio.wait_for(asyncio.gather(*(finish(p) for p in procs)), timeout_s)
    except TimeoutError:
        raise BenchError(
            f"smtp-source to port {port} still ran after {timeout_s:g}s: raise --e2e-timeout"
        ) from None
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for code, output, _ in done:
        if code != 0:
            tail = output.decode(errors="replace").strip()[-400:]
            raise BenchError(f"smtp-source to port {port} exited {code}: {tail}")
    return began, max(at for _, _, at in done)


async def _wait(
    counts: Callable[[], tuple[int, ...]], want: int, grace_s: float, poll_s: float
) -> bool:
    """Until every count reaches ``want`` (True), or ``grace_s`` without progress."""
    last, quiet_since = counts(), now()
    while True:
        have = counts()
        if all(n >= want for n in have):
            return True
        if have != last:
            last, quiet_since = have, now()
        elif now() - quiet_since > grace_s:
            return False
        await asyncio.sleep(poll_s)


async def tmpmail_e2e(
    tool: SmtpSource,
    stack: BenchStack,
    load: Load,
    meter: CpuMeter,
    *,
    poll_s: float = 0.1,
    grace_s: float = 20.0,
    timeout_s: float = 600.0,
    label: str = "e2e tmpmail",
) -> dict[str, Any]:
    async with stack.client() as client:
        boxes = [await create_mailbox(client) for _ in range(load.mailboxes)]
        listeners = []
        pollers = [StorePoller(client, box, poll_s) for box in boxes]
        want = split(load.mails, len(boxes))
        try:
            for box in boxes:
                listeners.append(await listen(client, box))
            progress(f"{label}: {load.describe()}; live clients connected")

            def stored() -> int:
                return sum(min(p.newest, n) for p, n in zip(pollers, want, strict=True))

            def received() -> int:
                return sum(
                    min(len(events.times), n)
                    for (events, _), n in zip(listeners, want, strict=True)
                )

            for poller in pollers:
                poller.start()
            ticker = asyncio.create_task(
                tick(lambda: f"{label}: {stored():,} stored, {received():,} received", 2.0)
            )
            try:
                with meter.window() as window:
                    first, acked_at = await send_all(
                        tool, stack.ports.smtp, [b.address for b in boxes], load, timeout_s
                    )
                    progress(f"{label}: {load.mails:,} acked in {acked_at - first:.2f}s")
                    complete = await _wait(
                        lambda: (stored(), received()), load.mails, grace_s, poll_s
                    )
            finally:
                ticker.cancel()
                for poller in pollers:
                    poller.stop()
        finally:
            for _, task in listeners:
                task.cancel()
        stored_last = [p.stored_at(n) for p, n in zip(pollers, want, strict=True)]
        received_last = [
            events.times[n - 1] if len(events.times) >= n else None
            for (events, _), n in zip(listeners, want, strict=True)
        ]
        stored_times = _stored_times(pollers, want)
        received_times = [t for events, _ in listeners for t in events.times]
        result: dict[str, Any] = {
            "target": "tmpmail",
            "load": load.__dict__,
            "recipients": [box.address for box in boxes],
            "complete": complete,
            "acked": rate(load.mails, first, acked_at),
            "stored": rate(stored(), first, _last(stored_last)),
            "received": rate(received(), first, _last(received_last)),
            "cpu": window.as_dict(),
            "live_streams_reopened": sum(events.reopened for events, _ in listeners),
            "poll_errors": sum(len(p.errors) for p in pollers),
            "series": {
                "stored": cumulative(stored_times, first),
                "received": cumulative(received_times, first),
            },
        }
    progress(
        f"{label}: acked {result['acked']['per_s']}/s, stored {result['stored']['per_s']}/s, "
        f"received {result['received']['per_s']}/s"
        + ("" if complete else f" (INCOMPLETE: {stored():,} stored, {received():,} received)")
    )
    return result


def stored_at(samples: Sequence[tuple[float, int]], count: int) -> float | None:
    """When ``count`` mails were stored, from polls of (time, count stored): the middle
    between the last poll that saw fewer and the first that saw them all (unbiased, to
    within the poll interval), as :meth:`bench.live.StorePoller.stored_at` estimates."""
    for n, (at, stored) in enumerate(samples):
        if stored >= count:
            return at if n == 0 else (samples[n - 1][0] + at) / 2
    return None


def _last(times: Sequence[float | None]) -> float | None:
    """The latest of ``times``, or None when one is missing (not everything arrived)."""
    present = [t for t in times if t is not None]
    return max(present) if present and len(present) == len(times) else None


def _stored_times(pollers: Sequence[StorePoller], want: Sequence[int]) -> list[float]:
    """When each stored mail was first seen: one time per seq, from the polls."""
    times: list[float] = []
    for poller, limit in zip(pollers, want, strict=True):
        seen = 0
        for at, seq in poller.samples:
            seq = min(seq, limit)
            times.extend([at] * max(0, seq - seen))
            seen = max(seen, seq)
    return times


async def mailpit_e2e(
    tool: SmtpSource,
    mailpit: Mailpit,
    recipients: Sequence[str],
    load: Load,
    meter: CpuMeter,
    *,
    poll_s: float = 0.05,
    grace_s: float = 20.0,
    timeout_s: float = 600.0,
    label: str = "e2e Mailpit",
) -> dict[str, Any]:
    async with mailpit.client() as client:
        await delete_all(client)
        base = await stored_total(client)
        samples: list[tuple[float, int]] = []
        errors: list[str] = []

        async def poll() -> None:
            while True:
                asked = now()
                try:
                    total = await stored_total(client)
                except (MailpitError, httpx.HTTPError) as exc:  # counted; the wait ends
                    errors.append(str(exc))
                else:
                    samples.append(((asked + now()) / 2, total - base))
                await asyncio.sleep(poll_s)

        def stored() -> int:
            return samples[-1][1] if samples else 0

        progress(f"{label}: {load.describe()}")
        poller = asyncio.create_task(poll())
        ticker = asyncio.create_task(tick(lambda: f"{label}: {stored():,} stored", 2.0))
        try:
            with meter.window() as window:
                first, acked_at = await send_all(
                    tool, mailpit.smtp_port, recipients, load, timeout_s
                )
                progress(f"{label}: {load.mails:,} acked in {acked_at - first:.2f}s")
                complete = await _wait(lambda: (stored(),), load.mails, grace_s, poll_s)
        finally:
            ticker.cancel()
            poller.cancel()
    stored_last = stored_at(samples, load.mails)
    stored_times: list[float] = []
    seen = 0
    for at, n in samples:
        n = min(n, load.mails)
        stored_times.extend([at] * max(0, n - seen))
        seen = max(seen, n)
    result: dict[str, Any] = {
        "target": "mailpit",
        "load": load.__dict__,
        "complete": complete,
        "acked": rate(load.mails, first, acked_at),
        "stored": rate(min(stored(), load.mails), first, stored_last),
        "cpu": window.as_dict(),
        "poll_errors": len(errors),
        "series": {"stored": cumulative(stored_times, first)},
    }
    progress(
        f"{label}: acked {result['acked']['per_s']}/s, stored {result['stored']['per_s']}/s"
        + ("" if complete else f" (INCOMPLETE: {stored():,} stored)")
    )
    return result


# --- rounds ------------------------------------------------------------------------------


def round_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float | None:
    """tmpmail's received rate over Mailpit's storing rate, for one round."""
    return ratio(_per_s(ours, "received"), _per_s(theirs, "stored"))


def round_summary(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """One round's figures, for the JSON and the table (its series are left out)."""
    versus = round_ratio(ours, theirs)
    return {
        "received_per_s": _per_s(ours, "received"),
        "mailpit_stored_per_s": _per_s(theirs, "stored"),
        "ratio": None if versus is None else round(versus, 3),
        "complete": _round_complete(ours, theirs),
    }


def _per_s(result: dict[str, Any], count: str) -> float | None:
    return (result.get(count) or {}).get("per_s")


def _round_complete(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    return bool(ours.get("complete", True) and theirs.get("complete", True))


def median_round(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> int:
    """The index of the round to report: the median ratio (the lower middle of an even
    count). A round that did not complete, or has no ratio, is reported first: its
    failure must show, not be outvoted."""
    if not pairs:
        raise ValueError("no rounds")
    ratios = [round_ratio(ours, theirs) for ours, theirs in pairs]
    for index, ((ours, theirs), versus) in enumerate(zip(pairs, ratios, strict=True)):
        if versus is None or not _round_complete(ours, theirs):
            return index
    values = [versus for versus in ratios if versus is not None]  # every one, here
    order = sorted(range(len(values)), key=values.__getitem__)
    return order[(len(order) - 1) // 2]
