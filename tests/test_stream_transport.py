"""The socket stream transport (src/stream.c), as loop._make_socket_transport
builds it: each test runs on asyncio's selector loop and on asyncloop.

Sockets are made with plain socket calls (127.0.0.1 or a Unix socket in
tmp_path), then handed to loop._make_socket_transport, which both loops have
with the same signature.
"""

import asyncio
import errno
import gc
import logging
import os
import re
import socket
import struct
import sys
import threading
import warnings
import weakref
import zlib

import pytest

import asyncloop
from conftest import GUARD, Recorder

PY = sys.version_info[:2]


@pytest.fixture(params=["tcp", "unix"])
def family(request):
    return request.param


@pytest.fixture
def pair(family, tmp_path):
    """(ours, peer): two connected stream sockets; ours is non-blocking."""
    if family == "tcp":
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        addr = lsock.getsockname()
        cfamily = socket.AF_INET
    else:
        addr = str(tmp_path / "s.sock")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(addr)
        cfamily = socket.AF_UNIX
    lsock.listen(1)
    # IPPROTO_TCP given: asyncio's _set_nodelay only looks at such sockets
    ours = socket.socket(cfamily, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP if family == "tcp" else 0)
    # Small kernel buffers, so that a few MB are sure to be queued.
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    ours.connect(addr)
    peer, _ = lsock.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    lsock.close()
    ours.setblocking(False)
    yield ours, peer
    ours.close()
    peer.close()


def wait(loop, fut, timeout=GUARD):
    return loop.run_until_complete(asyncio.wait_for(fut, timeout))


def run_briefly(loop, n=3):
    for _ in range(n):
        loop.call_soon(loop.stop)
        loop.run_forever()


class Proto(asyncio.Protocol):
    """Records every callback; futures for the interesting moments."""

    def __init__(self, loop, echo=False, keep_open=None):
        self.loop = loop
        self.echo = echo
        self.keep_open = keep_open
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.got_data = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.events.append("data")
        self.data += data
        if self.echo:
            self.transport.write(data)
        if not self.got_data.done():
            self.got_data.set_result(None)

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


class BufProto(asyncio.BufferedProtocol):
    def __init__(self, loop, echo=False, size=7):
        self.loop = loop
        self.echo = echo
        self.buf = bytearray(size)
        self.data = bytearray()
        self.sizes = []
        self.events = []
        self.transport = None
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def get_buffer(self, sizehint):
        self.sizes.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes):
        chunk = bytes(self.buf[:nbytes])
        self.data += chunk
        if self.echo:
            self.transport.write(chunk)

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost.set_result(exc)


def recv_exactly(sock, n):
    sock.settimeout(GUARD)
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def recv_all(sock):
    sock.settimeout(GUARD)
    out = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return bytes(out)
        out += chunk


# ------------------------------------------------------------------ basics --

def test_types(loop, pair):
    ours, _ = pair
    t = loop._make_socket_transport(ours, Proto(loop))
    assert isinstance(t, asyncio.Transport)
    assert isinstance(t, asyncio.ReadTransport)
    assert isinstance(t, asyncio.WriteTransport)
    assert isinstance(t, asyncio.BaseTransport)
    assert t.can_write_eof() is True
    assert t._sock is ours
    assert t._sock_fd == ours.fileno()
    t.close()
    run_briefly(loop)
    assert t._sock is None


@pytest.mark.parametrize("buffered", [False, True], ids=["Protocol", "BufferedProtocol"])
def test_echo(loop, pair, buffered):
    ours, peer = pair
    proto = BufProto(loop, echo=True) if buffered else Proto(loop, echo=True)
    t = loop._make_socket_transport(ours, proto)
    payload = bytes(range(256)) * 40
    echoed = []
    reader = threading.Thread(target=lambda: echoed.append(recv_all(peer)))
    reader.start()
    peer.sendall(payload)
    peer.shutdown(socket.SHUT_WR)
    exc = wait(loop, proto.lost)
    assert exc is None
    reader.join(GUARD)
    assert echoed == [payload]  # flushed by close() after EOF
    assert proto.events == ["made", "eof", "lost"] if buffered else \
        proto.events[0] == "made" and proto.events[-2:] == ["eof", "lost"]
    assert bytes(proto.data) == payload
    if buffered:
        assert set(proto.sizes) == {-1}
    assert t.is_closing()
    assert ours.fileno() == -1  # the transport closed the socket


