"""Micro benchmarks and memory benchmarks for asyncio-compatible event loops.

Every benchmark is written once, against the public asyncio API only, and is
run unchanged on each loop (asyncio's own, uvloop, rloop, asyncloop).  The loop under
test is chosen by the factory that creates it; nothing below knows which
implementation it is talking to.

This file has two roles:

* imported by run.py, it provides the registry BENCHMARKS (names, kinds,
  work sizes) and nothing else: importing it must stay cheap and must not
  import uvloop or asyncloop;
* executed as a script, it is the worker that run.py starts in a fresh
  subprocess for every (benchmark, loop, repetition), so that one loop's
  allocator state, caches, threads or crashes never affect another's:

      python micro.py run NAME LOOP SIZE INNER   -> one JSON line on stdout
      python micro.py probe LOOP                 -> versions as one JSON line

Every benchmark checks its own result (counters, sums, ordering) and raises
if the loop got it wrong, so a misbehaving loop fails loudly instead of
producing a fast but meaningless number.
"""

import asyncio
import contextvars
import faulthandler
import gc
import json
import os
import sys
import threading
import time
import traceback

LOOPS = ("asyncio", "uvloop", "rloop", "asyncloop")


def noop(*args):
    pass


# --------------------------------------------------------------------------
# Throughput benchmarks.  Each async benchmark is a coroutine function taking
# the work size n and returning the number of operations it performed; the
# worker times loop.run_until_complete() around it.
# --------------------------------------------------------------------------

async def bench_call_soon(n):
    """Schedule callbacks with call_soon and let the loop run them.

    Callbacks are scheduled in batches of 1000 (then the loop drains the
    batch) so this measures scheduling+dispatch throughput with a ready queue
    of realistic size; the 100 000-deep queue is the memory benchmark's job.
    """
    loop = asyncio.get_running_loop()
    ran = [0]

    def cb():
        ran[0] += 1

    batch = 1000
    done = 0
    while done < n:
        k = min(batch, n - done)
        fut = loop.create_future()
        for _ in range(k - 1):
            loop.call_soon(cb)
        # FIFO order: this runs after the k-1 callbacks above.
        loop.call_soon(fut.set_result, None)
        await fut
        done += k
        ran[0] += 1
    if ran[0] != n:
        raise AssertionError(f"call_soon: {ran[0]} of {n} callbacks ran")
    return n


def bench_call_soon_before_run(loop, n):
    """n callbacks scheduled with call_soon on a loop that is not running,
    then run_forever until the last one stops it: a ready queue of n handles
    held by a stopped loop while the cyclic GC runs (kind "loop": timed
    around the whole function, the loop not running at the start)."""
    ran = [0]

    def cb():
        ran[0] += 1

    call_soon = loop.call_soon
    for _ in range(n - 1):
        call_soon(cb)
    call_soon(loop.stop)
    loop.run_forever()
    if ran[0] != n - 1:
        raise AssertionError(f"call_soon: {ran[0]} of {n - 1} callbacks ran")
    return n


async def bench_call_soon_chain(n):
    """Each callback schedules the next one: one callback per loop iteration,
    so this is dominated by the fixed cost of a loop iteration (polling for
    I/O with a zero timeout, timer bookkeeping, dispatch)."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    left = [n]

    def step():
        left[0] -= 1
        if left[0]:
            loop.call_soon(step)
        else:
            fut.set_result(None)

    loop.call_soon(step)
    await fut
    return n


async def _threadsafe_posts(n, give_context):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    ran = [0]

    def cb():
        # Runs on the loop thread only, so the counter needs no lock.
        ran[0] += 1
        if ran[0] == n:
            fut.set_result(None)

    def poster():
        post = loop.call_soon_threadsafe
        if give_context:
            ctx = contextvars.copy_context()
            for _ in range(n):
                post(cb, context=ctx)
        else:
            for _ in range(n):
                post(cb)

    t = threading.Thread(target=poster)
    t.start()
    await fut
    t.join()
    return n


async def bench_call_soon_threadsafe(n):
    """Another thread posts n callbacks with call_soon_threadsafe as fast as it
    can; timed until the loop has run all of them.  Measures the cross-thread
    queue plus the loop's wake-up mechanism (self-pipe, eventfd, uv_async)."""
    return await _threadsafe_posts(n, False)


