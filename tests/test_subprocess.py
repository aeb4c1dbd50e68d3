"""Subprocesses (src/process.c): loop.subprocess_exec / subprocess_shell,
asyncio.create_subprocess_*, the SubprocessTransport and the protocol's
callbacks, run on asyncio's loop and on ours (the ``loop`` fixture)."""

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest

from conftest import GUARD, ROOT, factory_for

PY = sys.executable
PIPE = asyncio.subprocess.PIPE
PY311 = sys.version_info >= (3, 11)


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 60))


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def children():
    """The pids of this process's live or zombie children (all threads)."""
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return pids


def wait_gone(pid):
    """Hang guard: the pid is reaped (no longer our child) within GUARD s."""
    deadline = time.monotonic() + GUARD * 3
    while pid in children():
        assert time.monotonic() < deadline, f"child {pid} was never reaped"
        time.sleep(0.01)


class Recorder(asyncio.SubprocessProtocol):
    def __init__(self, loop):
        self.events = []
        self.data = {1: b"", 2: b""}
        self.exited = loop.create_future()
        self.lost = loop.create_future()
        self.pipe_lost = {1: loop.create_future(), 2: loop.create_future()}
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("connection_made")

    def pipe_data_received(self, fd, data):
        self.data[fd] += data
        if self.events[-1] != ("data", fd):
            self.events.append(("data", fd))

    def pipe_connection_lost(self, fd, exc):
        self.events.append(("pipe_lost", fd))
        if fd in self.pipe_lost:
            self.pipe_lost[fd].set_result(exc)

    def process_exited(self):
        self.events.append("process_exited")
        self.exited.set_result(None)

    def connection_lost(self, exc):
        self.events.append("connection_lost")
        self.lost.set_result(exc)


# ------------------------------------------------------------------ basics --

def test_exec_pipe_and_transport(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
            stdout=PIPE, stderr=PIPE)
        out, err = await proc.communicate()
        t = proc._transport
        assert isinstance(t, asyncio.SubprocessTransport)
        assert t.get_pid() == proc.pid > 0
        assert t.get_returncode() == 3
        return out, err, proc.returncode

    assert run(loop, main()) == (b"out\n", b"err\n", 3)


def test_shell_and_stderr_to_stdout(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            "echo one; echo two >&2; exit 5", stdout=PIPE, stderr=asyncio.subprocess.STDOUT)
        out, err = await proc.communicate()
        return out, err, proc.returncode

    assert run(loop, main()) == (b"one\ntwo\n", None, 5)


def test_callback_order_plain(loop):
    async def main():
        t, p = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c",
            "import sys; sys.stdout.write('x' * 100000); sys.stderr.write('e')",
            stdin=None, stdout=PIPE, stderr=PIPE)
        await p.lost
        assert t.get_pipe_transport(1) is not None
        assert t.get_pipe_transport(0) is None
        t.close()
        return p

    p = run(loop, main())
    assert p.data == {1: b"x" * 100000, 2: b"e"}
    ev = p.events
    assert ev[0] == "connection_made" and ev[-1] == "connection_lost"
    assert ev.index("process_exited") > max(i for i, e in enumerate(ev) if e[0] == "data")
    assert ("pipe_lost", 1) in ev and ("pipe_lost", 2) in ev


def test_process_exits_before_its_pipes_close(loop):
    # The shell exits at once; its background child keeps stdout open
    # until it reads a line from stdin.
    async def main():
        t, p = await loop.subprocess_shell(
            lambda: Recorder(loop), "exec 3<&0; echo a; (read x <&3; echo b) &",
            stdin=PIPE, stdout=PIPE, stderr=None)
        await p.exited
        assert ("pipe_lost", 1) not in p.events
        assert t.get_returncode() == 0
        t.get_pipe_transport(0).write(b"go\n")
        t.get_pipe_transport(0).close()
        await p.lost
        t.close()
        return p

    p = run(loop, main())
    assert p.data[1] == b"a\nb\n"
    ev = p.events
    assert ev.index("process_exited") < ev.index(("pipe_lost", 1)) < ev.index("connection_lost")
    assert ev[-1] == "connection_lost"


