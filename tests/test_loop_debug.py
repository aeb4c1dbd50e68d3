"""Debug mode: set_debug/get_debug and what asyncio does differently in it."""

import asyncio
import logging
import sys
import threading
import time

import pytest

from conftest import GUARD, capture, describe, run_briefly, run_child


def test_debug_default_matches_asyncio(loop):
    ref = asyncio.new_event_loop()
    try:
        assert loop.get_debug() == ref.get_debug()
    finally:
        ref.close()


def test_set_get_debug(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


@pytest.mark.parametrize("how", [{"PYTHONASYNCIODEBUG": "1"}, {"PYTHONDEVMODE": "1"}],
                         ids=["PYTHONASYNCIODEBUG", "PYTHONDEVMODE"])
def test_debug_from_environment(loop_kind, how):
    code = "loop = new_loop(); print(loop.get_debug()); loop.close()\n"
    proc = run_child(code, loop_kind, env=how)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.strip() == "True"


def test_slow_callback_warning(loop, caplog):
    caplog.set_level(logging.WARNING, logger="asyncio")
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow():
        time.sleep(0.05)

    loop.call_soon(slow)
    run_briefly(loop)
    warnings = [r for r in caplog.records
                if r.name == "asyncio" and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert message.startswith("Executing ")
    assert " took " in message and message.endswith(" seconds")


def test_no_slow_callback_warning_without_debug(loop, caplog):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    loop.slow_callback_duration = 0.01
    loop.call_soon(time.sleep, 0.05)
    run_briefly(loop)
    assert not [r for r in caplog.records if "Executing" in r.getMessage()]


def test_slow_callback_duration_attribute(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_at"])
def test_call_from_wrong_thread_in_debug(loop, method):
    loop.set_debug(True)
    results = []

    def other_thread():
        if method == "call_soon":
            r = capture(loop.call_soon, print)
        elif method == "call_later":
            r = capture(loop.call_later, 1, print)
        else:
            r = capture(loop.call_at, loop.time() + 1, print)
        results.append(r)
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=other_thread)
    guard = loop.call_later(GUARD, loop.stop)
    loop.call_soon(t.start)
    loop.run_forever()
    t.join()
    guard.cancel()
    assert isinstance(results[0], RuntimeError), results
    assert str(results[0]) == ("Non-thread-safe operation invoked on an event loop "
                               "other than the current one")


def test_call_soon_threadsafe_from_other_thread_in_debug(loop):
    loop.set_debug(True)
    calls = []

    def other_thread():
        loop.call_soon_threadsafe(calls.append, "ok")
        loop.call_soon_threadsafe(loop.stop)

    t = threading.Thread(target=other_thread)
    guard = loop.call_later(GUARD, loop.stop)
    loop.call_soon(t.start)
    loop.run_forever()
    t.join()
    guard.cancel()
    assert calls == ["ok"]


def test_call_from_other_thread_when_not_running_in_debug(loop):
    """The thread check only applies while the loop runs."""
    loop.set_debug(True)
    results = []
    t = threading.Thread(target=lambda: results.append(capture(loop.call_soon, print)))
    t.start()
    t.join()
    assert not isinstance(results[0], BaseException), results
    run_briefly(loop)


def test_coroutine_origin_tracking(loop):
    depth = asyncio.constants.DEBUG_STACK_DEPTH
    before = sys.get_coroutine_origin_tracking_depth()
    assert before == 0
    seen = []
    loop.call_soon(lambda: seen.append(sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    loop.set_debug(True)
    loop.call_soon(lambda: seen.append(sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    assert seen == [0, depth]
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_coroutine_origin_recorded_in_debug(loop):
    loop.set_debug(True)

    async def inner():
        pass

    async def main():
        coro = inner()
        origin = coro.cr_origin
        coro.close()
        return origin

    origin = loop.run_until_complete(main())
    assert origin is not None and len(origin) >= 1


def test_set_debug_while_running_enables_tracking(loop):
    seen = []

    def turn_on():
        loop.set_debug(True)

    loop.call_soon(turn_on)
    run_briefly(loop)
    loop.call_soon(lambda: seen.append(sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    assert seen == [asyncio.constants.DEBUG_STACK_DEPTH]
    assert sys.get_coroutine_origin_tracking_depth() == 0


def test_tracking_restored_after_exception(loop):
    loop.set_debug(True)

    def boom():
        raise KeyboardInterrupt

    loop.call_soon(boom)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert sys.get_coroutine_origin_tracking_depth() == 0


def test_debug_run_in_executor_checks_callback(loop):
    loop.set_debug(True)

    async def coro_fn():
        pass

    with pytest.raises(TypeError, match=r"^coroutines cannot be used with run_in_executor\(\)$"):
        loop.run_in_executor(None, coro_fn)
    expected = r"^a callable object was expected by run_in_executor\(\), got 1$"
    with pytest.raises(TypeError, match=expected):
        loop.run_in_executor(None, 1)


def test_debug_handles_repr_and_run(loop):
    """Debug mode keeps extra information on handles; they still work."""
    loop.set_debug(True)
    calls = []
    h = loop.call_soon(calls.append, 1)
    t = loop.call_later(0.001, calls.append, 2)
    assert isinstance(repr(h), str) and isinstance(repr(t), str)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert calls == [1, 2]


def test_set_debug_keeps_the_object_given(loop):
    """get_debug() returns what set_debug() was given, as asyncio's does;
    debug mode follows its truth."""
    for value in (None, "x", [], 0, 1.5, True):
        loop.set_debug(value)
        assert loop.get_debug() is value
    loop.set_debug(False)


def test_slow_callback_duration_any_object(loop):
    """slow_callback_duration keeps the object it is given; in debug mode a
    value that does not compare with a float makes the run fail as it does
    on asyncio, and a deleted one is an AttributeError."""
    from decimal import Decimal

    for value in (1, True, 0.25, Decimal("0.5"), 10 ** 400, "x"):
        loop.slow_callback_duration = value
        assert loop.slow_callback_duration is value
    loop.set_debug(True)
    loop.call_soon(lambda: None)
    loop.call_soon(loop.stop)
    with pytest.raises(TypeError):
        loop.run_forever()
    del loop.slow_callback_duration
    with pytest.raises(AttributeError):
        _ = loop.slow_callback_duration
    loop.slow_callback_duration = 10 ** 400  # never slow: nothing logged
    loop.call_soon(loop.stop)
    loop.run_forever()
    loop.set_debug(False)


def test_handle_repr_kept_at_cancel(loop):
    """Handle._repr, as asyncio's: None, then in debug mode what cancel()
    saw."""
    h = loop.call_soon(print, "x")
    assert h._repr is None
    loop.set_debug(True)
    h2 = loop.call_soon(print, "y")
    h2.cancel()
    assert h2._repr is not None and "print" in h2._repr
    h.cancel()
    loop.set_debug(False)
