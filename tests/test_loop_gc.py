"""Garbage collection of loops, handles and what handles reference.

asyncloop keeps handles out of the GC's lists while only the running loop
holds them, and reports their references through the loop instead (see
src/handle.c).  These cases check that nothing observable changes: cycles
through handles are still collected, a loop dropped unclosed with work
pending is still found to be garbage (with asyncio's ResourceWarning), and a
collection never clears objects a live handle still needs.  Each runs on
asyncio's loop and on ours.
"""

import asyncio
import gc
import subprocess
import sys
import warnings
import weakref

import pytest

from conftest import pythonpath_env


class Token:
    """A weak-referenceable stand-in for user state."""


def _collect():
    for _ in range(3):
        gc.collect()


# A name a nested function reads is dropped below by rebinding it to None,
# not by del: the effect on the referents is the same, and ruff's F821
# misreads a del of a closure's variable as the name being undefined in the
# closure (astral-sh/ruff#9858).


def _resource_warnings(caught):
    return [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_unclosed_loop_with_pending_callback_is_collected(loop_factory):
    loop = loop_factory()
    token = Token()
    token.loop = loop  # a cycle: loop -> handle -> bound method -> token -> loop
    token.handle = loop.call_soon(token.__init__)
    alive = weakref.ref(token)
    loop_ref = weakref.ref(loop)
    # Recording starts before the last references go: any collection from
    # here on may be the one that finds the loop.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del token, loop
        _collect()
    assert loop_ref() is None
    assert alive() is None
    assert any("unclosed event loop" in str(w.message) for w in _resource_warnings(caught))


def test_unclosed_loop_with_handle_queued_while_running_is_collected(loop_factory):
    # Handles made while the loop runs are the ones asyncloop keeps untracked.
    loop = loop_factory()
    token = Token()

    async def main():
        token.handle = asyncio.get_running_loop().call_soon(token.__init__)
        token.timer = asyncio.get_running_loop().call_later(3600, token.__init__)
        token.loop = asyncio.get_running_loop()

    loop.run_until_complete(main())
    alive = weakref.ref(token)
    loop_ref = weakref.ref(loop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        token = loop = None
        _collect()
    assert loop_ref() is None
    assert alive() is None


def test_abandoned_sleeping_task_is_finalized(loop_factory):
    # The Ctrl-C case: run_until_complete() left with the main coroutine
    # sleeping; dropping the loop must still close the coroutine.
    loop = loop_factory()
    events = []

    async def sleeper():
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("finally")

    async def main():
        asyncio.get_running_loop().create_task(sleeper())
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert events == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop_ref = weakref.ref(loop)
        del loop
        _collect()
    assert loop_ref() is None
    assert events == ["finally"]


def test_cycle_through_run_handle_is_collected(loop):
    token = Token()

    def cb(t=token):
        t.ran = True

    async def main(callback):
        token.handle = asyncio.get_running_loop().call_soon(callback)
        await asyncio.sleep(0)

    loop.run_until_complete(main(cb))
    assert token.ran
    alive = weakref.ref(token)
    token = None
    del cb
    _collect()
    assert alive() is None


def test_cycle_through_cancelled_timer_is_collected(loop):
    token = Token()

    async def main():
        token.timer = asyncio.get_running_loop().call_later(3600, lambda t=token: t)
        await asyncio.sleep(0)
        token.timer.cancel()
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    alive = weakref.ref(token)
    token = None
    _collect()
    assert alive() is None


def test_collection_keeps_what_a_kept_handle_needs(loop):
    # The loop is dropped (closed) while a handle made during its run is
    # kept: a collection must leave the handle's callback and context whole.
    import contextvars
    var = contextvars.ContextVar("var")
    kept = {}

    def cb(x):
        return x

    async def main():
        var.set("value")
        kept["handle"] = asyncio.get_running_loop().call_later(3600, cb, Token())
        kept["soon"] = asyncio.get_running_loop().call_soon(cb, Token())

    loop.run_until_complete(main())
    _collect()
    for h in kept.values():
        # asyncio's Handle has get_context() from 3.12 on
        ctx = h.get_context() if hasattr(h, "get_context") else h._context
        assert ctx.get(var) == "value"
        assert not h.cancelled()
        repr(h)


def test_collection_during_callbacks_with_kept_handles(loop):
    # Collections while many handles are queued, some kept elsewhere.
    kept = []
    results = []

    def cb(i, payload):
        results.append((i, payload[0]))

    async def main():
        lp = asyncio.get_running_loop()
        for i in range(2000):
            h = lp.call_soon(cb, i, [i])
            if i % 3 == 0:
                kept.append(h)
            if i % 500 == 0:
                lp.call_soon(gc.collect)
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert results == [(i, i) for i in range(2000)]


def test_handle_cancelled_from_another_reference_after_gc(loop):
    calls = []

    async def main():
        lp = asyncio.get_running_loop()
        h = lp.call_later(0.001, calls.append, "timer")
        g = lp.call_soon(calls.append, "soon")
        gc.collect()
        g.cancel()
        await asyncio.sleep(0.01)
        h.cancel()  # already ran: nothing happens

    loop.run_until_complete(main())
    assert calls == ["timer"]


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython GC")
def test_gc_get_referents_of_loop_does_not_crash(loop):
    async def main():
        lp = asyncio.get_running_loop()
        lp.call_soon(print)
        lp.call_later(3600, print)
        referents = gc.get_referents(lp)
        assert referents is not None

    loop.run_until_complete(main())


class _OnDelete:
    """Runs a function when collected: code that runs while the loop is in
    the middle of releasing handles."""

    def __init__(self, fn):
        self.fn = fn

    def __del__(self):
        self.fn()


def test_release_of_cancelled_timers_reenters_the_loop(loop):
    # Dropping cancelled timers in bulk releases their arguments; a __del__
    # there schedules and cancels more timers.
    calls = []
    others = [loop.call_later(3600 + i, calls.append, i) for i in range(300)]

    def reenter():
        for h in others[:150]:
            h.cancel()
        loop.call_later(0, calls.append, "from __del__")
        loop.call_later(3600, calls.append, "never").cancel()

    handles = [loop.call_later(3600, calls.append, _OnDelete(reenter) if i == 0 else i)
               for i in range(400)]
    for h in handles:
        h.cancel()
    del handles, h
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["from __del__"]
    for h in others:
        h.cancel()


def _handles_holding(lp, n, special, obj):
    """n far timers; the context of timer `special` alone holds obj, so obj
    goes when that handle itself is freed (cancel() keeps the context)."""
    import contextvars
    var = contextvars.ContextVar("held")
    handles = []
    for i in range(n):
        ctx = contextvars.copy_context()
        if i == special:
            ctx.run(var.set, obj)
        handles.append(lp.call_later(3600, print, i, context=ctx))
    return handles


def test_loop_closed_from_del_while_timers_are_dropped(loop_factory):
    # asyncloop drops cancelled timers in bulk inside cancel() once they are
    # most of the heap; a handle freed there may close the loop.
    lp = loop_factory()
    handles = _handles_holding(lp, 300, 5, _OnDelete(lambda: lp.close()))
    try:
        for h in handles:
            h.cancel()
        del handles, h
        gc.collect()
    finally:
        lp.close()
    assert lp.is_closed()


def test_del_closing_running_loop_while_timers_are_dropped(loop_factory):
    lp = loop_factory()
    errors = []
    handles = _handles_holding(lp, 300, 5, _OnDelete(lambda: lp.close()))

    def cancel_all():
        for h in handles:
            h.cancel()
        handles.clear()

    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda u: errors.append(u.exc_value)
    try:
        lp.call_soon(cancel_all)
        lp.call_later(0.01, lp.stop)
        lp.run_forever()
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
        lp.close()
    # close() refused from inside the running loop, as asyncio does
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors


def test_handle_revived_from_weakref_after_run_is_collected(loop_factory):
    # A handle queued while the loop ran, reached again through a weak
    # reference once it stopped: a cycle through it is still collected.
    loop = loop_factory()
    box = []

    def cb():
        h = loop.call_soon(print, box)
        box.append(weakref.ref(h))
        loop.stop()

    loop.call_soon(cb)
    loop.run_forever()
    box[0] = box[0]()
    loop_ref = weakref.ref(loop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop = cb = box = None
        _collect()
    assert loop_ref() is None


def test_interpreter_exit_with_parked_handles_under_debug_allocator(loop_kind):
    # Regression: handles parked on the free list were freed after the
    # module had dropped their type (a bad free at exit, seen as a crash
    # under the debug allocator).
    code = "import asyncio\n" + (
        "import asyncloop\nasyncloop.run(asyncio.sleep(0))\n" if loop_kind == "asyncloop"
        else "asyncio.run(asyncio.sleep(0))\n")
    proc = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True,
                          text=True, env=pythonpath_env({"PYTHONMALLOC": "debug"}), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