def test_pipes_close_before_the_process_exits(loop):
    async def main():
        t, p = await loop.subprocess_shell(
            lambda: Recorder(loop), "echo a; exec 1>&- 2>&-; read x; exit 4",
            stdin=PIPE, stdout=PIPE, stderr=PIPE)
        await p.pipe_lost[1]
        await p.pipe_lost[2]
        assert "process_exited" not in p.events
        assert t.get_returncode() is None
        t.get_pipe_transport(0).write(b"go\n")
        await p.lost
        t.close()
        return t, p

    t, p = run(loop, main())
    ev = p.events
    assert ev.index(("pipe_lost", 1)) < ev.index("process_exited") < ev.index("connection_lost")
    assert t.get_returncode() == 4


def test_signals_and_process_lookup_error(loop):
    code = textwrap.dedent("""
        import signal, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ready', flush=True)
        sys.stdin.read()
        print('survived', flush=True)
    """)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", code, stdin=PIPE, stdout=PIPE)
        assert await proc.stdout.readline() == b"ready\n"
        proc.terminate()  # ignored
        proc.send_signal(signal.SIGTERM)
        out, _ = await proc.communicate(b"")
        assert (out, proc.returncode) == (b"survived\n", 0)

        t, p = await loop.subprocess_exec(lambda: Recorder(loop), "sleep", "30")
        with pytest.raises(TypeError):
            t.send_signal("x")
        with pytest.raises(OSError) as err:
            t.send_signal(-1)
        assert err.value.errno == 22
        t.kill()
        await p.lost
        assert t.get_returncode() == -signal.SIGKILL
        for meth in (t.terminate, t.kill, lambda: t.send_signal(signal.SIGTERM)):
            with pytest.raises(ProcessLookupError):
                meth()
        t.close()

    run(loop, main())


# ------------------------------------------------------------------ errors --

@pytest.mark.parametrize("case", ["no_program", "no_cwd", "cwd_is_file", "not_executable"])
def test_spawn_errors_leak_nothing(loop, tmp_path, case):
    plain = tmp_path / "plain.txt"
    plain.write_text("#!/bin/sh\n")
    args, kwargs, exc, filename = {
        "no_program": (["no-such-program-xyz"], {}, FileNotFoundError, "no-such-program-xyz"),
        "no_cwd": (["true"], {"cwd": str(tmp_path / "nope")}, FileNotFoundError,
                   str(tmp_path / "nope")),
        "cwd_is_file": (["true"], {"cwd": str(plain)}, NotADirectoryError, str(plain)),
        "not_executable": ([str(plain)], {}, PermissionError, str(plain)),
    }[case]

    async def main():
        for stdio in (None, PIPE):
            with pytest.raises(exc) as info:
                await asyncio.create_subprocess_exec(
                    *args, stdin=stdio, stdout=stdio, stderr=stdio, **kwargs)
            assert info.value.filename == filename

    run(loop, main())  # warm up what the first spawn opens once
    gc.collect()
    fds, kids = open_fds(), children()
    run(loop, main())
    gc.collect()
    assert open_fds() == fds
    assert children() == kids


def _first_error(loop, make):
    try:
        run(loop, make(loop))
    except BaseException as exc:  # noqa: B902 - compared as they are
        return exc
    return None


@pytest.mark.parametrize("case", [
    "exec_list", "exec_int", "text", "universal_newlines", "bufsize", "encoding", "errors",
    "shell_in_exec", "shell_list", "shell_false", "env_key",
])
def test_bad_arguments_like_asyncio(loop, case):
    proto = asyncio.SubprocessProtocol
    make = {
        "exec_list": lambda lp: lp.subprocess_exec(proto, ["true"]),
        "exec_int": lambda lp: lp.subprocess_exec(proto, "true", 3),
        "text": lambda lp: lp.subprocess_exec(proto, "true", text=True),
        "universal_newlines": lambda lp: lp.subprocess_exec(proto, "true",
                                                            universal_newlines=True),
        "bufsize": lambda lp: lp.subprocess_exec(proto, "true", bufsize=1),
        "encoding": lambda lp: lp.subprocess_shell(proto, "true", encoding="utf-8"),
        "errors": lambda lp: lp.subprocess_shell(proto, "true", errors="strict"),
        "shell_in_exec": lambda lp: lp.subprocess_exec(proto, "true", shell=True),
        "shell_list": lambda lp: lp.subprocess_shell(proto, ["true"]),
        "shell_false": lambda lp: lp.subprocess_shell(proto, "true", shell=False),
        "env_key": lambda lp: lp.subprocess_exec(proto, "true", env={"A=B": "1"}),
    }[case]
    ref_loop = asyncio.new_event_loop()
    try:
        ref = _first_error(ref_loop, make)
    finally:
        ref_loop.close()
    got = _first_error(loop, make)
    assert ref is not None
    assert type(got) is type(ref) and str(got) == str(ref)


