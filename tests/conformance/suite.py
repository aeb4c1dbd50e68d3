"""Which parts of CPython's test.test_asyncio run, and how they meet our loop.

Three ways a CPython test class is brought in (see MODULES below):

* bound: a loop-generic mixin of CPython's suite (EventLoopTestsMixin,
  BaseSockTestsMixin, SubprocessMixin, ...) is combined into a new class whose
  loop hook (create_event_loop / new_loop) returns a loop of ours.  CPython
  itself binds these mixins to SelectorEventLoop with each selector; those
  stock bindings are dropped, since they would test asyncio's loop, not ours.

* policy: the class is taken as it is.  Whatever loop it gets from
  asyncio.new_event_loop(), asyncio.run(), asyncio.Runner or
  unittest.IsolatedAsyncioTestCase comes from our policy, which the harness
  installs (freshly) around every single test and removes afterwards.  Tests
  of these classes that build their loop with test_utils.TestCase.new_test_loop()
  get CPython's fake-time TestLoop (a BaseEventLoop) and never touch our loop:
  they still run, as a check of the Future/Task machinery we rely on, but they
  do not exercise us.  ASYNCLOOP_CONFORMANCE_USAGE tells which tests did.

* hooked: like policy, but a loop factory method of the class is replaced by
  one returning our loop (test_runners builds a mocked BaseEventLoop by itself).

Every generated class gets the _Harness mixin: policy around each test,
a watchdog, loop accounting, and a close_loop that does not need asyncio's
private loop._default_executor.
"""

import functools
import importlib
import inspect
import types
import unittest

from test.test_asyncio import utils as test_utils

from . import (
    LOOP_NAME,
    PY,
    Stats,
    Watchdog,
    expected,
    install_policy,
    new_event_loop,
    restore_policy,
)

# ----------------------------------------------------------------------------
# What runs

class Bind:
    """A new class NAME made of CPython's MIXINS (+ BASE) on our loop."""

    def __init__(self, name, mixins, *, base="test_utils.TestCase",
                 hook="create_event_loop", loop_in_setup=False):
        self.name = name
        self.mixins = mixins
        self.base = base
        self.hook = hook
        self.loop_in_setup = loop_in_setup


class Module:
    def __init__(self, name, *, since=(3, 10), bind=(), drop=None, keep=None,
                 hooks=None):
        self.name = name
        self.since = since
        self.bind = bind
        # class name -> why it is not collected at all
        self.drop = drop or {}
        # if given, only these classes (besides bound ones) are collected;
        # why the rest is left out is said where the module is listed
        self.keep = keep
        # class name -> {attribute: function} overriding loop factories
        self.hooks = hooks or {}


STOCK_SELECTOR_LOOPS = {
    name: "CPython's binding of the mixin to asyncio.SelectorEventLoop; "
          "replaced by our own binding"
    for name in ("EPollEventLoopTests", "PollEventLoopTests",
                 "SelectEventLoopTests", "KqueueEventLoopTests",
                 "ProactorEventLoopTests")
}


def _stock(*names):
    return {n: "CPython's binding to asyncio's own loop (selector/proactor); "
               "replaced by our own binding" for n in names}


CHILD_WATCHERS = "asyncio child watchers of the selector loop; our loop reaps its children itself"


def _runners_new_loop(self):
    # test_runners.BaseTest.new_loop() builds a BaseEventLoop with a mocked
    # selector and a shutdown_asyncgens() that records it ran, which
    # BaseTest.tearDown() checks.  Same contract on our loop.
    loop = new_event_loop()
    inner = loop.shutdown_asyncgens
    loop.shutdown_ag_run = False

    async def shutdown_asyncgens():
        loop.shutdown_ag_run = True
        await inner()

    loop.shutdown_asyncgens = shutdown_asyncgens
    return loop


