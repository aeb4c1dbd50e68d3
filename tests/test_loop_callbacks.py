"""call_soon, call_later, call_at, call_soon_threadsafe and their handles."""

import contextvars
import functools
import random
import threading

import pytest

from conftest import CLOCK_RES, GUARD, PY, run_briefly

var = contextvars.ContextVar("var", default="default")


# -------------------------------------------------------------- call_soon --

def test_call_soon_fifo(loop):
    calls = []
    for i in range(100):
        loop.call_soon(calls.append, i)
    run_briefly(loop)
    assert calls == list(range(100))


def test_call_soon_args(loop):
    calls = []

    def cb(*args):
        calls.append(args)

    loop.call_soon(cb)
    loop.call_soon(cb, 1)
    loop.call_soon(cb, 1, "two", None, [3])
    loop.call_soon(cb, *range(300))
    run_briefly(loop)
    assert calls == [(), (1,), (1, "two", None, [3]), tuple(range(300))]


def test_call_soon_return_value_ignored(loop):
    calls = []
    loop.call_soon(lambda: 42)
    loop.call_soon(lambda: calls.append(1) or "x")
    run_briefly(loop)
    assert calls == [1]


def test_call_soon_kinds_of_callables(loop):
    calls = []

    class C:
        def method(self, x):
            calls.append(("method", x))

        @staticmethod
        def static(x):
            calls.append(("static", x))

        def __call__(self, x):
            calls.append(("call", x))

    loop.call_soon(C().method, 1)
    loop.call_soon(C.static, 2)
    loop.call_soon(C(), 3)
    loop.call_soon(functools.partial(calls.append, ("partial", 4)))
    loop.call_soon(lambda: calls.append(("lambda", 5)))
    run_briefly(loop)
    assert calls == [("method", 1), ("static", 2), ("call", 3), ("partial", 4), ("lambda", 5)]


def test_callback_scheduled_by_callback_runs_next_iteration(loop):
    calls = []

    def a():
        calls.append("a")
        loop.call_soon(calls.append, "a2")

    loop.call_soon(a)
    loop.call_soon(calls.append, "b")
    run_briefly(loop)
    # stop() was queued after a and b; a2 was queued after stop
    assert calls == ["a", "b"]
    run_briefly(loop)
    assert calls == ["a", "b", "a2"]


def test_many_iterations(loop):
    count = 0

    def step():
        nonlocal count
        count += 1
        if count < 10000:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step)
    loop.run_forever()
    assert count == 10000


# ------------------------------------------------------------------ Handle --

def test_handle_cancel(loop):
    calls = []
    h = loop.call_soon(calls.append, 1)
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()
    h.cancel()  # twice is fine
    assert h.cancelled()
    run_briefly(loop)
    assert calls == []


def test_handle_cancelled_by_earlier_callback(loop):
    calls = []
    later = []
    loop.call_soon(lambda: later[0].cancel())
    later.append(loop.call_soon(calls.append, "cancelled"))
    loop.call_soon(calls.append, "kept")
    run_briefly(loop)
    assert calls == ["kept"]


def test_cancel_releases_callback_and_args(loop):
    """Like asyncio, a cancelled handle drops its callback and arguments
    at once, even while it is still queued."""
    import gc
    import weakref

    class Obj:
        def __call__(self, *args):
            pass

    cb, arg, tcb, targ = Obj(), Obj(), Obj(), Obj()
    refs = [weakref.ref(o) for o in (cb, arg, tcb, targ)]
    h = loop.call_soon(cb, arg)
    t = loop.call_later(3600, tcb, targ)
    del cb, arg, tcb, targ
    h.cancel()
    t.cancel()
    gc.collect()
    assert [r() for r in refs] == [None] * 4
    run_briefly(loop)
    assert h.cancelled() and t.cancelled()


def test_handle_cancel_after_run(loop):
    calls = []
    h = loop.call_soon(calls.append, 1)
    run_briefly(loop)
    assert calls == [1]
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()


