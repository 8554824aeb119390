"""Reserving a received task in the transaction kombu records its delivery in.

When kombu's Redis transport hands a message to the worker, it first records
it as unacknowledged: one MULTI/EXEC pipeline that writes the message to the
``unacked`` hash and its delivery time to ``unacked_index``
(``QoS.append``). Relier adds its own ``reserve.lua`` call to that very
transaction, instead of making a round trip of its own from the
``task_received`` signal. Two reasons:

* **Throughput.** The worker's event loop is its one serial resource: it
  receives, hands tasks to the pool and acknowledges them, and it waits for
  every Redis reply it asks for. A round trip of Relier's own per received
  task cost about 18 % of a no-op worker's throughput
  (``python -m tests.bench.throughput``); one more command in a pipeline
  kombu sends anyway costs a few microseconds.
* **No window.** kombu's record and Relier's ownership are written
  atomically, so a worker killed between the two cannot leave a task
  PENDING and unowned with its message parked in ``unacked`` (the orphan
  sweep of :mod:`relier.worker.orphans` remains the backstop for anything that
  takes the signal path below).

And Relier does not make the event loop wait for that transaction's reply,
nor for the reply to the record's removal when the task is acknowledged
(kombu's own ``append`` and ``ack`` wait for both): they are sent on a
connection of the channel's own and their replies read once they have
arrived (:class:`_Records`). Those waits were the largest part of the
event loop's time per task that Relier could remove.

The wrapper writes what kombu's own ``append`` writes (a test compares the
two on a real Redis, so a kombu upgrade that changes the record fails
loudly). A delivery it did not reserve (no Relier worker in this process,
or a message that is not a registered Relier task) is reserved the old way,
from ``task_received``; one whose reserve failed in the transaction (a
script not loaded yet after a Redis restart, say) is reserved when the reply
is read. A second reserve of the same task changes nothing (``reserve.lua``
only takes a PENDING task).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import redis.exceptions

from relier.clock import now_ms
from relier.journal.scripts import load_all
from relier.registry import is_registered

if TYPE_CHECKING:
    from relier.hub import Relier

__all__ = ["activate", "deactivate", "flush", "install", "reserved_on_delivery"]

log = logging.getLogger("relier.worker")

# Task ids reserved inside kombu's transaction that task_received has not
# seen yet. Bounded: a message that never reaches task_received (refused as
# malformed) would otherwise stay here; forgetting an id only costs one
# redundant, harmless reserve.
_MAX_PENDING = 10_000
_reserved: set[str] = set()
_reserver: _Reserver | None = None


class _Reserver:
    """Builds ``reserve.lua`` calls for one worker incarnation."""

    def __init__(self, relier: Relier, worker_id: str) -> None:
        self.relier = relier
        self.worker_id = worker_id
        self.is_registered = is_registered

    def command(self, message: Any) -> tuple[str, tuple[Any, ...]] | None:
        """The task id and the EVALSHA that reserves ``message``'s task, or None
        (not a registered Relier task: nothing to add)."""
        headers = getattr(message, "headers", None)
        if not isinstance(headers, dict):
            return None
        task_id, name = headers.get("id"), headers.get("task")
        if not isinstance(task_id, str) or not isinstance(name, str):
            return None
        if not self.is_registered(name):
            return None
        scripts = self.relier.scripts
        return task_id, scripts.evalsha(scripts.args.reserve(task_id, self.worker_id, now_ms()))

    def settled(self, task_id: str, reply: Any) -> None:
        """The reserve's reply, read back later: an error is retried the slow way."""
        if not isinstance(reply, Exception):
            return
        if not isinstance(reply, redis.exceptions.NoScriptError):
            log.warning("relier: could not reserve [%s] on delivery: %s", task_id, reply)
        # task_received has passed already (it was told the delivery reserved
        # the task): reserve now; the script wrapper loads the script first.
        # Unreserved is still safe, as on the signal path: the claim takes
        # ownership when the task starts.
        try:
            self.relier.scripts.reserve(task_id, self.worker_id, now_ms())
        except Exception as exc:
            log.warning("relier: could not reserve [%s]: %s", task_id, exc)