MODULES = [
    # -- loop-generic mixins, bound to our loop ------------------------------
    Module("test_events",
           bind=[Bind("EventLoopTests", ("EventLoopTestsMixin", "SubprocessTestsMixin"))],
           # Also here, taken with the policy: HandleTests, TimerTests (mock
           # loops), AbstractEventLoopTests, PolicyTests (asyncio's own
           # DefaultEventLoopPolicy: do not exercise us), Test{Py,C}GetEventLoop,
           # TestServer, TestAbstractServer (asyncio.new_event_loop(): ours).
           drop=STOCK_SELECTOR_LOOPS),
    Module("test_sock_lowlevel",
           bind=[Bind("SockTests", ("BaseSockTestsMixin",))],
           drop=STOCK_SELECTOR_LOOPS),
    Module("test_sendfile",
           bind=[Bind("SendfileTests", ("SendfileTestsBase",))],
           drop=STOCK_SELECTOR_LOOPS),
    Module("test_subprocess",
           bind=[Bind("SubprocessTests", ("SubprocessMixin",), loop_in_setup=True)],
           drop={
               "SubprocessTransportTests":
                   "asyncio.base_subprocess internals on a fake TestLoop",
               "SubprocessThreadedWatcherTests": CHILD_WATCHERS,
               "SubprocessMultiLoopWatcherTests": CHILD_WATCHERS,
               "SubprocessSafeWatcherTests": CHILD_WATCHERS,
               "SubprocessFastWatcherTests": CHILD_WATCHERS,
               "SubprocessPidfdWatcherTests": CHILD_WATCHERS,
               "MultiLoopChildWatcherTests": CHILD_WATCHERS,
               "GenericWatcherTests": CHILD_WATCHERS,
           }),
    Module("test_sslproto",
           # SslProtoHandshakeTests (asyncio.new_event_loop(): ours) drives
           # asyncio.sslproto.SSLProtocol with mock transports on our loop.
           bind=[Bind("StartTLSTests", ("BaseStartTLS",), base="unittest.TestCase",
                      hook="new_loop")],
           drop=_stock("SelectorStartTLSTests", "ProactorStartTLSTests")),
    Module("test_server",
           bind=[Bind("StartServerTests", ("BaseStartServer",), base="unittest.TestCase",
                      hook="new_loop")],
           drop=_stock("SelectorStartServerTests", "ProactorStartServerTests")),
    Module("test_buffered_proto",
           bind=[Bind("BufferedProtocolTests", ("BaseTestBufferedProtocol",),
                      base="unittest.TestCase", hook="new_loop")],
           drop=_stock("BufferedProtocolSelectorTests", "BufferedProtocolProactorTests")),
    # -- loops through the policy (asyncio.new_event_loop / IsolatedAsyncioTestCase)
    Module("test_streams"),
    Module("test_ssl", since=(3, 11)),
    Module("test_unix_events",
           # The rest of the module tests _UnixSelectorEventLoop's internals
           # (mocked signal module, selector), the pipe transports on a fake
           # TestLoop, the child watchers and DefaultEventLoopPolicy.
           keep={"TestFunctional", "TestFork"}),
    # -- asyncio's high-level machinery, loops through the policy.  Most of
    # test_tasks/test_futures/test_pep492 runs on test_utils' fake-time
    # TestLoop (new_test_loop) and does not exercise us; the tests there that
    # call asyncio.new_event_loop() do.
    Module("test_tasks"),
    Module("test_futures"),
    Module("test_futures2"),
    Module("test_locks"),
    Module("test_queues"),
    Module("test_taskgroups", since=(3, 11)),
    Module("test_timeouts", since=(3, 11)),
    Module("test_waitfor"),
    Module("test_runners",
           hooks={"RunTests": {"new_loop": _runners_new_loop},
                  "RunnerTests": {"new_loop": _runners_new_loop}}),
    Module("test_pep492"),
    Module("test_context"),
    Module("test_threads"),
    Module("test_eager_task_factory", since=(3, 12)),
    Module("test_staggered", since=(3, 13)),
]

# Not run at all, and why:
NOT_RUN = {
    "test_base_events": "BaseEventLoop internals (_ready, _scheduled, _selector, mocks)",
    "test_selector_events": "BaseSelectorEventLoop and selector transports internals",
    "test_proactor_events": "Windows proactor loop",
    "test_windows_events": "Windows only",
    "test_windows_utils": "Windows only",
    "test_protocols": "abstract protocol classes; no loop involved",
    "test_transports": "abstract transport classes; no loop involved",
}


# ----------------------------------------------------------------------------
# The harness mixin

