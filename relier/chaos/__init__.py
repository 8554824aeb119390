"""``rl chaos``: scenarios that break a running cluster on purpose and check that nothing was lost.

:mod:`~relier.chaos.probes` (the probe tasks workers opt in to),
:mod:`~relier.chaos.ledger` (what each probe must end as),
:mod:`~relier.chaos.base` (the run and its verdicts), the scenarios
(:mod:`~relier.chaos.workers`, :mod:`~relier.chaos.redis_faults`, with
:mod:`~relier.chaos.proxy` to cut the network) and :mod:`~relier.chaos.runner`.
"""
