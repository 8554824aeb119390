"""Guards around two kombu flaws that make a worker exit instead of serving on.

**A malformed message in a queue list.** kombu's Redis channel pops a message
with BRPOP and parses it (``_brpop_read``); an item that is not JSON, or not
the object kombu expects (no ``properties``, no delivery tag, a body that is
not base64), raises out of the event loop, which Celery takes for an
unrecoverable error: one ``LPUSH`` of garbage would stop the worker that
pops it. The guard logs such an item as refused and goes on; it is gone
from the list already (BRPOP took it), as it would be after the crash.
Connection errors and ``Empty`` pass through untouched.

**A Redis restart (kombu 5.7).**

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

One kind of stranded task the orphan sweep cannot see: a task the worker
had *reserved* (prefetched, not started). Celery drops such requests when
its broker connection closes (they cannot be acknowledged on a new
channel), but the journal still says RESERVED, owned by a worker whose
lease is alive, so neither the sweep (PENDING, unowned tasks only) nor the
resurrector (dead workers only) would move it before kombu's visibility
timeout, an hour later. So a failed restore also tells the worker's
service (:func:`on_unacked_stranded`), which hands its RESERVED tasks back
once Redis answers again; any of them still on its way to a pool process
runs once, the republished message being dropped at claim.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["install_kombu_guard", "on_unacked_stranded"]

log = logging.getLogger("relier.worker")

# Called when kombu could not restore a channel's unacked messages (set by the
# worker's service while it runs; one per process).
_stranded_listener: Callable[[], None] | None = None


def on_unacked_stranded(listener: Callable[[], None] | None) -> None:
    """Have ``listener`` called whenever kombu fails to restore unacked messages."""
    global _stranded_listener
    _stranded_listener = listener


def install_kombu_guard() -> None:
    """Wrap ``QoS.restore_unacked_once`` and ``Channel._brpop_read`` (idempotent)."""
    import redis.exceptions
    from kombu.transport import redis as kombu_redis

    _guard_brpop_read(kombu_redis)

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
            listener = _stranded_listener
            if listener is not None:
                listener()
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


def _guard_brpop_read(kombu_redis: Any) -> None:
    """Refuse, log and drop an unreadable queue item instead of raising."""
    original: Any = kombu_redis.Channel._brpop_read
    if getattr(original, "_relier_guard", False):
        return
    deliver: Any = kombu_redis.Transport._deliver

    def guarded(self: Any, **options: Any) -> Any:
        try:
            return original(self, **options)
        except (ValueError, RecursionError) as exc:
            # With _deliver guarded below, only the JSON parse of the popped
            # item raises these here (connection errors are redis's own).
            _refused(exc)
            return True

    def guarded_deliver(self: Any, message: Any, queue: str) -> Any:
        try:
            return deliver(self, message, queue)
        except Exception as exc:
            # Raised while one parsed item was turned into a message or
            # handed to Celery. kombu counts KeyError as a connection error
            # (for a stale poller fd, outside this call); here it is a key
            # missing from the message.
            if isinstance(exc, self.connection_errors) and not isinstance(exc, KeyError):
                raise
            _refused(exc)
            _ack(self, message)
            return None

    guarded._relier_guard = True  # type: ignore[attr-defined]
    kombu_redis.Channel._brpop_read = guarded
    kombu_redis.Transport._deliver = guarded_deliver


def _refused(exc: BaseException) -> None:
    log.error(
        "relier: refused a malformed message from a broker queue list (%s: %.200s): it is not "
        "a Celery message (written there by something other than Celery or Relier?) and is "
        "dropped",
        type(exc).__name__,
        exc,
    )


def _ack(transport: Any, message: Any) -> None:
    """Ack a refused message if kombu took it into its unacked bookkeeping already.

    Left there, it would hold one of the worker's prefetch slots for good
    (enough of them stop the worker taking any work) and come back at each
    visibility timeout.
    """
    props = message.get("properties") if isinstance(message, dict) else None
    tag = props.get("delivery_tag") if isinstance(props, dict) else None
    if not isinstance(tag, str):
        return
    for channel in list(getattr(transport, "channels", None) or ()):
        if tag in getattr(channel.qos, "_delivered", {}):
            channel.basic_ack(tag)
