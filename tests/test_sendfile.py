"""loop.sendfile (the socket transport's zero-copy path, end of src/stream.c)
and loop.sock_sendfile (src/sendfile.c), each case on asyncio's own loop
and on ours: content, offset/count, the file position afterwards, asyncio's
errors, fallbacks, a file truncated while it is sent and a peer that closes
in the middle.
"""

import asyncio
import io
import os
import socket
import ssl

import pytest

DEADLINE = 60.0
SIZE = 6 * 1024 * 1024 + 123  # multi-MiB, not a multiple of any block size


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))


@pytest.fixture(scope="module")
def data():
    return os.urandom(SIZE)


@pytest.fixture
def datafile(tmp_path, data):
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        yield f


class Sink(asyncio.Protocol):
    """A reading peer that keeps what it gets; closes after `close_after` bytes."""

    def __init__(self, loop, close_after=None):
        self.data = bytearray()
        self.close_after = close_after
        self.done = loop.create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data
        if self.close_after is not None and len(self.data) >= self.close_after:
            self.transport.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


async def connect(loop, *, close_after=None, ssl_pair=None):
    """(client transport, client protocol, sink, server)."""
    sink = Sink(loop, close_after)
    server = await loop.create_server(lambda: sink, "127.0.0.1", 0,
                                      ssl=ssl_pair[0] if ssl_pair else None)
    port = server.sockets[0].getsockname()[1]
    tr, pr = await loop.create_connection(
        asyncio.Protocol, "127.0.0.1", port, ssl=ssl_pair[1] if ssl_pair else None,
        server_hostname="127.0.0.1" if ssl_pair else None)
    return tr, pr, sink, server


async def finish(tr, sink, server):
    tr.close()
    await sink.done
    server.close()
    await server.wait_closed()


# --- loop.sendfile ----------------------------------------------------------

def test_sendfile_whole_file(loop, datafile, data):
    async def main():
        tr, _, sink, server = await connect(loop)
        ret = await loop.sendfile(tr, datafile)
        assert not tr.is_closing()
        await finish(tr, sink, server)
        return ret, bytes(sink.data)

    ret, got = run(loop, main())
    assert ret == SIZE
    assert got == data
    assert datafile.tell() == SIZE


def test_sendfile_offset_count_and_position(loop, datafile, data):
    async def main():
        tr, _, sink, server = await connect(loop)
        tr.write(b"PRE")
        ret = await loop.sendfile(tr, datafile, 1000, 3 * 1024 * 1024)
        tr.write(b"POST")
        await finish(tr, sink, server)
        return ret, bytes(sink.data)

    ret, got = run(loop, main())
    assert ret == 3 * 1024 * 1024
    assert got == b"PRE" + data[1000:1000 + 3 * 1024 * 1024] + b"POST"
    assert datafile.tell() == 1000 + 3 * 1024 * 1024


def test_sendfile_offset_past_end(loop, datafile):
    async def main():
        tr, _, sink, server = await connect(loop)
        ret = await loop.sendfile(tr, datafile, SIZE + 10)
        await finish(tr, sink, server)
        return ret, bytes(sink.data)

    assert run(loop, main()) == (0, b"")
    assert datafile.tell() == 0


def test_sendfile_empty_file(loop, tmp_path):
    (tmp_path / "empty").write_bytes(b"")

    async def main():
        tr, _, sink, server = await connect(loop)
        with open(tmp_path / "empty", "rb") as f:
            ret = await loop.sendfile(tr, f)
        await finish(tr, sink, server)
        return ret

    assert run(loop, main()) == 0


def test_write_during_sendfile_raises(loop, datafile, data):
    async def main():
        tr, _, sink, server = await connect(loop)
        task = asyncio.ensure_future(loop.sendfile(tr, datafile))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="sendfile is in progress"):
            tr.write(b"x")
        ret = await task
        tr.write(b"after")
        await finish(tr, sink, server)
        return ret, bytes(sink.data)

    ret, got = run(loop, main())
    assert ret == SIZE
    assert got == data + b"after"


