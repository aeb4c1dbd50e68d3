"""Suspected crashers, each in its own child process.

Every snippet must end with the child exiting 0 after printing OK: a
segfault (negative exit code), an abort or a failed check all show up as a
failure with the child's output.  Where asyncio raises at one moment and a C
implementation might reasonably raise at another, the snippets accept both,
but an exception must never be lost and the process must never die.
"""

import pytest

from conftest import describe, run_child

COMMON = """
import gc, threading, time, signal, os, contextvars, warnings
warnings.simplefilter("ignore")
loop = new_loop()
errors = []
loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

def run_briefly(n=1):
    for _ in range(n):
        loop.call_soon(loop.stop)
        loop.run_forever()

def attempt(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return exc
"""

SNIPPETS = {
    "context_not_a_context": """
calls = []
for method, args in (("call_soon", ()), ("call_later", (0,)), ("call_at", (0,)),
                     ("call_soon_threadsafe", ())):
    for bad in (1, "ctx", object(), {}):
        r = attempt(getattr(loop, method), *args, calls.append, 1, context=bad)
        if isinstance(r, Exception):
            assert isinstance(r, TypeError), r
            continue
        n = len(errors)
        run_briefly(2)
        assert len(errors) == n + 1, "a callback with a bad context neither ran nor reported"
assert calls == []
""",
    "create_task_bad_context": """
async def coro():
    return 1
if sys.version_info >= (3, 11):
    for bad in (1, "ctx"):
        r = attempt(loop.create_task, coro(), context=bad)
        run_briefly(3)
""",
    "nan_and_inf_deadlines": """
calls = []
h_inf = loop.call_later(float("inf"), calls.append, "inf")
h_big = loop.call_later(1e300, calls.append, "big")
loop.call_later(-1e300, calls.append, "neg big")
loop.call_at(-float("inf"), calls.append, "neg inf")
assert h_inf.when() == float("inf")
loop.call_later(0.01, loop.stop)
loop.run_forever()
assert sorted(calls) == ["neg big", "neg inf"], calls
h_inf.cancel(); h_big.cancel()
r = attempt(loop.call_later, float("nan"), calls.append, "nan")
try:
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
except Exception:
    pass  # asyncio itself fails here (ValueError from the selector)
""",
    "huge_int_delays": """
for v in (2**63, 2**64 + 1, -2**63, 10**30, -10**30):
    r = attempt(loop.call_later, v, print)
    if not isinstance(r, Exception):
        r.cancel()
    r = attempt(loop.call_at, v, print)
    if not isinstance(r, Exception):
        r.cancel()
run_briefly()
""",
    "exception_handler_bad_contexts": """
loop.set_exception_handler(None)
for ctx in (1, None, "x", [], {"message": 1}, {"exception": 1}, {"message": None},
            {"handle": 1}, {"task": 1}, {"future": object()}):
    attempt(loop.call_exception_handler, ctx)
    attempt(loop.default_exception_handler, ctx)
def handler(lp, ctx):
    raise ValueError("handler")
loop.set_exception_handler(handler)
for ctx in (1, None, {}):
    attempt(loop.call_exception_handler, ctx)
""",
    "uninitialized_loop_object": """
cls = type(loop)
obj = cls.__new__(cls)
for name, args in (("call_soon", (print,)), ("call_later", (1, print)), ("call_at", (1, print)),
                   ("call_soon_threadsafe", (print,)), ("time", ()), ("is_running", ()),
                   ("is_closed", ()), ("stop", ()), ("create_future", ()), ("get_debug", ()),
                   ("set_debug", (True,)), ("run_forever", ()), ("close", ()),
                   ("set_exception_handler", (None,)),
                   ("add_signal_handler", (signal.SIGUSR1, print)),
                   ("remove_signal_handler", (signal.SIGUSR1,)), ("run_in_executor", (None, print)),
                   ("set_task_factory", (None,)), ("get_task_factory", ()), ("__repr__", ())):
    attempt(getattr(obj, name), *args)
del obj
gc.collect()
""",
    "init_twice": """
calls = []
loop.call_soon(calls.append, 1)
r = attempt(loop.__init__)
run_briefly()
assert loop.run_until_complete(asyncio.sleep(0.001, "ok")) == "ok"
loop.close()
""",
    "unclosed_loop_collected_with_pending_handles": """
for _ in range(20):
    lp = new_loop()
    lp.call_soon(print)
    lp.call_later(10, print)
    lp.call_at(lp.time() + 10, print)
    del lp
    gc.collect()
""",
    "handles_outlive_loop": """
handles = []
for _ in range(10):
    lp = new_loop()
    handles.append(lp.call_soon(print, 1))
    handles.append(lp.call_later(10, print, 2))
    lp.close()
    del lp
gc.collect()
for h in handles:
    repr(h); h.cancel(); h.cancelled(); repr(h)
    if hasattr(h, "when"):
        h.when()
""",
    "callback_closes_or_reruns_loop": """
def bad():
    loop.close()
def reenter():
    loop.run_forever()
def reenter2():
    loop.run_until_complete(asyncio.sleep(0))
for cb in (bad, reenter, reenter2):
    loop.call_soon(cb)
    run_briefly()  # one per run: CPython 3.13.0's refused run_forever() unmarks the outer run
assert [type(c["exception"]) for c in errors] == [RuntimeError] * 3, errors
assert not loop.is_closed()
""",
    "callbacks_with_reference_cycles": """
count = 0
def cb(box):
    global count
    count += 1
    box.append(box)
    gc.collect()
for i in range(200):
    box = []
    h = loop.call_soon(cb, box)
    box.append(h)
    del box, h
run_briefly()
assert count == 200
gc.collect()
""",
    "exception_with_broken_repr": """
class Bad:
    def __repr__(self):
        raise RuntimeError("repr broke")
class BadExc(Exception):
    def __str__(self):
        raise RuntimeError("str broke")
def raise_bad(arg):
    raise BadExc()
loop.set_exception_handler(None)
loop.call_soon(raise_bad, Bad())
try:
    run_briefly()
except Exception:
    pass
loop.set_debug(True)
loop.call_soon(raise_bad, Bad())
try:
    run_briefly()
except Exception:
    pass
""",
    "threadsafe_while_closing": """
stop_threads = threading.Event()
def hammer():
    while not stop_threads.is_set():
        try:
            loop.call_soon_threadsafe(len, "x")
        except RuntimeError:
            return
threads = [threading.Thread(target=hammer) for _ in range(4)]
for t in threads:
    t.start()
loop.run_until_complete(asyncio.sleep(0.05))
loop.close()
time.sleep(0.02)
stop_threads.set()
for t in threads:
    t.join()
""",
    "handle_cancel_from_other_thread": """
calls = []
handles = [loop.call_later(0.001 * (i % 20), calls.append, i) for i in range(2000)]
def canceller():
    for h in handles[::2]:
        h.cancel()
t = threading.Thread(target=canceller)
t.start()
loop.run_until_complete(asyncio.sleep(0.05))
t.join()
assert set(range(1, 2000, 2)) <= set(calls)
""",
    "task_factory_returning_junk": """
async def coro():
    return 1
loop.set_task_factory(lambda lp, c: (c.close(), 1)[1])
r = attempt(loop.create_task, coro())
r = attempt(loop.run_until_complete, coro())
loop.set_task_factory(lambda lp, c: (_ for _ in ()).throw(ValueError("factory")))
c = coro()
r = attempt(loop.create_task, c)
assert isinstance(r, ValueError), r
c.close()
loop.set_task_factory(None)
assert loop.run_until_complete(coro()) == 1
""",
    "stop_and_close_in_exception_handler": """
def handler(lp, ctx):
    lp.stop()
    attempt(lp.close)
loop.set_exception_handler(handler)
def boom():
    raise ValueError
loop.call_soon(boom)
loop.run_forever()
loop.close()
""",
    "many_args_and_deep_partials": """
import functools
f = print
for _ in range(1000):
    f = functools.partial(f)
calls = []
loop.call_soon(lambda *a: calls.append(len(a)), *range(100000))
loop.call_soon(functools.partial(f, "", end=""))
run_briefly()
assert calls == [100000]
""",
    "gc_during_callbacks_and_timers": """
class Churn:
    def __del__(self):
        loop.call_soon(len, "x") if not loop.is_closed() else None
def cb():
    for _ in range(50):
        Churn()
    gc.collect()
for i in range(100):
    loop.call_soon(cb)
    loop.call_later(0.0001 * i, cb)
loop.run_until_complete(asyncio.sleep(0.03))
""",
    "signal_handler_edge_cases": """
got = []
loop.add_signal_handler(signal.SIGUSR1, got.append, 1)
loop.add_signal_handler(signal.SIGUSR1, got.append, 2)   # replace
loop.remove_signal_handler(signal.SIGUSR1)
loop.add_signal_handler(signal.SIGUSR1, lambda: loop.remove_signal_handler(signal.SIGUSR1))
os.kill(os.getpid(), signal.SIGUSR1)
loop.run_until_complete(asyncio.sleep(0.02))
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
loop.add_signal_handler(signal.SIGUSR2, loop.close)
os.kill(os.getpid(), signal.SIGUSR2)
loop.run_until_complete(asyncio.sleep(0.02))
loop.add_signal_handler(signal.SIGUSR2, print)
loop.close()
loop.close()
""",
    "future_and_task_of_closed_loop": """
fut = loop.create_future()
async def coro():
    await fut
t = loop.create_task(coro())
run_briefly()
loop.close()
attempt(fut.set_result, 1)
attempt(t.cancel)
del t, fut
gc.collect()
""",
    # Found by fuzzing (seeded random misuse under ASan), one each:
    "handle_rerun_and_cancelled_inside_its_callback": """
class O:
    def __getattr__(self, name):
        h._run()     # nested run of the same handle
        h.cancel()   # must not free the arguments the outer call is using
        raise AttributeError(name)
class Default:
    pass
h = loop.call_soon(getattr, O(), "missing", Default())
run_briefly()
""",
    "long_chain_of_handles_freed": """
h = None
for i in range(300_000):
    h = loop.call_soon(id, h)
loop.close()
del h
""",
    "handles_running_each_other": """
nxt = loop.call_soon(int)
for i in range(100_000):
    nxt = loop.call_soon(nxt._run)
attempt(nxt._run)
""",
    "source_traceback_changed_while_read": """
class B:
    def __bool__(self):
        h._source_traceback = None
        return True
def boom():
    raise ValueError("x")
h = loop.call_soon(boom)
h._source_traceback = B()
run_briefly()
class F:
    def __getitem__(self, i):
        g._source_traceback = None
        return "file"
g = loop.call_soon(print)
g._source_traceback = [F()]
repr(g)
""",
    "run_once_on_closed_loop": """
lp = new_loop()
lp.close()
attempt(lp._run_once)
lp2 = new_loop()
class When:
    def __float__(self):
        lp2.close()
        return lp2.time() + 0.05
attempt(lp2.call_at, When(), print, "x")
attempt(lp2._run_once)
lp3 = new_loop()
lp3.call_later(0.3, int)
t = threading.Thread(target=lambda: (time.sleep(0.05), attempt(lp3.close)))
t.start()
attempt(lp3._run_once)
t.join()
lp3.close()
""",
}


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_no_crash(loop_kind, name):
    code = COMMON + SNIPPETS[name] + '\nprint("OK")\n'
    proc = run_child(code, loop_kind, timeout=60)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), describe(proc)