class _Harness:
    """First base of every generated class."""

    _conformance_key = None  # "test_module.Class", set per generated class

    def run(self, result=None):
        previous = install_policy()
        before = Stats.total()
        try:
            with Watchdog():
                return super().run(result)
        finally:
            method = getattr(self, self._testMethodName)
            if not (getattr(type(self), "__unittest_skip__", False)
                    or getattr(method, "__unittest_skip__", False)):
                Stats.per_test[f"{self._conformance_key}.{self._testMethodName}"] = (
                    Stats.total() - before)
            restore_policy(previous)

    @staticmethod
    def close_loop(loop):
        # test_utils.TestCase.close_loop() reads loop._default_executor, a
        # private attribute of BaseEventLoop.  Loops that keep their executor
        # to themselves get the public equivalent.
        if hasattr(loop, "_default_executor"):
            return test_utils.TestCase.close_loop(loop)
        try:
            if not loop.is_closed() and not loop.is_running():
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class _LoopInSetUp:
    """For mixins (SubprocessMixin) whose concrete classes create the loop."""

    def setUp(self):
        super().setUp()
        self.loop = self.create_event_loop()
        self.set_event_loop(self.loop)


def _our_loop_hook(self):
    return new_event_loop()


# ----------------------------------------------------------------------------
# Expected failures -> pytest marks on copies of the test functions

def _copy_function(func):
    if isinstance(func, types.FunctionType):
        new = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                                 func.__defaults__, func.__closure__)
        new.__kwdefaults__ = func.__kwdefaults__
        new.__dict__.update(func.__dict__)
        new.__dict__.pop("pytestmark", None)
        new.__qualname__ = func.__qualname__
        new.__module__ = func.__module__
        new.__doc__ = func.__doc__
        return new
    if inspect.iscoroutinefunction(func):
        async def new(self, *args, **kwargs):
            return await func(self, *args, **kwargs)
    else:
        def new(self, *args, **kwargs):
            return func(self, *args, **kwargs)
    return functools.wraps(func)(new)


def _mark(cls, key_prefix, table, seen):
    for meth in unittest.TestLoader().getTestCaseNames(cls):
        key = f"{key_prefix}.{meth}"
        entry = expected.lookup(table, key)
        if entry is None:
            continue
        seen.add(entry.pattern)
        func = _copy_function(getattr(cls, meth))
        setattr(cls, meth, entry.mark()(func))


# ----------------------------------------------------------------------------
# Building the classes

def _test_classes(mod):
    for name, obj in vars(mod).items():
        if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and obj.__module__ == mod.__name__):
            yield name, obj


def _resolve(mod, dotted):
    if dotted == "test_utils.TestCase":
        return test_utils.TestCase
    if dotted == "unittest.TestCase":
        return unittest.TestCase
    return getattr(mod, dotted)


def build(namespace_module):
    """Return ({attribute name: generated class} in collection order,
    the set of table patterns that matched some test, the table used)."""
    table = expected.table_for(LOOP_NAME)
    seen = set()
    classes = {}

    def make(modname, clsname, bases, ns):
        attr = f"{modname}__{clsname}"
        ns = dict(ns)
        ns["_conformance_key"] = f"{modname}.{clsname}"
        ns["__module__"] = namespace_module
        ns["__qualname__"] = attr
        cls = type(attr, (_Harness, *bases), ns)
        _mark(cls, f"{modname}.{clsname}", table, seen)
        classes[attr] = cls

    for spec in MODULES:
        if PY < spec.since:
            continue
        mod = importlib.import_module(f"test.test_asyncio.{spec.name}")
        for b in spec.bind:
            bases = [_resolve(mod, m) for m in b.mixins]
            if b.loop_in_setup:
                bases.insert(0, _LoopInSetUp)
            bases.append(_resolve(mod, b.base))
            make(spec.name, b.name, bases, {b.hook: _our_loop_hook})
        for name, cls in _test_classes(mod):
            if name in spec.drop:
                continue
            if spec.keep is not None and name not in spec.keep:
                continue
            if not unittest.TestLoader().getTestCaseNames(cls):
                continue  # abstract bases (test_runners.BaseTest, ...)
            make(spec.name, name, [cls], spec.hooks.get(name, {}))
    return classes, seen, table