def test_handle_repr(loop):
    def cb(*args):
        pass

    handles = [
        loop.call_soon(cb),
        loop.call_soon(cb, 1, "x" * 1000),
        loop.call_soon(functools.partial(cb, 1), 2),
        loop.call_soon(print),
        loop.call_later(10, cb, object()),
        loop.call_at(loop.time() + 10, cb),
        loop.call_soon_threadsafe(cb),
    ]
    for h in handles:
        assert isinstance(repr(h), str)
        h.cancel()
        assert isinstance(repr(h), str)
    run_briefly(loop)
    loop.set_debug(True)
    h = loop.call_soon(cb)
    assert isinstance(repr(h), str)
    run_briefly(loop)
    assert isinstance(repr(h), str)


def test_handle_repr_none_callback(loop):
    """A None callback shows as nothing, as asyncio's repr shows it."""
    h = loop.call_soon(None)
    t = loop.call_later(5, None)
    assert repr(h) == "<Handle>"
    assert repr(t).startswith("<TimerHandle when=") and "None" not in repr(t)
    h.cancel()
    t.cancel()


def test_handle_repr_with_broken_repr_arg(loop):
    class Bad:
        def __repr__(self):
            raise ValueError("no repr")

    h = loop.call_soon(lambda x: None, Bad())
    try:
        r = repr(h)
    except ValueError:
        pass  # what asyncio does: the argument's error propagates
    else:
        assert isinstance(r, str)
    run_briefly(loop)


@pytest.mark.skipif(PY < (3, 12), reason="Handle.get_context() is 3.12+ in asyncio")
def test_handle_get_context(loop):
    ctx = contextvars.copy_context()
    h = loop.call_soon(print, context=ctx)
    assert h.get_context() is ctx
    t = loop.call_later(1, print, context=ctx)
    assert t.get_context() is ctx
    h2 = loop.call_soon(print)
    assert isinstance(h2.get_context(), contextvars.Context)
    for handle in (h, t, h2):
        handle.cancel()


# ----------------------------------------------------------------- context --

def test_call_soon_context_default_is_copy_at_call_time(loop):
    seen = []
    token = var.set("at call time")
    try:
        loop.call_soon(lambda: seen.append(var.get()))
        var.set("changed afterwards")
    finally:
        var.reset(token)
    run_briefly(loop)
    assert seen == ["at call time"]


def test_call_soon_changes_do_not_leak(loop):
    loop.call_soon(var.set, "inside")
    seen = []
    loop.call_soon(lambda: seen.append(var.get()))
    run_briefly(loop)
    assert seen == ["default"]
    assert var.get() == "default"


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at", "call_soon_threadsafe"])
def test_context_kwarg(loop, method):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen = []

    def cb(x):
        seen.append((x, var.get()))
        var.set("set by callback")

    if method == "call_soon":
        loop.call_soon(cb, 1, context=ctx)
    elif method == "call_later":
        loop.call_later(0.001, cb, 1, context=ctx)
    elif method == "call_at":
        loop.call_at(loop.time() + 0.001, cb, 1, context=ctx)
    else:
        loop.call_soon_threadsafe(cb, 1, context=ctx)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert seen == [(1, "in ctx")]
    assert ctx[var] == "set by callback"
    assert var.get() == "default"


def test_context_kwarg_same_call_sites_again(loop):
    """Calls that pass the same ("context",) tuple each time (one code
    object's call sites share it; asyncio's C Task has one of its own): each
    call still gets its own context and positional arguments."""
    seen = []

    def cb(*args):
        seen.append((args, var.get()))

    for i in range(3):
        ctx = contextvars.copy_context()
        ctx.run(var.set, i)
        loop.call_soon(cb, context=ctx)
        loop.call_soon(cb, i, context=ctx)
        loop.call_soon(cb, i, "x", "y", context=ctx)
    loop.call_soon(cb, 9, context=None)
    run_briefly(loop)
    assert seen == [a for i in range(3) for a in (((), i), ((i,), i), ((i, "x", "y"), i))] + [
        ((9,), "default")
    ]


