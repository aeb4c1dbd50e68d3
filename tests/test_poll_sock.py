"""add_reader/add_writer and the sock_* methods (src/poll.c).

Every case runs on asyncio's own loop and on asyncloop (conftest's `loop`
fixture): asyncio's run documents what CPython does, asyncloop's checks
that we do the same.
"""

import asyncio
import errno
import gc
import os
import socket
import ssl

import pytest

import asyncloop
from conftest import GUARD, assert_raises_like_asyncio, run_briefly


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, GUARD))


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def tcp_pair():
    """A connected (client, server-side) TCP pair over 127.0.0.1, non-blocking."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    c = socket.create_connection(srv.getsockname())
    s, _ = srv.accept()
    srv.close()
    c.setblocking(False)
    s.setblocking(False)
    yield c, s
    c.close()
    s.close()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------ add_reader --

def test_add_reader_fires_and_remove_returns(loop, pair):
    a, b = pair
    got = []
    assert loop.add_reader(a.fileno(), lambda x: got.append((x, a.recv(100))), "arg") is None
    b.send(b"data")
    for _ in range(10):
        run_briefly(loop)
        if got:
            break
    assert got == [("arg", b"data")]
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(a.fileno()) is False
    assert loop.remove_writer(a.fileno()) is False


def test_add_reader_with_socket_object(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, lambda: got.append(a.recv(10)))
    b.send(b"x")
    for _ in range(10):
        run_briefly(loop)
        if got:
            break
    assert got == [b"x"]
    # The same fd, given as an int.
    assert loop.remove_reader(a.fileno()) is True


def test_reader_replacement_cancels_old(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(a, lambda: got.append("old"))
    loop.add_reader(a, lambda: got.append(a.recv(10)))
    b.send(b"y")
    for _ in range(10):
        run_briefly(loop)
        if got:
            break
    assert got == [b"y"]
    assert loop.remove_reader(a) is True


def test_add_writer_fires(loop, pair):
    a, _ = pair
    got = []
    loop.add_writer(a, got.append, 1)
    run_briefly(loop, 3)
    assert got and set(got) == {1}
    assert loop.remove_writer(a) is True
    n = len(got)
    run_briefly(loop, 2)
    assert len(got) == n


def test_reader_and_writer_same_fd(loop, pair):
    a, b = pair
    got = []
    loop.add_writer(a, lambda: got.append("w"))
    loop.add_reader(a, lambda: got.append(("r", a.recv(10))))
    b.send(b"z")
    for _ in range(10):
        run_briefly(loop)
        if ("r", b"z") in got:
            break
    assert ("r", b"z") in got and "w" in got
    assert loop.remove_writer(a) is True
    assert loop.remove_reader(a) is False or True  # the reader is still there
    assert loop.remove_reader(a) is False


def test_remove_reader_during_callback(loop, pair):
    a, b = pair
    calls = []

    def cb():
        calls.append(a.recv(10))
        calls.append(loop.remove_reader(a))

    loop.add_reader(a, cb)
    b.send(b"q")
    for _ in range(5):
        run_briefly(loop)
    assert calls == [b"q", True]
    b.send(b"again")
    run_briefly(loop, 3)
    assert calls == [b"q", True]


def test_reader_runs_in_context(loop, pair):
    import contextvars
    var = contextvars.ContextVar("v", default="unset")
    a, b = pair
    var.set("set at add_reader")
    got = []
    loop.add_reader(a, lambda: got.append(var.get()))
    var.set("changed later")
    b.send(b"x")
    for _ in range(10):
        run_briefly(loop)
        if got:
            break
    loop.remove_reader(a)
    assert got[0] == "set at add_reader"


def test_closed_loop(loop, pair):
    a, _ = pair
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_reader(a, print)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.add_writer(a, print)
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False
    assert loop.remove_reader(-1) is False


def test_close_with_active_watchers(loop_factory, pair):
    before = asyncloop._core._debug_counters()["uv_handles"]
    loop = loop_factory()
    a, _ = pair
    loop.add_reader(a, print)
    loop.add_writer(a, print)
    loop.close()
    assert loop.remove_reader(a) is False
    del loop
    gc.collect()
    assert asyncloop._core._debug_counters()["uv_handles"] == before


@pytest.mark.parametrize("fd", [-1, -5, "x", object(), 1.5, None])
@pytest.mark.parametrize("method", ["add_reader", "add_writer", "remove_reader",
                                    "remove_writer"])
def test_invalid_fds(loop, fd, method):
    if method.startswith("add"):
        action = lambda lp: getattr(lp, method)(fd, print)  # noqa: E731
    else:
        action = lambda lp: getattr(lp, method)(fd)  # noqa: E731
    assert_raises_like_asyncio(loop, action, ValueError)


def test_fileno_raising_valueerror(loop):
    class Bad:
        def fileno(self):
            raise ValueError("closed file")

    bad = Bad()
    assert_raises_like_asyncio(loop, lambda lp: lp.add_reader(bad, print), ValueError)


def test_add_reader_missing_callback(loop, pair):
    a, _ = pair
    assert_raises_like_asyncio(loop, lambda lp: lp.add_reader(a), TypeError, message=False)


def test_add_reader_keywords(loop, pair):
    a, b = pair
    got = []
    loop.add_reader(fd=a, callback=lambda: got.append(a.recv(5)))
    b.send(b"k")
    for _ in range(10):
        run_briefly(loop)
        if got:
            break
    assert got == [b"k"]
    assert loop.remove_reader(fd=a) is True


def unused_fd():
    """A descriptor number that is not open (a high one, so that the loops
    made meanwhile do not take it)."""
    fd = 900
    while True:
        try:
            os.fstat(fd)
        except OSError:
            return fd
        fd += 1


def test_add_reader_closed_fd(loop):
    fd = unused_fd()
    got = assert_raises_like_asyncio(loop, lambda lp: lp.add_reader(fd, print), OSError)
    assert got.errno == errno.EBADF
    assert loop.remove_reader(fd) is False
    got = assert_raises_like_asyncio(loop, lambda lp: lp.add_writer(fd, print), OSError)
    assert got.errno == errno.EBADF


def test_fd_closed_while_registered_remove(loop):
    """Removing the only registration of a closed fd succeeds."""
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    a.close()
    b.close()
    assert loop.remove_reader(fd) is True
    assert loop.remove_reader(fd) is False


def test_fd_closed_while_registered_modify(loop):
    """Changing what a closed fd is watched for fails as epoll_ctl does;
    the fd is then unregistered (selectors' modify)."""
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    loop.add_writer(fd, print)
    a.close()
    b.close()
    with pytest.raises(OSError) as info:
        loop.remove_reader(fd)
    assert info.value.errno == errno.EBADF
    assert loop.remove_writer(fd) is False
    assert loop.remove_reader(fd) is False


def test_fd_closed_while_registered_run(loop, loop_kind):
    """epoll forgets a closed fd: its callbacks never run."""
    a, b = socket.socketpair()
    fd = a.fileno()
    got = []
    loop.add_reader(fd, got.append, "r")
    run_briefly(loop, 2)
    a.close()
    b.close()
    run_briefly(loop, 3)
    assert got == []
    assert loop.remove_reader(fd) is True


def test_fd_reused_after_close(loop):
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    run_briefly(loop)
    a.close()
    b.close()
    assert loop.remove_reader(fd) is True
    c, d = socket.socketpair()
    try:
        got = []
        loop.add_reader(c, lambda: got.append(c.recv(5)))
        d.send(b"new")
        for _ in range(10):
            run_briefly(loop)
            if got:
                break
        assert got == [b"new"]
        loop.remove_reader(c)
    finally:
        c.close()
        d.close()


def test_fd_owned_by_transport(loop, pair):
    a, _ = pair

    async def main():
        proto = asyncio.Protocol()
        tr = loop._make_socket_transport(a, proto)
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(a.fileno(), print)
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.remove_writer(a.fileno())
        with pytest.raises(RuntimeError, match="is used by transport"):
            await loop.sock_recv(a, 1)
        tr.close()
        await asyncio.sleep(0)

    run(loop, main())


def test_watcher_counts_return_to_zero(loop_factory, pair):
    if loop_factory is asyncio.new_event_loop:
        pytest.skip("asyncloop's live counters only")
    before = asyncloop._core._debug_counters()
    loop = loop_factory()
    a, b = pair
    for _ in range(3):
        loop.add_reader(a, print)
        loop.add_writer(a, print)
        run_briefly(loop)
        loop.remove_writer(a)
        loop.remove_reader(a)
    run_briefly(loop)
    assert loop.__class__ is asyncloop.Loop
    loop.close()
    del loop
    gc.collect()
    after = asyncloop._core._debug_counters()
    assert after["uv_handles"] == before["uv_handles"]
    assert after["handles"] == before["handles"]


# ---------------------------------------------------------------- sock_* --

def test_sock_echo_tcp(loop, tcp_pair):
    c, s = tcp_pair

    async def main():
        await loop.sock_sendall(c, b"hello")
        data = await loop.sock_recv(s, 100)
        await loop.sock_sendall(s, data.upper())
        return await loop.sock_recv(c, 100)

    assert run(loop, main()) == b"HELLO"


def test_sock_echo_unix(loop, tmp_path):
    path = str(tmp_path / "sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    srv.setblocking(False)

    async def main():
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(c, path)
        conn, _ = await accept
        with c, conn:
            assert conn.gettimeout() == 0
            await loop.sock_sendall(c, b"ping")
            got = await loop.sock_recv(conn, 10)
            await loop.sock_sendall(conn, got + b"/pong")
            return await loop.sock_recv(c, 100)

    try:
        assert run(loop, main()) == b"ping/pong"
    finally:
        srv.close()


def test_sock_recv_waits(loop, pair):
    a, b = pair

    async def main():
        fut = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        assert not fut.done()
        loop.call_soon(b.send, b"later")
        return await fut

    assert run(loop, main()) == b"later"


def test_sock_recv_big_reads_of_changing_sizes(loop, pair):
    # Big reads go into a bytes object of the last big read's size: a read
    # of that size, a bigger one, a smaller one, a small one, a smaller n.
    a, b = pair
    b.setblocking(True)
    sizes = [(20000, 256 * 1024), (20000, 256 * 1024), (30000, 256 * 1024),
             (17000, 256 * 1024), (100, 256 * 1024), (25000, 256 * 1024),
             (25000, 1000), (24000, 256 * 1024), (0, 256 * 1024)]

    async def main():
        got = []
        for i, (size, n) in enumerate(sizes):
            want = bytes([65 + i]) * size
            if size:
                b.sendall(want)
            else:
                b.shutdown(socket.SHUT_WR)
            data = b""
            while len(data) < min(size, n) or size == 0:
                chunk = await loop.sock_recv(a, n)
                data += chunk
                if not chunk:
                    break
            got.append(data)
            if size > n:
                rest = b""
                while len(rest) < size - n:
                    rest += await loop.sock_recv(a, 256 * 1024)
                assert data + rest == want
            else:
                assert data == want
        return got

    assert run(loop, main())[-1] == b""


def test_sock_recv_big_messages_split(loop, pair):
    # Big messages that arrive in two parts (a read short of the last big
    # read's size, then one sized by FIONREAD), then whole ones again, then
    # a smaller size every time (the size followed after a few short reads).
    a, b = pair
    b.setblocking(True)
    parts = [[40000], [40000], [25000, 15000], [40000], [30000, 10000],
             [20000, 20000], [40000]] + [[20000]] * 6 + [[17000, 3000]] * 3 + [[40000]]

    async def main():
        for i, sizes in enumerate(parts):
            want = bytes((i * 7 + j) % 251 for j in range(sum(sizes)))
            data = b""
            pos = 0
            for size in sizes:
                b.sendall(want[pos:pos + size])
                pos += size
                while len(data) < pos:
                    data += await loop.sock_recv(a, 256 * 1024)
            assert data == want, i
        b.shutdown(socket.SHUT_WR)
        return await loop.sock_recv(a, 256 * 1024)

    assert run(loop, main()) == b""


def test_sock_recv_big_reads_that_wait(loop):
    # Each sock_recv first tries at once and would block (asyncloop keeps the
    # bytes object it read into for the retry, or another socket's try): two
    # sockets of different message sizes, every message kept and intact.
    pairs = [socket.socketpair() for _ in range(2)]
    sizes = [40000, 30000]
    for a, _ in pairs:
        a.setblocking(False)

    async def echo(i):
        a, b = pairs[i]
        kept = []
        for j in range(6):
            loop.call_soon(b.sendall, bytes([j * 2 + i]) * sizes[i])
            data = b""
            while len(data) < sizes[i]:
                chunk = await loop.sock_recv(a, 256 * 1024)
                kept.append(chunk)
                data += chunk
            assert data == bytes([j * 2 + i]) * sizes[i]
        return b"".join(kept)

    async def main():
        return await asyncio.gather(echo(0), echo(1))

    try:
        got = run(loop, main())
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    assert got == [b"".join(bytes([j * 2 + i]) * sizes[i] for j in range(6)) for i in range(2)]


def test_sock_recv_eof(loop, pair):
    a, b = pair
    b.close()
    assert run(loop, loop.sock_recv(a, 10)) == b""


def test_sock_recv_into(loop, pair):
    a, b = pair
    buf = bytearray(10)

    async def main():
        fut = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        b.send(b"abc")
        n = await fut
        b.send(b"defg")
        await asyncio.sleep(0.01)
        n2 = await loop.sock_recv_into(a, memoryview(buf)[3:])
        return n, n2

    assert run(loop, main()) == (3, 4)
    assert bytes(buf[:7]) == b"abcdefg"


def test_sock_sendall_large_to_slow_reader(loop, tcp_pair):
    c, s = tcp_pair
    data = os.urandom(4 * 1024 * 1024)

    async def reader():
        chunks = []
        n = 0
        while n < len(data):
            chunk = await loop.sock_recv(s, 65536)
            assert chunk
            chunks.append(chunk)
            n += len(chunk)
            await asyncio.sleep(0)
        return b"".join(chunks)

    async def main():
        r = asyncio.ensure_future(reader())
        res = await loop.sock_sendall(c, data)
        return res, await r

    res, got = run(loop, main())
    assert res is None
    assert got == data


def test_sock_sendall_buffers(loop, tcp_pair):
    c, s = tcp_pair
    payload = os.urandom(3 * 1024 * 1024)

    async def reader(n):
        buf = b""
        while len(buf) < n:
            buf += await loop.sock_recv(s, 1 << 20)
        return buf

    async def main():
        out = []
        for data in (bytearray(payload), memoryview(payload)[1000:]):
            r = asyncio.ensure_future(reader(len(data)))
            await loop.sock_sendall(c, data)
            out.append(await r)
        return out

    got = run(loop, main())
    assert got == [payload, payload[1000:]]


def test_sock_accept_and_connect(loop):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.setblocking(False)

    async def main():
        c = socket.socket()
        c.setblocking(False)
        acc = asyncio.ensure_future(loop.sock_accept(srv))
        await asyncio.sleep(0)
        assert not acc.done()
        await loop.sock_connect(c, srv.getsockname())
        conn, addr = await acc
        with c, conn:
            assert addr == c.getsockname()
            assert conn.gettimeout() == 0
            assert conn.getpeername() == c.getsockname()

    try:
        run(loop, main())
    finally:
        srv.close()


def test_sock_connect_refused(loop):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    run_briefly(loop)
    fds = open_fds()

    async def main():
        c = socket.socket()
        c.setblocking(False)
        with c:
            with pytest.raises(ConnectionRefusedError) as info:
                await loop.sock_connect(c, ("127.0.0.1", port))
        return info.value

    exc = run(loop, main())
    assert exc.errno == errno.ECONNREFUSED
    assert str(exc) == f"[Errno {errno.ECONNREFUSED}] Connect call failed ('127.0.0.1', {port})"
    run_briefly(loop)
    assert open_fds() == fds


def test_sock_connect_unix_missing(loop, tmp_path):
    async def main():
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(False)
        with c:
            await loop.sock_connect(c, str(tmp_path / "nothing"))

    with pytest.raises(FileNotFoundError):
        run(loop, main())


def test_cancel_sock_recv_leaves_socket_usable(loop, pair):
    a, b = pair

    async def main():
        fut = asyncio.ensure_future(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        await asyncio.sleep(0)
        assert loop.remove_reader(a) is False
        b.send(b"after")
        return await loop.sock_recv(a, 10)

    assert run(loop, main()) == b"after"


def test_cancel_sock_recv_into(loop, pair):
    a, b = pair
    buf = bytearray(5)

    async def main():
        fut = asyncio.ensure_future(loop.sock_recv_into(a, buf))
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        b.send(b"12")
        return await loop.sock_recv_into(a, buf)

    assert run(loop, main()) == 2


def test_cancel_sock_sendall(loop, tcp_pair):
    c, s = tcp_pair
    data = b"x" * (16 * 1024 * 1024)

    async def main():
        fut = asyncio.ensure_future(loop.sock_sendall(c, data))
        await asyncio.sleep(0.05)
        assert not fut.done()
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        await asyncio.sleep(0)
        assert loop.remove_writer(c) is False
        # Still usable: drain what was sent, then a new exchange works.
        while True:
            try:
                if not s.recv(1 << 20):
                    break
            except BlockingIOError:
                break
        await loop.sock_sendall(c, b"end")
        got = b""
        while not got.endswith(b"end"):
            got += await loop.sock_recv(s, 1 << 20)

    run(loop, main())


def test_cancel_sock_accept(loop):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.setblocking(False)

    async def main():
        fut = asyncio.ensure_future(loop.sock_accept(srv))
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        await asyncio.sleep(0)
        assert loop.remove_reader(srv) is False
        c = socket.socket()
        c.setblocking(False)
        with c:
            acc = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(c, srv.getsockname())
            conn, _ = await acc
            conn.close()

    try:
        run(loop, main())
    finally:
        srv.close()


def test_cancel_sock_connect(loop):
    """A connect to an address that does not answer, cancelled."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    srv.setblocking(False)
    # Fill the backlog so that further connects stay pending.
    fillers = []

    async def main():
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            fillers.append(c)
            fut = asyncio.ensure_future(loop.sock_connect(c, srv.getsockname()))
            await asyncio.sleep(0.01)
            if not fut.done():
                fut.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await fut
                await asyncio.sleep(0)
                assert loop.remove_writer(c) is False
                return True
            await fut
        return False

    try:
        if not run(loop, main()):
            pytest.skip("the kernel accepted every connect: no pending connect to cancel")
    finally:
        for c in fillers:
            c.close()
        srv.close()


def test_debug_blocking_socket(loop, pair):
    a, b = pair
    b.setblocking(True)
    loop.set_debug(True)
    buf = bytearray(1)

    async def main():
        for coro_fn in (lambda: loop.sock_recv(b, 1), lambda: loop.sock_recv_into(b, buf),
                        lambda: loop.sock_sendall(b, b"x"), lambda: loop.sock_accept(b),
                        lambda: loop.sock_connect(b, "x")):
            with pytest.raises(ValueError, match="the socket must be non-blocking"):
                await coro_fn()

    run(loop, main())


def test_no_debug_blocking_socket_allowed(loop, pair):
    a, b = pair
    b.setblocking(True)
    a.send(b"x")

    async def main():
        return await loop.sock_recv(b, 1)

    assert run(loop, main()) == b"x"


def test_ssl_socket_refused(loop):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    s = ctx.wrap_socket(socket.socket(), do_handshake_on_connect=False)

    async def main():
        for coro_fn in (lambda: loop.sock_recv(s, 1), lambda: loop.sock_sendall(s, b"x"),
                        lambda: loop.sock_accept(s), lambda: loop.sock_connect(s, "x"),
                        lambda: loop.sock_recv_into(s, bytearray(1))):
            with pytest.raises(TypeError, match="Socket cannot be of type SSLSocket"):
                await coro_fn()

    try:
        run(loop, main())
    finally:
        s.close()


def test_listening_socket_to_sock_recv(loop):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.setblocking(False)

    async def main():
        await loop.sock_recv(srv, 10)

    try:
        with pytest.raises(OSError) as info:
            run(loop, main())
        assert info.value.errno == errno.ENOTCONN
    finally:
        srv.close()


def test_closed_socket(loop):
    s = socket.socket()
    s.close()

    async def main(fn):
        await fn()

    for fn in (lambda: loop.sock_recv(s, 1), lambda: loop.sock_sendall(s, b"x"),
               lambda: loop.sock_accept(s)):
        with pytest.raises(OSError) as info:
            run(loop, main(fn))
        assert info.value.errno == errno.EBADF


def test_bad_arguments(loop, pair):
    a, _ = pair

    async def call(fn):
        await fn()

    with pytest.raises(TypeError):
        run(loop, call(lambda: loop.sock_recv(a, "ten")))
    with pytest.raises(TypeError):
        run(loop, call(lambda: loop.sock_sendall(a, "text")))
    with pytest.raises(TypeError):
        run(loop, call(lambda: loop.sock_recv_into(a, b"immutable")))
    with pytest.raises(AttributeError):
        run(loop, call(lambda: loop.sock_recv(object(), 1)))
    with pytest.raises(TypeError):
        run(loop, call(lambda: loop.sock_recv(a)))


def test_sock_sendall_empty(loop, pair):
    a, _ = pair
    assert run(loop, loop.sock_sendall(a, b"")) is None


def test_sock_methods_await_result_types(loop, pair):
    a, b = pair
    b.send(b"ready")

    async def main():
        return await loop.sock_recv(a, 100)

    assert run(loop, main()) == b"ready"


def test_sock_methods_are_coroutines(loop, pair):
    """create_task() takes them, and argument errors come when awaited."""
    a, b = pair

    async def main():
        t = loop.create_task(loop.sock_recv(a, 10))
        b.send(b"task")
        bad = loop.sock_recv(object(), 1)  # nothing raised yet
        with pytest.raises(AttributeError):
            await bad
        return await t

    assert run(loop, main()) == b"task"


def test_core_sock_methods_return_futures(pair):
    """asyncloop._core.Loop's own sock_* return Futures (done at once when
    the first try succeeds); asyncloop.Loop wraps them in coroutines."""
    a, b = pair
    loop = asyncloop.new_event_loop()
    core = asyncloop._core.Loop
    try:
        b.send(b"now")
        fut = core.sock_recv(loop, a, 10)
        assert isinstance(fut, asyncio.Future) and fut.done() and fut.result() == b"now"
        fut = core.sock_recv(loop, a, 10)
        assert not fut.done()
        b.send(b"later")
        assert run(loop, fut) == b"later"
        fut = core.sock_sendall(loop, a, b"out")
        assert fut.done() and fut.result() is None
        assert b.recv(10) == b"out"
    finally:
        loop.close()


def test_add_reader_callback_not_checked(loop, pair):
    """asyncio's add_reader takes any callback (events.Handle checks
    nothing); a non-callable fails only when the fd is ready."""
    a, b = pair

    async def coro_fn():
        pass

    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx["exception"]))
    assert loop.add_reader(a, coro_fn) is None
    assert loop.add_writer(a, 42) is None
    run_briefly(loop, 2)
    assert loop.remove_reader(a) is True
    assert loop.remove_writer(a) is True
    assert errors and all(isinstance(e, TypeError) for e in errors)


# ------------------------------------------- sock_* coroutine objects --

@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")
def test_sock_coroutine_protocol(loop, pair):
    """What loop.sock_recv() returns behaves as asyncio's coroutine does:
    iscoroutine, nothing done until stepped, send/throw/close, no reuse."""
    a, b = pair
    b.send(b"abc")
    c = loop.sock_recv(a, 10)
    assert asyncio.iscoroutine(c)
    assert b.send(b"") == 0  # nothing was read yet: the data is still there
    with pytest.raises(StopIteration) as e:
        c.send(None)
    assert e.value.value == b"abc"
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        c.send(None)
    c = loop.sock_recv(a, 10)
    with pytest.raises(TypeError):
        c.send(1)
    c = loop.sock_sendall(a, b"x")
    with pytest.raises(KeyError):
        c.throw(KeyError("k"))
    with pytest.raises(RuntimeError):
        c.send(None)
    c = loop.sock_recv(a, 10)
    c.close()
    with pytest.raises(BlockingIOError):
        b.recv(10)  # the sendall thrown into never sent


def test_sock_coroutine_task_cancelled_before_start(loop, pair):
    a, b = pair

    async def main():
        t = loop.create_task(loop.sock_recv(a, 10))
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        b.send(b"kept")  # the cancelled call never read
        return await loop.sock_recv(a, 10)

    assert run(loop, main()) == b"kept"


def test_sock_coroutine_task_cancel_while_waiting(loop, pair):
    a, b = pair

    async def main():
        t = loop.create_task(loop.sock_recv(a, 10))
        await asyncio.sleep(0)
        assert "sock_recv" in repr(t)
        t.cancel("why")
        with pytest.raises(asyncio.CancelledError) as e:
            await t
        await asyncio.sleep(0)
        assert loop.remove_reader(a) is False
        b.send(b"next")
        # 3.10's await of a cancelled task drops the message, on both loops
        return e.value.args in ((), ("why",)), await loop.sock_recv(a, 10)

    assert run(loop, main()) == (True, b"next")


def test_sock_coroutine_keywords(loop, pair):
    a, b = pair
    b.send(b"kw")

    async def main():
        got = await loop.sock_recv(sock=a, n=10)
        await loop.sock_sendall(a, data=b"back")
        return got

    assert run(loop, main()) == b"kw"
    assert b.recv(10) == b"back"


def test_sock_recv_after_fd_reused(loop, tmp_path):
    """A finished sock_recv leaves nothing registered: the fd number, once
    closed and reused by another socket or a regular file, behaves as new."""
    a, b = socket.socketpair()
    a.setblocking(False)

    async def recv_later(sock, peer):
        loop.call_soon(peer.send, b"x")
        return await loop.sock_recv(sock, 10)

    assert run(loop, recv_later(a, b)) == b"x"
    fd = a.fileno()
    a.close()
    b.close()
    c, d = socket.socketpair()
    try:
        if c.fileno() != fd:
            c, d = d, c
        assert c.fileno() == fd
        c.setblocking(False)
        assert run(loop, recv_later(c, d)) == b"x"
    finally:
        c.close()
        d.close()
    path = tmp_path / "f"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert f.fileno() == fd
        with pytest.raises(PermissionError):
            loop.add_reader(f.fileno(), print)


def test_blocking_socket_outside_debug_waits_like_asyncio(loop):
    # asyncio's sock_recv/sock_sendall on a blocking socket (debug mode off)
    # block in the socket's own method, with the GIL released: another
    # thread can still send. A recv made with the GIL held would deadlock.
    import threading

    a, b = socket.socketpair()
    with a, b:
        timer = threading.Timer(0.2, b.sendall, (b"late",))
        timer.start()
        try:
            got = loop.run_until_complete(asyncio.wait_for(loop.sock_recv(a, 10), 30))
        finally:
            timer.join()
        assert got == b"late"
        loop.run_until_complete(asyncio.wait_for(loop.sock_sendall(a, b"back"), 30))
        assert b.recv(10) == b"back"