def test_echo_large_reads(loop, pair):
    # Reads of 16 KiB and more take another path on asyncloop (straight
    # into the bytes object): every byte, in order, as bytes.
    ours, peer = pair
    proto = Proto(loop, echo=True)
    loop._make_socket_transport(ours, proto)
    payload = os.urandom(3 * 1024 * 1024 + 12345)
    echoed = []
    reader = threading.Thread(target=lambda: echoed.append(recv_all(peer)))

    def send():
        for i in range(0, len(payload), 100 * 1024 + 7):
            peer.sendall(payload[i:i + 100 * 1024 + 7])
        peer.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    reader.start()
    sender.start()
    assert wait(loop, proto.lost) is None  # data_received asserts bytes
    sender.join(GUARD)
    reader.join(GUARD)
    assert echoed == [payload]
    assert bytes(proto.data) == payload


def test_echo_big_reads_of_changing_sizes(loop, pair):
    # asyncloop sizes a big read by the last one's size: reads of the same
    # size, smaller, larger (beyond 256 KiB too), small ones in between.
    ours, peer = pair
    sizes = [100 * 1024, 100 * 1024, 40 * 1024, 200 * 1024, 17 * 1024, 300 * 1024,
             100 * 1024, 5, 100 * 1024, 100 * 1024 + 1, 16 * 1024, 16 * 1024 - 1]
    echo_messages(loop, ours, peer, sizes)


def test_echo_mid_reads_of_changing_sizes(loop, pair):
    # From 8 KiB a read as big as the last one goes straight into its bytes
    # object on asyncloop: the same size again, smaller, larger, below 8 KiB,
    # one big read in between.
    ours, peer = pair
    sizes = [10 * 1024] * 3 + [9000, 12000, 12000, 8 * 1024, 8 * 1024 - 1, 8 * 1024,
                               15000, 10 * 1024, 40 * 1024, 10 * 1024, 10 * 1024, 5]
    echo_messages(loop, ours, peer, sizes)


def test_big_reads_kept_by_the_protocol_stay_intact(loop, pair):
    # asyncloop keeps its last big read until the next one: each bytes object
    # data_received got, kept or dropped at once, is never written again.
    ours, peer = pair
    kept = []
    crcs = []

    class P(Proto):
        def data_received(self, data):
            super().data_received(data)
            crcs.append(zlib.crc32(data))
            if len(crcs) % 2:
                kept.append(data)

    echo_messages(loop, ours, peer, [100 * 1024] * 8, P(loop, echo=True))
    assert [zlib.crc32(d) for d in kept] == crcs[::2]


def echo_messages(loop, ours, peer, sizes, proto=None):
    if proto is None:
        proto = Proto(loop, echo=True)
    loop._make_socket_transport(ours, proto)
    messages = [os.urandom(n) for n in sizes]
    echoed = []

    def client():
        for m in messages:
            peer.sendall(m)
            echoed.append(recv_exactly(peer, len(m)))
        peer.shutdown(socket.SHUT_WR)

    c = threading.Thread(target=client)
    c.start()
    assert wait(loop, proto.lost) is None
    c.join(GUARD)
    assert echoed == messages
    assert bytes(proto.data) == b"".join(messages)


def test_callback_order_and_waiter(loop, pair):
    ours, _ = pair
    order = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            order.append("made")

    async def main():
        waiter = loop.create_future()
        waiter.add_done_callback(lambda f: order.append("waiter"))
        t = loop._make_socket_transport(ours, P(), waiter)
        order.append("created")
        await waiter
        t.close()
        return t

    t = loop.run_until_complete(main())
    assert order == ["created", "made", "waiter"]
    run_briefly(loop)
    assert t._sock is None


def test_get_extra_info(loop, pair, family):
    ours, peer = pair
    extra = {"answer": 42}
    t = loop._make_socket_transport(ours, Proto(loop), extra=extra)
    assert t.get_extra_info("answer") == 42
    assert t.get_extra_info("missing") is None
    assert t.get_extra_info("missing", "dflt") == "dflt"
    assert t.get_extra_info(name="missing", default=3) == 3
    assert t.get_extra_info("sockname") == ours.getsockname()
    assert t.get_extra_info("peername") == ours.getpeername()
    s = t.get_extra_info("socket")
    assert type(s).__name__ == "TransportSocket"
    assert s.fileno() == ours.fileno()
    assert extra["answer"] == 42 and "socket" in extra  # asyncio fills the given dict
    if family == "tcp":
        assert ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    # a given peername is kept
    a, b = socket.socketpair()
    a.setblocking(False)
    t2 = loop._make_socket_transport(a, Proto(loop), extra={"peername": "given"})
    assert t2.get_extra_info("peername") == "given"
    t.close()
    t2.close()
    run_briefly(loop)
    b.close()


