"""Futures, tasks, task factories, async generators, and the asyncio API
(get_running_loop, all_tasks, Runner, timeout, TaskGroup, ...) on the loop."""

import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import sys
import threading
import warnings

import pytest

from conftest import GUARD, PY, assert_raises_like_asyncio, run_briefly

var = contextvars.ContextVar("var", default="default")


async def _value(x):
    return x


# ---------------------------------------------------------- create_future --

def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert asyncio.isfuture(fut)
    assert fut.get_loop() is loop
    assert not fut.done()


def test_futures_and_tasks_bind_to_their_own_loop(loop, loop_factory):
    """Made on the running loop, on another loop that is not running, and
    from another thread while the loop runs: each belongs to the loop whose
    method made it (the running loop's own are made without loop=)."""
    other = loop_factory()
    made = {}

    async def main():
        made["fut"] = loop.create_future()
        made["task"] = loop.create_task(_value(1), name="own")
        made["other_fut"] = other.create_future()
        made["other_task"] = other.create_task(_value(2))
        done = threading.Event()

        def in_thread():
            made["thread_fut"] = loop.create_future()
            done.set()

        threading.Thread(target=in_thread).start()
        await loop.run_in_executor(None, done.wait, GUARD)
        return await made["task"]

    try:
        assert loop.run_until_complete(main()) == 1
        assert made["fut"].get_loop() is loop
        assert made["task"].get_loop() is loop
        assert made["task"].get_name() == "own"
        assert made["thread_fut"].get_loop() is loop
        assert made["other_fut"].get_loop() is other
        assert made["other_task"].get_loop() is other
        assert other.run_until_complete(made["other_task"]) == 2
    finally:
        other.close()


def test_future_callbacks_run_through_loop(loop):
    fut = loop.create_future()
    calls = []
    fut.add_done_callback(lambda f: calls.append(("done", f.result())))

    def setter():
        fut.set_result(3)
        calls.append("after set_result")

    loop.call_soon(setter)
    run_briefly(loop, 2)
    assert calls == ["after set_result", ("done", 3)]


def test_wrap_concurrent_future(loop):
    cf = concurrent.futures.Future()
    fut = asyncio.wrap_future(cf, loop=loop)
    threading.Timer(0.01, cf.set_result, ("from thread",)).start()
    assert loop.run_until_complete(asyncio.wait_for(fut, GUARD)) == "from thread"


# ------------------------------------------------------------ create_task --

def test_create_task(loop):
    task = loop.create_task(_value(7))
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert task.get_name().startswith("Task-")
    assert loop.run_until_complete(task) == 7


def test_create_task_name(loop):
    task = loop.create_task(_value(1), name="my name")
    assert task.get_name() == "my name"
    loop.run_until_complete(task)


def test_create_task_runs_in_copied_context(loop):
    async def read():
        value = var.get()
        var.set("set in task")
        return value

    token = var.set("outer")
    try:
        task = loop.create_task(read())
    finally:
        var.reset(token)
    assert loop.run_until_complete(task) == "outer"
    assert var.get() == "default"


@pytest.mark.skipif(PY < (3, 11), reason="create_task(context=) is 3.11+")
def test_create_task_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")

    async def read():
        value = var.get()
        var.set("changed")
        return value

    task = loop.create_task(read(), context=ctx)
    assert loop.run_until_complete(task) == "in ctx"
    assert ctx[var] == "changed"


@pytest.mark.skipif(PY >= (3, 11), reason="create_task(context=) exists since 3.11")
def test_create_task_context_rejected_before_311(loop):
    def create(lp):
        coro = _value(1)
        try:
            return lp.create_task(coro, context=contextvars.copy_context())
        finally:
            coro.close()

    assert_raises_like_asyncio(loop, create, TypeError, message=False)


def test_create_task_eager_start_kwarg(loop):
    """loop.create_task() takes no eager_start keyword up to 3.13."""
    def create(lp):
        coro = _value(1)
        try:
            return lp.create_task(coro, eager_start=True)
        finally:
            coro.close()

    if PY >= (3, 14):
        pytest.skip("3.14 passes extra keywords on to the Task")
    assert_raises_like_asyncio(loop, create, TypeError, message=False)


