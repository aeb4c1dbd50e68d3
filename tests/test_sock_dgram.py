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
