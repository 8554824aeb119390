"""A user's own Celery app, bound to Relier (for `celery -A ... worker`)."""

from __future__ import annotations

import os

from celery import Celery

import relier

app = Celery("with_app", broker=os.environ["RELIER_REDIS_URL"])
relier.bind(app)


@relier.rl_task(name="with_app.mul", app=app)
def mul(a: int, b: int) -> int:
    return a * b
