"""Benchmarks: measurements, not pass/fail tests (pytest collects nothing here).

Run them all with ``python -m tests.bench`` (``--markdown`` for the table in
docs/benchmarks.md), or one alone, e.g. ``python -m tests.bench.recovery``.
Each starts its own redis-server (``relier.localredis.LocalRedis``) in a
temporary directory and its own worker subprocesses, and stops all of them.
"""
