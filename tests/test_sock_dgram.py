"""loop.sock_sendto / sock_recvfrom / sock_recvfrom_into (src/poll.c), each
case on asyncio's own loop and on ours.  asyncio has these methods from 3.11
on; asyncloop offers them on 3.10 too, so on 3.10 the asyncio runs are
skipped (named reason) and the asyncloop runs check the same expectations.
"""

import asyncio
import os
import socket
import sys

import pytest

from conftest import assert_raises_like_asyncio, describe, run_child

DEADLINE = 30.0
NO_ASYNCIO_DGRAM = "asyncio's loop has no sock_recvfrom/sock_sendto before 3.11"


@pytest.fixture
def dloop(loop, loop_kind):
    if loop_kind == "asyncio" and sys.version_info < (3, 11):
        pytest.skip(NO_ASYNCIO_DGRAM)
    return loop


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))


def udp_pair():
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    return a, b


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_udp_sendto_recvfrom(dloop):
    a, b = udp_pair()
    with a, b:
        async def main():
            n = await dloop.sock_sendto(a, b"hello", b.getsockname())
            data, addr = await dloop.sock_recvfrom(b, 100)
            return n, data, addr

        n, data, addr = run(dloop, main())
        assert n == 5
        assert data == b"hello"
        assert addr == a.getsockname()


def test_recvfrom_waits_for_the_datagram(dloop):
    a, b = udp_pair()
    with a, b:
        async def main():
            task = asyncio.ensure_future(dloop.sock_recvfrom(b, 100))
            for _ in range(3):
                await asyncio.sleep(0)
            assert not task.done()
            await dloop.sock_sendto(a, b"late", b.getsockname())
            return await task

        assert run(dloop, main()) == (b"late", a.getsockname())
        # the done callback unregistered the reader
        assert dloop.remove_reader(b) is False


def test_many_datagrams_in_order(dloop):
    a, b = udp_pair()
    with a, b:
        async def main():
            got = []
            for i in range(200):
                await dloop.sock_sendto(a, b"%d" % i, b.getsockname())
                got.append((await dloop.sock_recvfrom(b, 64))[0])
            return got

        assert run(dloop, main()) == [b"%d" % i for i in range(200)]


def test_datagram_larger_than_bufsize_is_truncated(dloop):
    a, b = udp_pair()
    with a, b:
        async def main():
            await dloop.sock_sendto(a, b"0123456789", b.getsockname())
            return await dloop.sock_recvfrom(b, 4)

        assert run(dloop, main()) == (b"0123", a.getsockname())


def test_recvfrom_into(dloop):
    a, b = udp_pair()
    with a, b:
        async def main():
            buf = bytearray(16)
            await dloop.sock_sendto(a, b"abcdef", b.getsockname())
            r1 = await dloop.sock_recvfrom_into(b, buf)
            assert buf[:6] == b"abcdef"
            # nbytes bounds what is received (the rest of the datagram goes)
            await dloop.sock_sendto(a, b"ABCDEF", b.getsockname())
            r2 = await dloop.sock_recvfrom_into(b, buf, 3)
            assert buf[:6] == b"ABCdef"
            # by keyword, and a pending one
            task = asyncio.ensure_future(dloop.sock_recvfrom_into(b, buf, nbytes=2))
            await asyncio.sleep(0)
            await dloop.sock_sendto(a, b"xy", b.getsockname())
            r3 = await task
            assert buf[:2] == b"xy"
            return r1, r2, r3

        r1, r2, r3 = run(dloop, main())
        assert r1 == (6, a.getsockname())
        assert r2 == (3, a.getsockname())
        assert r3 == (2, a.getsockname())


@pytest.mark.parametrize("nbytes", [17, -1])
def test_recvfrom_into_nbytes_bounds(dloop, nbytes):
    a, b = udp_pair()
    with a, b:
        async def main():
            await dloop.sock_sendto(a, b"abc", b.getsockname())
            return await dloop.sock_recvfrom_into(b, bytearray(16), nbytes)

        with pytest.raises(ValueError) as info:
            run(dloop, main())
    # the socket module's own messages
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(ValueError) as ref:
            s.recvfrom_into(bytearray(16), nbytes)
    assert str(info.value) == str(ref.value)


