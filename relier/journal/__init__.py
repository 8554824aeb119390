"""The journal: Relier's record of every task, in Redis, and the only way it changes.

Layer 1, above the foundation (errors, config, clock). Key names
(:mod:`~relier.journal.keys`), connections, the Lua transitions and their
loader (:mod:`~relier.journal.scripts`, the files in ``lua/``), the
envelope, Celery's message, the preflight check and the journal's states and
reasons. Nothing here knows about workers, tasks' Python functions or
operators. Importing this package imports none of its modules.
"""
