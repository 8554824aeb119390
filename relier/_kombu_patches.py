"""A guard around one kombu 5.7 bug that makes workers exit on a Redis restart.

When the broker connection drops, kombu's Redis channel closes and tries to
put its unacknowledged messages back (``QoS.restore_unacked_once``). By then
the channel's connection is already ``None``, so building a Redis client
raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``;
Celery takes that for an unrecoverable error and the worker exits instead of
reconnecting.

The same null connection is reached from other paths too (acks flushed
while the hub closes). So the guard works at the source: a channel whose
connection is gone raises redis's ``ConnectionError`` instead, the error
kombu declares as a connection error and Celery recovers from by
reconnecting; and the restore of unacked messages at channel close, which
cannot succeed then, is skipped with a log line. Nothing is lost by skipping the
restore: the messages stay in kombu's ``unacked`` hash, and Relier recovers
their tasks from the journal (tasks this worker still runs finish here;
stranded ones are republished by the resurrector's orphan sweep).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["install_kombu_guard"]

log = logging.getLogger("relier.worker")


def install_kombu_guard() -> None:
    """Wrap ``kombu.transport.redis.QoS.restore_unacked_once`` (idempotent)."""
    import redis.exceptions
    from kombu.transport import redis as kombu_redis

    original: Any = kombu_redis.QoS.restore_unacked_once
    if getattr(original, "_relier_guard", False):
        return
    connparams: Any = kombu_redis.Channel._connparams

    def guarded_connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(getattr(self, "connection", None), "client", None) is None:
            raise redis.exceptions.ConnectionError("the broker channel has no connection")
        return connparams(self, *args, **kwargs)

    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except (AttributeError, redis.exceptions.ConnectionError):
            if getattr(getattr(self.channel, "connection", None), "client", None) is not None:
                raise
            log.warning(
                "relier: the broker connection is gone; kombu could not restore its unacked "
                "messages (they stay in 'unacked'; Relier's journal recovers their tasks)"
            )
            return None

    guarded._relier_guard = True  # type: ignore[attr-defined]
    kombu_redis.QoS.restore_unacked_once = guarded  # type: ignore[method-assign]
    kombu_redis.Channel._connparams = guarded_connparams  # type: ignore[method-assign]
