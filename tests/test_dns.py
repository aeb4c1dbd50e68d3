"""loop.getaddrinfo / loop.getnameinfo (src/dns.c) against socket's own.

Every case runs on asyncio's loop and on asyncloop's (the ``loop`` fixture)
and compares the result, or the exception (type, args, errno, str), with
what socket.getaddrinfo / socket.getnameinfo return when called directly.
Only numeric addresses, 'localhost', the local services database and names
that fail locally ('nonexistent.invalid') are looked up: no network.
"""

import asyncio
import gc
import inspect
import logging
import os
import socket
import subprocess
import sys
import weakref

import pytest

from conftest import ROOT, run_briefly

GAI_CASES = [
    # numeric hosts (asyncloop answers the narrow _ipaddr_info cases at once)
    (("127.0.0.1", 80), {}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", 53), {"type": socket.SOCK_DGRAM}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM, "proto": socket.IPPROTO_TCP}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM, "proto": socket.IPPROTO_UDP}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM, "family": socket.AF_INET}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM, "family": socket.AF_INET6}),
    (("127.0.0.1", 80), {"family": socket.AF_INET6, "flags": socket.AI_V4MAPPED}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM, "flags": socket.AI_CANONNAME}),
    (("127.0.0.1", 80), {"type": socket.SOCK_STREAM, "flags": socket.AI_NUMERICHOST}),
    (("127.0.0.1", "http"), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", "http"), {"type": socket.SOCK_STREAM, "flags": socket.AI_NUMERICSERV}),
    (("127.0.0.1", "0080"), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", "nosuchservice"), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", ""), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", b""), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", None), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", 0), {"type": socket.SOCK_DGRAM}),
    (("127.0.0.1", 65535), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", 65536), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", 70000), {}),
    (("127.0.0.1", -1), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", 2**70), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", "8\x000"), {"type": socket.SOCK_STREAM}),
    ((b"127.0.0.1", b"80"), {"type": socket.SOCK_STREAM}),
    (("::1", 443), {"type": socket.SOCK_STREAM}),
    (("::1", 443), {"type": socket.SOCK_STREAM, "family": socket.AF_INET6}),
    (("::1", 443), {"type": socket.SOCK_STREAM, "family": socket.AF_INET}),
    (("0:0::1", 80), {"type": socket.SOCK_STREAM}),
    (("::ffff:127.0.0.1", 80), {"type": socket.SOCK_STREAM}),
    (("fe80::1%lo", 80), {"type": socket.SOCK_STREAM}),
    (("127.1", 80), {"type": socket.SOCK_STREAM}),
    (("127.0.0.1", 80), {"family": 12345}),
    (("127.0.0.1", 80), {"type": 999}),
    # names
    (("localhost", 80), {}),
    (("localhost", "http"), {"type": socket.SOCK_STREAM}),
    (("localhost", 80), {"family": socket.AF_INET}),
    (("localhost", 80), {"family": socket.AF_INET6}),
    (("localhost", 80), {"type": socket.SOCK_STREAM, "flags": socket.AI_CANONNAME}),
    (("localhost", 80), {"flags": socket.AI_NUMERICHOST}),
    ((b"localhost", None), {"type": socket.SOCK_DGRAM}),
    (("LocalHost", 80), {"type": socket.SOCK_STREAM}),
    (("loc\x00alhost", 80), {}),
    ((None, 80), {"flags": socket.AI_PASSIVE}),
    ((None, 80), {"flags": socket.AI_PASSIVE, "family": socket.AF_INET}),
    ((None, "http"), {"type": socket.SOCK_STREAM}),
    ((None, None), {}),
    (("", 80), {}),
    (("nonexistent.invalid", 80), {}),
    (("nonexistent.invalid", 80), {"family": socket.AF_INET, "type": socket.SOCK_STREAM}),
    # argument conversion
    ((1, 80), {}),
    ((bytearray(b"localhost"), 80), {}),
    (("localhost", 80.0), {}),
    (("localhost", True), {}),
    (("localhost", bytearray(b"80")), {}),
    (("localhost", 80), {"family": "x"}),
    (("localhost", 80), {"family": 1.0}),
    (("localhost", 80), {"family": 2**40}),
    (("localhost", 80), {"type": -(2**40)}),
    (("localhost", 80), {"proto": 2**70}),
    (("localhost", 80), {"flags": None}),
    (("\udcff", 80), {}),
    (("a..b", 80), {}),
    (("x" * 300, 80), {}),
    (("localhost", "\udcff"), {}),
]


def outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - compared below
        return ("exc", exc)


def resolve(loop, coro_fn, *args, **kwargs):
    async def main():
        return await coro_fn(*args, **kwargs)

    return outcome(loop.run_until_complete, main())


def assert_same(got, ref):
    if ref[0] == "ok":
        assert got[0] == "ok", f"expected {ref[1]!r}, got {got[1]!r}"
        # repr also tells an AddressFamily member from a plain int
        assert repr(got[1]) == repr(ref[1])
        assert got[1] == ref[1]
        return
    exc = ref[1]
    assert got[0] == "exc", f"expected {exc!r}, got {got[1]!r}"
    got = got[1]
    assert type(got) is type(exc), f"expected {exc!r}, got {got!r}"
    assert got.args == exc.args
    assert str(got) == str(exc)
    if isinstance(exc, OSError):
        assert got.errno == exc.errno
        assert got.strerror == exc.strerror


def case_id(case):
    args, kwargs = case
    text = ", ".join([repr(a)[:20] for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    return text


@pytest.mark.parametrize("case", GAI_CASES, ids=case_id)
def test_getaddrinfo_like_socket(loop, case):
    args, kwargs = case
    ref = outcome(socket.getaddrinfo, *args, **kwargs)
    got = resolve(loop, loop.getaddrinfo, *args, **kwargs)
    assert_same(got, ref)


def test_getaddrinfo_options_are_keyword_only(loop):
    with pytest.raises(TypeError):
        loop.getaddrinfo("localhost", 80, socket.AF_INET)
    with pytest.raises(TypeError):
        loop.getaddrinfo("localhost", 80, famly=socket.AF_INET)
    with pytest.raises(TypeError):
        loop.getnameinfo(("127.0.0.1", 80), 0, 0)


NI = socket
GNI_CASES = [
    (("127.0.0.1", 80), 0),
    (("127.0.0.1", 80), NI.NI_NUMERICHOST | NI.NI_NUMERICSERV),
    (("127.0.0.1", 80), NI.NI_NAMEREQD),
    (("127.0.0.1", 53), NI.NI_DGRAM),
    (("127.0.0.1", 0), 0),
    (("127.0.0.1", 70000), 0),
    (("127.0.0.1", -1), 0),
    (("127.0.0.1", 12345), 0),
    (("::1", 80), 0),
    (("::1", 80, 0, 0), 0),
    (("::1", 80, 1, 2), NI.NI_NUMERICHOST),
    (("::1", 80, 2**40, 0), 0),
    (("::1", 80, -1, 0), 0),
    (("::1", 80, 0xFFFFF, 0), NI.NI_NUMERICHOST),
    (("::1", 80, 0x100000, 0), 0),
    (("::1", 80, 0, -1), NI.NI_NUMERICHOST),
    (("fe80::1%lo", 80), NI.NI_NUMERICHOST),
    (("127.0.0.1", 80, 0, 0), 0),
    (("127.0.0.1", 80, 1), 0),
    (("127.0.0.1",), 0),
    (("127.0.0.1", "80"), 0),
    ((b"127.0.0.1", 80), 0),
    (("127.0.0.1\x00", 80), 0),
    (("\udcff", 80), 0),
    (("127.0.0.1", 2**70), 0),
    (("127.0.0.1", 80, 0, 0, 0), 0),
    ((1, 2), 0),
    (["127.0.0.1", 80], 0),
    ("127.0.0.1", 0),
    (("localhost", 80), 0),
    (("nonexistent.invalid", 80), 0),
    (("127.0.0.1", 80), 2**40),
    (("127.0.0.1", 80), "x"),
    (("127.0.0.1", 80), None),
]


@pytest.mark.parametrize("case", GNI_CASES, ids=lambda c: repr(c)[:50])
def test_getnameinfo_like_socket(loop, case):
    sockaddr, flags = case
    ref = outcome(socket.getnameinfo, sockaddr, flags)
    got = resolve(loop, loop.getnameinfo, sockaddr, flags)
    assert_same(got, ref)


def test_getnameinfo_default_flags(loop):
    ref = outcome(socket.getnameinfo, ("127.0.0.1", 80), 0)
    assert_same(resolve(loop, loop.getnameinfo, ("127.0.0.1", 80)), ref)
    assert_same(resolve(loop, loop.getnameinfo, sockaddr=("127.0.0.1", 80), flags=0), ref)


def test_signatures_are_asyncio(loop):
    base = asyncio.base_events.BaseEventLoop
    for name in ("getaddrinfo", "getnameinfo"):
        meth = getattr(loop, name)
        assert inspect.iscoroutinefunction(meth)
        assert inspect.signature(meth) == inspect.signature(getattr(base, name).__get__(loop))


def test_results_can_go_to_create_task(loop):
    async def main():
        t1 = loop.create_task(loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
        t2 = asyncio.ensure_future(loop.getnameinfo(("127.0.0.1", 80)))
        return await t1, await t2

    got = loop.run_until_complete(main())
    assert got == (
        socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM),
        socket.getnameinfo(("127.0.0.1", 80), 0),
    )


def test_closed_loop(loop):
    loop.close()
    for coro in (loop.getaddrinfo("localhost", 80), loop.getnameinfo(("127.0.0.1", 80))):
        with pytest.raises(RuntimeError, match="^Event loop is closed$"):
            coro.send(None)


def test_closed_loop_checked_before_arguments(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.getaddrinfo(1, 80.0).send(None)
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.getnameinfo("bad").send(None)


def test_many_concurrent_lookups(loop):
    hosts = ["localhost", "127.0.0.1", "::1", None, "LOCALHOST"]
    calls = [(hosts[i % len(hosts)], 1000 + i) for i in range(400)]
    # a name that fails: only a few, the machine's resolver may be asked
    calls += [("nonexistent.invalid", 80)] * 3

    async def one(host, port):
        try:
            return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return ("gaierror", exc.args)

    async def main():
        return await asyncio.gather(*(one(h, p) for h, p in calls))

    got = loop.run_until_complete(main())
    for (host, port), result in zip(calls, got, strict=True):
        try:
            ref = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            ref = ("gaierror", exc.args)
        assert result == ref


def test_many_concurrent_getnameinfo(loop):
    calls = [(("127.0.0.1", i), socket.NI_NUMERICSERV) for i in range(1, 200)]

    async def main():
        return await asyncio.gather(*(loop.getnameinfo(sa, f) for sa, f in calls))

    got = loop.run_until_complete(main())
    assert got == [socket.getnameinfo(sa, f) for sa, f in calls]


def test_cancel_lookups(loop):
    """Cancelled lookups end as cancelled; the loop keeps working and lets
    go of everything the lookups held."""
    refs_before = sys.getrefcount(loop)
    seen = []

    async def main():
        tasks = [loop.create_task(loop.getaddrinfo("localhost", i)) for i in range(100)]
        await asyncio.sleep(0)  # every task now waits for its lookup
        seen.extend(weakref.ref(t) for t in tasks)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        # later lookups still work
        return await loop.getaddrinfo("localhost", 80)

    assert loop.run_until_complete(main()) == socket.getaddrinfo("localhost", 80)
    # lookups cancelled while running end in the thread pool later
    for _ in range(200):
        gc.collect()
        if all(r() is None for r in seen) and sys.getrefcount(loop) <= refs_before:
            break
        loop.run_until_complete(asyncio.sleep(0.01))
    assert all(r() is None for r in seen)
    assert sys.getrefcount(loop) <= refs_before


def test_cancel_future_directly(loop, loop_kind):
    """The future the lookup resolves is cancelled: nothing is set on it."""
    if loop_kind == "asyncio":
        fut = asyncio.ensure_future(loop.getaddrinfo("localhost", 80), loop=loop)
    else:
        fut = loop._getaddrinfo("localhost", 80)
    fut.cancel()
    run_briefly(loop)
    assert fut.cancelled()
    done = loop.run_until_complete(loop.getaddrinfo("localhost", 81))
    assert done == socket.getaddrinfo("localhost", 81)
    assert fut.cancelled()


def test_close_with_lookups_pending(loop_factory):
    loop = loop_factory()
    futs = []

    async def start():
        for i in range(50):
            futs.append(loop.create_task(loop.getaddrinfo("localhost", i)))
            futs.append(loop.create_task(loop.getnameinfo(("127.0.0.1", i))))
        await asyncio.sleep(0)

    loop.run_until_complete(start())
    loop.close()
    assert loop.is_closed()
    # Those not done stay pending, as asyncio leaves them (its executor is
    # shut down without waiting); those done have the right result.
    for i, f in enumerate(futs):
        if f.done():
            port = i // 2
            if i % 2 == 0:
                assert f.result() == socket.getaddrinfo("localhost", port)
            else:
                assert f.result() == socket.getnameinfo(("127.0.0.1", port), 0)
    for f in futs:
        f._log_destroy_pending = False
    del futs[:]
    gc.collect()


def test_close_right_after_cancel(loop_factory):
    loop = loop_factory()

    async def start():
        tasks = [loop.create_task(loop.getaddrinfo("localhost", i)) for i in range(50)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        return tasks

    tasks = loop.run_until_complete(start())
    loop.close()
    for t in tasks:
        t._log_destroy_pending = False


def test_asyncloop_counters_after_close_with_pending(asyncloop_mod):
    """Closed at once: some lookups are still queued (cancelled), some run
    in the pool (close() waits for them); nothing is left behind."""
    gc.collect()
    before = asyncloop_mod._core._debug_counters()
    for _ in range(20):
        loop = asyncloop_mod.new_event_loop()
        refs_before = sys.getrefcount(loop)
        futs = [loop._getaddrinfo("localhost", i) for i in range(30)]
        futs += [loop._getnameinfo(("127.0.0.1", i), 0) for i in range(30)]
        refs = [weakref.ref(f) for f in futs]
        loop.close()
        assert not any(f.done() for f in futs)
        del futs
        gc.collect()
        assert all(r() is None for r in refs)
        assert sys.getrefcount(loop) == refs_before
        del loop
    gc.collect()
    after = asyncloop_mod._core._debug_counters()
    assert after["loops"] == before["loops"]
    assert after["uv_handles"] == before["uv_handles"]


def test_asyncloop_numeric_host_needs_no_thread(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        for args in (
            ("127.0.0.1", 80, 0, socket.SOCK_STREAM),
            ("::1", "443", 0, socket.SOCK_DGRAM),
            (b"0:0::1", None, socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP),
        ):
            fut = loop._getaddrinfo(*args)
            assert fut.done()
            assert fut.result() == socket.getaddrinfo(*args)
        # a name, or anything the shortcut cannot answer exactly, goes to the pool
        for args in (
            ("localhost", 80, 0, socket.SOCK_STREAM),
            ("127.0.0.1", 80),  # type 0: three entries
            ("127.0.0.1", 80, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME),
        ):
            fut = loop._getaddrinfo(*args)
            assert not fut.done()
            assert loop.run_until_complete(fut) == socket.getaddrinfo(*args)
    finally:
        loop.close()


def test_debug_mode_logs_like_asyncio(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 1000.0
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        got = loop.run_until_complete(
            loop.getaddrinfo("localhost", 80, family=socket.AF_INET, type=socket.SOCK_STREAM))
    assert got == socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    head = ("localhost:80, family=<AddressFamily.AF_INET: 2>, "
            "type=<SocketKind.SOCK_STREAM: 1>")
    assert f"Get address info {head}" in msgs
    done = [m for m in msgs if m.startswith(f"Getting address info {head} took ")]
    assert len(done) == 1 and done[0].endswith(f"ms: {got!r}")


def test_debug_mode_errors(loop):
    loop.set_debug(True)
    ref = outcome(socket.getaddrinfo, "nonexistent.invalid", 80)
    assert_same(resolve(loop, loop.getaddrinfo, "nonexistent.invalid", 80), ref)


AUDIT_SCRIPT = r"""
import asyncio, socket, sys
import asyncloop
kind = sys.argv[1]
events = []
WANTED = ("socket.getaddrinfo", "socket.getnameinfo")
sys.addaudithook(lambda e, a: events.append((e, a)) if e in WANTED else None)
loop = asyncio.new_event_loop() if kind == "asyncio" else asyncloop.new_event_loop()
async def main():
    await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    await loop.getaddrinfo(b"localhost", "http", family=socket.AF_INET, proto=6, flags=1)
    await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST)
loop.run_until_complete(main())
loop.close()
print(repr(events))
"""


def test_audit_events_like_socket(loop_kind):
    # audit hooks cannot be removed: run in a child process
    out = subprocess.run(
        [sys.executable, "-c", AUDIT_SCRIPT, loop_kind], capture_output=True, text=True,
        timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True).stdout
    assert out.strip() == repr([
        # the ints as given (socket passes them on as C ints)
        ("socket.getaddrinfo", ("127.0.0.1", 80, 0, int(socket.SOCK_STREAM), 0)),
        ("socket.getaddrinfo", (b"localhost", "http", int(socket.AF_INET), 0, 6)),
        ("socket.getnameinfo", (("127.0.0.1", 80),)),
    ])