class _Records:
    """One kombu channel's delivery records and acknowledgements, on a
    connection of their own, their replies read later.

    The worker's event loop is its serial resource, and kombu makes it wait
    for Redis's reply twice per task: to the record of each delivery (its
    ``unacked`` entry, which Relier's reserve joins) before it hands the
    task on, and to the record's removal when the task is acknowledged.
    Neither reply changes what the loop does next, so Relier sends both
    transactions on this connection and reads the replies when they have
    arrived: at the next send, without waiting, and in full, waiting,
    before anything else reads or removes records (``reject``,
    ``restore_by_tag``, closing the channel). One connection keeps its
    commands in order, so an acknowledgement never overtakes its record;
    and a reply read means Redis has run the transaction, so a record is
    written before another connection looks for it.

    Losing a reply loses nothing kombu's own methods would keep. Had a
    record failed there, kombu would have raised with the message already
    popped from its list; here the failure is logged when the reply is
    read, and the journal covers the task as it does then (a RUNNING task
    is its worker's until the worker dies; a PENDING one whose message is
    gone is republished by the orphan sweep). A failed removal leaves the
    record for kombu to restore after its visibility timeout, as a failed
    ``ack`` does: the claim drops that second delivery of a finished task.
    """

    # Replies read at most this far behind: a channel that only ever sent
    # (no ack, no reject) must not grow its socket buffer without bound.
    MAX_WAITING = 1_000

    def __init__(self, channel: Any) -> None:
        pool = channel.client.connection_pool
        self.conn = pool.connection_class(**pool.connection_kwargs)
        # Per transaction sent: what it does ("record" or "removal"), its
        # delivery tag, the task it reserves (or None) and how many replies
        # it gets (MULTI, one per command, EXEC).
        self._waiting: deque[tuple[str, str, str | None, int]] = deque()
        self._lock = threading.Lock()
        self.conn.register_connect_callback(self._connected)

    def _connected(self, conn: Any) -> None:
        """(Re)connected (called by redis-py, inside a send or a read): replies
        due on the old connection will never come on this one."""
        self._forget("with the connection")

    def send(
        self, what: str, tag: str, commands: list[tuple[Any, ...]], task_id: str | None = None
    ) -> None:
        """Send one transaction; raises as kombu's own call would if it cannot
        be sent."""
        with self._lock:
            self._drain(wait=len(self._waiting) >= self.MAX_WAITING)
            transaction = [("MULTI",), *commands, ("EXEC",)]
            try:
                # No health check: a PING now would read a reply that is not its own.
                self.conn.send_packed_command(
                    self.conn.pack_commands(transaction), check_health=False
                )
            except BaseException:
                self._lost("sending")
                raise
            self._waiting.append((what, tag, task_id, len(transaction)))

    def drain(self) -> None:
        """Read every reply still due, waiting for them; never raises (a
        failure is logged)."""
        with self._lock:
            self._drain(wait=True)

    def close(self) -> None:
        with self._lock:
            self._drain(wait=True)
            self.conn.disconnect()

    def _drain(self, wait: bool) -> None:
        while self._waiting:
            what, tag, task_id, count = self._waiting[0]
            try:
                if not wait and not self.conn.can_read(timeout=0):
                    return  # not arrived yet: read at a later send
                replies = [self._read() for _ in range(count)]
            except (redis.exceptions.RedisError, OSError) as exc:
                self._lost(f"reading ({exc})")
                return
            self._waiting.popleft()
            done = replies[-1]
            if not isinstance(done, list):
                # A command refused while queued (a full Redis, say) aborts
                # the whole transaction: nothing of it was written.
                failure = next((r for r in replies if isinstance(r, Exception)), done)
                self._failed(what, tag, failure)
                continue
            for reply in done[:2]:
                if isinstance(reply, Exception):
                    self._failed(what, tag, reply)
            reserver = _reserver
            if task_id is not None and len(done) > 2 and reserver is not None:
                reserver.settled(task_id, done[2])

    @staticmethod
    def _failed(what: str, tag: str, error: Any) -> None:
        done = "written" if what == "record" else "removed"
        log.warning("relier: kombu's record of delivery %s was not %s: %s", tag, done, error)

    def _read(self) -> Any:
        try:
            return self.conn.read_response()
        except redis.exceptions.ResponseError as exc:
            return exc  # an error reply: the connection goes on

    def _lost(self, doing: str) -> None:
        self._forget(f"while {doing}")
        self.conn.disconnect()

    def _forget(self, how: str) -> None:
        """Drop the replies still due (they will never be read), saying so."""
        if self._waiting:
            log.warning(
                "relier: lost the replies of %d delivery record(s) %s; the journal covers "
                "their tasks", len(self._waiting), how,
            )  # fmt: skip
            self._waiting.clear()


