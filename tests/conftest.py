"""Shared fixtures for the core-loop tests (tests/test_loop_*.py).

Every behavioural test runs twice: once on asyncio's own loop
(``asyncio.new_event_loop``, id ``asyncio``) and once on ours
(``asyncloop.new_event_loop``, id ``asyncloop``).  The asyncio run documents
what CPython does on the running version; the asyncloop run checks that we
do the same.  Tests about asyncloop-only things use the ``asyncloop_mod``
fixture and run once.

The autouse fixture below applies to tests/test_loop_*.py only: the other
suites sharing this directory (test_conformance.py, test_examples.py) keep
their own watchdogs and state handling.

Timing rule: no test asserts an upper bound on a duration except as a hang
guard of at least 10x the expected time (``GUARD``).
"""

import asyncio
import faulthandler
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

# No fallback: without the built extension the suite must fail loudly.
import asyncloop

ROOT = Path(__file__).resolve().parent.parent

PY = sys.version_info[:2]

# Hang guard for things expected to take milliseconds.
GUARD = 10.0

# Hard watchdog per test: a loop that never wakes up again (blocked in the
# poller) cannot be interrupted from Python, so dump the stacks and kill the
# run instead of hanging CI.
WATCHDOG = 120.0

# The monotonic clock's resolution: asyncio itself lets a timer run up to one
# clock tick before its deadline (base_events._run_once, end_time).
CLOCK_RES = time.get_clock_info("monotonic").resolution


LOOP_KINDS = ("asyncio", "asyncloop")


def factory_for(kind):
    if kind == "asyncio":
        return asyncio.new_event_loop
    return asyncloop.new_event_loop


# ---------------------------------------------------------------- fixtures --

@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request):
    """'asyncio' or 'asyncloop'."""
    return request.param


@pytest.fixture
def is_stock(loop_kind):
    return loop_kind == "asyncio"


@pytest.fixture
def loop_factory(loop_kind):
    return factory_for(loop_kind)


@pytest.fixture
def loop(loop_factory):
    """A fresh, not running loop of the kind under test; closed afterwards."""
    lp = loop_factory()
    try:
        yield lp
    finally:
        assert not lp.is_running(), "the loop is still marked running after the test"
        if not lp.is_closed():
            lp.close()
        asyncio.set_event_loop(None)


@pytest.fixture
def asyncloop_mod():
    """The asyncloop package, for tests of asyncloop-only things."""
    return asyncloop


def _watchdog_file(config):
    # pytest captures fds 1 and 2: a watchdog that ends the process must write
    # to the copy of the real stderr kept by pytest's faulthandler plugin, or
    # its traceback is lost with the capture files.
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key
        return config.stash[fault_handler_stderr_fd_key]
    except Exception:
        return sys.__stderr__


@pytest.fixture(autouse=True)
def _clean_global_state(request):
    """Each test starts and ends with no running loop and the default policy."""
    if not request.module.__name__.rpartition(".")[2].startswith("test_loop_"):
        yield
        return
    faulthandler.dump_traceback_later(WATCHDOG, exit=True, file=_watchdog_file(request.config))
    hooks = sys.get_asyncgen_hooks()
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        leaked = asyncio._get_running_loop()
        asyncio._set_running_loop(None)
        asyncio.set_event_loop_policy(None)
        sys.set_asyncgen_hooks(*hooks)
        assert leaked is None, f"a running loop leaked out of the test: {leaked!r}"


# ----------------------------------------------------------------- helpers --

def run_briefly(loop, n=1):
    """Run n full iterations of the loop (each call_soon(stop) ends one)."""
    for _ in range(n):
        loop.call_soon(loop.stop)
        loop.run_forever()


class Returned:
    """What capture() gives back when the call raised nothing."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"<no exception; returned {self.value!r}>"


def capture(fn, *args, **kwargs):
    """Return the exception fn raises, or a Returned if it raises none.

    Safe inside loop callbacks (never raises itself)."""
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: B902 - we want every kind
        return exc
    if asyncio.iscoroutine(result):
        result.close()
    return Returned(result)


def assert_raises_like_asyncio(loop, action, exc_type, *, message=True, setup=None):
    """action(loop) must raise what action(stock asyncio loop) raises.

    exc_type documents what asyncio raises (checked on the reference loop).
    message=True also compares str(exception): use it for messages asyncio
    composes itself; message=False for messages made by Python's argument
    parsing or arithmetic, which a C implementation cannot reproduce
    word for word.
    Where asyncio merely trips an ``assert`` (an accident, not an API),
    TypeError is accepted too.
    """
    ref_loop = asyncio.new_event_loop()
    try:
        if setup is not None:
            setup(ref_loop)
        ref = capture(action, ref_loop)
    finally:
        ref_loop.close()
    assert isinstance(ref, exc_type), f"asyncio raised {ref!r}, test expected {exc_type}"
    if setup is not None:
        setup(loop)
    got = capture(action, loop)
    if isinstance(ref, AssertionError):
        assert isinstance(got, (AssertionError, TypeError)), f"expected TypeError, got {got!r}"
        return got
    assert type(got) is type(ref), f"expected {ref!r}, got {got!r}"
    if message:
        assert str(got) == str(ref), f"expected message {str(ref)!r}, got {str(got)!r}"
    return got


class Recorder:
    """A custom exception handler that records the contexts it gets."""

    def __init__(self):
        self.calls = []

    def __call__(self, loop, context):
        self.calls.append((loop, context))

    @property
    def contexts(self):
        return [c for _, c in self.calls]


# ----------------------------------------------------------- subprocesses --

def pythonpath_env(extra=None):
    """Environment for a child Python that imports the same asyncloop."""
    env = dict(os.environ)
    pkg_parent = str(Path(asyncloop.__file__).resolve().parent.parent)
    paths = [pkg_parent]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    env["PYTHONFAULTHANDLER"] = "1"
    if extra:
        env.update(extra)
    return env


# Defines KIND and new_loop in a child script: argv[1] is the loop kind.
CHILD_PRELUDE = """\
import asyncio, sys
KIND = sys.argv[1]
if KIND == "asyncloop":
    import asyncloop
    new_loop = asyncloop.new_event_loop
else:
    new_loop = asyncio.new_event_loop
"""


def run_child(code, kind, *args, timeout=60, env=None, cwd=None):
    """Run a child Python script (CHILD_PRELUDE + code) for a loop kind.

    A child still running after `timeout` seconds (a hang guard) is killed
    and the test fails with what it had printed."""
    try:
        return subprocess.run(
            [sys.executable, "-c", CHILD_PRELUDE + code, kind, *args],
            capture_output=True, text=True, timeout=timeout,
            env=pythonpath_env(env), cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        hung = f"child ({kind}) hung: killed after {timeout} s\nstdout: {out}\nstderr: {err}"
    pytest.fail(hung, pytrace=False)


def describe(proc):
    return (f"exit code {proc.returncode}\n--- stdout ---\n{proc.stdout}"
            f"\n--- stderr ---\n{proc.stderr}")


def wait_for_line(proc, expected, timeout):
    """Read proc.stdout until a line equal to expected; return what was read."""
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        lines = buf.split(b"\n")
        if any(line.strip() == expected.encode() for line in lines[:-1]):
            return buf.decode()
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"child did not print {expected!r} in {timeout}s; got {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"child exited before printing {expected!r}; got {buf!r}")
            buf += chunk