def test_context_none_means_copy(loop):
    seen = []
    token = var.set("outer")
    try:
        loop.call_soon(lambda: seen.append(var.get()), context=None)
    finally:
        var.reset(token)
    run_briefly(loop)
    assert seen == ["outer"]


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_soon_threadsafe"])
def test_context_other_than_context(loop, method):
    """As asyncio: context= is used through its run(callback, *args), so any
    object with such a method works, and one without is reported to the
    exception handler with the AttributeError asyncio gets."""
    calls = []

    class Runner:
        def run(self, cb, *args):
            calls.append(("run", args))
            return cb(*args)

    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    schedule = getattr(loop, method)
    if method == "call_later":
        def schedule(cb, *args, context, _f=loop.call_later):
            return _f(0, cb, *args, context=context)
    schedule(calls.append, "one", context=Runner())
    schedule(lambda *a: calls.append(a), 1, 2, 3, 4, context=Runner())
    bad = schedule(calls.append, "never", context=object())
    run_briefly(loop, 3)
    assert calls == [("run", ("one",)), "one", ("run", (1, 2, 3, 4)), (1, 2, 3, 4)]
    assert len(errors) == 1
    assert type(errors[0]["exception"]) is AttributeError
    assert "run" in str(errors[0]["exception"])
    assert errors[0]["handle"] is bad


def test_same_context_shared_by_callbacks(loop):
    ctx = contextvars.Context()
    seen = []
    loop.call_soon(var.set, 1, context=ctx)
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    run_briefly(loop)
    assert seen == [1]


# ------------------------------------------------------ call_later/call_at --

def test_call_later_returns_timer_handle(loop):
    t1 = loop.time()
    h = loop.call_later(5, print)
    t2 = loop.time()
    when = h.when()
    assert isinstance(when, float)
    assert t1 + 5 - CLOCK_RES <= when <= t2 + 5 + CLOCK_RES
    h.cancel()


def test_call_at_when(loop):
    when = loop.time() + 7.25
    h = loop.call_at(when, print)
    assert h.when() == when
    h.cancel()
    h2 = loop.call_at(12345, print)
    assert h2.when() == 12345
    h2.cancel()


def test_timer_when_is_the_object_given(loop):
    """when(), _when, repr, ordering and hash use the deadline given to
    call_at as asyncio keeps it: an int stays an int, even one too large for
    a float (it never fires; a hugely negative one is due at once)."""
    h = loop.call_at(5, print)
    assert h.when() == 5 and type(h.when()) is int
    assert "when=5 " in repr(h)
    same = loop.call_at(5.0, print)
    assert h == same and hash(h) == hash(same) and h <= same and not h < same
    far = loop.call_at(10 ** 400, print)
    assert far.when() == 10 ** 400
    assert h < far and far > same and not far <= h
    calls = []
    loop.call_at(-10 ** 400, calls.append, "past")
    later = loop.call_later(3, print)
    assert type(later.when()) is float
    run_briefly(loop)
    assert calls == ["past"]
    for t in (h, same, far, later):
        t.cancel()


def test_nan_deadline_is_due_at_once(loop, is_stock):
    """asyncio's `when >= end_time` is false for NaN, so its heap runs a NaN
    timer as soon as it reaches the top, which the next pop brings about
    even with other timers pending: asyncio.timeout() and wait_for() with a
    NaN timeout time out instead of waiting for the other timers.
    when() stays NaN."""
    import asyncio
    import math

    if is_stock and PY >= (3, 13):
        pytest.skip("asyncio 3.13 fails in its selector on a NaN timeout (ValueError)")
    calls = []
    h = loop.call_later(float("nan"), calls.append, "nan")
    assert math.isnan(h.when())
    loop.call_at(loop.time() - 1, calls.append, "due")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert sorted(calls) == ["due", "nan"]

    far = loop.call_later(GUARD, print)  # a timer pending before the NaN one
    fired = []
    loop.call_later(float("nan"), fired.append, "nan")
    loop.call_later(0.01, fired.append, "0.01")
    loop.run_until_complete(asyncio.sleep(0.05))
    assert sorted(fired) == ["0.01", "nan"]
    far.cancel()

    async def main():
        try:
            async with asyncio.timeout(float("nan")):
                await asyncio.sleep(GUARD)
        except TimeoutError:
            return "timed out"

    async def main_wait_for():
        try:
            await asyncio.wait_for(asyncio.sleep(GUARD), float("nan"))
        except asyncio.TimeoutError:
            return "timed out"

    if PY >= (3, 11):
        assert loop.run_until_complete(main()) == "timed out"
    assert loop.run_until_complete(main_wait_for()) == "timed out"


