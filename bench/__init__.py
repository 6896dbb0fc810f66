"""Benchmarks and the reference tools they compare tmpmail with.

Run the scripts from the checkout: ``.venv/bin/python bench/ingest.py``,
``.venv/bin/python bench/store_latency.py``. :mod:`bench.refs` provisions the reference
tools (Postfix's ``smtp-source``) for the benchmarks and for tests alike.
"""