def test_unix_datagram_socketpair(dloop):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            task = asyncio.ensure_future(dloop.sock_recvfrom(b, 100))
            await asyncio.sleep(0)
            n = await dloop.sock_sendall(a, b"unix") or 4
            r = await task
            b.send(b"back")
            buf = bytearray(8)
            return n, r, await dloop.sock_recvfrom_into(a, buf), bytes(buf[:4])

        n, r, r2, data = run(dloop, main())
        assert n == 4
        assert r == (b"unix", None)  # an unnamed sender
        assert r2 == (4, None)
        assert data == b"back"


def test_unix_datagram_named(dloop, tmp_path):
    path_a, path_b = str(tmp_path / "a"), str(tmp_path / "b")
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.bind(path_a)
        b.bind(path_b)
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            await dloop.sock_sendto(a, b"named", path_b)
            return await dloop.sock_recvfrom(b, 100)

        assert run(dloop, main()) == (b"named", path_a)


@pytest.mark.parametrize("method", ["sock_recvfrom", "sock_recvfrom_into", "sock_sendto"])
def test_blocking_socket_in_debug_mode(dloop, method):
    dloop.set_debug(True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.bind(("127.0.0.1", 0))
        args = {"sock_recvfrom": (s, 10), "sock_recvfrom_into": (s, bytearray(10)),
                "sock_sendto": (s, b"x", s.getsockname())}[method]
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            run(dloop, getattr(dloop, method)(*args))


def test_cancel_pending_recvfrom_unregisters(dloop):
    run(dloop, asyncio.sleep(0))  # the loop's own fds (signal wakeup pipe) are open
    before = open_fds()
    a, b = udp_pair()
    with a, b:
        async def main():
            task = asyncio.ensure_future(dloop.sock_recvfrom(b, 100))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            # nothing left registered on the fd, and it still works
            assert dloop.remove_reader(b) is False
            await dloop.sock_sendto(a, b"after", b.getsockname())
            return await dloop.sock_recvfrom(b, 100)

        assert run(dloop, main()) == (b"after", a.getsockname())
    assert open_fds() == before


def test_cancel_pending_recvfrom_into(dloop):
    a, b = udp_pair()
    with a, b:
        async def main():
            buf = bytearray(10)
            task = asyncio.ensure_future(dloop.sock_recvfrom_into(b, buf))
            await asyncio.sleep(0)
            task.cancel()
            await asyncio.sleep(0)
            assert task.cancelled()
            # the datagram is not consumed by the cancelled call
            await dloop.sock_sendto(a, b"kept", b.getsockname())
            return await dloop.sock_recvfrom(b, 100), bytes(buf)

        (data, _), buf = run(dloop, main())
        assert data == b"kept"
        assert buf == bytes(10)


@pytest.mark.parametrize("method", ["sock_recvfrom", "sock_recvfrom_into", "sock_sendto"])
def test_closed_socket(dloop, method):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    addr = ("127.0.0.1", 9)
    s.close()
    args = {"sock_recvfrom": (s, 10), "sock_recvfrom_into": (s, bytearray(10)),
            "sock_sendto": (s, b"x", addr)}[method]
    with pytest.raises(OSError) as info:
        run(dloop, getattr(dloop, method)(*args))
    assert info.value.errno == 9  # EBADF, as the socket's own method raises


def test_sendto_wrong_address_family(dloop):
    a, _ = udp_pair()
    _.close()
    with a:
        with pytest.raises(TypeError):
            run(dloop, dloop.sock_sendto(a, b"x", "/not/an/inet/address"))


def test_stream_socket_recvfrom(dloop):
    # recvfrom works on a stream socket (address None), as the socket's own.
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            await dloop.sock_sendall(a, b"stream")
            return await dloop.sock_recvfrom(b, 100)

        assert run(dloop, main()) == (b"stream", None)


def test_returns_coroutines(dloop):
    a, b = udp_pair()
    with a, b:
        coro = dloop.sock_recvfrom(b, 10)
        assert asyncio.iscoroutine(coro)
        coro.close()
        coro = dloop.sock_sendto(a, b"x", b.getsockname())
        assert asyncio.iscoroutine(coro)
        coro.close()


def test_results_stepped_by_hand_are_fresh_stopiterations(dloop):
    """Stepping the sock_* awaitables by hand (as a framework driving
    coroutines itself would): each finished call raises its own
    StopIteration whose value and args are that call's result, and one the
    caller keeps is not changed by the next calls."""
    a, b = udp_pair()
    with a, b:
        async def main():
            kept = []
            for i in range(3):
                payload = b"x" * (i + 1)
                a.sendto(payload, b.getsockname())
                await asyncio.sleep(0.01)
                coro = dloop.sock_recvfrom(b, 100)
                with pytest.raises(StopIteration) as info:
                    next(coro.__await__())
                kept.append(info.value)
                sent = dloop.sock_sendto(a, payload, b.getsockname())
                with pytest.raises(StopIteration) as info2:
                    sent.send(None)
                assert info2.value.value == i + 1
                assert info2.value.args == (i + 1,)
                b.recvfrom(100)
                # awaited the usual way in between
                a.sendto(payload, b.getsockname())
                data, _ = await dloop.sock_recvfrom(b, 100)
                assert data == payload
            return kept, a.getsockname()

        kept, addr = run(dloop, main())
    assert [e.value for e in kept] == [(b"x", addr), (b"xx", addr), (b"xxx", addr)]
    assert [e.args for e in kept] == [((b"x", addr),), ((b"xx", addr),), ((b"xxx", addr),)]
    assert len({id(e) for e in kept}) == 3


# --- the calls made on the fd (poll.c dgram_fast): the socket module's results --

def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.100", "127.10.20.3", "127.0.1.9",
                                  "127.255.255.254", "127.99.0.10"])