def test_repr(loop, pair):
    ours, _ = pair
    t = loop._make_socket_transport(ours, Proto(loop))
    name = type(t).__name__
    fd = ours.fileno()
    assert repr(t) == f"<{name} fd={fd} read=idle write=<idle, bufsize=0>>"
    run_briefly(loop)
    assert repr(t) == f"<{name} fd={fd} read=polling write=<idle, bufsize=0>>"
    t.pause_reading()
    assert repr(t) == f"<{name} fd={fd} read=idle write=<idle, bufsize=0>>"
    t.resume_reading()
    t.close()
    assert repr(t) == f"<{name} closing fd={fd} read=idle write=<idle, bufsize=0>>"
    run_briefly(loop)
    assert repr(t) == f"<{name} closed fd={fd}>"


# -------------------------------------------------------------- write path --

def test_write_types_and_errors(loop, pair):
    ours, peer = pair
    t = loop._make_socket_transport(ours, Proto(loop))
    with pytest.raises(TypeError) as ei:
        t.write("text")
    assert str(ei.value) == "data argument must be a bytes-like object, not 'str'"
    with pytest.raises(TypeError):
        t.write(12)
    t.write(b"")
    t.write(b"a")
    t.write(bytearray(b"b"))
    t.write(memoryview(b"xcd")[1:])
    t.writelines([b"e", bytearray(b"f"), memoryview(b"g")])
    assert recv_exactly(peer, 7) == b"abcdefg"
    t.write_eof()
    with pytest.raises(RuntimeError) as ei:
        t.write(b"x")
    assert str(ei.value) == "Cannot call write() after write_eof()"
    assert peer.recv(10) == b""
    t.close()
    run_briefly(loop)


def test_write_buffer_limits(loop, pair):
    ours, _ = pair
    t = loop._make_socket_transport(ours, Proto(loop))
    assert t.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
    t.set_write_buffer_limits(high=1000)
    assert t.get_write_buffer_limits() == (250, 1000)
    t.set_write_buffer_limits(low=100)
    assert t.get_write_buffer_limits() == (100, 400)
    t.set_write_buffer_limits(40, 20)
    assert t.get_write_buffer_limits() == (20, 40)
    with pytest.raises(ValueError) as ei:
        t.set_write_buffer_limits(high=1, low=2)
    assert str(ei.value) == "high (1) must be >= low (2) must be >= 0"
    with pytest.raises(ValueError) as ei:
        t.set_write_buffer_limits(high=-4)
    assert str(ei.value) == "high (-4) must be >= low (-1) must be >= 0"
    assert t.get_write_buffer_limits() == (20, 40)
    t.close()
    run_briefly(loop)


def test_flow_control_slow_peer(loop, pair):
    ours, peer = pair
    total = 8 * 1024 * 1024
    chunk = b"z" * 65536
    state = {"sent": 0, "paused": 0, "resumed": 0, "max_buf": 0}
    done = loop.create_future()

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.paused = False
            loop.call_soon(self.pump)

        def pump(self):
            while not self.paused and state["sent"] < total:
                self.t.write(chunk)
                state["sent"] += len(chunk)
                state["max_buf"] = max(state["max_buf"], self.t.get_write_buffer_size())
            if state["sent"] >= total and not done.done():
                self.t.close()

        def pause_writing(self):
            state["paused"] += 1
            self.paused = True
            assert self.t.get_write_buffer_size() > 64 * 1024

        def resume_writing(self):
            state["resumed"] += 1
            self.paused = False
            assert self.t.get_write_buffer_size() <= 16 * 1024
            loop.call_soon(self.pump)

        def connection_lost(self, exc):
            done.set_result(exc)

    loop._make_socket_transport(ours, P())
    run_briefly(loop, 3)
    # Nothing read yet: the transport must have paused the protocol.
    assert state["paused"] == 1 and state["resumed"] == 0
    received = []
    reader = threading.Thread(target=lambda: received.append(len(recv_all(peer))))
    reader.start()
    assert wait(loop, done) is None
    reader.join(GUARD)
    assert received == [total]
    assert state["resumed"] >= 1 and state["paused"] == state["resumed"]
    # bounded: never more than the high-water mark plus one write
    assert state["max_buf"] <= 64 * 1024 + len(chunk)