def test_sendfile_resumes_reading(loop, datafile):
    async def main():
        tr, _, sink, server = await connect(loop)
        assert tr.is_reading()
        await loop.sendfile(tr, datafile, 0, 1000)
        reading = tr.is_reading()
        await finish(tr, sink, server)
        return reading

    assert run(loop, main()) is True


def test_sendfile_closing_transport(loop, datafile):
    async def main():
        tr, _, sink, server = await connect(loop)
        tr.close()
        with pytest.raises(RuntimeError, match="Transport is closing"):
            await loop.sendfile(tr, datafile)
        await sink.done
        server.close()

    run(loop, main())
    assert datafile.tell() == 0


def test_sendfile_text_mode(loop, tmp_path):
    (tmp_path / "t.txt").write_text("text")

    async def main():
        tr, _, sink, server = await connect(loop)
        with open(tmp_path / "t.txt") as f:
            with pytest.raises(ValueError, match="file should be opened in binary mode"):
                await loop.sendfile(tr, f)
        assert tr.is_reading()
        await finish(tr, sink, server)

    run(loop, main())


@pytest.mark.parametrize("offset, count, exc, msg", [
    (-1, None, ValueError, "offset must be a non-negative integer (got -1)"),
    (0, -5, ValueError, "count must be a positive integer (got -5)"),
    (0, 0, ValueError, "count must be a positive integer (got 0)"),
    ("0", None, TypeError, "offset must be a non-negative integer (got '0')"),
    (0, 1.5, TypeError, "count must be a positive integer (got 1.5)"),
])
def test_sendfile_bad_offset_count(loop, datafile, offset, count, exc, msg):
    async def main():
        tr, _, sink, server = await connect(loop)
        with pytest.raises(exc) as info:
            await loop.sendfile(tr, datafile, offset, count)
        await finish(tr, sink, server)
        return str(info.value)

    assert run(loop, main()) == msg
    assert datafile.tell() == 0


def test_sendfile_non_regular_file_falls_back(loop, data):
    async def main():
        tr, _, sink, server = await connect(loop)
        f = io.BytesIO(data[:100000])
        ret = await loop.sendfile(tr, f, 10)
        pos = f.tell()
        await finish(tr, sink, server)
        return ret, pos, bytes(sink.data)

    ret, pos, got = run(loop, main())
    assert (ret, pos) == (100000 - 10, 100000)
    assert got == data[10:100000]


def test_sendfile_non_regular_file_no_fallback(loop, data):
    async def main():
        tr, _, sink, server = await connect(loop)
        with pytest.raises(asyncio.SendfileNotAvailableError, match="not a regular file"):
            await loop.sendfile(tr, io.BytesIO(data[:100]), fallback=False)
        await finish(tr, sink, server)
        return bytes(sink.data)

    assert run(loop, main()) == b""


@pytest.mark.parametrize("count", [None, 50000])
def test_sendfile_from_pipe(loop, data, count):
    # A pipe's fstat size is 0: without a count asyncio sends nothing (its
    # "empty file" case). With one, sendfile(2) refuses a pipe, the fallback
    # sends the bytes and then fails to seek the pipe (asyncio's
    # io.UnsupportedOperation).
    r, w = os.pipe()
    os.write(w, data[:50000])
    os.close(w)

    async def main():
        tr, _, sink, server = await connect(loop)
        with open(r, "rb") as f:
            try:
                ret = await loop.sendfile(tr, f, 0, count)
            except io.UnsupportedOperation as exc:
                ret = exc
        await finish(tr, sink, server)
        return ret, bytes(sink.data)

    ret, got = run(loop, main())
    if count is None:
        assert (ret, got) == (0, b"")
    else:
        assert isinstance(ret, io.UnsupportedOperation)
        assert got == data[:50000]


@pytest.fixture(scope="module")
def tls():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_sendfile_tls_transport(loop, datafile, data, tls):
    async def main():
        tr, _, sink, server = await connect(loop, ssl_pair=tls)
        # TLS cannot go zero-copy: no fallback is an error...
        with pytest.raises(RuntimeError, match="fallback is disabled"):
            await loop.sendfile(tr, datafile, fallback=False)
        # ...the fallback works
        ret = await loop.sendfile(tr, datafile, 0, 1024 * 1024)
        await finish(tr, sink, server)
        return ret, bytes(sink.data)

    ret, got = run(loop, main())
    assert ret == 1024 * 1024
    assert got == data[:1024 * 1024]
    assert datafile.tell() == 1024 * 1024