def _records_of(qos: Any) -> _Records | None:
    """The records connection of ``qos``'s channel, if it has sent anything."""
    return None if qos is None else qos.__dict__.get("_relier_records")


def _records(qos: Any) -> _Records:
    records = _records_of(qos)
    if records is None:
        records = qos._relier_records = _Records(qos.channel)
    return records


def flush(qos: Any) -> None:
    """Read the record replies due on ``qos``'s channel (for code, and tests,
    about to look at the records from another connection)."""
    records = _records_of(qos)
    if records is not None:
        records.drain()


def _drained(method: Any) -> Any:
    """``method`` of kombu's QoS, run once the channel's record replies are read."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        flush(self)
        return method(self, *args, **kwargs)

    return wrapper


def install() -> None:
    """Wrap kombu's Redis ``QoS`` (idempotent; inert until :func:`activate`)."""
    from kombu.transport import redis as kombu_redis
    from kombu.transport import virtual

    qos_class: Any = kombu_redis.QoS
    original: Any = qos_class.append
    # kombu is untyped: its record encoder and the base class's bookkeeping.
    record_of: Any = kombu_redis.dumps  # type: ignore[attr-defined]
    remember: Any = virtual.QoS.append
    if getattr(original, "_relier_reserve", False):
        return

    def append(self: Any, message: Any, delivery_tag: str) -> None:
        reserver = _reserver
        if reserver is None:
            return original(self, message, delivery_tag)  # type: ignore[no-any-return]
        delivery = message.delivery_info
        record = record_of([message._raw, delivery["exchange"], delivery["routing_key"]])
        commands: list[tuple[Any, ...]] = [
            ("ZADD", self.unacked_index_key, time.time(), delivery_tag),
            ("HSET", self.unacked_key, delivery_tag, record),
        ]
        try:
            reserve = reserver.command(message)
        except Exception as exc:  # never let Relier's part stop a delivery
            log.warning("relier: could not reserve on delivery: %s", exc)
            reserve = None
        task_id = None
        if reserve is not None:
            task_id, evalsha = reserve
            commands.append(evalsha)
        _records(self).send("record", delivery_tag, commands, task_id)
        remember(self, message, delivery_tag)
        if task_id is not None:
            if len(_reserved) >= _MAX_PENDING:
                _reserved.clear()
            _reserved.add(task_id)

    append._relier_reserve = True  # type: ignore[attr-defined]
    qos_class.append = append
    original_ack: Any = qos_class.ack
    forget: Any = virtual.QoS.ack

    def ack(self: Any, delivery_tag: str) -> None:
        # kombu's own ack is the same two commands, and waits for their reply.
        if _reserver is None:
            flush(self)
            return original_ack(self, delivery_tag)  # type: ignore[no-any-return]
        removal = [
            ("ZREM", self.unacked_index_key, delivery_tag),
            ("HDEL", self.unacked_key, delivery_tag),
        ]
        _records(self).send("removal", delivery_tag, removal)
        forget(self, delivery_tag)

    qos_class.ack = ack
    for name in ("reject", "restore_by_tag"):
        setattr(qos_class, name, _drained(getattr(qos_class, name)))
    channel_close: Any = kombu_redis.Channel.close

    def close(self: Any) -> None:
        try:
            channel_close(self)
        finally:
            records = _records_of(getattr(self, "_qos", None))
            if records is not None:
                records.close()

    kombu_redis.Channel.close = close  # type: ignore[method-assign]


def activate(relier: Relier, worker_id: str) -> None:
    """Reserve this process's deliveries for ``worker_id`` from now on."""
    global _reserver
    install()
    _reserver = _Reserver(relier, worker_id)
    _reserved.clear()
    try:
        # Loaded now (reserve.lua among them), so the first deliveries need not
        # take the signal path.
        load_all(relier.redis)
    except Exception as exc:  # unreachable now: NOSCRIPT sends them that way
        log.warning("relier: could not load the Lua scripts at worker start: %s", exc)


def deactivate() -> None:
    """Back to kombu's own ``append`` (the reserve goes back to task_received)."""
    global _reserver
    _reserver = None
    _reserved.clear()


def reserved_on_delivery(task_id: str) -> bool:
    """Whether ``task_id``'s delivery reserved it already (answers once per delivery)."""
    try:
        _reserved.remove(task_id)
    except KeyError:
        return False
    return True
