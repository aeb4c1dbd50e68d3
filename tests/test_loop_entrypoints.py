"""asyncloop-only: the package's ways in, and the live-object counters."""

import asyncio
import gc
import json
import subprocess
import sys
import warnings

import pytest

from conftest import GUARD, PY, describe, pythonpath_env


async def _loop_info():
    await asyncio.sleep(0.001)
    loop = asyncio.get_running_loop()
    return type(loop), loop.get_debug()


def test_loop_class(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        assert type(loop) is asyncloop_mod.Loop
        assert isinstance(loop, asyncloop_mod._core.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert issubclass(asyncloop_mod.Loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


def test_no_method_is_left_to_the_abstract_loop(asyncloop_mod):
    # AbstractEventLoop's methods raise NotImplementedError: every one must be
    # overridden (networking, UDP, pipes, subprocesses, sendfile included).
    left = [name for name, fn in vars(asyncio.AbstractEventLoop).items()
            if callable(fn) and not name.startswith("__")
            and getattr(asyncloop_mod.Loop, name) is fn]
    assert left == []
    loop = asyncloop_mod.new_event_loop()
    try:
        handle = asyncio.TimerHandle(loop.time() + 60, print, (), loop)
        handle.cancel()  # reports to loop._timer_handle_cancelled
        assert handle.cancelled()
    finally:
        loop.close()


def test_loop_constructor(asyncloop_mod):
    loop = asyncloop_mod.Loop()
    try:
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()


def test_run(asyncloop_mod):
    assert asyncloop_mod.run(_loop_info()) == (asyncloop_mod.Loop, False)


def test_run_debug(asyncloop_mod):
    assert asyncloop_mod.run(_loop_info(), debug=True) == (asyncloop_mod.Loop, True)


def test_run_leaves_policy_alone(asyncloop_mod):
    before = asyncio.get_event_loop_policy()
    asyncloop_mod.run(_loop_info())
    assert asyncio.get_event_loop_policy() is before


def test_run_cancels_leftover_tasks(asyncloop_mod):
    leftover = []

    async def main():
        leftover.append(asyncio.ensure_future(asyncio.sleep(GUARD * 10)))
        await asyncio.sleep(0)

    asyncloop_mod.run(main())
    assert leftover[0].cancelled()


def test_run_not_a_coroutine(asyncloop_mod):
    with pytest.raises(ValueError) as ours:
        asyncloop_mod.run(1)
    with pytest.raises(ValueError) as stock:
        asyncio.run(1)
    assert str(ours.value) == str(stock.value)


def test_run_inside_running_loop(asyncloop_mod):
    """Same error as asyncio.run() called from a running loop."""
    def attempt(run):
        async def main():
            coro = _loop_info()
            try:
                run(coro)
            except RuntimeError as exc:
                return exc
            finally:
                coro.close()

        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()

    expected = attempt(asyncio.run)
    assert "cannot be called from a running event loop" in str(expected)
    got = attempt(asyncloop_mod.run)
    assert isinstance(got, RuntimeError), got
    assert str(got) == str(expected)


@pytest.mark.skipif(PY < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_loop_factory(asyncloop_mod):
    result = asyncio.run(_loop_info(), loop_factory=asyncloop_mod.new_event_loop)
    assert result == (asyncloop_mod.Loop, False)


def test_event_loop_policy(asyncloop_mod):
    asyncio.set_event_loop_policy(asyncloop_mod.EventLoopPolicy())
    try:
        assert isinstance(asyncio.get_event_loop_policy(), asyncloop_mod.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        assert type(loop) is asyncloop_mod.Loop
        loop.close()
        assert asyncio.run(_loop_info()) == (asyncloop_mod.Loop, False)
    finally:
        asyncio.set_event_loop_policy(None)


def test_install(asyncloop_mod):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # install() itself must not warn
            asyncloop_mod.install()
        assert isinstance(asyncio.get_event_loop_policy(), asyncloop_mod.EventLoopPolicy)
        assert asyncio.run(_loop_info()) == (asyncloop_mod.Loop, False)
    finally:
        asyncio.set_event_loop_policy(None)


# ------------------------------------------------------ python -m asyncloop --

SCRIPT = """\
import asyncio, json, sys
import sibling

async def main():
    await asyncio.sleep(0)
    cls = type(asyncio.get_running_loop())
    return cls.__module__ + "." + cls.__qualname__

print(json.dumps({
    "argv": sys.argv,
    "file": __file__,
    "path0": sys.path[0],
    "name": __name__,
    "loop": asyncio.run(main()),
    "sibling": sibling.VALUE,
}))
"""


def _run_m(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "asyncloop", *args], capture_output=True, text=True,
        timeout=60, env=pythonpath_env(), cwd=cwd)


def test_python_m_asyncloop_script(asyncloop_mod, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "script.py").write_text(SCRIPT)
    (sub / "sibling.py").write_text("VALUE = 'imported from the script directory'\n")
    proc = _run_m(["sub/script.py", "a", "b"], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    info = json.loads(proc.stdout)
    # the same as `python sub/script.py a b`, but on asyncloop
    plain = subprocess.run([sys.executable, "sub/script.py", "a", "b"], capture_output=True,
                           text=True, timeout=60, env=pythonpath_env(), cwd=tmp_path)
    assert plain.returncode == 0, describe(plain)
    expected = json.loads(plain.stdout)
    assert expected["argv"] == ["sub/script.py", "a", "b"]
    assert expected["loop"].endswith("_UnixSelectorEventLoop")
    assert info["argv"] == expected["argv"]
    assert info["file"] == expected["file"]
    assert info["path0"] == expected["path0"]
    assert info["name"] == "__main__"
    assert info["loop"] == "asyncloop.Loop"
    assert info["sibling"] == "imported from the script directory"


def test_python_m_asyncloop_module(asyncloop_mod, tmp_path):
    (tmp_path / "mymod.py").write_text(SCRIPT.replace("import sibling\n", "").replace(
        '    "sibling": sibling.VALUE,\n', ""))
    proc = subprocess.run(
        [sys.executable, "-m", "asyncloop", "-m", "mymod", "x"], capture_output=True,
        text=True, timeout=60, cwd=tmp_path,
        env=pythonpath_env({"PYTHONPATH": str(tmp_path) + ":" + pythonpath_env()["PYTHONPATH"]}))
    assert proc.returncode == 0, describe(proc)
    info = json.loads(proc.stdout)
    assert info["argv"][1:] == ["x"]
    assert info["name"] == "__main__"
    assert info["loop"] == "asyncloop.Loop"


def test_python_m_asyncloop_exit_code(asyncloop_mod, tmp_path):
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    proc = _run_m(["exits.py"], cwd=tmp_path)
    assert proc.returncode == 3, describe(proc)


FAILING_SCRIPTS = {
    "raises": "def f():\n    raise ValueError('bad value')\n\nprint('before')\nf()\n",
    "syntax": "print('never')\nx = (1 +\n",
    "chained": ("try:\n    {}['k']\nexcept KeyError as e:\n"
                "    raise RuntimeError('wrapped') from e\n"),
    "own_hook": ("import sys\n"
                 "sys.excepthook = lambda t, v, tb: print('hook:', t.__name__, v, "
                 "file=sys.stderr)\n"
                 "raise LookupError('via hook')\n"),
    "exit_message": "import sys\nsys.exit('leaving with a message')\n",
}


@pytest.mark.parametrize("name", sorted(FAILING_SCRIPTS))
def test_python_m_asyncloop_failure_output(asyncloop_mod, tmp_path, name):
    # A script that fails reports exactly as under `python script.py`: same
    # status, stdout and stderr (no frames of the launcher in tracebacks).
    (tmp_path / "fails.py").write_text(FAILING_SCRIPTS[name])
    ours = _run_m(["fails.py"], cwd=tmp_path)
    plain = subprocess.run([sys.executable, "fails.py"], capture_output=True, text=True,
                           timeout=60, env=pythonpath_env(), cwd=tmp_path)
    assert plain.returncode != 0
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr)


def test_python_m_asyncloop_usage(asyncloop_mod, tmp_path):
    proc = _run_m([], cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage" in proc.stderr
    proc = _run_m(["does_not_exist.py"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "does_not_exist.py" in proc.stderr


# -------------------------------------------------------- debug counters --

def _counters(asyncloop_mod):
    fn = getattr(asyncloop_mod._core, "_debug_counters", None)
    if fn is None:
        pytest.skip("asyncloop._core._debug_counters() is not available in this build")
    counts = fn()
    assert isinstance(counts, dict)
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items()), counts
    return counts


def _exercise(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    calls = []
    for i in range(50):
        loop.call_soon(calls.append, i)
    handles = [loop.call_later(0.001 * (i % 5), calls.append, i) for i in range(50)]
    for h in handles[::3]:
        h.cancel()
    loop.call_later(3600, calls.append, "never")        # still pending at close
    loop.call_at(loop.time() + 3600, calls.append, "x")  # idem
    loop.call_soon_threadsafe(calls.append, "threadsafe")

    async def main():
        await asyncio.sleep(0.01)
        await asyncio.gather(*(asyncio.sleep(0.001) for _ in range(10)))
        await loop.run_in_executor(None, lambda: None)

    loop.run_until_complete(main())
    loop.call_soon(calls.append, "pending at close")
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    # None, not del: ruff's F821 misreads a del of main's closure variable.
    loop = handles = calls = None


def test_debug_counters_return_to_start(asyncloop_mod):
    _counters(asyncloop_mod)
    _exercise(asyncloop_mod)  # warm-up: lazily created singletons
    gc.collect()
    before = _counters(asyncloop_mod)
    _exercise(asyncloop_mod)
    gc.collect()
    after = _counters(asyncloop_mod)
    assert after == before


def _some_handles(asyncloop_mod, check=None):
    loop = asyncloop_mod.new_event_loop()
    handles = [loop.call_soon(print) for _ in range(5)] + [loop.call_later(10, print)]
    if check is not None:
        check()
    for h in handles:
        h.cancel()
    loop.close()
    del loop, handles
    gc.collect()


def test_debug_counters_count_live_objects(asyncloop_mod):
    _some_handles(asyncloop_mod)  # warm-up: free lists fill to their level
    before = _counters(asyncloop_mod)

    def check():
        assert _counters(asyncloop_mod) != before, "a live loop and handles changed no counter"

    _some_handles(asyncloop_mod, check)
    assert _counters(asyncloop_mod) == before


def test_cancelled_timers_do_not_pile_up(asyncloop_mod):
    # Cancelled timers leave the heap lazily, as in asyncio, but once they
    # are more than half of it they go in bulk, at cancel() already: a loop
    # that is not running does not keep 10 000 cancelled timers alive.
    loop = asyncloop_mod.new_event_loop()
    try:
        gc.collect()
        before = _counters(asyncloop_mod)["handles"]
        handles = [loop.call_later(3600 + i, print) for i in range(10_000)]
        for h in handles:
            h.cancel()
        del handles, h
        gc.collect()
        after = _counters(asyncloop_mod)["handles"]
        assert after - before <= 100, (before, after)
        # live timers stay, in order
        calls = []
        keep = [loop.call_later(0.001 * (i % 3), calls.append, i) for i in range(300)]
        for h in keep[::2]:
            h.cancel()
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        assert sorted(calls) == list(range(1, 300, 2))
    finally:
        loop.close()