def test_recvfrom_addresses_as_the_socket_module(dloop, host):
    # each dotted-quad shape (1 to 3 digits, zeros) as socket.recvfrom gives it
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        b.bind(("127.0.0.1", 0))
        b.setblocking(False)
        a.bind((host, 0))

        async def main():
            a.sendto(b"one", b.getsockname())
            got = await dloop.sock_recvfrom(b, 100)
            a.sendto(b"two", b.getsockname())
            buf = bytearray(10)
            got_into = await dloop.sock_recvfrom_into(b, buf)
            a.sendto(b"three", b.getsockname())
            await asyncio.sleep(0.01)
            return got, got_into, bytes(buf[:3])

        got, got_into, into = run(dloop, main())
        b.setblocking(True)
        assert got == (b"one", a.getsockname())
        assert got_into == (3, a.getsockname())
        assert into == b"two"
        assert b.recvfrom(100) == (b"three", got[1])  # the socket module's own
        assert type(got[1][0]) is str and type(got[1][1]) is int


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_recvfrom_and_reply(dloop):
    a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with a, b:
        for s in (a, b):
            s.bind(("::1", 0))
            s.setblocking(False)

        async def main():
            await dloop.sock_sendto(a, b"ping", b.getsockname())
            data, addr = await dloop.sock_recvfrom(b, 100)
            await dloop.sock_sendto(b, data.upper(), addr)
            return addr, await dloop.sock_recvfrom(a, 100)

        addr, reply = run(dloop, main())
        assert addr == a.getsockname()  # ("::1", port, 0, 0)
        assert len(addr) == 4
        assert reply == (b"PING", b.getsockname())


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
def test_reply_address_of_the_other_family_raises_as_the_socket_module(dloop):
    # an AF_INET6 socket's peer (a 4-tuple) given to an AF_INET socket
    six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    four = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with six, four:
        six.bind(("::", 0))
        six.setblocking(False)
        four.setblocking(False)

        async def main():
            four.sendto(b"x", ("127.0.0.1", six.getsockname()[1]))
            _, addr = await dloop.sock_recvfrom(six, 10)
            assert addr[0] == "::ffff:127.0.0.1"
            with pytest.raises(TypeError, match="AF_INET address must be a pair"):
                await dloop.sock_sendto(four, b"y", addr)
            # the same socket family replies fine
            return await dloop.sock_sendto(six, b"z", addr)

        assert run(dloop, main()) == 1
        assert four.recvfrom(10)[0] == b"z"


