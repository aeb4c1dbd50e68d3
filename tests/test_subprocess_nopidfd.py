"""Subprocesses without pidfd_open (src/process.c, waiter_box): where the
kernel or a sandbox refuses pidfd_open (Linux < 5.3, valgrind, gVisor,
seccomp), each child is reaped by a thread blocked in waitid. A loop made
with ASYNCLOOP_NO_PIDFD=1 takes that path, which these tests force.

The behavioural cases run on asyncio's loop too (the ``loop`` fixture):
what the user sees must be the same with or without a pidfd."""

import asyncio
import gc
import logging
import os
import signal
import subprocess
import warnings

import pytest

from conftest import GUARD, ROOT, factory_for
from test_subprocess import PIPE, PY, Recorder, children, run, wait_gone


def pidfds():
    """The pidfds this process holds."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]":
                out.add(int(fd))
        except OSError:
            pass
    return out


@pytest.fixture
def no_pidfd(monkeypatch):
    monkeypatch.setenv("ASYNCLOOP_NO_PIDFD", "1")


@pytest.fixture(params=("asyncio", "asyncloop"))
def loop(request, no_pidfd):
    lp = factory_for(request.param)()
    lp.al_kind = request.param if request.param == "asyncio" else None
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def aloop(no_pidfd):
    """Our loop only, for the Child object's own API."""
    lp = factory_for("asyncloop")()
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.close()


def is_ours(loop):
    return getattr(loop, "al_kind", None) is None


def test_exit_code_and_communicate(loop):
    before = pidfds()

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; sys.stdout.write(sys.stdin.read()); sys.exit(7)",
            stdin=PIPE, stdout=PIPE)
        if is_ours(loop):
            assert pidfds() == before  # the fallback is the one in use
        out, err = await proc.communicate(b"x" * 100000)
        shell = await asyncio.create_subprocess_shell("exit 5")
        return out, err, proc.returncode, await shell.wait()

    assert run(loop, main()) == (b"x" * 100000, None, 7, 5)


def test_callback_order(loop):
    async def main():
        t, p = await loop.subprocess_exec(lambda: Recorder(loop), PY, "-c", "print('hi')",
                                          stdin=None, stderr=None)
        await p.lost
        code = t.get_returncode()
        t.close()
        return p.events, p.data[1], code

    events, out, code = run(loop, main())
    assert out == b"hi\n" and code == 0
    assert events[0] == "connection_made" and events[-1] == "connection_lost"
    # After the pipe's data (its pipe_connection_lost may come either side).
    assert events.index("process_exited") > events.index(("data", 1))


def test_kill_terminate_and_signal_after_exit(loop):
    async def main():
        codes = []
        for how in ("kill", "terminate", "send_signal"):
            proc = await asyncio.create_subprocess_exec("sleep", "30")
            if how == "send_signal":
                proc.send_signal(signal.SIGUSR1)
            else:
                getattr(proc, how)()
            codes.append(await proc.wait())
            # The transport is done with the process (asyncio's rule).
            with pytest.raises(ProcessLookupError):
                proc.kill()
        return codes

    assert run(loop, main()) == [-signal.SIGKILL, -signal.SIGTERM, -signal.SIGUSR1]


def test_fifty_concurrent_children(loop):
    async def main():
        procs = await asyncio.gather(*[
            asyncio.create_subprocess_exec("sh", "-c", f"exit {i % 7}") for i in range(50)])
        codes = await asyncio.gather(*[p.wait() for p in procs])
        return [p.pid for p in procs], codes

    pids, codes = run(loop, main())
    assert codes == [i % 7 for i in range(50)]
    for pid in pids:
        wait_gone(pid)


