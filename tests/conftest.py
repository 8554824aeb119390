"""Shared test configuration.

The fixtures (``redis_server``, ``redis_url``, ``relier_env``, ``rl_worker``, ``rl_cli``) come
from the ``relier.testing`` plugin, which pytest loads through the ``pytest11`` entry point.
``pytester`` is enabled to test that plugin from the outside.
"""

pytest_plugins = ["pytester"]