@pytest.mark.parametrize("bad", [1, None, "x", lambda: None, _value], ids=repr)
def test_create_task_not_a_coroutine(loop, bad):
    assert_raises_like_asyncio(loop, lambda lp: lp.create_task(bad), TypeError)


def test_create_task_unknown_kwarg(loop):
    def create(lp):
        coro = _value(1)
        try:
            return lp.create_task(coro, bogus=1)
        finally:
            coro.close()

    assert_raises_like_asyncio(loop, create, TypeError, message=False)


@pytest.mark.skipif(PY < (3, 12), reason="eager tasks are 3.12+")
def test_eager_task_factory(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    steps = []

    async def child():
        steps.append("child started")
        await asyncio.sleep(0)
        steps.append("child resumed")
        return "child"

    async def quick():
        steps.append("quick ran")
        return "quick"

    async def main():
        t = loop.create_task(child())
        steps.append("after create_task")
        q = loop.create_task(quick())
        assert q.done() and q.result() == "quick"
        return await t

    assert loop.run_until_complete(main()) == "child"
    assert steps == ["child started", "after create_task", "quick ran", "child resumed"]


@pytest.mark.skipif(PY < (3, 12), reason="Task(eager_start=) is 3.12+")
def test_task_eager_start(loop):
    steps = []

    async def child():
        steps.append("child")
        return 5

    async def main():
        t = asyncio.Task(child(), loop=loop, eager_start=True)
        steps.append("after")
        assert t.done()
        return await t

    assert loop.run_until_complete(main()) == 5
    assert steps == ["child", "after"]


# ----------------------------------------------------------- task factory --

class MyTask(asyncio.Task):
    pass


def test_task_factory(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append((lp, kwargs))
        return MyTask(coro, loop=lp, **kwargs)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory

    t = loop.create_task(_value(1), name="named")
    assert isinstance(t, MyTask)
    assert t.get_name() == "named"
    assert loop.run_until_complete(t) == 1
    # run_until_complete(coroutine) goes through the factory too
    assert loop.run_until_complete(_value(2)) == 2

    async def main():
        inner = asyncio.create_task(_value(3))
        assert isinstance(inner, MyTask)
        return await inner

    assert loop.run_until_complete(main()) == 3
    assert len(calls) == 4
    assert all(lp is loop and kw == {} for lp, kw in calls)

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    t = loop.create_task(_value(4))
    assert type(t) is not MyTask
    loop.run_until_complete(t)


@pytest.mark.skipif(PY < (3, 11), reason="create_task(context=) is 3.11+")
def test_task_factory_gets_context(loop):
    seen = []

    def factory(lp, coro, **kwargs):
        seen.append(kwargs)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()
    loop.run_until_complete(loop.create_task(_value(1), context=ctx))
    assert seen == [{"context": ctx}]


@pytest.mark.parametrize("bad", [1, "factory", object()], ids=repr)
def test_set_task_factory_not_callable(loop, bad):
    err = assert_raises_like_asyncio(loop, lambda lp: lp.set_task_factory(bad), TypeError)
    assert str(err) == "task factory must be a callable or None"
    assert loop.get_task_factory() is None


# ------------------------------------------------- pending task destroyed --

def test_pending_task_destroyed_is_logged(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def forever():
        await loop.create_future()

    task = loop.create_task(forever())
    run_briefly(loop)
    assert not task.done()
    del task
    gc.collect()
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any("Task was destroyed but it is pending!" in m for m in messages), messages


def test_unretrieved_task_exception_is_logged(loop, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")

    async def fail():
        raise ValueError("never retrieved")

    task = loop.create_task(fail())
    run_briefly(loop, 2)
    assert task.done()
    del task
    gc.collect()
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert any(r.getMessage().startswith("Task exception was never retrieved") for r in records)


def test_pending_task_destroyed_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def forever():
        await loop.create_future()

    task = loop.create_task(forever())
    run_briefly(loop)
    del task
    gc.collect()
    assert [c["message"] for c in contexts] == ["Task was destroyed but it is pending!"]
    assert isinstance(contexts[0]["task"], asyncio.Task)
    contexts.clear()  # let the task go


# ------------------------------------------------------- asyncio functions --

def test_running_loop_functions(loop):
    async def main():
        assert asyncio.get_running_loop() is loop
        assert asyncio.get_event_loop() is loop
        me = asyncio.current_task()
        assert me is not None and me.get_loop() is loop
        assert asyncio.current_task(loop) is me
        assert me in asyncio.all_tasks()
        other = asyncio.create_task(asyncio.sleep(0.001))
        assert other.get_loop() is loop
        assert {me, other} <= asyncio.all_tasks(loop)
        await other
        assert other not in asyncio.all_tasks()
        return "ok"

    assert loop.run_until_complete(main()) == "ok"


def test_no_current_task_in_plain_callback(loop):
    seen = []
    loop.call_soon(lambda: seen.append((asyncio.current_task(), asyncio.get_running_loop())))
    run_briefly(loop)
    assert seen == [(None, loop)]


def test_outside_the_loop(loop):
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()
    task = loop.create_task(_value(1))
    assert asyncio.all_tasks(loop) == {task}
    assert asyncio.current_task(loop) is None
    loop.run_until_complete(task)
    assert asyncio.all_tasks(loop) == set()
    asyncio.set_event_loop(loop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert asyncio.get_event_loop() is loop


def test_common_asyncio_primitives(loop):
    async def producer(q, n):
        for i in range(n):
            await q.put(i)
            await asyncio.sleep(0)
        await q.put(None)

    async def consumer(q):
        items = []
        while (item := await q.get()) is not None:
            items.append(item)
        return items

    async def main():
        q = asyncio.Queue(maxsize=3)
        _, items = await asyncio.gather(producer(q, 50), consumer(q))
        assert items == list(range(50))

        ev = asyncio.Event()
        loop.call_later(0.005, ev.set)
        assert await asyncio.wait_for(ev.wait(), GUARD)

        lock = asyncio.Lock()
        order = []

        async def locked(i):
            async with lock:
                order.append(i)
                await asyncio.sleep(0)

        await asyncio.gather(*(locked(i) for i in range(5)))
        assert order == list(range(5))

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(GUARD), 0.01)

        inner = asyncio.ensure_future(asyncio.sleep(0.01, "shielded"))
        assert await asyncio.shield(inner) == "shielded"

        done, pending = await asyncio.wait(
            [asyncio.ensure_future(asyncio.sleep(0.001, i)) for i in range(3)])
        assert sorted(t.result() for t in done) == [0, 1, 2] and not pending

        assert await asyncio.sleep(0, "result") == "result"
        return "ok"

    assert loop.run_until_complete(main()) == "ok"


def test_cancel_task_blocked_in_sleep(loop):
    async def sleeper():
        await asyncio.sleep(GUARD * 10)

    async def main():
        t = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0.005)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        return t.cancelled()

    assert loop.run_until_complete(main()) is True


def test_to_thread_and_run_coroutine_threadsafe(loop):
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    def in_thread():
        return asyncio.run_coroutine_threadsafe(add(2, 3), loop).result(GUARD)

    async def main():
        token = var.set("propagated")
        try:
            seen = await asyncio.to_thread(var.get)
        finally:
            var.reset(token)
        return seen, await asyncio.to_thread(in_thread)

    assert loop.run_until_complete(main()) == ("propagated", 5)


@pytest.mark.skipif(PY < (3, 11), reason="asyncio.timeout is 3.11+")
def test_asyncio_timeout(loop):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(GUARD)
        async with asyncio.timeout(GUARD) as cm:
            await asyncio.sleep(0.001)
        assert not cm.expired()
        async with asyncio.timeout_at(loop.time() + GUARD):
            await asyncio.sleep(0)
        return "ok"

    assert loop.run_until_complete(main()) == "ok"


@pytest.mark.skipif(PY < (3, 11), reason="asyncio.TaskGroup is 3.11+")
def test_task_group(loop):
    async def fail(delay):
        await asyncio.sleep(delay)
        raise ValueError("child failed")

    async def main():
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(asyncio.sleep(0.001, i)) for i in range(5)]
        assert [t.result() for t in tasks] == list(range(5))

        victim = None
        try:
            async with asyncio.TaskGroup() as tg:
                victim = tg.create_task(asyncio.sleep(GUARD))
                tg.create_task(fail(0.005))
        except BaseExceptionGroup as eg:  # noqa: F821 - builtin on 3.11+
            assert [type(e) for e in eg.exceptions] == [ValueError]
        else:
            raise AssertionError("TaskGroup did not raise")
        assert victim.cancelled()
        return "ok"

    assert loop.run_until_complete(main()) == "ok"


@pytest.mark.skipif(PY < (3, 11), reason="asyncio.Runner is 3.11+")
def test_runner(loop_factory):
    async def main(x):
        var.set(x)
        await asyncio.sleep(0.001)
        return asyncio.get_running_loop()

    async def read():
        return var.get()

    ref = loop_factory()
    ref.close()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        lp = runner.get_loop()
        assert type(lp) is type(ref)
        assert runner.run(main("first")) is lp
        # the Runner keeps one context across runs
        assert runner.run(read()) == "first"
    assert lp.is_closed()


@pytest.mark.skipif(PY < (3, 11), reason="asyncio.Runner is 3.11+")
def test_runner_debug(loop_factory):
    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(debug=True, loop_factory=loop_factory) as runner:
        assert runner.run(main()) is True


@pytest.mark.skipif(PY < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_loop_factory(loop_factory):
    made = []

    def factory():
        made.append(loop_factory())
        return made[-1]

    async def main():
        t = asyncio.create_task(asyncio.sleep(GUARD))  # cancelled at the end
        await asyncio.sleep(0.001)
        return asyncio.get_running_loop(), t

    lp, t = asyncio.run(main(), loop_factory=factory)
    assert lp is made[0]
    assert lp.is_closed()
    assert t.cancelled()


# --------------------------------------------------------- async generators --

def test_asyncgen_hooks_set_while_running(loop):
    def firstiter(agen):
        pass

    def finalizer(agen):
        pass

    old = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter, finalizer)
    try:
        seen = []
        loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks()))
        run_briefly(loop)
        after = sys.get_asyncgen_hooks()
    finally:
        sys.set_asyncgen_hooks(*old)
    running = seen[0]
    assert running.firstiter is not None and running.finalizer is not None
    assert running.firstiter is not firstiter and running.finalizer is not finalizer
    assert after.firstiter is firstiter and after.finalizer is finalizer