def test_wait_timeout_then_kill(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
        assert proc.returncode is None
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == -signal.SIGKILL


def test_popen_path(loop):
    # preexec_fn: spawned by subprocess.Popen, reaped through _watch_child.
    async def main():
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", "echo $0; exit 4", stdout=PIPE, preexec_fn=lambda: None)
        return await proc.communicate(), proc.returncode

    assert run(loop, main()) == ((b"sh\n", None), 4)


def test_user_sigchld_handler_untouched(loop):
    got = []
    old = signal.signal(signal.SIGCHLD, lambda signum, frame: got.append(signum))
    try:
        async def main():
            proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 2")
            assert await proc.wait() == 2
            for _ in range(5000):
                if got:
                    break
                await asyncio.sleep(0.001)

        run(loop, main())
        assert got == [signal.SIGCHLD] * len(got) and got
    finally:
        signal.signal(signal.SIGCHLD, old)


# ------------------------------------------------- the Child object itself --

def test_child_wait_with_timeout(aloop):
    async def main():
        t, p = await aloop.subprocess_exec(lambda: Recorder(aloop), "sleep", "30",
                                           stdin=None, stdout=None, stderr=None)
        return t, p

    t, p = run(aloop, main())
    child = t._proc
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.05)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0)
    assert child.poll() is None
    child.terminate()
    # The thread reaped it; wait() gets its status before the loop does.
    assert child.wait() == -signal.SIGTERM
    assert child.wait(timeout=1) == -signal.SIGTERM
    run(aloop, p.exited)
    assert t.get_returncode() == -signal.SIGTERM
    t.close()


def test_loop_closed_and_freed_while_child_runs(aloop):
    async def main():
        t, p = await aloop.subprocess_exec(lambda: Recorder(aloop), "sleep", "30",
                                           stdin=None, stdout=None, stderr=None)
        return t

    t = run(aloop, main())
    child, pid = t._proc, t.get_pid()
    aloop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        # The transport's __del__ would kill the child: keep only the Child.
        t._proc = None
        del t
        gc.collect()
    assert pid in children()
    child.kill()  # the loop is gone; its thread still waits for the child
    assert child.wait() == -signal.SIGKILL
    wait_gone(pid)


def test_child_collected_before_its_exit(aloop):
    """The Child and its loop go first; the thread still reaps the child
    and touches neither."""
    pid = os.posix_spawnp("sleep", ["sleep", "30"], os.environ)
    fut_codes = []
    child = aloop._watch_child(pid, fut_codes.append)
    assert child.pid == pid
    aloop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del child
        gc.collect()
    assert pid in children()
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert fut_codes == []


def test_child_reaped_by_someone_else(aloop, caplog):
    """asyncio's child watchers report a child they cannot wait for with
    returncode 255 and a warning."""
    pid = os.posix_spawnp("true", ["true"], os.environ)
    os.waitpid(pid, 0)

    async def main():
        fut = aloop.create_future()
        child = aloop._watch_child(pid, fut.set_result)
        code = await fut
        return child, code

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        child, code = run(aloop, main())
    assert code == 255
    assert f"Unknown child process pid {pid}, will report returncode 255" in caplog.text
    assert child.wait() == 255


def test_watch_child_bad_pid(aloop):
    for pid in (0, -1):
        with pytest.raises(OSError):
            aloop._watch_child(pid, None)


def test_counters_return_to_zero(no_pidfd):
    import asyncloop
    gc.collect()
    before = asyncloop._core._debug_counters()
    loop = asyncloop.new_event_loop()

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        assert (await proc.communicate(b"x")) == (b"x", None)
        lp = asyncio.get_running_loop()
        t, p = await lp.subprocess_exec(lambda: Recorder(lp), "sleep", "30")
        return t

    t = loop.run_until_complete(main())
    pid = t.get_pid()
    t.close()
    loop.close()
    del t, loop
    gc.collect()
    wait_gone(pid)
    after = asyncloop._core._debug_counters()
    assert after["uv_handles"] == before["uv_handles"]
    assert after["loops"] == before["loops"]


def test_whole_subprocess_suite_without_pidfd():
    """tests/test_subprocess.py on our loop, in a pytest of its own with
    the fallback forced."""
    env = dict(os.environ, ASYNCLOOP_NO_PIDFD="1")
    r = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "asyncloop",
         str(ROOT / "tests" / "test_subprocess.py")],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=GUARD * 30)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
