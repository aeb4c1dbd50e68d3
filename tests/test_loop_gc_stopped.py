"""Garbage collection of handles queued on a loop that is not running.

asyncloop queues the handles of call_soon / call_later / call_at made on a
stopped loop outside the GC's lists too, and has each collection first look
at the ones queued since the last (src/handle.c).  These cases check that
nothing observable changes: a collection never clears what a queued handle
needs, cycles through such handles are collected, a loop dropped with them
pending is collected, and handles handed out (kept, weakly referenced, or
their context taken) stay ordinary objects.  Each runs on asyncio's loop and
on ours.
"""

import asyncio
import contextvars
import gc
import warnings
import weakref

from test_loop_gc import Token, _collect


def _drop_loop(ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        _collect()
    return ref() is None


def test_collection_keeps_what_queued_handles_need(loop):
    # Each argument is reachable only through its handle, and holds a cycle
    # of its own: a collection that wrongly took the handle's references for
    # garbage would clear the cycle (empty the dict) or free it.
    seen = []
    for i in range(300):
        arg = {"i": i}
        arg["self"] = arg
        loop.call_soon(seen.append, arg)
        loop.call_later(0, seen.append, arg)
        loop.call_at(loop.time(), seen.append, arg)
        if i % 50 == 0:
            gc.collect()
    arg = None
    _collect()
    loop.call_soon(loop.stop)
    loop.run_forever()
    # call_at(time()) may be due a tick later: run until every timer fired.
    for _ in range(100):
        if len(seen) == 900:
            break
        loop.run_until_complete(asyncio.sleep(0.001))
    assert len(seen) == 900
    assert sorted(a["i"] for a in seen[:300]) == list(range(300))
    assert [a["i"] for a in seen[:300]] == list(range(300))  # call_soon is FIFO
    assert all(a["self"] is a for a in seen)


def test_unclosed_loop_with_discarded_handles_is_collected(loop_factory):
    # Handles nobody but the loop holds, each in a cycle through the loop.
    loop = loop_factory()
    token = Token()
    token.loop = loop
    loop.call_soon(token.__init__)
    loop.call_later(3600, token.__init__)
    loop.call_at(loop.time() + 3600, token.__init__)
    gc.collect()  # the collection that looks at them while the loop lives
    alive = weakref.ref(token)
    loop_ref = weakref.ref(loop)
    token = loop = None
    assert _drop_loop(loop_ref)
    assert alive() is None


def test_unclosed_loop_with_kept_handles_is_collected(loop_factory):
    # The handles are also referenced from the cycle: not the loop's alone.
    loop = loop_factory()
    token = Token()
    token.loop = loop
    token.soon = loop.call_soon(token.__init__)
    token.timer = loop.call_later(3600, token.__init__)
    token.cancelled = loop.call_later(3600, token.__init__)
    token.cancelled.cancel()
    alive = weakref.ref(token)
    loop_ref = weakref.ref(loop)
    token = loop = None
    assert _drop_loop(loop_ref)
    assert alive() is None


def test_unclosed_loop_with_weakly_referenced_handles_is_collected(loop_factory):
    loop = loop_factory()
    token = Token()
    token.loop = loop
    token.refs = [weakref.ref(loop.call_soon(token.__init__)),
                  weakref.ref(loop.call_later(3600, token.__init__))]
    loop_ref = weakref.ref(loop)
    token = loop = None
    assert _drop_loop(loop_ref)


def test_handle_kept_across_collection_then_cancelled(loop):
    ran = []
    handles = [loop.call_soon(ran.append, i) for i in range(10)]
    timer = loop.call_later(0, ran.append, "timer")
    gc.collect()
    for h in handles[::2]:
        h.cancel()
    gc.collect()
    handles = None
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.run_until_complete(asyncio.sleep(0.01))
    assert ran == [1, 3, 5, 7, 9, "timer"]
    assert timer.cancelled() is False


def test_cycle_through_handle_queued_before_run_is_collected(loop):
    # The handle's callback holds the handle: collected once it has run.
    token = Token()
    token.handle = loop.call_soon(token.__init__)
    alive = weakref.ref(token)
    token = None
    gc.collect()
    assert alive() is not None  # still queued
    loop.call_soon(loop.stop)
    loop.run_forever()
    _collect()
    assert alive() is None


def test_many_timers_armed_before_start_then_compacted(loop):
    # Cancelling most of them makes both loops drop the cancelled timers
    # in bulk while the loop is stopped; collections in between.
    ran = []
    timers = [loop.call_later(0.001 * (i % 3), ran.append, i) for i in range(600)]
    gc.collect()
    for t in timers[100:]:
        t.cancel()
    gc.collect()
    timers = None
    _collect()
    loop.run_until_complete(asyncio.sleep(0.02))
    assert sorted(ran) == list(range(100))


def test_context_of_handle_queued_before_run(loop):
    # The handle's own copy of the context, taken before and after a
    # collection, is the context the callback runs in.
    var = contextvars.ContextVar("var", default="unset")
    var.set("outer")
    seen = []

    def cb():
        seen.append(var.get())
        var.set("inner")

    h = loop.call_soon(cb)
    gc.collect()
    ctx = h._context  # get_context() is 3.12+
    loop.call_soon(loop.stop)
    loop.run_forever()
    gc.collect()
    assert seen == ["outer"]
    assert ctx[var] == "inner"
    assert var.get() == "outer"


def test_gc_callbacks_of_others_still_run(loop):
    phases = []

    def hook(phase, info):
        phases.append(phase)

    gc.callbacks.append(hook)
    try:
        for _ in range(100):
            loop.call_soon(lambda: None)
        gc.collect()
    finally:
        gc.callbacks.remove(hook)
    assert phases[-2:] == ["start", "stop"]
    loop.call_soon(loop.stop)
    loop.run_forever()


_var = contextvars.ContextVar("_var")


def _schedule_in_context(value, schedule):
    # The handle copies a context whose variable holds `value`; the copy
    # is the only thing left holding it.
    ctx = contextvars.copy_context()
    ctx.run(lambda: (_var.set(value), schedule()))


def test_unclosed_loop_reached_through_handle_context_is_collected(loop_factory):
    # loop -> handle -> its copy of the context -> token -> loop.
    loop = loop_factory()
    token = Token()
    token.loop = loop
    _schedule_in_context(token, lambda: loop.call_soon(print))
    _schedule_in_context(token, lambda: loop.call_later(3600, print))
    alive = weakref.ref(token)
    loop_ref = weakref.ref(loop)
    token = loop = None
    assert _drop_loop(loop_ref)
    assert alive() is None


def test_unclosed_loop_reached_through_context_of_running_handle_is_collected(loop_factory):
    loop = loop_factory()
    token = Token()

    async def main():
        token.loop = asyncio.get_running_loop()
        _schedule_in_context(token, lambda: token.loop.call_soon(print))
        _schedule_in_context(token, lambda: token.loop.call_later(3600, print))

    loop.run_until_complete(main())
    alive = weakref.ref(token)
    loop_ref = weakref.ref(loop)
    token = loop = None
    assert _drop_loop(loop_ref)
    assert alive() is None


def test_context_values_survive_collections_until_run(loop):
    seen = []
    for i in range(200):
        value = {"i": i}
        value["self"] = value
        _schedule_in_context(value, lambda: loop.call_soon(lambda: seen.append(_var.get())))
    value = None
    _collect()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert [v["i"] for v in seen] == list(range(200))
    assert all(v["self"] is v for v in seen)


def test_run_handle_releases_a_long_chain_of_handles(loop_factory):
    # Once run, the loop's handle alone holds a chain of 200 000 handles
    # (each the argument of the next): releasing it must not recurse once
    # per handle.
    other = loop_factory()
    head = None
    for _ in range(200_000):
        head = other.call_soon(id, head)
    other.close()  # its queue lets go: the chain hangs off `head` only
    loop = loop_factory()
    try:
        seen = []
        loop.call_soon(lambda h: seen.append(type(h).__name__), head)
        head = None
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert seen == ["Handle"]
    finally:
        loop.close()