def test_asyncgen_hooks_restored_after_exception(loop):
    before = sys.get_asyncgen_hooks()

    def boom():
        raise KeyboardInterrupt

    loop.call_soon(boom)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert sys.get_asyncgen_hooks() == before


def test_shutdown_asyncgens_finalizes_unfinished_generator(loop):
    steps = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            steps.append("finally")
            await asyncio.sleep(0)
            steps.append("finally after await")

    gen = agen()

    async def main():
        assert await gen.__anext__() == 1

    loop.run_until_complete(main())
    assert steps == []
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert steps == ["finally", "finally after await"]
    gen = None  # not del: ruff's F821 misreads a del of main's closure variable


def test_asyncgen_finalized_when_collected(loop):
    async def agen(done):
        try:
            yield 1
            yield 2
        finally:
            done.set_result("finalized")

    async def main():
        done = loop.create_future()
        gen = agen(done)
        assert await gen.__anext__() == 1
        del gen
        gc.collect()
        return await asyncio.wait_for(done, GUARD)

    assert loop.run_until_complete(main()) == "finalized"


def test_shutdown_asyncgens_error_goes_to_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def agen():
        try:
            yield 1
        finally:
            raise ValueError("in finally")

    gen = agen()

    async def main():
        await gen.__anext__()

    loop.run_until_complete(main())
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert len(contexts) == 1
    ctx = contexts[0]
    assert ctx["message"].startswith("an error occurred during closing of asynchronous generator")
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["asyncgen"] is gen


def test_asyncgen_after_shutdown_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def agen():
        yield 1

    async def main():
        g = agen()
        with pytest.warns(ResourceWarning, match="shutdown_asyncgens"):
            await g.__anext__()
        await g.aclose()

    loop.run_until_complete(main())


def test_shutdown_asyncgens_nothing_to_do(loop):
    assert loop.run_until_complete(loop.shutdown_asyncgens()) is None
    # twice is fine
    assert loop.run_until_complete(loop.shutdown_asyncgens()) is None
