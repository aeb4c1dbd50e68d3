"""Signal handlers, Ctrl-C, and fork."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import (
    CHILD_PRELUDE,
    GUARD,
    PY,
    capture,
    describe,
    pythonpath_env,
    run_child,
    wait_for_line,
)


@pytest.fixture
def sigusr1_guard():
    """Keep a stray SIGUSR1 from killing the test run if a handler is
    missing; restore whatever was there afterwards."""
    old = signal.signal(signal.SIGUSR1, lambda *a: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, old)


def _send_later(sig, delay):
    t = threading.Timer(delay, os.kill, (os.getpid(), sig))
    t.start()
    return t


def test_signal_handler_wakes_blocked_loop(loop, sigusr1_guard):
    got = []

    def handler(*args):
        got.append((args, threading.current_thread() is threading.main_thread()))
        task.cancel()

    async def long_sleep():
        await asyncio.sleep(GUARD * 3)

    loop.add_signal_handler(signal.SIGUSR1, handler, "a", 2)
    task = loop.create_task(long_sleep())
    timer = _send_later(signal.SIGUSR1, 0.05)
    t0 = time.monotonic()
    try:
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
    finally:
        timer.cancel()
        timer.join()
    assert got == [(("a", 2), True)]
    assert time.monotonic() - t0 < GUARD * 3
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_signal_handler_runs_once_per_signal(loop, sigusr1_guard):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "sig")

    async def main():
        for i in range(3):
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(200):
                await asyncio.sleep(0.001)
                if got.count("sig") > i:
                    break
            await asyncio.sleep(0.01)  # a second run of the handler would show
            got.append("|")

    loop.run_until_complete(main())
    assert got == ["sig", "|", "sig", "|", "sig", "|"]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_signal_handler_replaced(loop, sigusr1_guard):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, got.append, "second")

    async def main():
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(1000):
            if got:
                break
            await asyncio.sleep(0.001)

    loop.run_until_complete(main())
    assert got == ["second"]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True


def test_remove_signal_handler_restores_default(loop, sigusr1_guard):
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_remove_sigint_restores_default_int_handler(loop):
    old = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, print)
        assert loop.remove_signal_handler(signal.SIGINT) is True
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, old)


def test_signal_before_loop_runs(loop, sigusr1_guard):
    """A signal that arrives while the loop is not running is handled once
    it runs."""
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "late")
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.01)
    assert got == []

    async def main():
        for _ in range(1000):
            if got:
                break
            await asyncio.sleep(0.001)

    loop.run_until_complete(main())
    assert got == ["late"]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_remove_unregistered_signal(loop):
    assert loop.remove_signal_handler(signal.SIGUSR2) is False
    assert loop.remove_signal_handler(signal.SIGKILL) is False


def test_close_removes_signal_handlers(loop, sigusr1_guard):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_handler_exception_goes_to_handler(loop, sigusr1_guard):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def bad():
        raise ValueError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, bad)

    async def main():
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(1000):
            if contexts:
                break
            await asyncio.sleep(0.001)

    loop.run_until_complete(main())
    loop.remove_signal_handler(signal.SIGUSR1)
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ValueError)


def test_add_signal_handler_from_other_thread(loop):
    results = []
    t = threading.Thread(
        target=lambda: results.append(capture(loop.add_signal_handler, signal.SIGUSR1, print)))
    t.start()
    t.join()
    assert isinstance(results[0], RuntimeError), results
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_removed_signal_handler_not_run(loop, sigusr1_guard):
    """A signal that arrives after its handler was removed runs nothing."""
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, 1)
    loop.remove_signal_handler(signal.SIGUSR1)
    signal.signal(signal.SIGUSR1, lambda *a: None)
    os.kill(os.getpid(), signal.SIGUSR1)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert got == []


def test_python_signal_handler_exception_interrupts_blocked_loop(loop, sigusr1_guard):
    """A plain signal.signal() handler that raises, run while the loop is
    blocked in its poll, makes run_until_complete raise at once (this is how
    Ctrl-C's KeyboardInterrupt reaches code that uses no Runner)."""
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    signal.signal(signal.SIGUSR1, handler)
    task = loop.create_task(asyncio.sleep(GUARD))
    timer = _send_later(signal.SIGUSR1, 0.05)
    t0 = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            loop.run_until_complete(task)
        elapsed = time.monotonic() - t0
    finally:
        timer.cancel()
        timer.join()
    assert elapsed < GUARD, "the blocked loop did not notice the signal"
    assert not loop.is_running()
    # and the loop goes on afterwards
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert loop.run_until_complete(asyncio.sleep(0.001, "again")) == "again"


# ------------------------------------------------------------------ Ctrl-C --

CTRL_C_SCRIPT = """
import asyncio, sys
mode = sys.argv[2]

async def main():
    try:
        print("ready", flush=True)
        await asyncio.sleep(3600)
    finally:
        print("cleanup", flush=True)

if mode == "asyncloop.run":
    asyncloop.run(main())
elif mode == "loop_factory":
    asyncio.run(main(), loop_factory=asyncloop.new_event_loop)
elif mode == "install":
    asyncloop.install()
    asyncio.run(main())
elif mode == "asyncio.run":
    asyncio.run(main())
elif mode == "run_until_complete":
    loop = new_loop()
    loop.run_until_complete(main())
print("main returned", flush=True)
"""


def _ctrl_c_modes():
    modes = [("asyncio", "asyncio.run"), ("asyncio", "run_until_complete"),
             ("asyncloop", "asyncloop.run"), ("asyncloop", "run_until_complete"),
             ("asyncloop", "install")]
    if PY >= (3, 12):
        modes.append(("asyncloop", "loop_factory"))
    return modes


@pytest.mark.parametrize("kind, mode", _ctrl_c_modes(), ids=lambda x: x)
def test_ctrl_c(kind, mode, request):
    if kind == "asyncloop":
        request.getfixturevalue("asyncloop_mod")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + CTRL_C_SCRIPT, kind, mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=pythonpath_env())
    try:
        wait_for_line(proc, "ready", timeout=30)
        time.sleep(0.05)  # let the loop block in its poll
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"child ignored SIGINT for 30 s (blocked loop not interrupted)\n"
                        f"stderr: {err.decode()}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    # what the same script does on stock asyncio, every version 3.10-3.13:
    # a KeyboardInterrupt traceback, then death by SIGINT
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert "Traceback" in err
    out = out.decode()
    assert "main returned" not in out
    # main's finally: block ran (asyncio.run() cancels the main task; after a
    # bare run_until_complete() the coroutine is closed at exit)
    assert "cleanup" in out, out