def test_timer_deadline_checks_in_asyncio_order(loop):
    """call_later computes time() + delay first, then the loop is checked:
    on a closed loop a delay that makes a strange sum is RuntimeError, and
    one that cannot be added is TypeError."""
    loop.close()
    for call in (lambda: loop.call_later(1j, print), lambda: loop.call_at(1j, print),
                 lambda: loop.call_at("x", print)):
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            call()
    with pytest.raises(TypeError):
        loop.call_later("x", print)
    with pytest.raises(OverflowError):
        loop.call_later(10 ** 400, print)


def test_call_later_args(loop):
    calls = []
    loop.call_later(0.001, lambda *a: calls.append(a), 1, 2, 3)
    loop.call_at(loop.time() + 0.001, lambda *a: calls.append(a), "x")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert sorted(calls, key=len) == [("x",), (1, 2, 3)]


def test_timers_run_in_deadline_order(loop):
    calls = []
    base = loop.time() + 0.01
    offsets = list(range(50))
    random.Random(1).shuffle(offsets)
    for k in offsets:
        loop.call_at(base + k * 0.001, calls.append, k)
    loop.call_at(base + 0.1, loop.stop)
    loop.run_forever()
    assert calls == list(range(50))


def test_sub_millisecond_deadlines_ordered(loop):
    """Deadlines closer than a millisecond still run in deadline order."""
    calls = []
    base = loop.time() + 0.01
    offsets = list(range(40))
    random.Random(2).shuffle(offsets)
    for k in offsets:
        loop.call_at(base + k * 0.00005, calls.append, k)
    loop.call_at(base + 0.05, loop.stop)
    loop.run_forever()
    assert calls == list(range(40))


def test_timer_ties_all_run(loop):
    """Timers with the same deadline all run (asyncio does not promise an
    order among them: its heap is not stable)."""
    calls = []
    when = loop.time() + 0.005
    for i in range(20):
        loop.call_at(when, calls.append, i)
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert sorted(calls) == list(range(20))


def test_timer_ties_in_scheduling_order(loop, is_stock):
    """asyncloop's own promise, stronger than asyncio's: timers with the same
    deadline run in the order they were scheduled."""
    if is_stock:
        pytest.skip("asyncio's timer heap is not stable: its order for ties is arbitrary")
    calls = []
    when = loop.time() + 0.005
    for i in range(50):
        loop.call_at(when, calls.append, i)
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert calls == list(range(50))


def test_negative_delay(loop):
    calls = []
    h = loop.call_later(-1, calls.append, "a")
    assert h.when() < loop.time()
    loop.call_later(-2, calls.append, "b")
    loop.call_later(0, calls.append, "c")
    loop.call_at(loop.time() - 100, calls.append, "d")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    # all past deadlines run at once, earliest deadline first
    assert calls == ["d", "b", "a", "c"]


def test_zero_delay_and_call_soon(loop):
    """A timer that is due joins the ready queue after the callbacks that
    were already ready."""
    calls = []
    loop.call_later(0, calls.append, "timer")
    loop.call_soon(calls.append, "soon")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == ["soon", "timer"]


def test_timer_cancel(loop):
    calls = []
    h = loop.call_later(0.001, calls.append, "cancelled")
    assert not h.cancelled()
    h.cancel()
    assert h.cancelled()
    h.cancel()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == []


