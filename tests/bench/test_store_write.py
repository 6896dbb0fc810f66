"""bench.store_write runs and reports what it wrote (a tiny pass; its figures are not judged)."""

from bench.store_write import measure


async def test_a_tiny_pass_writes_and_reports_every_mail() -> None:
    result = await measure(batches=2, batch=10, profile=False)
    assert result["mails"] == 20 and result["stored"] == 20
    assert result["cpu_ms_per_mail"] > 0 and result["mails_per_s"] > 0
