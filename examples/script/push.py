"""Push the example tasks and print their results.

Needs a worker started in this folder with ``rl worker -A tasks -c 2`` and the
same ``RELIER_REDIS_URL`` as the worker.
"""

from __future__ import annotations

import asyncio

from tasks import greet, total

from relier import TaskFailedError

TIMEOUT = 30.0


def main() -> None:
    handle = greet.push("world")
    print(f"pushed {handle!r}")
    print("greet:", handle.result(timeout=TIMEOUT))

    # Fails once on purpose; the retry resumes from the checkpoint.
    handle = total.push([1, 2, 3, 4, 5])
    print("total:", handle.result(timeout=TIMEOUT))

    # Runnable in 2 seconds, not before.
    handle = greet.with_options(countdown=2).push("later")
    print("greet with countdown:", handle.result(timeout=TIMEOUT))

    # Many calls in one round trip; each item is a tuple of positional arguments.
    handles = greet.push_many([("Ada",), ("Grace",), ("Linus",)])
    print("push_many:", [h.result(timeout=TIMEOUT) for h in handles])

    # Bad input: the task raises ValueError, which is not retried.
    handle = total.push([1, -2])
    try:
        handle.result(timeout=TIMEOUT)
    except TaskFailedError as exc:
        print(f"total failed: reason={exc.reason} error={exc.error}")
    else:
        raise SystemExit("expected the task to end in the dead letter queue")

    asyncio.run(amain())


async def amain() -> None:
    # The native asyncio forms, for code that already runs an event loop.
    handle = await greet.apush("asyncio")
    print("apush:", await handle.aresult(timeout=TIMEOUT))


if __name__ == "__main__":
    main()