async def bench_call_soon_threadsafe_ctx(n):
    """call_soon_threadsafe with context= given: the poster copies its context
    once and passes it to every call, so no loop copies one per call.
    asyncio's call_soon_threadsafe copies the caller's context for each
    callback when none is given; a loop that skips that copy (rloop's
    callbacks share the loop thread's context) is compared here with loops
    that do the same work."""
    return await _threadsafe_posts(n, True)


async def bench_call_later_cancel(n):
    """Create timers and cancel them before they fire -- the life of most
    timeouts (asyncio.wait_for, asyncio.timeout, protocol idle timers).
    Batches of 1000, then one loop iteration so the loop can discard the
    cancelled timers (asyncio does that lazily)."""
    loop = asyncio.get_running_loop()
    batch = 1000
    handles = [None] * batch
    done = 0
    while done < n:
        k = min(batch, n - done)
        for i in range(k):
            handles[i] = loop.call_later(60.0 + i * 1e-6, noop)
        for i in range(k):
            handles[i].cancel()
        await asyncio.sleep(0)
        done += k
    return n


def _sleepers(n, woke, go=None, base=1e-3):
    """The coroutines of the timers_* benchmarks: min(n, 10 000) tasks each
    sleeping n/tasks times, after `go` is set if given.

    Delays are spread over base..base+1 ms so the timer queue really has to
    order them; a multiplicative hash spreads them so that creation order and
    wake-up order differ. The sleeps put a floor of ~base+1 ms per round on
    the wall time, small next to the cost of handling 10 000 timers per round.

    base is 1 ms so that every sleep arms a timer on every loop: uvloop rounds
    a delay to whole milliseconds and runs one that rounds to 0 (under 0.5 ms)
    as call_soon. With delays of 0..1 ms about half of uvloop's sleeps were
    no timers at all; timers_submillisecond keeps that case.
    Returns the coroutines and the number of sleeps they will make.
    """
    tasks = min(n, 10_000)
    rounds = max(1, n // tasks)

    async def sleeper(delay):
        if go is not None:
            await go.wait()
        loop = asyncio.get_running_loop()
        for _ in range(rounds):
            before = loop.time()
            await asyncio.sleep(delay)
            # A timer may fire up to one clock tick early (libuv's clock has
            # 1 ms resolution, uvloop rounds delays to it) but never wildly so.
            if loop.time() - before < delay - 0.0015:
                raise AssertionError("asyncio.sleep() returned too early")
            woke[0] += 1

    return [sleeper(base + ((i * 7919) % 1000) * 1e-6) for i in range(tasks)], tasks * rounds


async def _gather_sleepers(n, base):
    woke = [0]
    coros, expected = _sleepers(n, woke, base=base)
    await asyncio.gather(*coros)
    if woke[0] != expected:
        raise AssertionError(f"timers: {woke[0]} of {expected} fired")
    return expected


async def bench_timers_firing(n):
    """Thousands of tasks sleeping on timers at once (10 000 in the full run,
    each sleeping 1-2 ms), created by the timed run itself. n is the total
    number of sleeps."""
    return await _gather_sleepers(n, 1e-3)


async def bench_timers_submillisecond(n):
    """timers_firing with delays of 0-1 ms: on uvloop, about half of these
    sleeps (those under 0.5 ms) are call_soon, not timers."""
    return await _gather_sleepers(n, 0.0)


async def prepare_timers_parked(n):
    """Setup for timers_parked (not timed): the tasks of timers_firing
    started and parked on an Event, so that the timed part is the sleeping
    alone."""
    woke = [0]
    go = asyncio.Event()
    coros, expected = _sleepers(n, woke, go)
    running = [asyncio.ensure_future(c) for c in coros]
    await asyncio.sleep(0)  # every task reaches go.wait()
    return go, running, woke, expected


async def bench_timers_parked(state):
    """The same 10 000 sleeping tasks as timers_firing, already created and
    parked: timed from releasing them until all have slept their rounds.
    This is timers_firing without the creation of its tasks and the
    collections that 10 000 new tasks trigger (gather_tasks measures task
    creation), i.e. a server with many tasks waiting on timeouts."""
    go, running, woke, expected = state
    go.set()
    await asyncio.gather(*running)
    if woke[0] != expected:
        raise AssertionError(f"timers: {woke[0]} of {expected} fired")
    return expected


async def bench_sleep0_switch(n):
    """100 tasks taking turns with `await asyncio.sleep(0)`: pure task
    switching through the ready queue.  n = total number of switches."""
    tasks = 100
    per_task = max(1, n // tasks)
    count = [0]

    async def worker():
        for _ in range(per_task):
            await asyncio.sleep(0)
            count[0] += 1

    await asyncio.gather(*[worker() for _ in range(tasks)])
    if count[0] != tasks * per_task:
        raise AssertionError("sleep(0): lost switches")
    return tasks * per_task


async def bench_gather_tasks(n):
    """asyncio.gather() of 1000 small coroutines (each suspends once), repeated:
    task creation, one switch each, completion and gather's bookkeeping.
    n = number of tasks."""
    async def small(i):
        await asyncio.sleep(0)
        return i

    batch = 1000
    done = 0
    while done < n:
        k = min(batch, n - done)
        res = await asyncio.gather(*[small(i) for i in range(k)])
        if len(res) != k or res[-1] != k - 1:
            raise AssertionError("gather returned wrong results")
        done += k
    return n


async def bench_future_roundtrip(n):
    """Create a future, resolve it from a loop callback, await it: the basic
    round trip underneath every awaitable the loop offers."""
    loop = asyncio.get_running_loop()
    total = 0
    for i in range(n):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, i)
        total += await fut
    if total != n * (n - 1) // 2:
        raise AssertionError("future results wrong")
    return n


async def bench_queue_put_get(n):
    """Producer and consumer tasks through an asyncio.Queue(maxsize=64): the
    bounded queue makes both sides block and wake each other regularly.
    n = items transferred."""
    q = asyncio.Queue(maxsize=64)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        total = 0
        for _ in range(n):
            total += await q.get()
        return total

    _, total = await asyncio.gather(producer(), consumer())
    if total != n * (n - 1) // 2:
        raise AssertionError("queue lost or duplicated items")
    return n


async def bench_run_in_executor(n):
    """loop.run_in_executor(None, f) with the default thread pool, 100 calls in
    flight at a time: executor hand-off plus the thread-safe wake-up that
    brings each result back to the loop.  n = calls."""
    loop = asyncio.get_running_loop()

    def work(i):
        return i

    batch = 100
    done = 0
    while done < n:
        k = min(batch, n - done)
        res = await asyncio.gather(*[loop.run_in_executor(None, work, i)
                                     for i in range(k)])
        if res[-1] != k - 1:
            raise AssertionError("executor returned wrong results")
        done += k
    return n


def bench_loop_create_close(factory, n):
    """Create a loop, run one trivial coroutine on it, close it.  The coroutine
    makes sure the loop is really set up (some loops defer work to first
    run), as any program using asyncio.run() would."""
    async def nothing():
        return 1

    for _ in range(n):
        loop = factory()
        if loop.run_until_complete(nothing()) != 1:
            raise AssertionError("run_until_complete returned wrong value")
        loop.close()
    return n


# --------------------------------------------------------------------------
# Memory benchmarks.
#
# Method: the cost of N pending items is measured twice in the same fresh
# process, each time as "after scheduling N items" minus "before":
#
# 1. RSS (resident set size, from /proc/self/statm) -- the memory the process
#    really holds, whoever allocated it: CPython's object allocator, malloc
#    from C code (libuv, the loop's own structures), anything.  This is the
#    number the requirement is about.  It is measured first, on pages the
#    process has not used yet, so growth shows up; allocator granularity
#    (4 KiB pages, 256 KiB-1 MiB pymalloc arenas) is small next to the
#    ~10 MB that 100 000 items cost.
# 2. tracemalloc -- the bytes allocated through Python's allocators
#    (PyObject_Malloc, PyMem_Malloc, PyMem_RawMalloc) that are still alive.
#    Exact and free of page noise, but blind to plain malloc() from C code,
#    so it can under-count a C loop; it is reported as a cross-check, not as
#    the verdict.  It runs second, with tracemalloc started only then, because
#    tracemalloc's own per-allocation records would inflate the RSS figure.
#
# The list that holds the returned handles is allocated before the baseline,
# so only what the loop itself keeps per item is counted (the loop has to keep
# every pending handle alive anyway).  The callbacks and their (empty)
# arguments are shared objects, so they cost nothing per item either.
# --------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


async def _measure_pending(n, schedule, release):
    """schedule(handles) fills handles with n pending items; release(handles)
    gets rid of them again.  Returns RSS and tracemalloc deltas in bytes."""
    import tracemalloc

    handles = [None] * n
    # Warm up: first-time costs (lazily created structures, code paths,
    # free lists) must not be charged to the measured items.
    schedule(handles, 1000)
    await release(handles)

    gc.collect()
    rss0 = rss_bytes()
    schedule(handles, n)
    rss1 = rss_bytes()
    await release(handles)

    gc.collect()
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    schedule(handles, n)
    traced1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await release(handles)
    return {"items": n, "rss_delta": rss1 - rss0, "traced_delta": traced1 - traced0}


async def bench_mem_pending_timers(n):
    """n timers pending far in the future (loop.call_later(3600+, f))."""
    loop = asyncio.get_running_loop()

    def schedule(handles, k):
        for i in range(k):
            handles[i] = loop.call_later(3600.0 + i * 1e-6, noop)

    async def release(handles):
        for i, h in enumerate(handles):
            if h is not None:
                h.cancel()
                handles[i] = None
        # Give the loop iterations to drop the cancelled timers.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    return await _measure_pending(n, schedule, release)


async def bench_mem_pending_callbacks(n):
    """n callbacks pending in the ready queue (loop.call_soon(f), not yet run)."""
    loop = asyncio.get_running_loop()
    ran = [0]

    def cb():
        ran[0] += 1

    def schedule(handles, k):
        for i in range(k):
            handles[i] = loop.call_soon(cb)

    async def release(handles):
        expected = ran[0] + sum(h is not None for h in handles)
        # Our own wake-up is queued behind all of them, so they all run first.
        await asyncio.sleep(0)
        if ran[0] != expected:
            raise AssertionError(f"{expected - ran[0]} pending callbacks never ran")
        for i in range(len(handles)):
            handles[i] = None

    return await _measure_pending(n, schedule, release)


# --------------------------------------------------------------------------
# Registry.  Sizes are fixed (not auto-calibrated) so every loop does exactly
# the same work and numbers stay comparable between runs; they were chosen so
# a timed run takes roughly 0.1-0.3 s on asyncio on a 2-core EPYC VM.
# --------------------------------------------------------------------------

class Bench:
    def __init__(self, name, kind, fn, full, quick, unit, doc, prepare=None):
        self.name = name
        self.kind = kind      # "async", "loop", "factory" or "memory"
        self.fn = fn
        # async kind: coroutine function run (untimed) before each timed run;
        # its result is what fn receives instead of the size
        self.prepare = prepare
        self.full = full      # work size for the full suite
        self.quick = quick    # work size for --quick
        self.unit = unit
        self.doc = doc


BENCHMARKS = [
    Bench("call_soon", "async", bench_call_soon, 200_000, 40_000, "callbacks",
          "call_soon + dispatch, batches of 1000"),
    Bench("call_soon_before_run", "loop", bench_call_soon_before_run, 200_000, 40_000,
          "callbacks", "call_soon on a stopped loop, then run_forever"),
    Bench("call_soon_chain", "async", bench_call_soon_chain, 60_000, 12_000, "callbacks",
          "each callback schedules the next"),
    Bench("call_soon_threadsafe", "async", bench_call_soon_threadsafe, 60_000, 12_000,
          "callbacks", "posted from another thread"),
    Bench("call_soon_threadsafe_ctx", "async", bench_call_soon_threadsafe_ctx, 60_000, 12_000,
          "callbacks", "posted from another thread, context= given (no per-call copy)"),
    Bench("call_later_cancel", "async", bench_call_later_cancel, 150_000, 30_000, "timers",
          "create a timer, cancel it"),
    Bench("timers_firing", "async", bench_timers_firing, 30_000, 10_000, "sleeps",
          "10 000 tasks each sleeping 1-2 ms, repeatedly"),
    Bench("timers_submillisecond", "async", bench_timers_submillisecond, 30_000, 10_000,
          "sleeps", "timers_firing with 0-1 ms sleeps (uvloop: < 0.5 ms is call_soon)"),
    Bench("timers_parked", "async", bench_timers_parked, 30_000, 10_000, "sleeps",
          "timers_firing with its tasks created before timing",
          prepare=prepare_timers_parked),
    Bench("sleep0_switch", "async", bench_sleep0_switch, 200_000, 40_000, "switches",
          "100 tasks switching via asyncio.sleep(0)"),
    Bench("gather_tasks", "async", bench_gather_tasks, 30_000, 6_000, "tasks",
          "gather() of 1000 small tasks, repeated"),
    Bench("future_roundtrip", "async", bench_future_roundtrip, 60_000, 12_000, "futures",
          "create_future, resolve from callback, await"),
    Bench("queue_put_get", "async", bench_queue_put_get, 250_000, 50_000, "items",
          "asyncio.Queue(64) producer -> consumer"),
    Bench("run_in_executor", "async", bench_run_in_executor, 10_000, 2_000, "calls",
          "default thread pool, 100 in flight"),
    Bench("loop_create_close", "factory", bench_loop_create_close, 1_000, 200, "loops",
          "new loop, run one coroutine, close"),
    Bench("mem_pending_timers", "memory", bench_mem_pending_timers, 100_000, 100_000,
          "timers", "100 000 call_later(3600) pending"),
    Bench("mem_pending_callbacks", "memory", bench_mem_pending_callbacks, 100_000, 100_000,
          "callbacks", "100 000 call_soon pending"),
]

BY_NAME = {b.name: b for b in BENCHMARKS}


# --------------------------------------------------------------------------
# Worker side.
# --------------------------------------------------------------------------

def loop_factory(name):
    """Import only the loop under test, so the others cannot influence it."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    if name == "rloop":
        import rloop
        return rloop.new_event_loop
    if name == "asyncloop":
        import asyncloop
        return asyncloop.new_event_loop
    raise ValueError(f"unknown loop {name!r}")


def probe(name):
    """Versions and location of a loop implementation, for the report."""
    info = {"loop": name}
    factory = loop_factory(name)
    if name == "uvloop":
        import uvloop
        import uvloop.loop
        info["version"] = uvloop.__version__
        v = uvloop.loop.libuv_get_version()
        info["libuv"] = f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"
        info["file"] = uvloop.__file__
    elif name == "asyncloop":
        import asyncloop
        info["version"] = getattr(asyncloop, "__version__", "?")
        info["libuv"] = str(getattr(asyncloop, "__libuv_version__", "?"))
        info["file"] = asyncloop.__file__
    elif name == "rloop":
        import importlib.metadata

        import rloop
        info["version"] = importlib.metadata.version("rloop")
        info["file"] = rloop.__file__
    else:
        info["version"] = sys.version.split()[0]
    # Prove the loop can at least run a coroutine before benchmarking it.
    loop = factory()
    try:
        async def check():
            return type(asyncio.get_running_loop()).__module__ + "." + \
                type(asyncio.get_running_loop()).__qualname__
        info["class"] = loop.run_until_complete(check())
    finally:
        loop.close()
    return info


def _close(loop):
    shutdown = getattr(loop, "shutdown_default_executor", None)
    if shutdown is not None:
        loop.run_until_complete(shutdown())
    loop.close()


def run_one(name, loop_name, n, inner):
    bench = BY_NAME[name]
    factory = loop_factory(loop_name)
    warm = max(1, n // 10)

    if bench.kind == "factory":
        bench.fn(factory, warm)
        times = []
        for _ in range(inner):
            gc.collect()
            t0 = time.perf_counter()
            ops = bench.fn(factory, n)
            times.append(time.perf_counter() - t0)
        return {"ops": ops, "times": times}

    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        async def which():
            return asyncio.get_running_loop()
        if loop.run_until_complete(which()) is not loop:
            raise AssertionError("get_running_loop() is not the running loop")

        if bench.kind == "memory":
            return loop.run_until_complete(bench.fn(n))

        if bench.kind == "loop":
            bench.fn(loop, warm)
            times = []
            for _ in range(inner):
                gc.collect()
                t0 = time.perf_counter()
                ops = bench.fn(loop, n)
                times.append(time.perf_counter() - t0)
            return {"ops": ops, "times": times}

        def arg(size):
            if bench.prepare is None:
                return size
            return loop.run_until_complete(bench.prepare(size))

        loop.run_until_complete(bench.fn(arg(warm)))
        times = []
        for _ in range(inner):
            a = arg(n)
            gc.collect()
            t0 = time.perf_counter()
            ops = loop.run_until_complete(bench.fn(a))
            times.append(time.perf_counter() - t0)
            del a
        return {"ops": ops, "times": times}
    finally:
        _close(loop)
        asyncio.set_event_loop(None)


# A hung loop is reported with every thread's Python stack instead of
# silently eating the driver's timeout (run.py kills workers at 180 s).
HANG_TIMEOUT = 150


def main(argv):
    # Also prints the Python stack if the loop crashes with SIGSEGV/SIGABRT.
    faulthandler.enable()
    faulthandler.dump_traceback_later(HANG_TIMEOUT, exit=True)
    try:
        if argv[:1] == ["probe"] and len(argv) == 2:
            out = probe(argv[1])
        elif argv[:1] == ["run"] and len(argv) == 5:
            out = run_one(argv[1], argv[2], int(argv[3]), int(argv[4]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except BaseException:
        traceback.print_exc()
        return 1
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
