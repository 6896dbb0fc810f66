"""Benchmarks and the reference tools they compare tmpmail with.

Run the scripts from the checkout: ``.venv/bin/python bench/ingest.py``,
``.venv/bin/python bench/store_latency.py``, ``.venv/bin/python -m bench.live`` (250 to
live event, and one worker's sustained rate), ``.venv/bin/python -m bench.replay``
(``tmpmail replay`` records/s); :mod:`bench.stack` starts and stops their stacks.
:mod:`bench.refs` provisions the reference tools (Postfix's ``smtp-source``) for the
benchmarks and for tests alike.
"""
