"""The task API: ``@rl_task``, pushing, handles, locks, admission, retries, validation.

Layer 5, above the worker runtime (which it reaches only from inside a
worker, when a task runs). What a web process imports to push. Importing
this package imports none of its modules; the public names are re-exported
from :mod:`relier`.
"""