def test_close_flushes_abort_drops(loop, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    big = b"q" * (4 * 1024 * 1024)
    t.write(big)
    assert t.get_write_buffer_size() > 0
    t.close()
    assert t.is_closing()
    reader_out = []
    th = threading.Thread(target=lambda: reader_out.append(recv_all(peer)))
    th.start()
    assert wait(loop, proto.lost) is None
    th.join(GUARD)
    assert reader_out[0] == big


def test_abort_drops_data(loop, family, tmp_path, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    big = b"q" * (4 * 1024 * 1024)
    t.write(big)
    assert t.get_write_buffer_size() > 0
    t.abort()
    assert t.get_write_buffer_size() == 0
    assert t.is_closing()
    assert wait(loop, proto.lost) is None
    assert len(recv_all(peer)) < len(big)


def test_write_eof_half_close(loop, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    wait(loop, proto.made)
    t.write(b"last words")
    t.write_eof()
    t.write_eof()  # a second call does nothing
    assert recv_all(peer) == b"last words"
    # we can still read after our write side is shut
    peer.sendall(b"reply")
    wait(loop, proto.got_data)
    assert bytes(proto.data) == b"reply"
    assert not t.is_closing()
    peer.shutdown(socket.SHUT_WR)
    assert wait(loop, proto.lost) is None
    assert proto.events[-2:] == ["eof", "lost"]


def test_write_eof_after_queued_data(loop, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    big = b"w" * (2 * 1024 * 1024)
    t.write(big)
    assert t.get_write_buffer_size() > 0
    t.write_eof()
    out = []
    th = threading.Thread(target=lambda: out.append(recv_all(peer)))
    th.start()
    th_done = loop.create_future()

    def check():
        if th.is_alive():
            loop.call_later(0.01, check)
        else:
            th_done.set_result(None)

    check()
    wait(loop, th_done)
    assert out[0] == big
    t.close()
    wait(loop, proto.lost)


@pytest.mark.parametrize("keep_open", [True, False, None])
def test_eof_received(loop, pair, keep_open):
    ours, peer = pair
    proto = Proto(loop, keep_open=keep_open)
    t = loop._make_socket_transport(ours, proto)
    peer.shutdown(socket.SHUT_WR)
    wait(loop, proto.eof)
    run_briefly(loop)
    if keep_open:
        assert not t.is_closing()
        assert not proto.lost.done()
        assert "read=idle" in repr(t)
        t.write(b"still here")
        assert recv_exactly(peer, 10) == b"still here"
        t.close()
    assert wait(loop, proto.lost) is None


def test_peer_reset_mid_write(loop, pair, family):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    wait(loop, proto.made)
    t.write(b"x" * (4 * 1024 * 1024))
    assert t.get_write_buffer_size() > 0
    if family == "tcp":
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    exc = wait(loop, proto.lost)
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
    assert t.get_write_buffer_size() == 0
    assert ours.fileno() == -1


def test_writes_after_connection_lost_warn(loop, pair, caplog):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    t.abort()
    wait(loop, proto.lost)
    caplog.set_level(logging.WARNING, logger="asyncio")
    for _ in range(4):
        t.write(b"data")
    assert [r.getMessage() for r in caplog.records] == []
    t.write(b"data")
    t.write(b"data")
    assert [r.getMessage() for r in caplog.records] == ["socket.send() raised exception."] * 2


def test_set_protocol_mid_stream(loop, pair):
    ours, peer = pair
    first = Proto(loop)
    t = loop._make_socket_transport(ours, first)
    peer.sendall(b"one")
    wait(loop, first.got_data)
    second = BufProto(loop, size=100)
    t.set_protocol(second)
    assert t.get_protocol() is second
    peer.sendall(b"two")
    peer.shutdown(socket.SHUT_WR)
    exc = wait(loop, second.lost)
    assert exc is None
    assert bytes(first.data) == b"one"
    assert bytes(second.data) == b"two"
    assert second.events == ["eof", "lost"]
    assert first.events == ["made", "data"]
    assert t.get_protocol() is None


def test_pause_resume_reading(loop, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    wait(loop, proto.made)
    assert t.is_reading()
    t.pause_reading()
    t.pause_reading()
    assert not t.is_reading()
    peer.sendall(b"held")
    run_briefly(loop, 5)
    assert proto.data == b""
    t.resume_reading()
    assert t.is_reading()
    wait(loop, proto.got_data)
    assert proto.data == b"held"
    t.close()
    assert not t.is_reading()
    t.resume_reading()
    assert not t.is_reading()
    wait(loop, proto.lost)


# ---------------------------------------------------------------- errors --

class Boom(Exception):
    pass


@pytest.mark.parametrize("where", ["data_received", "eof_received", "get_buffer",
                                   "empty_buffer", "buffer_updated"])
def test_protocol_callback_raises(loop, pair, where):
    ours, peer = pair
    rec = Recorder()
    loop.set_exception_handler(rec)
    lost = loop.create_future()

    class P(asyncio.BufferedProtocol if where in ("get_buffer", "empty_buffer",
                                                  "buffer_updated") else asyncio.Protocol):
        def data_received(self, data):
            raise Boom()

        def eof_received(self):
            raise Boom()

        def get_buffer(self, n):
            if where == "get_buffer":
                raise Boom()
            if where == "empty_buffer":
                return bytearray()
            return bytearray(10)

        def buffer_updated(self, n):
            raise Boom()

        def connection_lost(self, exc):
            lost.set_result(exc)

    proto = P()
    t = loop._make_socket_transport(ours, proto)
    if where == "eof_received":
        peer.shutdown(socket.SHUT_WR)
    else:
        peer.sendall(b"data")
    exc = wait(loop, lost)
    messages = {
        "data_received": "Fatal error: protocol.data_received() call failed.",
        "eof_received": "Fatal error: protocol.eof_received() call failed.",
        "get_buffer": "Fatal error: protocol.get_buffer() call failed.",
        "empty_buffer": "Fatal error: protocol.get_buffer() call failed.",
        "buffer_updated": "Fatal error: protocol.buffer_updated() call failed.",
    }
    assert len(rec.contexts) == 1
    ctx = rec.contexts[0]
    assert ctx["message"] == messages[where]
    assert ctx["transport"] is t
    assert ctx["protocol"] is proto
    if where == "empty_buffer":
        assert isinstance(ctx["exception"], RuntimeError)
        assert str(ctx["exception"]) == "get_buffer() returned an empty buffer"
    else:
        assert isinstance(ctx["exception"], Boom)
    assert exc is ctx["exception"]
    assert t.is_closing()
    assert ours.fileno() == -1


def test_pause_writing_raises(loop, pair):
    ours, peer = pair
    rec = Recorder()
    loop.set_exception_handler(rec)

    class P(asyncio.Protocol):
        def pause_writing(self):
            raise Boom()

    proto = P()
    t = loop._make_socket_transport(ours, proto)
    t.set_write_buffer_limits(high=0)
    t.write(b"x" * (8 * 1024 * 1024))
    assert len(rec.contexts) == 1
    ctx = rec.contexts[0]
    assert ctx["message"] == "protocol.pause_writing() failed"
    assert isinstance(ctx["exception"], Boom)
    assert ctx["transport"] is t and ctx["protocol"] is proto
    assert t._protocol_paused
    t.abort()
    run_briefly(loop)


def test_system_exit_from_data_received(loop, pair):
    ours, peer = pair

    class P(asyncio.Protocol):
        def data_received(self, data):
            raise SystemExit(3)

    t = loop._make_socket_transport(ours, P())
    peer.sendall(b"bye")
    with pytest.raises(SystemExit):
        loop.run_forever()
    assert not t.is_closing()
    t.abort()
    run_briefly(loop)


# -------------------------------------------------------- object lifetime --

def test_resource_warning_on_gc(loop, pair):
    ours, _ = pair
    t = loop._make_socket_transport(ours, asyncio.Protocol())
    run_briefly(loop)
    t.pause_reading()  # nothing of the loop refers to it any more
    text = repr(t)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del t
        gc.collect()
    msgs = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert msgs == [f"unclosed transport {text}"]
    assert ours.fileno() == -1


def test_loop_closed_with_transport_open(loop, pair):
    ours, _ = pair
    start = asyncloop._core._debug_counters()["uv_handles"]
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    run_briefly(loop)
    loop.close()
    assert not proto.lost.done()
    name = type(t).__name__
    assert repr(t) == f"<{name} fd={ours.fileno()}>"
    with pytest.raises(RuntimeError) as ei:
        t.close()
    assert str(ei.value) == "Event loop is closed"
    del ei  # its traceback refers to t
    assert t.is_closing()
    t.abort()  # already closing: nothing scheduled, no error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del t, proto
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert ours.fileno() == -1
    assert asyncloop._core._debug_counters()["uv_handles"] <= start


def test_live_uv_handles_return(loop_kind, pair):
    if loop_kind != "asyncloop":
        pytest.skip("asyncloop's libuv handle counter only")
    ours, peer = pair
    before = asyncloop._core._debug_counters()["uv_handles"]
    loop = asyncloop.new_event_loop()
    proto = Proto(loop, echo=True)
    t = loop._make_socket_transport(ours, proto)
    peer.sendall(b"ping")
    wait(loop, proto.got_data)
    assert recv_exactly(peer, 4) == b"ping"
    t.write(b"y" * (1024 * 1024))
    t.abort()
    wait(loop, proto.lost)
    loop.close()
    del t, proto
    gc.collect()
    assert asyncloop._core._debug_counters()["uv_handles"] == before


# ------------------------------------------------------------ refinements --

def test_writelines(loop, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    t.writelines([])
    big = b"k" * (1024 * 1024)
    t.writelines([b"head", bytearray(b"-"), memoryview(big)])
    if PY >= (3, 12):
        # memoryview() of every item first: a bad one queues nothing
        before = t.get_write_buffer_size()
        with pytest.raises(TypeError) as ei:
            t.writelines([b"ok", "bad"])
        assert str(ei.value) == "memoryview: a bytes-like object is required, not 'str'"
        assert t.get_write_buffer_size() == before
    else:
        with pytest.raises(TypeError):
            t.writelines([b"ok", "bad"])
    t.write_eof()
    with pytest.raises(RuntimeError) as ei:
        t.writelines([b"late"])
    if PY >= (3, 12):
        assert str(ei.value) == "Cannot call writelines() after write_eof()"
    else:
        assert str(ei.value) == "Cannot call write() after write_eof()"
    out = []
    th = threading.Thread(target=lambda: out.append(recv_all(peer)))
    th.start()
    t.close()
    assert wait(loop, proto.lost) is None
    th.join(GUARD)
    assert out == [b"head-" + big]


class FakeServer:
    def __init__(self):
        self.calls = []

    # weak references: 3.13 passes the transport, which must stay collectable
    def _attach(self, *args):
        self.calls.append(("attach", [weakref.ref(a) for a in args]))

    def _detach(self, *args):
        self.calls.append(("detach", [weakref.ref(a) for a in args]))

    def seen(self):
        return [(name, tuple(r() for r in refs)) for name, refs in self.calls]


def test_server_attach_detach(loop, pair):
    ours, _ = pair
    server = FakeServer()
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto, server=server)
    args = (t,) if PY >= (3, 13) else ()
    assert server.seen() == [("attach", args)]
    t.close()
    wait(loop, proto.lost)
    assert server.seen() == [("attach", args), ("detach", args)]


def test_server_detach_on_gc(loop, pair):
    ours, _ = pair
    server = FakeServer()
    t = loop._make_socket_transport(ours, asyncio.Protocol(), server=server)
    run_briefly(loop)
    t.pause_reading()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del t
        gc.collect()
    # only 3.13's __del__ detaches
    expected = ["attach", "detach"] if PY >= (3, 13) else ["attach"]
    assert [c[0] for c in server.calls] == expected


def test_pause_reading_before_start(loop, pair):
    ours, peer = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    t.pause_reading()  # before the scheduled start of reading
    peer.sendall(b"early")
    run_briefly(loop, 5)
    if PY >= (3, 11):
        assert proto.data == b""  # the start honours the pause
        t.resume_reading()
        wait(loop, proto.got_data)
    else:
        assert proto.data == b"early"  # 3.10 starts reading anyway
    assert proto.data == b"early"
    t.close()
    wait(loop, proto.lost)


def test_debug_logs(loop, pair, caplog):
    ours, peer = pair
    loop.set_debug(True)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    wait(loop, proto.made)
    t.pause_reading()
    t.resume_reading()
    peer.shutdown(socket.SHUT_WR)
    wait(loop, proto.lost)
    msgs = [r.getMessage() for r in caplog.records if "Transport" in r.getMessage()]
    assert [re.sub(r"<.*>", "T", m) for m in msgs] == [
        "T pauses reading", "T resumes reading", "T received EOF"]


def test_fatal_oserror_logged_in_debug(loop, pair, family, caplog):
    ours, peer = pair
    loop.set_debug(True)
    rec = Recorder()
    loop.set_exception_handler(rec)
    caplog.set_level(logging.DEBUG, logger="asyncio")
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    wait(loop, proto.made)
    if family == "tcp":
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    t.write(b"x" * (4 * 1024 * 1024))
    exc = wait(loop, proto.lost)
    assert isinstance(exc, OSError)
    assert rec.contexts == []  # an OSError never reaches the handler
    fatal = [r for r in caplog.records if r.getMessage().endswith(
        ": Fatal write error on socket transport")
        or r.getMessage().endswith(": Fatal read error on socket transport")]
    assert len(fatal) == 1 and fatal[0].exc_info is not None


def test_resume_reading_on_closed_fd(loop, pair):
    ours, _ = pair
    proto = Proto(loop)
    t = loop._make_socket_transport(ours, proto)
    run_briefly(loop)
    t.pause_reading()
    os_fd = ours.detach()
    import os
    os.close(os_fd)
    with pytest.raises(OSError) as ei:
        t.resume_reading()
    assert ei.value.errno == errno.EBADF
    t.abort()
    assert wait(loop, proto.lost) is None


def test_fd_closed_before_poll(loop_kind, pair):
    if loop_kind != "asyncloop":
        pytest.skip("asyncio's epoll silently forgets a closed fd: the transport never hears")
    ours, _ = pair
    loop = asyncloop.new_event_loop()
    try:
        proto = Proto(loop)
        t = loop._make_socket_transport(ours, proto)
        # Runs right after reading starts, before the loop next polls:
        # libuv would abort the process on that fd (see al__poll_start).
        loop.call_soon(ours.close)
        exc = wait(loop, proto.lost)
        assert isinstance(exc, OSError) and exc.errno == errno.EBADF
        assert t.is_closing()
    finally:
        loop.close()


def test_asyncio_streams_on_top(loop, pair):
    """asyncio's StreamReader/StreamWriter over the transport: drain() waits
    on pause_writing/resume_writing, readexactly() on data_received."""
    ours, peer = pair
    total = 4 * 1024 * 1024

    async def main():
        reader = asyncio.StreamReader(loop=loop)
        proto = asyncio.StreamReaderProtocol(reader, loop=loop)
        waiter = loop.create_future()
        t = loop._make_socket_transport(ours, proto, waiter)
        await waiter
        writer = asyncio.StreamWriter(t, proto, reader, loop)
        echo = threading.Thread(target=lambda: (peer.sendall(recv_exactly(peer, total)),
                                                peer.shutdown(socket.SHUT_WR)))
        echo.start()
        for _ in range(total // 65536):
            writer.write(b"s" * 65536)
            await writer.drain()
        data = await reader.readexactly(total)
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        echo.join(GUARD)
        return data

    data = loop.run_until_complete(asyncio.wait_for(main(), GUARD))
    assert data == b"s" * total


# --------------------------------------------- big reads that wake a task --
# On asyncloop a read of 16 KiB or more whose data_received schedules work
# (a StreamReader waking its task) ends that poll's stream events, so the
# task runs before the next connection is read; the others come back at the
# next poll.

def _stream_pair(loop, sock, limit=2 ** 16):
    async def make():
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        proto = asyncio.StreamReaderProtocol(reader, loop=loop)
        waiter = loop.create_future()
        t = loop._make_socket_transport(sock, proto, waiter)
        await waiter
        return reader, asyncio.StreamWriter(t, proto, reader, loop)

    return make()


def test_streams_echo_many_big_connections(loop):
    n, rounds, size = 6, 8, 100 * 1024 + 13
    pairs = [socket.socketpair() for _ in range(n)]
    payloads = [os.urandom(size) for _ in range(n)]
    echoed = [[] for _ in range(n)]

    def client(i):
        peer = pairs[i][1]
        peer.settimeout(GUARD)
        for _ in range(rounds):
            peer.sendall(payloads[i])
            echoed[i].append(recv_exactly(peer, size))
        peer.shutdown(socket.SHUT_WR)

    async def serve(sock):
        reader, writer = await _stream_pair(loop, sock, limit=256 * 1024)
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        for ours, _ in pairs:
            ours.setblocking(False)
        clients = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for c in clients:
            c.start()
        await asyncio.gather(*(serve(ours) for ours, _ in pairs))
        for c in clients:
            c.join(GUARD)

    try:
        loop.run_until_complete(asyncio.wait_for(main(), GUARD))
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    assert echoed == [[p] * rounds for p in payloads]


def test_busy_big_reader_does_not_starve_others(loop):
    # A connection that stays readable, with big reads each waking a task,
    # must not keep another ready connection waiting: the quiet one is
    # served after a few reads of the busy one (asyncio: in the same poll).
    total = 64 * 1024 * 1024
    busy, quiet = socket.socketpair(), socket.socketpair()
    chunk = b"f" * (1024 * 1024)
    seen = {}

    def flood(sent):
        try:
            while sent < total:
                busy[1].sendall(chunk[:total - sent])
                sent += len(chunk)
            busy[1].shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the test failed and closed the sockets

    async def main():
        busy[0].setblocking(False)
        quiet[0].setblocking(False)
        reader, w1 = await _stream_pair(loop, busy[0], limit=4 * 1024 * 1024)
        qreader, w2 = await _stream_pair(loop, quiet[0])
        got = 0

        async def count():
            nonlocal got
            while data := await reader.read(256 * 1024):
                got += len(data)
            seen["busy_done"] = got

        async def quiet_one():
            assert await qreader.readexactly(100) == b"q" * 100
            seen["busy_at_quiet"] = got

        tasks = [asyncio.ensure_future(count()), asyncio.ensure_future(quiet_one())]
        await asyncio.sleep(0)  # both wait for data
        # The busy one first (so first in the poller's order), as much as
        # the kernel takes; then the quiet one; a thread keeps the busy one
        # readable.
        busy[1].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
        busy[1].setblocking(False)
        sent = 0
        try:
            while True:
                sent += busy[1].send(chunk)
        except BlockingIOError:
            pass
        busy[1].setblocking(True)
        quiet[1].sendall(b"q" * 100)
        threading.Thread(target=flood, args=(sent,), daemon=True).start()
        await asyncio.gather(*tasks)
        w1.close()
        w2.close()

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 60))
    finally:
        for s in (*busy, *quiet):
            s.close()
    assert seen["busy_done"] == total
    assert seen["busy_at_quiet"] <= 1024 * 1024


def idle(loop, delay=0.1):
    fut = loop.create_future()
    loop.call_later(delay, fut.set_result, None)
    loop.run_until_complete(fut)


def test_big_reads_after_a_cut_respect_close_and_pause(loop):
    # Three connections with a big read ready at once; the first read's
    # data_received schedules a callback that closes one of the others and
    # pauses the third. On asyncloop the events a cut skipped run in the
    # next iteration without a poll: a transport closed or paused meanwhile
    # is not read (on asyncio all three are read before the callback).
    pairs = [socket.socketpair() for _ in range(3)]
    events = []
    protos = {}

    def act():
        events.append(("act",))
        others = [n for n in protos if n != first[0]]
        protos[others[0]].transport.close()
        protos[others[1]].transport.pause_reading()

    first = []

    class P(asyncio.Protocol):
        def __init__(self, name):
            self.name = name
            self.size = 0

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            events.append((self.name, "data"))
            self.size += len(data)
            if not first:
                first.append(self.name)
                loop.call_soon(act)

        def connection_lost(self, exc):
            events.append((self.name, "lost"))

    try:
        for i, (ours, _) in enumerate(pairs):
            ours.setblocking(False)
            protos["abc"[i]] = P("abc"[i])
            loop._make_socket_transport(ours, protos["abc"[i]])
        run_briefly(loop)  # connection_made
        for _, peer in pairs:
            peer.sendall(b"x" * (100 * 1024))
        # nothing queued when the loop polls: the events are handled there
        idle(loop)
        act_at = events.index(("act",))
        closed, held = [n for n in protos if n != first[0]]
        assert (closed, "data") not in events[act_at:]
        assert (held, "data") not in events[act_at:]
        assert (closed, "lost") in events[act_at:]
        protos[held].transport.resume_reading()
        idle(loop)
        assert protos[held].size == 100 * 1024
        assert protos[first[0]].size == 100 * 1024
    finally:
        for p in protos.values():
            p.transport.close()
        run_briefly(loop)
        for a, b in pairs:
            a.close()
            b.close()