def test_sendfile_peer_closes_midway(loop, datafile):
    async def main():
        tr, _, sink, server = await connect(loop, close_after=1024)
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with pytest.raises(ConnectionError):
            await loop.sendfile(tr, datafile)
        await sink.done
        server.close()
        for _ in range(20):
            if tr.is_closing():
                break
            await asyncio.sleep(0.01)
        closing = tr.is_closing()
        tr.close()
        return len(sink.data), closing

    received, closing = run(loop, main())
    assert 1024 <= received < SIZE
    assert 1024 <= datafile.tell() < SIZE
    assert closing


def truncate_later(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)


def test_sendfile_file_truncated_while_sent(loop, datafile, data):
    # The peer does not read at first, so the sendfile waits with most of
    # the file unsent; the file is cut to 1 MiB meanwhile; the send stops
    # at the new end (sendfile(2) returns 0), as asyncio's does.
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    b.setblocking(False)

    async def main():
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        task = asyncio.ensure_future(loop.sendfile(tr, datafile))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        truncate_later(datafile.name, 1024 * 1024)
        got = bytearray()
        while not task.done():
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(b, 65536), 0.5)
            except asyncio.TimeoutError:
                continue
            got += chunk
        ret = await task
        tr.close()
        while chunk := await loop.sock_recv(b, 65536):
            got += chunk
        return ret, bytes(got)

    with b:
        ret, got = run(loop, main())
    assert ret == 1024 * 1024
    assert got == data[:1024 * 1024]
    assert datafile.tell() == 1024 * 1024


# --- loop.sock_sendfile -------------------------------------------------------

async def reader(loop, sock, close_after=None):
    got = bytearray()
    while True:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            return bytes(got)
        got += chunk
        if close_after is not None and len(got) >= close_after:
            sock.close()
            return bytes(got)


def sock_pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


@pytest.mark.parametrize("offset, count", [(0, None), (1000, 2 * 1024 * 1024 + 5)])
def test_sock_sendfile(loop, datafile, data, offset, count):
    a, b = sock_pair()

    async def main():
        rd = asyncio.ensure_future(reader(loop, b))
        ret = await loop.sock_sendfile(a, datafile, offset, count)
        a.close()
        return ret, await rd

    with b:
        ret, got = run(loop, main())
    end = SIZE if count is None else offset + count
    assert ret == end - offset
    assert got == data[offset:end]
    assert datafile.tell() == end


def test_sock_sendfile_tcp(loop, datafile, data):
    async def main():
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        a = socket.socket()
        a.setblocking(False)
        await loop.sock_connect(a, lsock.getsockname())
        b, _ = await loop.sock_accept(lsock)
        lsock.close()
        with b:
            rd = asyncio.ensure_future(reader(loop, b))
            ret = await loop.sock_sendfile(a, datafile)
            a.close()
            return ret, await rd

    ret, got = run(loop, main())
    assert ret == SIZE
    assert got == data


def test_sock_sendfile_errors(loop, tmp_path, datafile):
    (tmp_path / "t.txt").write_text("text")
    a, b = sock_pair()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)

    async def main():
        with open(tmp_path / "t.txt") as f:
            with pytest.raises(ValueError, match="file should be opened in binary mode"):
                await loop.sock_sendfile(a, f)
        with pytest.raises(ValueError, match="only SOCK_STREAM type sockets are supported"):
            await loop.sock_sendfile(u, datafile)
        with pytest.raises(ValueError, match=r"offset must be a non-negative integer \(got -1\)"):
            await loop.sock_sendfile(a, datafile, -1)
        with pytest.raises(ValueError, match=r"count must be a positive integer \(got -1\)"):
            await loop.sock_sendfile(a, datafile, 0, -1)
        with pytest.raises(asyncio.SendfileNotAvailableError, match="not a regular file"):
            await loop.sock_sendfile(a, io.BytesIO(b"abc"), fallback=False)

    with a, b, u:
        run(loop, main())
    assert datafile.tell() == 0


