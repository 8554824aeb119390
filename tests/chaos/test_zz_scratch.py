import os, signal, time
from relier.clock import now_ms
from tests.chaos import apps
from tests.chaos.ledger import events, restarts, wait_until

def test_scratch(rl_worker, ledger):
    w = rl_worker("tests.chaos.apps", concurrency=2)
    for _ in range(2):
        v = apps.hold.push(20.0, 0.05); n = apps.work.push(8.0)
        ledger.add(v.id, n.id)
        st = wait_until(lambda: events(ledger.history(v.id), "started"), 10, "start")
        wait_until(lambda: events(ledger.history(n.id), "started"), 10, "start")
        t = now_ms(); os.kill(st[0]["pid"], signal.SIGKILL)
        v.result(timeout=20)
        [(r, s)] = restarts(ledger.history(v.id), "resurrected")
        print("requeue", r["t"] - t, "restart", s["t"] - t)
        n.result(timeout=20)
