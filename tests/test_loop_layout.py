"""The loop object's layout: what makes method calls on it cheap from Python.

asyncio's methods that asyncloop borrows read and write _asyncgens,
_asyncgens_shutdown_called and _unix_server_sockets on the loop; asyncloop
keeps them in slots of the C type, so that the instance dict of a loop stays
empty, and makes the loop through object.__new__, so that on 3.11 and 3.12
a subclass's instance has its inline attribute values. Both let the
interpreter specialise `loop.call_soon` and the other method lookups.
"""

import asyncio
import dis
import gc
import sys
import weakref

import pytest

from conftest import PY, run_briefly


def test_loop_attributes_used_by_asyncio(loop):
    assert isinstance(loop._asyncgens, weakref.WeakSet)
    assert loop._asyncgens_shutdown_called is False
    loop.run_until_complete(loop.shutdown_asyncgens())
    assert loop._asyncgens_shutdown_called is True


def test_unix_server_sockets_is_a_dict(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        assert loop._unix_server_sockets == {}
    finally:
        loop.close()


def test_instance_dict_stays_empty(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:

        async def agen():
            yield 1

        async def main():
            async for _ in agen():
                break

        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
        assert vars(loop) == {}
    finally:
        loop.close()


def test_instance_attributes_still_settable(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        loop.custom = 1
        assert loop.custom == 1
        assert vars(loop) == {"custom": 1}
        loop._asyncgens = None
        assert loop._asyncgens is None
        del loop._unix_server_sockets
        with pytest.raises(AttributeError):
            _ = loop._unix_server_sockets
    finally:
        loop.close()


def test_subclass_attributes(asyncloop_mod):
    class Sub(asyncloop_mod.Loop):
        def __init__(self):
            super().__init__()
            self.extra = "x"

    loop = Sub()
    try:
        assert loop.extra == "x"
        assert loop.run_until_complete(loop.create_task(_return(3))) == 3
    finally:
        loop.close()


async def _return(value):
    return value


def _calls_time(loop):
    for _ in range(64):
        loop.time()


@pytest.mark.skipif(PY < (3, 11), reason="the specialising interpreter is 3.11+")
def test_method_lookup_specialises(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        _calls_time(loop)
        ops = [
            i.opname
            for i in dis.get_instructions(_calls_time, adaptive=True)
            if i.argval == "time"
        ]
        assert len(ops) == 1, ops
        # LOAD_METHOD_* (3.11) or LOAD_ATTR_METHOD_* (3.12+), not the
        # generic instruction that failed to specialise.
        assert "METHOD_" in ops[0], (ops, sys.version)
    finally:
        loop.close()


def test_loop_owns_the_core_methods(asyncloop_mod):
    Loop = asyncloop_mod.Loop
    core = asyncloop_mod._core.Loop
    for name in ("call_soon", "call_soon_threadsafe", "call_later", "call_at", "time",
                 "create_future", "create_task", "run_forever", "close"):
        descr = Loop.__dict__[name]
        assert descr.__objclass__ is Loop, name
        assert descr.__doc__ == core.__dict__[name].__doc__
    # What asyncloop/__init__.py defines in Python stays as it is.
    assert Loop.__dict__["create_connection"] is asyncloop_mod._Base.create_connection
    with pytest.raises(TypeError):
        asyncloop_mod._core._method_descriptors(dict)


def test_core_methods_reject_other_instances(asyncloop_mod):
    bare = asyncloop_mod._core.Loop()
    try:
        with pytest.raises(TypeError):
            asyncloop_mod.Loop.call_soon(bare, print)
        bare.call_soon(print)  # its own, _core.Loop's
    finally:
        bare.close()


def test_call_soon_attribute(loop):
    """loop.call_soon looked up as an attribute (asyncio's C Task and Future
    do on 3.10 and 3.11) is the loop's bound method, before, during and
    after a run; through the class it is the method descriptor."""
    cls = type(loop)
    ran = []
    bound = loop.call_soon
    assert bound.__self__ is loop and bound.__name__ == "call_soon"
    assert type(bound) is type(loop.time)

    async def main():
        inner = loop.call_soon
        assert inner.__self__ is loop and type(inner) is type(bound)
        inner(ran.append, 1)
        cls.call_soon(loop, ran.append, 2)
        loop.call_soon(ran.append, 3, context=None)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    bound(ran.append, 4)
    cls.call_soon(loop, ran.append, 5)
    run_briefly(loop)
    assert ran == [1, 2, 3, 4, 5]
    assert cls.call_soon.__name__ == "call_soon"
    # asyncio's Python method fails on the int's missing attribute
    with pytest.raises(AttributeError if cls.__module__.startswith("asyncio") else TypeError):
        cls.call_soon(1, print)


def test_call_soon_overridden_by_subclass_is_what_tasks_call(loop_factory):
    calls = []
    base = type(loop_factory())

    class Sub(base):
        def call_soon(self, callback, *args, context=None):
            calls.append(callback)
            return super().call_soon(callback, *args, context=context)

    loop = Sub()
    try:
        async def main():
            await asyncio.sleep(0)
            return 7

        assert loop.run_until_complete(main()) == 7
        # the task's first step, its step after sleep(0), its done callback
        assert len(calls) >= 3
    finally:
        loop.close()


def test_loop_freed_without_collection_after_tasks(asyncloop_mod):
    """A closed loop whose run stepped tasks is freed by reference
    counting: loop.call_soon looked up during the run (on 3.10, the C Task
    gets the loop's one bound method) does not keep it in a cycle."""
    gc.disable()
    try:
        loop = asyncloop_mod.new_event_loop()

        async def main():
            await asyncio.sleep(0)
            fut = loop.create_future()
            loop.call_soon(fut.set_result, 1)
            return await fut

        assert loop.run_until_complete(main()) == 1
        loop.close()
        ref = weakref.ref(loop)
        loop = None
        assert ref() is None
    finally:
        gc.enable()
