"""The worker runtime: what runs inside a Celery worker and nowhere else.

Layer 4, above the hub and telemetry. Celery loads it by dotted path
(:data:`relier.hub.WORKER_STEP`) when it builds a worker; a process that
only pushes never imports it (tests/test_producer.py). Signal handlers and
kombu's guards are connected by the bootstep, never at import. Importing
this package imports none of its modules.
"""