# ------------------------------------------------------------------ options --

INFO = textwrap.dedent("""
    import json, os, sys
    out = {"cwd": os.getcwd(), "env": os.environ.get("AL_TEST"), "sid": os.getsid(0),
           "pgid": os.getpgid(0), "pid": os.getpid(), "umask": os.umask(0),
           "stdin": sys.stdin.read() if sys.stdin else None}
    for fd in map(int, sys.argv[1:]):
        try:
            os.fstat(fd)
            out.setdefault("open", []).append(fd)
        except OSError:
            pass
    print(json.dumps(out))
""")


def test_options(loop, tmp_path):
    r, w = os.pipe()
    os.set_inheritable(r, True)

    async def info(*fds, **kw):
        kw.setdefault("stdout", PIPE)
        proc = await asyncio.create_subprocess_exec(PY, "-c", INFO, *map(str, fds), **kw)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return json.loads(out)

    async def main():
        res = await info(cwd=str(tmp_path), env={"AL_TEST": "x", "PATH": os.environ["PATH"]},
                         stdin=asyncio.subprocess.DEVNULL)
        assert (res["cwd"], res["env"], res["stdin"]) == (str(tmp_path), "x", "")
        res = await info(env={b"AL_TEST": b"bytes"})
        assert res["env"] == "bytes"
        res = await info(start_new_session=True)
        assert res["sid"] == res["pid"]
        if PY311:
            res = await info(process_group=0)
            assert res["pgid"] == res["pid"]
        # an inheritable fd: closed by default, kept by close_fds=False or pass_fds
        assert "open" not in await info(r)
        assert (await info(r, close_fds=False))["open"] == [r]
        assert (await info(r, pass_fds=(r,)))["open"] == [r]
        # Popen's path (preexec_fn, umask): the loop still reaps the child
        res = await info(umask=0o077, preexec_fn=lambda: None)
        assert res["umask"] == 0o077
        # a file object and an fd as stdin / stdout
        with open(tmp_path / "in", "wb") as f:
            f.write(b"from file")
        with open(tmp_path / "in", "rb") as fin, open(tmp_path / "out", "wb") as fout:
            proc = await asyncio.create_subprocess_exec(PY, "-c", INFO, stdin=fin,
                                                        stdout=fout.fileno())
            assert await proc.wait() == 0
        assert json.loads((tmp_path / "out").read_bytes())["stdin"] == "from file"

    try:
        run(loop, main())
    finally:
        os.close(r)
        os.close(w)


def test_many_concurrent_short_processes(loop):
    async def main():
        procs = await asyncio.gather(*[asyncio.create_subprocess_exec("true")
                                       for _ in range(500)])
        codes = await asyncio.gather(*[p.wait() for p in procs])
        return [p.pid for p in procs], codes

    pids, codes = run(loop, main())
    assert codes == [0] * 500
    gc.collect()
    for pid in pids:
        wait_gone(pid)


def test_communicate_10_mib_each_way(loop):
    data = os.urandom(10 * 1024 * 1024)

    async def main():
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        return out, proc.returncode

    out, code = run(loop, main())
    assert code == 0 and out == data


