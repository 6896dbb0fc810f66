"""Benchmarks and the reference tools they compare tmpmail with.

Run the scripts from the checkout: ``.venv/bin/python bench/ingest.py``,
``.venv/bin/python bench/store_latency.py``, ``.venv/bin/python -m bench.live`` (250 to
live event, and one worker's sustained rate), ``.venv/bin/python -m bench.replay``
(``tmpmail replay`` records/s), ``.venv/bin/python -m bench.store_http`` (list and get
through the HTTP API as the store grows); :mod:`bench.stack` starts and stops their
stacks. ``make bench`` (:mod:`bench.run`) runs them all beside the references and
reports them in one table (:mod:`bench.report`). :mod:`bench.refs` provisions Postfix's
``smtp-source`` for the benchmarks and for tests alike, :mod:`bench.mailpit` builds and
runs Mailpit.
"""
