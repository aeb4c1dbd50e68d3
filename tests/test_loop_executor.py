"""run_in_executor, set_default_executor, shutdown_default_executor."""

import asyncio
import concurrent.futures
import threading
import time
import warnings

import pytest

from conftest import GUARD, PY, assert_raises_like_asyncio


def test_run_in_executor_default(loop):
    def work(a, b):
        return a + b, threading.get_ident()

    fut = loop.run_in_executor(None, work, 2, 3)
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    result, ident = loop.run_until_complete(fut)
    assert result == 5
    assert ident != threading.get_ident()
    loop.run_until_complete(loop.shutdown_default_executor())


def test_run_in_executor_exception(loop):
    def work():
        raise ValueError("in thread")

    with pytest.raises(ValueError, match="in thread"):
        loop.run_until_complete(loop.run_in_executor(None, work))


def test_run_in_executor_non_callable_without_debug(loop):
    """Not checked up front: the worker's TypeError comes back."""
    with pytest.raises(TypeError):
        loop.run_until_complete(loop.run_in_executor(None, 1))


def test_run_in_executor_explicit_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="explicit") as ex:
        name = loop.run_until_complete(
            loop.run_in_executor(ex, lambda: threading.current_thread().name))
    assert name.startswith("explicit")


def test_set_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="my-default")
    loop.set_default_executor(ex)
    name = loop.run_until_complete(
        loop.run_in_executor(None, lambda: threading.current_thread().name))
    assert name.startswith("my-default")
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError):
        ex.submit(print)


@pytest.mark.skipif(PY >= (3, 11), reason="3.11+ raises TypeError")
def test_set_default_executor_non_threadpool_warns_310(loop):
    class Inline(concurrent.futures.Executor):
        def submit(self, fn, *args, **kwargs):
            f = concurrent.futures.Future()
            f.set_result(fn(*args, **kwargs))
            return f

    with pytest.warns(DeprecationWarning, match="ThreadPoolExecutor"):
        loop.set_default_executor(Inline())
    assert loop.run_until_complete(loop.run_in_executor(None, lambda: "inline")) == "inline"


@pytest.mark.skipif(PY < (3, 11), reason="3.10 only warns")
def test_set_default_executor_non_threadpool_rejected(loop):
    err = assert_raises_like_asyncio(
        loop, lambda lp: lp.set_default_executor(concurrent.futures.ProcessPoolExecutor()),
        TypeError)
    assert str(err) == "executor must be ThreadPoolExecutor instance"


def test_run_in_executor_closed_loop(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_in_executor(None, print)


def test_run_in_executor_after_shutdown(loop):
    loop.run_until_complete(loop.shutdown_default_executor())
    assert_raises_like_asyncio(
        loop, lambda lp: lp.run_in_executor(None, print), RuntimeError,
        setup=lambda lp: lp.run_until_complete(lp.shutdown_default_executor()))
    # an explicit executor is still fine
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        assert loop.run_until_complete(loop.run_in_executor(ex, lambda: 1)) == 1


def test_close_shuts_down_default_executor(loop):
    ex = concurrent.futures.ThreadPoolExecutor(1)
    loop.set_default_executor(ex)
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    loop.close()
    with pytest.raises(RuntimeError):
        ex.submit(print)
    ex.shutdown(wait=True)


def test_shutdown_default_executor_waits_for_work(loop):
    done = []

    def work():
        time.sleep(0.05)
        done.append(True)

    async def main():
        loop.run_in_executor(None, work)
        await asyncio.sleep(0)
        await loop.shutdown_default_executor()
        return list(done)

    assert loop.run_until_complete(main()) == [True]


def test_shutdown_default_executor_without_executor(loop):
    assert loop.run_until_complete(loop.shutdown_default_executor()) is None


def _shutdown_with_short_timeout(lp):
    """A worker busy for 0.3 s, shutdown_default_executor(timeout=0.05):
    return the RuntimeWarnings it gave."""
    release = threading.Event()
    started = threading.Event()

    def busy():
        started.set()
        release.wait(GUARD * 3)

    lp.run_in_executor(None, busy)
    assert started.wait(GUARD)
    releaser = threading.Timer(0.3, release.set)
    releaser.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lp.run_until_complete(lp.shutdown_default_executor(timeout=0.05))
    finally:
        release.set()
        releaser.cancel()
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.skipif(PY < (3, 12), reason="shutdown_default_executor(timeout) is 3.12+")
def test_shutdown_default_executor_timeout(loop):
    """3.13 stops waiting after the timeout and warns; 3.12.1 waits for the
    work and applies the timeout only to the final join (so no warning).
    Whatever the running asyncio does, we do."""
    ref = asyncio.new_event_loop()
    try:
        expected = _shutdown_with_short_timeout(ref)
    finally:
        ref.close()
    if PY >= (3, 13):
        assert expected == ["The executor did not finishing joining its threads "
                            "within 0.05 seconds."]
    assert _shutdown_with_short_timeout(loop) == expected


@pytest.mark.skipif(PY < (3, 12), reason="shutdown_default_executor(timeout) is 3.12+")
def test_shutdown_default_executor_timeout_not_needed(loop):
    loop.run_until_complete(loop.run_in_executor(None, lambda: None))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        loop.run_until_complete(loop.shutdown_default_executor(timeout=GUARD))


@pytest.mark.skipif(PY >= (3, 12), reason="timeout is accepted on 3.12+")
def test_shutdown_default_executor_timeout_rejected_before_312(loop):
    assert_raises_like_asyncio(
        loop, lambda lp: lp.shutdown_default_executor(timeout=1), TypeError, message=False)
