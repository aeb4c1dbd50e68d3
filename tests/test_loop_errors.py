"""Exception handlers, and bad input to every method."""

import asyncio
import concurrent.futures
import contextvars
import logging
import re
import signal

import pytest

from conftest import PY, Recorder, Returned, assert_raises_like_asyncio, capture, run_briefly

var = contextvars.ContextVar("var", default="default")


async def _coro():
    pass


# ------------------------------------------------------ exception handler --

def test_exception_handler_default_none(loop):
    assert loop.get_exception_handler() is None


def test_set_get_exception_handler(loop):
    rec = Recorder()
    loop.set_exception_handler(rec)
    assert loop.get_exception_handler() is rec
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize("bad", [1, "handler", object()], ids=repr)
def test_set_exception_handler_not_callable(loop, bad):
    assert_raises_like_asyncio(loop, lambda lp: lp.set_exception_handler(bad), TypeError)
    assert loop.get_exception_handler() is None


def test_failing_callback_goes_to_handler(loop):
    rec = Recorder()
    loop.set_exception_handler(rec)
    exc = ValueError("boom")

    def boom():
        raise exc

    h = loop.call_soon(boom)
    run_briefly(loop)
    assert len(rec.calls) == 1
    handler_loop, ctx = rec.calls[0]
    assert handler_loop is loop
    assert ctx["message"].startswith("Exception in callback")
    assert ctx["exception"] is exc
    assert ctx["handle"] is h


def test_failing_timer_goes_to_handler(loop):
    rec = Recorder()
    loop.set_exception_handler(rec)

    def boom():
        raise ValueError("timer")

    h = loop.call_later(0.001, boom)
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert len(rec.contexts) == 1
    ctx = rec.contexts[0]
    assert ctx["message"].startswith("Exception in callback")
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["handle"] is h


@pytest.mark.parametrize("debug", [False, True])
def test_handler_context_keys_match_asyncio(loop, debug):
    def boom():
        raise ValueError

    def keys_for(lp):
        rec = Recorder()
        lp.set_exception_handler(rec)
        lp.set_debug(debug)
        lp.call_soon(boom)
        run_briefly(lp)
        return sorted(rec.contexts[0])

    ref = asyncio.new_event_loop()
    try:
        expected = keys_for(ref)
    finally:
        ref.close()
    assert keys_for(loop) == expected


