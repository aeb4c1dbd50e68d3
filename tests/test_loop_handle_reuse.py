"""asyncloop reuses the memory of handles it ran: a handle only the loop
holds goes back to a free list without a dealloc. These tests check that no
handle that someone can still reach is ever reused."""

import gc
import weakref

from conftest import run_briefly


def _new_handles(loop, n=50):
    return [loop.call_soon(lambda: None) for _ in range(n)]


def test_handle_found_by_gc_during_release_is_not_reused(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        found = []
        Handle = asyncloop_mod._core.Handle

        class Spy:
            # Runs as the loop releases the handle's arguments: the handle
            # is tracked (see below), so the GC can still hand it out.
            def __del__(self):
                found.extend(o for o in gc.get_objects() if type(o) is Handle)

        h = loop.call_soon(lambda spy: None, Spy())
        gc.collect()  # the loop's GC hook tracks h, referenced from here
        del h
        run_briefly(loop)
        assert found, "the Spy's __del__ did not find the handle"
        fresh = _new_handles(loop)
        for old in found:
            assert all(old is not new for new in fresh)
            repr(old)
            assert old._callback is None
        run_briefly(loop)
    finally:
        loop.close()


def test_handle_with_weakref_is_not_reused(loop):
    h = loop.call_soon(lambda: None)
    ref = weakref.ref(h)
    del h
    run_briefly(loop)
    old = ref()
    if old is not None:  # asyncloop keeps it alive for the weak reference
        fresh = _new_handles(loop)
        assert all(old is not new for new in fresh)
    run_briefly(loop)


def test_handle_kept_by_caller_is_not_reused(loop):
    kept = [loop.call_soon(lambda: None) for _ in range(10)]
    run_briefly(loop)
    fresh = _new_handles(loop)
    assert not {id(h) for h in kept} & {id(h) for h in fresh}
    for h in kept:
        h.cancel()
        assert h.cancelled()
    run_briefly(loop)


def test_handles_reused_after_run_behave_as_new(loop):
    ran = []
    for round_ in range(3):
        handles = [loop.call_soon(ran.append, (round_, i)) for i in range(20)]
        handles[5].cancel()
        del handles
        run_briefly(loop)
    assert ran == [(r, i) for r in range(3) for i in range(20) if i != 5]


def test_free_list_bounded_and_trimmed_after_burst(asyncloop_mod):
    """A burst of handles refills the free list up to its cap; what no one
    takes again within a second goes back to pymalloc, down to what is
    always kept."""
    import asyncio

    counters = asyncloop_mod._core._debug_counters
    cap, keep = 65536, 16384
    loop = asyncloop_mod.new_event_loop()
    try:
        for _ in range(cap + 5000):
            loop.call_soon(lambda: None)
        run_briefly(loop)
        assert keep < counters()["free_handles"] <= cap
        # Two idle seconds: the first trim after the burst only learns that
        # the list was left alone, the next one frees.
        loop.run_until_complete(asyncio.sleep(1.1))
        loop.run_until_complete(asyncio.sleep(1.1))
        # (plus the few the last run_until_complete released after it)
        assert counters()["free_handles"] < keep + 100
        # Still reused afterwards.
        _new_handles(loop)
        run_briefly(loop)
    finally:
        loop.close()