def test_sock_sendfile_blocking_socket_debug(loop, datafile):
    loop.set_debug(True)
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            run(loop, loop.sock_sendfile(a, datafile))


def test_sock_sendfile_non_regular_fallback(loop, data):
    a, b = sock_pair()

    async def main():
        rd = asyncio.ensure_future(reader(loop, b))
        ret = await loop.sock_sendfile(a, io.BytesIO(data[:70000]), 5)
        a.close()
        return ret, await rd

    with b:
        assert run(loop, main()) == (70000 - 5, data[5:70000])


def test_sock_sendfile_peer_closes_midway(loop, datafile):
    a, b = sock_pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def main():
        rd = asyncio.ensure_future(reader(loop, b, close_after=1024))
        with pytest.raises(ConnectionError):
            await loop.sock_sendfile(a, datafile)
        return len(await rd)

    with a, b:
        received = run(loop, main())
    assert received >= 1024
    assert 1024 <= datafile.tell() < SIZE


def test_sock_sendfile_truncated_while_sent(loop, datafile, data):
    a, b = sock_pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendfile(a, datafile))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        truncate_later(datafile.name, 512 * 1024)
        got = bytearray()
        while not task.done():
            try:
                got += await asyncio.wait_for(loop.sock_recv(b, 65536), 0.5)
            except asyncio.TimeoutError:
                continue
        ret = await task
        a.close()
        return ret, bytes(got) + await reader(loop, b)

    with a, b:
        ret, got = run(loop, main())
    assert ret == 512 * 1024
    assert got == data[:512 * 1024]
    assert datafile.tell() == 512 * 1024


def test_sock_sendfile_cancelled_unregisters(loop, datafile):
    a, b = sock_pair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main():
        task = asyncio.ensure_future(loop.sock_sendfile(a, datafile))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return loop.remove_writer(a)

    with a, b:
        assert run(loop, main()) is False


def test_native_paths_are_used(loop, datafile, data):
    # Neither call may fall back to reads and writes for a regular file.
    async def no_fallback(*args):
        raise AssertionError("fell back")

    loop._sendfile_fallback = no_fallback
    loop._sock_sendfile_fallback = no_fallback
    a, b = sock_pair()

    async def main():
        tr, _, sink, server = await connect(loop)
        ret1 = await loop.sendfile(tr, datafile, 0, 100000)
        await finish(tr, sink, server)
        rd = asyncio.ensure_future(reader(loop, b))
        ret2 = await loop.sock_sendfile(a, datafile, 100000, 100000)
        a.close()
        return ret1, bytes(sink.data), ret2, await rd

    with b:
        ret1, got1, ret2, got2 = run(loop, main())
    assert (ret1, got1) == (100000, data[:100000])
    assert (ret2, got2) == (100000, data[100000:200000])


def test_sendfile_cancelled_then_write(loop, datafile, data):
    # Cancelled while waiting for writability: the transport works on
    # (writes allowed again, reading resumed), what was sent is a prefix.
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    b.setblocking(False)

    async def main():
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        task = asyncio.ensure_future(loop.sendfile(tr, datafile))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert tr.is_reading()
        tr.write(b"tail")
        tr.close()
        return await reader(loop, b)

    with b:
        got = run(loop, main())
    assert got.endswith(b"tail")
    assert 0 < len(got) - 4 < SIZE
    assert got[:-4] == data[:len(got) - 4]


@pytest.mark.parametrize("how", ["abort", "close"])
def test_sendfile_transport_closed_midway(loop, loop_kind, datafile, how):
    if loop_kind == "asyncio":
        pytest.skip("asyncio's loop.sendfile never returns when the transport is closed "
                    "under it (close() removes sock_sendfile's writer)")
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main():
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        task = asyncio.ensure_future(loop.sendfile(tr, datafile))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()
        getattr(tr, how)()
        with pytest.raises(ConnectionError, match="Connection is closed by peer"):
            await task

    with b:
        run(loop, main())
    assert 0 < datafile.tell() < SIZE