def test_default_handler_logs_failing_callback(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    def boom():
        raise ValueError("logged")

    loop.call_soon(boom)
    run_briefly(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].getMessage().startswith("Exception in callback")
    assert isinstance(records[0].exc_info[1], ValueError)


def test_handler_that_raises(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    def bad_handler(lp, ctx):
        raise RuntimeError("handler broke")

    loop.set_exception_handler(bad_handler)

    def boom():
        raise ValueError

    calls = []
    loop.call_soon(boom)
    loop.call_soon(calls.append, "next")
    run_briefly(loop)
    assert calls == ["next"]
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(m.startswith("Unhandled error in exception handler") for m in messages), messages


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_handler_raising_base_exception_propagates(loop, exc_type):
    def handler(lp, ctx):
        raise exc_type

    loop.set_exception_handler(handler)

    def boom():
        raise ValueError

    loop.call_soon(boom)
    with pytest.raises(exc_type):
        run_briefly(loop)
    assert not loop.is_running()


def test_call_exception_handler_custom(loop):
    rec = Recorder()
    loop.set_exception_handler(rec)
    ctx = {"message": "hello", "extra": 1}
    loop.call_exception_handler(ctx)
    assert rec.calls == [(loop, ctx)]


def test_call_exception_handler_default_logs(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    exc = KeyError("k")
    loop.call_exception_handler({"message": "custom message", "exception": exc, "extra": 42})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    text = records[0].getMessage()
    assert text.startswith("custom message")
    assert "extra: 42" in text
    assert records[0].exc_info[1] is exc


def test_call_exception_handler_without_message(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    loop.call_exception_handler({})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert messages == ["Unhandled exception in event loop"]


def test_default_exception_handler_direct(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    rec = Recorder()
    loop.set_exception_handler(rec)
    # calling default_exception_handler bypasses the custom handler
    loop.default_exception_handler({"message": "direct"})
    assert rec.calls == []
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert messages == ["direct"]


def test_custom_handler_can_defer_to_default(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    def handler(lp, ctx):
        lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    loop.call_exception_handler({"message": "deferred"})
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert messages == ["deferred"]


@pytest.mark.skipif(PY < (3, 12), reason="handlers run in the handle's context on 3.12+")
def test_handler_runs_in_handle_context(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(var.get()))
    ctx = contextvars.copy_context()
    ctx.run(var.set, "handle ctx")

    def boom():
        raise ValueError

    loop.call_soon(boom, context=ctx)
    run_briefly(loop)
    assert seen == ["handle ctx"]


# -------------------------------------------------- bad input: call_soon --

@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe"])
def test_call_soon_no_callback(loop, method):
    assert_raises_like_asyncio(loop, lambda lp: getattr(lp, method)(), TypeError, message=False)


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later", "call_at"])
def test_callbacks_reject_unknown_kwargs(loop, method):
    args = (print,) if method.startswith("call_soon") else (1, print)
    assert_raises_like_asyncio(
        loop, lambda lp: getattr(lp, method)(*args, bogus=1), TypeError, message=False)


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later"])
@pytest.mark.parametrize("bad", [1, None, "not callable"], ids=repr)
def test_non_callable_debug(loop, method, bad):
    """In debug mode asyncio checks callbacks when they are scheduled."""
    args = (bad,) if method.startswith("call_soon") else (0.001, bad)

    def action(lp):
        lp.set_debug(True)
        return getattr(lp, method)(*args)

    assert_raises_like_asyncio(loop, action, TypeError)


@pytest.mark.parametrize("method", ["call_soon", "call_soon_threadsafe", "call_later"])
def test_coroutine_function_debug(loop, method):
    async def coro_fn():
        pass

    for cb in (coro_fn, ):
        args = (cb,) if method.startswith("call_soon") else (0.001, cb)

        def action(lp, args=args):
            lp.set_debug(True)
            return getattr(lp, method)(*args)

        assert_raises_like_asyncio(loop, action, TypeError)


@pytest.mark.parametrize("bad", [1, None, "not callable"], ids=repr)
def test_non_callable_without_debug(loop, bad):
    """Without debug mode asyncio does not check at call time: the error
    surfaces as a TypeError in the exception handler when the callback
    runs.  Raising TypeError at call time is accepted too; losing the
    error is not."""
    rec = Recorder()
    loop.set_exception_handler(rec)
    result = capture(loop.call_soon, bad)
    if isinstance(result, Returned):
        run_briefly(loop)
        assert len(rec.contexts) == 1, rec.contexts
        assert isinstance(rec.contexts[0]["exception"], TypeError)
    else:
        assert isinstance(result, TypeError), result


# ------------------------------------------- bad input: call_later/call_at --

def test_call_later_none(loop):
    assert_raises_like_asyncio(loop, lambda lp: lp.call_later(None, print), TypeError,
                               message=PY >= (3, 11))


def test_call_at_none(loop):
    assert_raises_like_asyncio(loop, lambda lp: lp.call_at(None, print),
                               (TypeError, AssertionError), message=PY >= (3, 11))


@pytest.mark.parametrize("bad", ["x", b"1", [1], object()], ids=repr)
def test_call_later_bad_delay(loop, bad):
    assert_raises_like_asyncio(loop, lambda lp: lp.call_later(bad, print), TypeError,
                               message=False)


@pytest.mark.parametrize("bad", ["x", b"1", [1], object()], ids=repr)
def test_call_at_bad_when(loop, bad):
    """asyncio accepts a bad `when` and fails with TypeError when the loop
    next looks at its timers; failing at call time is accepted too."""
    calls = []
    with pytest.raises(TypeError):
        loop.call_at(bad, calls.append, 1)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert calls == []


def test_call_later_missing_callback(loop):
    assert_raises_like_asyncio(loop, lambda lp: lp.call_later(1), TypeError, message=False)
    assert_raises_like_asyncio(loop, lambda lp: lp.call_at(1), TypeError, message=False)


# --------------------------------------------------- bad input: the rest --

@pytest.mark.parametrize("call", [
    "time", "stop", "close", "is_running", "is_closed", "create_future",
    "get_debug", "get_task_factory", "get_exception_handler",
])
def test_no_arg_methods_reject_args(loop, call):
    assert_raises_like_asyncio(loop, lambda lp: getattr(lp, call)(1), TypeError, message=False)


def test_run_in_executor_bad_executor(loop):
    assert_raises_like_asyncio(loop, lambda lp: lp.run_in_executor(1, print), AttributeError,
                               message=False)


def test_run_in_executor_no_func(loop):
    assert_raises_like_asyncio(loop, lambda lp: lp.run_in_executor(None), TypeError,
                               message=False)


@pytest.mark.skipif(PY < (3, 11), reason="3.10 only warns for a non-ThreadPoolExecutor")
@pytest.mark.parametrize("bad", [1, None, "executor", concurrent.futures.Executor()], ids=repr)
def test_set_default_executor_bad(loop, bad):
    err = assert_raises_like_asyncio(loop, lambda lp: lp.set_default_executor(bad), TypeError)
    assert str(err) == "executor must be ThreadPoolExecutor instance"


@pytest.mark.parametrize("sig, exc_type", [
    ("x", TypeError), (10.0, TypeError), (None, TypeError),
    (0, ValueError), (-1, ValueError), (1000, ValueError),
    (signal.SIGKILL, RuntimeError), (signal.SIGSTOP, RuntimeError),
], ids=repr)
def test_add_signal_handler_bad_signal(loop, sig, exc_type):
    assert_raises_like_asyncio(loop, lambda lp: lp.add_signal_handler(sig, print), exc_type)
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


@pytest.mark.parametrize("sig, exc_type", [
    ("x", TypeError), (None, TypeError), (0, ValueError), (1000, ValueError),
], ids=repr)
def test_remove_signal_handler_bad_signal(loop, sig, exc_type):
    assert_raises_like_asyncio(loop, lambda lp: lp.remove_signal_handler(sig), exc_type)


def test_add_signal_handler_coroutine(loop):
    async def coro_fn():
        pass

    assert_raises_like_asyncio(
        loop, lambda lp: lp.add_signal_handler(signal.SIGUSR1, coro_fn), TypeError)

    def with_coro_object(lp):
        c = coro_fn()
        try:
            return lp.add_signal_handler(signal.SIGUSR1, c)
        finally:
            c.close()

    assert_raises_like_asyncio(loop, with_coro_object, TypeError)
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_add_signal_handler_closed_loop(loop):
    assert_raises_like_asyncio(
        loop, lambda lp: lp.add_signal_handler(signal.SIGUSR1, print), RuntimeError,
        setup=lambda lp: lp.close())


def test_shutdown_default_executor_bad_kwarg(loop):
    assert_raises_like_asyncio(
        loop, lambda lp: lp.shutdown_default_executor(bogus=1), TypeError, message=False)


# ------------------------------------ positional parameters by keyword --
# asyncio's loop methods are Python functions: their positional parameters
# can be passed by keyword, and Python's binding errors apply.

def _kw_calls():
    async def coro():
        return 42

    return {
        "call_soon": lambda lp: type(lp.call_soon(callback=print)).__name__,
        "call_soon_threadsafe": lambda lp: type(
            lp.call_soon_threadsafe(callback=print, context=None)).__name__,
        "call_later": lambda lp: type(lp.call_later(delay=0, callback=print)).__name__,
        "call_later_mixed": lambda lp: type(lp.call_later(0, callback=print)).__name__,
        "call_at": lambda lp: type(lp.call_at(when=0, callback=print)).__name__,
        "create_task": lambda lp: lp.run_until_complete(lp.create_task(coro=coro(), name="n")),
        "run_until_complete": lambda lp: lp.run_until_complete(future=coro()),
        "run_in_executor": lambda lp: lp.run_until_complete(
            lp.run_in_executor(None, abs, -3) and lp.run_in_executor(executor=None, func=list)),
        "set_debug": lambda lp: (lp.set_debug(enabled=False), lp.get_debug()),
        "set_task_factory": lambda lp: lp.set_task_factory(factory=None),
        "set_exception_handler": lambda lp: lp.set_exception_handler(handler=None),
        "signal_handlers": lambda lp: (
            lp.add_signal_handler(sig=signal.SIGUSR1, callback=print),
            lp.remove_signal_handler(sig=signal.SIGUSR1)),
    }


@pytest.mark.parametrize("name", sorted(_kw_calls()))
def test_positional_parameters_by_keyword(loop, name):
    action = _kw_calls()[name]
    ref_loop = asyncio.new_event_loop()
    try:
        expected = action(ref_loop)
    finally:
        ref_loop.close()
    assert action(loop) == expected


@pytest.mark.parametrize("action", [
    lambda lp: lp.call_soon(),
    lambda lp: lp.call_later(callback=print),
    lambda lp: lp.call_at(),
    lambda lp: lp.create_task(name="x"),
    lambda lp: lp.set_debug(),
    lambda lp: lp.set_debug(True, enabled=True),
    lambda lp: lp.set_debug(1, 2),
    lambda lp: lp.set_debug(x=1),
    lambda lp: lp.run_until_complete(),
    lambda lp: lp.run_in_executor(None, print, x=1),
    lambda lp: lp.run_in_executor(func=print),
    lambda lp: lp.add_signal_handler(signal.SIGUSR1, print, x=1),
    lambda lp: lp.remove_signal_handler(signum=signal.SIGUSR1),
    lambda lp: lp.call_soon(print, callback=print),
    lambda lp: lp.call_soon_threadsafe(print, 1, callback=print),
    lambda lp: lp.call_later(0, print, delay=1),
    lambda lp: lp.call_at(0, print, when=1),
    lambda lp: lp.call_later(0, print, when=1),
], ids=["call_soon()", "call_later(callback=)", "call_at()", "create_task(name=)",
        "set_debug()", "set_debug(True, enabled=)", "set_debug(1, 2)", "set_debug(x=)",
        "run_until_complete()", "run_in_executor(x=)", "run_in_executor(func=)",
        "add_signal_handler(x=)", "remove_signal_handler(signum=)",
        "call_soon(f, callback=)", "call_soon_threadsafe(f, 1, callback=)",
        "call_later(0, f, delay=)", "call_at(0, f, when=)", "call_later(0, f, when=)"])
def test_keyword_binding_errors(loop, action):
    """The same TypeError as Python's own binding; messages are compared
    without the class name asyncio's qualified names carry."""
    ref_loop = asyncio.new_event_loop()
    try:
        ref = capture(action, ref_loop)
    finally:
        ref_loop.close()
    got = capture(action, loop)
    assert type(ref) is TypeError and type(got) is TypeError, (ref, got)

    def unqualified(exc):  # "BaseEventLoop.call_soon() ..." -> "call_soon() ..."
        return re.sub(r"^\w+\.(?=\w+\()", "", str(exc))

    assert unqualified(got) == unqualified(ref)
