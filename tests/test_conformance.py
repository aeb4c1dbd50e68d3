"""CPython's own asyncio test suite (test.test_asyncio of the running Python),
run against asyncloop.

How the suite is bound to our loop, and what is left out, is described in
tests/conformance/suite.py; the expected failures and their reasons are in
tests/conformance/expected.py.  ASYNCLOOP_CONFORMANCE_LOOP=uvloop|asyncio runs
the same harness against another loop (see tests/conformance/__init__.py).

Node ids look like
    tests/test_conformance.py::test_events__EventLoopTests::test_call_later
for the CPython test test_events.EventLoopTests.test_call_later (the class
being ours when it binds a CPython mixin, CPython's otherwise).
"""

import asyncio
import json
import os
import sys

import pytest

if __package__:
    from . import conformance as harness
    from .conformance import expected, suite
else:
    import conformance as harness
    from conformance import expected, suite


@pytest.fixture(scope="module", autouse=True)
def _conformance_module(request):
    # pytest captures fds 1 and 2; a watchdog that ends the process must
    # write to the copy of the real stderr kept by pytest's faulthandler
    # plugin, or its traceback is lost with the capture files.
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key
        harness.WATCHDOG_FILE = request.config.stash[fault_handler_stderr_fd_key]
    except Exception:
        harness.WATCHDOG_FILE = None
    # Every test installs our policy and puts the previous one back; make
    # sure the module as a whole leaves the policy as it found it.
    policy = asyncio.events._event_loop_policy
    yield
    harness.WATCHDOG_FILE = None
    if asyncio.events._event_loop_policy is not policy:
        asyncio.set_event_loop_policy(policy)
        pytest.fail("the conformance run left another event loop policy installed")


# ---------------------------------------------------------------------------
# Sanity checks of the harness itself: the loops under test really are ours.

def test_policy_gives_our_loop():
    previous = harness.install_policy()
    try:
        assert type(asyncio.get_event_loop_policy()) is harness.POLICY_TYPE
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, harness.LOOP_TYPE)
            if harness.LOOP_NAME == "asyncloop":
                import asyncloop
                assert type(loop) is asyncloop.Loop
                assert isinstance(loop, asyncio.AbstractEventLoop)
                assert not isinstance(loop, asyncio.BaseEventLoop)
        finally:
            loop.close()

        async def main():
            return asyncio.get_running_loop()

        # asyncio.run() and IsolatedAsyncioTestCase go through the policy too
        ran_on = asyncio.run(main())
        assert isinstance(ran_on, harness.LOOP_TYPE)
    finally:
        harness.restore_policy(previous)
    assert asyncio.events._event_loop_policy is previous


def test_bound_classes_use_our_loop():
    cls = CLASSES["test_events__EventLoopTests"]
    case = cls("test_call_soon")
    loop = case.create_event_loop()
    try:
        assert isinstance(loop, harness.LOOP_TYPE)
    finally:
        loop.close()


def test_expected_table_is_current():
    # Every entry of the table that applies to this Python must match some
    # test; a stale entry (renamed test, fixed bug) must be removed.  The
    # tables of the development loops (uvloop, asyncio) are best effort.
    if harness.LOOP_NAME != "asyncloop":
        pytest.skip("only the asyncloop table is kept exact")
    stale = [p for p in expected.applicable_patterns(TABLE) if p not in SEEN]
    assert not stale, f"entries of expected.py that match no test here: {stale}"


# ---------------------------------------------------------------------------
# CPython's test classes, bound to / run with our loop.

CLASSES, SEEN, TABLE = suite.build(__name__)
globals().update(CLASSES)


# ---------------------------------------------------------------------------
# Last: how much of the run went through our loop.

def test_zz_loops_of_ours_were_used():
    usage = harness.Stats.per_test
    path = os.environ.get("ASYNCLOOP_CONFORMANCE_USAGE")
    if path:
        with open(path, "w") as f:
            json.dump({"loop": harness.LOOP_NAME, "python": sys.version.split()[0],
                       "direct": harness.Stats.direct,
                       "via_policy": harness.Stats.via_policy,
                       "per_test": usage}, f, indent=1, sort_keys=True)
    if len(usage) < 1000:
        pytest.skip("only meaningful after a full conformance run")
    # Every test of a class bound to our loop got one (its setUp makes it).
    bound_classes = {f"{m.name}.{b.name}" for m in suite.MODULES for b in m.bind}
    bound = [k for k in usage if k.rpartition(".")[0] in bound_classes]
    without = [k for k in bound if not usage[k]]
    assert bound and not without, f"ran without a loop of ours: {without}"
    # And a good part of the policy-driven tests went through our policy.
    assert sum(1 for n in usage.values() if n) > 450
