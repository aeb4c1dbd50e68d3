"""Driver for callgrind: instructions per callback of the core rows of run.py.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/core_cost.py MODE N [LOOP]

runs MODE with N callbacks on one loop, after a warm-up of N/10 and
gc.collect() (as micro.py does before a timed run); the
instructions per callback are (I(2N) - I(N)) / N, which cancels start-up and
warm-up (--table does it). The modes are micro.py's benchmarks, unchanged,
except threadsafe:
  call_soon         micro.bench_call_soon (batches of 1000, then a future)
  before_run        micro.bench_call_soon_before_run (stopped loop)
  chain             micro.bench_call_soon_chain (one callback per iteration)
  sleep0            micro.bench_sleep0_switch (per switch)
  timers_sub        micro.bench_timers_submillisecond (per timer)
  gather            micro.bench_gather_tasks (per task)
  threadsafe        another thread posts 1000 callbacks with
                    call_soon_threadsafe, then waits until the loop ran the
                    last one, and again: micro's version posts as fast as it
                    can, so its batches follow the GIL's switch interval,
                    which callgrind's slowdown changes
LOOP: asyncloop (default), asyncio, uvloop, rloop.

    python benchmarks/core_cost.py --table [N [LOOPS [MODES]]]

prints instructions per callback (each run twice under callgrind).
"""

import asyncio
import gc
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_cost  # noqa: E402
import micro  # noqa: E402


async def threadsafe(n):
    loop = asyncio.get_running_loop()
    batch = 1000
    ran = [0]
    drained = threading.Event()

    def cb():
        ran[0] += 1

    def last():
        ran[0] += 1
        drained.set()

    def poster():
        post = loop.call_soon_threadsafe
        for _ in range(n // batch):
            drained.clear()
            for _ in range(batch - 1):
                post(cb)
            post(last)
            drained.wait()

    t = threading.Thread(target=poster)
    t.start()
    await loop.run_in_executor(None, t.join)
    if ran[0] != n // batch * batch:
        raise AssertionError(f"threadsafe: {ran[0]} callbacks ran")


MODES = {
    "call_soon": micro.bench_call_soon,
    "before_run": micro.bench_call_soon_before_run,
    "chain": micro.bench_call_soon_chain,
    "threadsafe": threadsafe,
    # micro.py's own: batches follow the GIL's switch interval (varies)
    "threadsafe_free": micro.bench_call_soon_threadsafe,
    # task switching: N is the number of switches / timers / tasks
    "sleep0": micro.bench_sleep0_switch,
    "timers_sub": micro.bench_timers_submillisecond,
    "gather": micro.bench_gather_tasks,
}


def run(mode, n, loop_name):
    loop = micro.loop_factory(loop_name)()
    asyncio.set_event_loop(loop)
    try:
        fn = MODES[mode]
        for size in (max(1000, n // 10), n):
            gc.collect()  # as micro.run_one before a timed run
            if mode == "before_run":
                fn(loop, size)
            else:
                loop.run_until_complete(fn(size))
    finally:
        micro._close(loop)


def callgrind(mode, n, loop):
    return metrics_cost.callgrind(mode, n, loop, script=__file__)


def table(n, loops, modes):
    print(f"{'mode':12} " + " ".join(f"{loop:>10}" for loop in loops))
    for mode in modes:
        row = []
        for loop in loops:
            base = callgrind(mode, n, loop)
            double = callgrind(mode, 2 * n, loop)
            row.append(f"{(double - base) / n:10.0f}")
        print(f"{mode:12} " + " ".join(row), flush=True)


def main(argv):
    if argv and argv[0] == "--table":
        n = int(argv[1]) if len(argv) > 1 else 20000
        loops = argv[2].split(",") if len(argv) > 2 else ("asyncloop", "rloop", "uvloop")
        modes = argv[3].split(",") if len(argv) > 3 else tuple(MODES)[:4]
        table(n, loops, modes)
        return
    run(argv[0], int(argv[1]), argv[2] if len(argv) > 2 else "asyncloop")


if __name__ == "__main__":
    main(sys.argv[1:])