# -------------------------------------------------------------------- fork --

FORK_SCRIPT = """
import os, signal, threading, traceback
variant = sys.argv[2]

def child_main():
    loop = new_loop()
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")

    async def main():
        await asyncio.sleep(0.01)
        r = await loop.run_in_executor(None, lambda: 40)
        fut = loop.create_future()
        threading.Thread(target=loop.call_soon_threadsafe, args=(fut.set_result, 2)).start()
        r += await asyncio.wait_for(fut, 10)
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(1000):
            if got:
                break
            await asyncio.sleep(0.001)
        assert got == ["usr1"], got
        return r

    assert loop.run_until_complete(main()) == 42
    loop.remove_signal_handler(signal.SIGUSR1)
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()

def fork_and_check():
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child_main()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

parent = new_loop()
parent.add_signal_handler(signal.SIGUSR2, print)
parent.run_until_complete(parent.run_in_executor(None, lambda: None))

if variant == "idle-parent-loop":
    code = fork_and_check()
else:
    async def in_parent():
        return fork_and_check()
    code = parent.run_until_complete(in_parent())

# the parent's loop is still fine
parent.run_until_complete(asyncio.sleep(0.01))
parent.remove_signal_handler(signal.SIGUSR2)
parent.run_until_complete(parent.shutdown_default_executor())
parent.close()
print("child exit code", code)
sys.exit(code)
"""


def _fork_variants():
    variants = ["idle-parent-loop"]
    if PY >= (3, 12):
        # asyncio resets the running loop in a forked child only from 3.12
        variants.append("inside-running-loop")
    return variants


@pytest.mark.parametrize("variant", _fork_variants())
def test_fork_child_runs_new_loop(loop_kind, variant):
    proc = run_child(FORK_SCRIPT, loop_kind, variant, timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "child exit code 0" in proc.stdout


def test_unclosed_loop_with_signal_handler_is_collected(loop_factory):
    # The installed Python-level handler must not keep the loop alive: an
    # unclosed loop is collected and closed, its handler removed, as on asyncio.
    import gc
    import warnings
    import weakref
    lp = loop_factory()
    lp.add_signal_handler(signal.SIGUSR1, print, "usr1")
    lp.call_soon(print, "pending")
    ref = weakref.ref(lp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del lp
        for _ in range(3):
            gc.collect()
    assert ref() is None
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, 0)


def test_wakeup_fd_of_a_loop_closed_during_another_run_is_not_restored(loop_factory):
    # Loop b's handler points the wakeup fd at b's pipe; loop a runs (taking
    # the wakeup fd over), b is closed meanwhile. When a's run ends it must
    # not bring back b's closed fd, whose number may be reused by then.
    a, b = loop_factory(), loop_factory()
    try:
        b.add_signal_handler(signal.SIGUSR1, print)

        def during_run():
            b.close()
            a.stop()

        a.call_soon(during_run)
        a.run_forever()
        fd = signal.set_wakeup_fd(-1)
        assert fd == -1
    finally:
        b.close()
        a.close()
        signal.set_wakeup_fd(-1)