def test_timer_cancelled_by_earlier_timer(loop):
    calls = []
    when = loop.time() + 0.005
    victim = []
    loop.call_at(when, lambda: victim[0].cancel())
    victim.append(loop.call_at(when + 0.0001, calls.append, "victim"))
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert calls == []


def test_cancel_many_timers(loop):
    calls = []
    handles = [loop.call_later(0.001 + (i % 100) * 0.0001, calls.append, i) for i in range(5000)]
    kept = set(range(0, 5000, 97))
    for i, h in enumerate(handles):
        if i not in kept:
            h.cancel()
    assert sum(h.cancelled() for h in handles) == 5000 - len(kept)
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert sorted(calls) == sorted(kept)


def test_cancel_many_far_timers_then_near_one(loop):
    handles = [loop.call_later(3600 + i, print) for i in range(2000)]
    for h in handles:
        h.cancel()
    calls = []
    loop.call_later(0.001, calls.append, "near")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == ["near"]


def test_survivors_of_mass_cancel_keep_deadline_order(loop):
    # Cancelling most timers makes the loop drop them in bulk (asyncio and
    # asyncloop both rebuild the heap then); the rest must keep their order,
    # also with timers scheduled after the rebuild. The deadlines lie 0.5 s
    # ahead so that everything is scheduled before the first is due.
    calls = []
    base = loop.time() + 0.5
    handles = [loop.call_at(base + ((i * 7919) % 3000) * 1e-5, calls.append, i)
               for i in range(3000)]
    kept = [i for i in range(3000) if i % 7 == 0]
    for i, h in enumerate(handles):
        if i % 7:
            h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()  # one iteration: the bulk drop
    for j in range(50):
        loop.call_at(base + j * 1e-4 + 0.5e-5, calls.append, 10_000 + j)
    loop.call_at(base + 0.05, loop.stop)
    loop.run_forever()
    expected = sorted(
        [(base + ((i * 7919) % 3000) * 1e-5, 0, i, i) for i in kept] +
        [(base + j * 1e-4 + 0.5e-5, 1, j, 10_000 + j) for j in range(50)])
    assert calls == [v for *_, v in expected]


def test_timer_scheduled_flag(loop):
    # TimerHandle._scheduled: set while the timer is in the loop's heap,
    # cancelled or not, cleared once the loop takes it out.
    h = loop.call_later(3600, print)
    assert h._scheduled
    h.cancel()
    assert h._scheduled
    fired = loop.call_later(0, print)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert not fired._scheduled
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert not h._scheduled


def test_timer_cancel_after_fire(loop):
    calls = []
    h = loop.call_later(0, calls.append, 1)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == [1]
    h.cancel()
    assert h.cancelled()


def test_timer_scheduled_from_timer(loop):
    calls = []

    def first():
        calls.append("first")
        loop.call_later(0.001, second)

    def second():
        calls.append("second")
        loop.stop()

    loop.call_later(0.001, first)
    guard = loop.call_later(GUARD, loop.stop)
    loop.run_forever()
    guard.cancel()
    assert calls == ["first", "second"]


def test_set_result_unless_cancelled_timer(loop):
    """asyncio.sleep()'s timer callback, futures._set_result_unless_cancelled
    (asyncloop runs it without a Python frame): the future's own cancelled()
    and set_result() are what decide and act, a cancelled future is left
    alone, and an error from set_result() reaches the exception handler
    with the handle, as asyncio reports it."""
    import asyncio
    from asyncio import futures

    calls = []

    class Fut(asyncio.Future):
        def cancelled(self):
            calls.append("cancelled?")
            return super().cancelled()

        def set_result(self, result):
            calls.append(("set_result", result))
            super().set_result(result)

    plain = loop.create_future()
    sub = Fut(loop=loop)
    gone = loop.create_future()
    gone.cancel()
    done = loop.create_future()
    done.set_result("first")
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    handles = [loop.call_later(0, futures._set_result_unless_cancelled, f, r)
               for f, r in ((plain, 1), (sub, 2), (gone, 3), (done, 4))]
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert plain.result() == 1
    assert sub.result() == 2
    assert calls == ["cancelled?", ("set_result", 2)]
    assert gone.cancelled()
    assert done.result() == "first"
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], asyncio.InvalidStateError)
    assert errors[0]["handle"] is handles[3]
    assert errors[0]["message"].startswith("Exception in callback")


