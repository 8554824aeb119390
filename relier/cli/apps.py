"""``-A MODULE``: the user's module, imported, and the Celery app it runs on.

Redis keys: none.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from celery import Celery

from relier.errors import ConfigurationError
from relier.hub import bind, current

__all__ = ["load_app_module"]


def load_app_module(spec: str) -> Any:
    """Import ``module`` or ``module:attr`` and return the Celery app to run.

    The module's own Celery app wins (bound to Relier if it is not yet);
    otherwise Relier's default app, on which every ``@rl_task`` is registered.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        app = getattr(module, attr)
    else:
        found = {
            k: v for k, v in vars(module).items() if isinstance(v, Celery) and not k.startswith("_")
        }
        if len(found) > 1:
            names = sorted(found)
            raise ConfigurationError(
                f"{module_name} defines several Celery apps ({', '.join(names)}); name the one "
                f"to run: -A {module_name}:{names[0]}"
            )
        app = next(iter(found.values()), None)
    if app is None:
        return current().celery_app
    if getattr(app, "_relier", None) is None:
        bind(app)
    return app
