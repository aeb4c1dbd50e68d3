"""Harness that runs CPython's own test.test_asyncio suite against a loop.

The loop under test is chosen by ASYNCLOOP_CONFORMANCE_LOOP:

    asyncloop  (default)  asyncloop.new_event_loop / asyncloop.EventLoopPolicy
    uvloop                uvloop, to develop the harness without our core
    asyncio               stock asyncio (SelectorEventLoop): checks the harness
                          itself, which should pass nearly everything
    MODULE:ATTR           any other loop: ATTR of MODULE is a tuple
                          (new_event_loop, Loop type, EventLoopPolicy type);
                          no expected failures are applied to it

Other knobs:
    ASYNCLOOP_CONFORMANCE_TIMEOUT  seconds one test may take before the
                                   watchdog dumps every thread's traceback and
                                   ends the process (default 120), so that a
                                   hang in the core cannot eat CI's budget.
    ASYNCLOOP_CONFORMANCE_USAGE    a file to which, at the end of the run, the
                                   harness writes how many loops of ours each
                                   test created (a JSON object id -> count).

The binding itself lives in suite.py, the expected failures in expected.py.
"""

import asyncio
import faulthandler
import os
import sys

LOOP_NAME = os.environ.get("ASYNCLOOP_CONFORMANCE_LOOP", "asyncloop").strip() or "asyncloop"
TIMEOUT = float(os.environ.get("ASYNCLOOP_CONFORMANCE_TIMEOUT", "120"))
PY = sys.version_info[:2]


def _select():
    if LOOP_NAME == "asyncloop":
        import asyncloop
        return asyncloop.new_event_loop, asyncloop.Loop, asyncloop.EventLoopPolicy
    if LOOP_NAME == "uvloop":
        import uvloop
        return uvloop.new_event_loop, uvloop.Loop, uvloop.EventLoopPolicy
    if LOOP_NAME == "asyncio":
        # A marker subclass, so that "our policy is installed" can be told
        # apart from the default policy asyncio creates on its own.
        class AsyncioConformancePolicy(asyncio.DefaultEventLoopPolicy):
            pass
        return asyncio.SelectorEventLoop, asyncio.SelectorEventLoop, AsyncioConformancePolicy
    if ":" in LOOP_NAME:
        import importlib
        modname, _, attr = LOOP_NAME.partition(":")
        return getattr(importlib.import_module(modname), attr)
    raise RuntimeError(
        f"ASYNCLOOP_CONFORMANCE_LOOP={LOOP_NAME!r}: use asyncloop, uvloop, asyncio "
        f"or MODULE:ATTR")


_new_loop, LOOP_TYPE, POLICY_TYPE = _select()


class Stats:
    """Loops of ours created so far, directly or through the policy."""
    direct = 0
    via_policy = 0
    # test id -> number of our loops the test created (both ways)
    per_test = {}

    @classmethod
    def total(cls):
        return cls.direct + cls.via_policy


def check_loop(loop):
    if not isinstance(loop, LOOP_TYPE):
        raise AssertionError(
            f"conformance harness: expected a {LOOP_TYPE.__module__}."
            f"{LOOP_TYPE.__qualname__} loop, got {type(loop)!r}")
    return loop


def new_event_loop():
    """A loop of the selected kind, for the mixins bound to it."""
    loop = check_loop(_new_loop())
    Stats.direct += 1
    return loop


def make_policy():
    """A fresh instance of the selected loop's policy (its type unchanged).

    Its new_event_loop is wrapped on the instance to check and count the
    loops it hands out; asyncio.new_event_loop(), asyncio.run(), Runner and
    IsolatedAsyncioTestCase all go through it.
    """
    policy = POLICY_TYPE()
    inner = policy.new_event_loop

    def new_event_loop():
        loop = check_loop(inner())
        Stats.via_policy += 1
        return loop

    policy.new_event_loop = new_event_loop
    return policy


def install_policy():
    """Install a fresh policy of ours; return the one it replaced (or None)."""
    previous = asyncio.events._event_loop_policy
    asyncio.set_event_loop_policy(make_policy())
    policy = asyncio.get_event_loop_policy()
    if type(policy) is not POLICY_TYPE:
        raise AssertionError(f"conformance harness: policy is {type(policy)!r}, "
                             f"expected {POLICY_TYPE!r}")
    return previous


def restore_policy(previous):
    asyncio.set_event_loop_policy(previous)


# Where the watchdog writes.  pytest captures fds 1 and 2 into temporary
# files that are lost when the watchdog ends the process, so
# test_conformance.py points this at the copy of the real stderr that
# pytest's faulthandler plugin keeps.
WATCHDOG_FILE = None


class Watchdog:
    """Ends the process, with every thread's traceback, if a test hangs."""

    def __init__(self, timeout=TIMEOUT):
        self.timeout = timeout

    def __enter__(self):
        if self.timeout > 0:
            kwargs = {} if WATCHDOG_FILE is None else {"file": WATCHDOG_FILE}
            faulthandler.dump_traceback_later(self.timeout, exit=True, **kwargs)
        return self

    def __exit__(self, *exc):
        if self.timeout > 0:
            faulthandler.cancel_dump_traceback_later()
        return False