def test_far_timer_does_not_block_near(loop):
    calls = []
    loop.call_later(3600, calls.append, "far")
    loop.call_later(0.005, calls.append, "near")
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == ["near"]


# --------------------------------------------------- call_soon_threadsafe --

def test_call_soon_threadsafe_same_thread(loop):
    calls = []
    h = loop.call_soon_threadsafe(calls.append, 1)
    assert not h.cancelled()
    run_briefly(loop)
    assert calls == [1]


def test_call_soon_threadsafe_cancel(loop):
    calls = []
    h = loop.call_soon_threadsafe(calls.append, 1)
    h.cancel()
    run_briefly(loop)
    assert calls == []


def test_call_soon_threadsafe_many_threads(loop):
    n_threads, per_thread = 8, 1000
    total = n_threads * per_thread
    seen = {}
    order = {t: [] for t in range(n_threads)}
    barrier = threading.Barrier(n_threads)

    def cb(t, i):
        assert threading.current_thread() is threading.main_thread()
        seen[(t, i)] = seen.get((t, i), 0) + 1
        order[t].append(i)
        if len(seen) == total:
            loop.stop()

    def worker(t):
        barrier.wait()
        for i in range(per_thread):
            loop.call_soon_threadsafe(cb, t, i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    guard = loop.call_later(GUARD * 3, loop.stop)
    loop.call_soon(lambda: [t.start() for t in threads])
    try:
        loop.run_forever()
    finally:
        for t in threads:
            t.join()
    guard.cancel()
    run_briefly(loop)  # anything left over would show as a count of 2
    assert len(seen) == total, f"{total - len(seen)} callbacks never ran"
    assert set(seen.values()) == {1}
    for t in range(n_threads):
        assert order[t] == list(range(per_thread)), "one thread's callbacks ran out of order"


def test_call_soon_threadsafe_burst_each_in_own_context(loop):
    """A burst larger than asyncloop's handle free list (handles made past it
    and freed past it): FIFO, each callback in its own copy of the poster's
    context, taken at call time, as asyncio's Handle does."""
    n = 70_000
    var = contextvars.ContextVar("var")
    leaked = contextvars.ContextVar("leaked")
    got = []

    def cb(i):
        got.append((i, var.get(None), leaked.get(None)))
        leaked.set(i)  # must not be seen by the next callback
        if i == n - 1:
            loop.stop()

    def poster():
        for i in range(n):
            if i == n // 2:
                var.set("second half")
            loop.call_soon_threadsafe(cb, i)

    guard = loop.call_later(GUARD * 3, loop.stop)
    t = threading.Thread(target=poster)
    var.set("loop thread")
    loop.call_soon(t.start)
    try:
        loop.run_forever()
    finally:
        t.join()
    guard.cancel()
    assert [i for i, _, _ in got] == list(range(n))
    assert all(v is None for _, v, _ in got[: n // 2])
    assert all(v == "second half" for _, v, _ in got[n // 2 :])
    assert all(seen is None for _, _, seen in got)


def test_call_soon_threadsafe_while_idle(loop):
    """Callbacks posted one at a time to an idle loop each wake it up."""
    got = []
    done = threading.Event()

    def worker():
        for i in range(20):
            loop.call_soon_threadsafe(got.append, i)
            threading.Event().wait(0.002)
        loop.call_soon_threadsafe(loop.stop)
        done.set()

    guard = loop.call_later(GUARD * 3, loop.stop)
    t = threading.Thread(target=worker)
    loop.call_soon(t.start)
    loop.run_forever()
    t.join()
    guard.cancel()
    assert done.is_set()
    assert got == list(range(20))
