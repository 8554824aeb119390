"""Operations: what operators read and do — inspection, stats, workers, the DLQ, the admin service.

Layer 6, above the task API. The CLI, the chaos runner and every web
adapter call these functions; none of them talks to Redis itself. Importing
this package imports none of its modules.
"""
