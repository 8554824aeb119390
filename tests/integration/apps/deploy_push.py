"""Push calls of ``deploy.greet`` with one version of its code, as that version's producers do.

::

    python -m tests.integration.apps.deploy_push v2 '[{"args": ["Grace", "Hopper"], "kwargs": {}}]'

prints the task ids as a JSON list, in the order of the calls. A test runs
it in a subprocess per version: one process cannot import two versions of a
task (their names collide), just as one deployed producer runs one version.
"""

from __future__ import annotations

import importlib
import json
import sys


def main(version: str, calls: str) -> None:
    module = importlib.import_module(f"tests.integration.apps.deploy_{version}")
    ids = [module.greet.push(*c["args"], **c["kwargs"]).id for c in json.loads(calls)]
    print(json.dumps(ids))


if __name__ == "__main__":
    main(*sys.argv[1:])