def test_echo_to_more_peers_than_remembered(dloop):
    # each peer gets its own reply back, peers returning after others
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(7)]
    try:
        for i, p in enumerate(peers):
            p.bind((f"127.0.0.{i + 1}", 0))

        async def main():
            seen = {}
            for rnd in range(3):
                for i, p in enumerate(peers):
                    p.sendto(b"%d:%d" % (rnd, i), server.getsockname())
                    data, addr = await dloop.sock_recvfrom(server, 100)
                    if addr in seen:
                        assert seen[addr] == i
                    seen[addr] = i
                    await dloop.sock_sendto(server, data, addr)
            return seen

        seen = run(dloop, main())
        assert sorted(seen.values()) == list(range(7))
        for rnd in range(3):
            for i, p in enumerate(peers):
                p.settimeout(5)
                assert p.recvfrom(100) == (b"%d:%d" % (rnd, i), server.getsockname())
    finally:
        server.close()
        for p in peers:
            p.close()


@pytest.mark.parametrize("addr, exc", [
    (("127.0.0.1\0x", 5), TypeError),
    (("127.0.0.1", 70000), OverflowError),
    (("127.0.0.1",), TypeError),
    (("127.0.0.1", 5, 6), TypeError),
    (["127.0.0.1", 5], TypeError),
    ((b"127.0.0.1", "5"), TypeError),
])
def test_sendto_bad_address_as_asyncio(dloop, loop_kind, addr, exc):
    if sys.version_info < (3, 11):
        pytest.skip(NO_ASYNCIO_DGRAM)
    a, b = udp_pair()
    with a, b:
        def action(lp):
            return lp.run_until_complete(lp.sock_sendto(a, b"x", addr))

        assert_raises_like_asyncio(dloop, action, exc)


def test_sendto_addresses_the_socket_module_takes(dloop):
    # forms passed on to the socket module (a bool port, bytes host, a name)
    a, b = udp_pair()
    with a, b:
        port = b.getsockname()[1]

        async def main():
            return [await dloop.sock_sendto(a, b"x", addr)
                    for addr in [("127.0.0.1", port), ("localhost", port),
                                 (b"127.0.0.1", port), ("127.0.0.1", True)]]

        assert run(dloop, main()) == [1, 1, 1, 1]
        b.setblocking(True)
        assert [b.recvfrom(10)[0] for _ in range(3)] == [b"x"] * 3


AUDIT_CHILD = """
import socket
events = []
def hook(name, args):
    if name == "socket.sendto" and events is not None:
        events.append(args)
        if args[1][1] == 9:
            raise RuntimeError("vetoed by the audit hook")
sys.addaudithook(hook)
loop = new_loop()
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", 0))
a.setblocking(False); b.setblocking(False)
async def main():
    await loop.sock_sendto(a, b"x", b.getsockname())
    data, addr = await loop.sock_recvfrom(b, 10)
    await loop.sock_sendto(b, data, addr)
    try:
        await loop.sock_sendto(a, b"x", ("127.0.0.1", 9))
    except RuntimeError as exc:
        print("raised", exc)
    return addr
addr = loop.run_until_complete(main())
evs = list(events)
events = None
assert evs == [(a, b.getsockname()), (b, addr), (a, ("127.0.0.1", 9))], evs
print("events", len(evs))
"""


def test_sendto_audit_event(loop_kind):
    if loop_kind == "asyncio" and sys.version_info < (3, 11):
        pytest.skip(NO_ASYNCIO_DGRAM)
    proc = run_child(AUDIT_CHILD, loop_kind)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split("\n")[:2] == ["raised vetoed by the audit hook", "events 3"]