def test_cancel_communicate_and_wait(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec("sleep", "30", stdout=PIPE)
        for coro in (proc.communicate(), proc.wait()):
            task = asyncio.ensure_future(coro)
            await asyncio.sleep(0.01)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert proc.returncode is None
        proc.kill()
        return await proc.wait()

    assert run(loop, main()) == -signal.SIGKILL


def test_close_loop_with_children_running(loop_factory, loop_kind):
    loop = loop_factory()
    asyncio.set_event_loop(loop)  # asyncio's 3.10/3.11 child watcher attaches to it
    try:
        # No pipes: with pipes, the transport's close() fails on the closed
        # loop before it kills the child (asyncio's as ours).
        t, p = run(loop, loop.subprocess_exec(lambda: Recorder(loop), "sleep", "30",
                                              stdin=None, stdout=None, stderr=None))
        pid = t.get_pid()
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    del t, p
    if loop_kind == "asyncio" and sys.version_info < (3, 12):
        # asyncio's thread watcher holds the transport until the child
        # exits: end it so that the transport can go.
        os.kill(pid, signal.SIGKILL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deadline = time.monotonic() + GUARD * 3
        while not any("unclosed transport" in str(w.message) for w in caught):
            assert time.monotonic() < deadline, f"no ResourceWarning: {caught}"
            gc.collect()
            time.sleep(0.01)
    assert any(w.category is ResourceWarning for w in caught)
    if loop_kind == "asyncloop":
        wait_gone(pid)  # killed by close(), then reaped by a thread: no zombie
    else:
        # asyncio's pidfd/thread watcher may be gone with its loop: the
        # zombie waits for the next Popen's cleanup; reap it here.
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def test_user_sigchld_handlers_untouched(loop):
    got = []

    def handler(signum, frame):
        got.append(signum)

    old = signal.signal(signal.SIGCHLD, handler)
    try:
        async def main():
            proc = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(9)")
            assert await proc.wait() == 9
            assert signal.getsignal(signal.SIGCHLD) is handler
            # The Python-level handler runs at the main thread's next check
            # for signals, which may come after wait() returned (the loop
            # learns of the exit from its pidfd): wait for it, bounded, before
            # add_signal_handler() below replaces it.
            for _ in range(5000):
                if got:
                    break
                await asyncio.sleep(0.001)

            fired = loop.create_future()
            loop.add_signal_handler(signal.SIGCHLD,
                                    lambda: fired.done() or fired.set_result(True))
            try:
                proc = await asyncio.create_subprocess_exec("sh", "-c", "exit 6")
                assert await proc.wait() == 6
                assert await fired
            finally:
                loop.remove_signal_handler(signal.SIGCHLD)

        run(loop, main())
        assert got and set(got) == {signal.SIGCHLD}  # the user's handler saw the first child's exit
        # remove_signal_handler() leaves SIG_DFL, as asyncio's does
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_loop_in_another_thread(loop_kind):
    if loop_kind == "asyncio" and sys.version_info < (3, 12):
        # asyncio 3.10/3.11's default watcher needs the main thread's loop
        # to be attached first; ours does not (the reason for the case).
        asyncio.get_child_watcher().attach_loop(None)
    result = []

    def worker():
        lp = factory_for(loop_kind)()
        try:
            async def main():
                proc = await asyncio.create_subprocess_exec("sh", "-c", "echo hi; exit 7",
                                                            stdout=PIPE)
                out, _ = await proc.communicate()
                return out, proc.returncode
            result.append(lp.run_until_complete(main()))
        except BaseException as exc:  # noqa: B902 - reported below
            result.append(exc)
        finally:
            lp.close()

    th = threading.Thread(target=worker)
    th.start()
    th.join(GUARD * 6)
    assert result == [(b"hi\n", 7)]


CTRL_C = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, {root!r})
    import asyncloop

    async def main():
        # The child must not hold the script's stdout: communicate() below
        # waits for its EOF, which a running `sleep` would delay by 30 s.
        proc = await asyncio.create_subprocess_exec(
            "sleep", "30", stdout=asyncio.subprocess.DEVNULL)
        print(proc.pid, flush=True)
        await proc.wait()

    try:
        if sys.argv[1] == "asyncloop":
            asyncloop.run(main())
        else:
            asyncio.run(main())
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(3)
""")


def test_ctrl_c_while_waiting_on_a_child(loop_kind, tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C.format(root=str(ROOT)))
    proc = subprocess.Popen([PY, str(script), loop_kind], stdout=subprocess.PIPE)
    child = int(proc.stdout.readline())
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=GUARD * 3)
        assert (out, proc.returncode) == (b"KeyboardInterrupt\n", 3)
    finally:
        proc.kill()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def test_asyncloop_counters_return_to_zero(asyncloop_mod):
    gc.collect()
    before = asyncloop_mod._core._debug_counters()
    loop = asyncloop_mod.new_event_loop()

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
    after = asyncloop_mod._core._debug_counters()
    assert after["uv_handles"] == before["uv_handles"]
    assert after["loops"] == before["loops"]


def test_cancel_while_spawning(loop):
    """create_subprocess_exec cancelled as it starts: the child is killed
    and reaped, and no fd is left behind."""
    async def main():
        task = asyncio.ensure_future(
            asyncio.create_subprocess_exec("sleep", "100", stdin=PIPE, stdout=PIPE))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)

    run(loop, asyncio.sleep(0))
    gc.collect()
    fds, kids = open_fds(), children()
    run(loop, main())
    deadline = time.monotonic() + GUARD * 3
    while children() - kids:
        assert time.monotonic() < deadline, "the cancelled child was never reaped"
        run(loop, asyncio.sleep(0.01))
    gc.collect()
    assert open_fds() == fds
