"""UDP and Unix datagram endpoints (src/udp.c): loop.create_datagram_endpoint
and the datagram transport, each test run on asyncio's own loop and on
asyncloop (the ``loop`` fixture of conftest.py), over 127.0.0.1, ::1 and
Unix sockets in tmp_path only.
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
import warnings

import pytest

from conftest import GUARD, Recorder, describe, run_child

PY = sys.version_info[:2]
HEADER = 8 if PY >= (3, 13) else 0  # 3.13 counts 8 bytes per queued datagram


def has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


class Proto(asyncio.DatagramProtocol):
    """Records every call, in order; echoes if echo is set."""

    def __init__(self, loop, echo=False):
        self.loop = loop
        self.echo = echo
        self.events = []
        self.received = []
        self.errors = []
        self.transport = None
        self.lost = loop.create_future()
        self.got = asyncio.Event()
        self.got_error = asyncio.Event()

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def datagram_received(self, data, addr):
        self.events.append("data")
        self.received.append((data, addr))
        self.got.set()
        if self.echo:
            self.transport.sendto(data, addr)

    def error_received(self, exc):
        self.events.append("error")
        self.errors.append(exc)
        self.got_error.set()

    def connection_lost(self, exc):
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, GUARD))


async def next_datagram(proto):
    await proto.got.wait()
    proto.got.clear()
    return proto.received[-1]


async def echo_roundtrip(loop, server_kwargs, client_kwargs, payloads):
    server_t, server_p = await loop.create_datagram_endpoint(
        lambda: Proto(loop, echo=True), **server_kwargs)
    if "remote_addr" not in client_kwargs and "sock" not in client_kwargs:
        client_kwargs = dict(client_kwargs, remote_addr=server_t.get_extra_info("sockname")[:2])
    client_t, client_p = await loop.create_datagram_endpoint(
        lambda: Proto(loop), **client_kwargs)
    replies = []
    for data in payloads:
        client_t.sendto(data)
        replies.append(await next_datagram(client_p))
    assert client_p.events[0] == "made" and server_p.events[0] == "made"
    client_t.close()
    server_t.close()
    assert await client_p.lost is None
    assert await server_p.lost is None
    assert client_p.events[-1] == "lost" and client_p.events.count("lost") == 1
    assert server_p.events[-1] == "lost" and server_p.events.count("lost") == 1
    return server_t, client_t, server_p, client_p, replies


def test_echo_ipv4(loop):
    payloads = [b"x", b"hello" * 10, bytes(1024), bytearray(b"ba"), memoryview(b"mv")]
    s, c, sp, cp, replies = run(loop, echo_roundtrip(
        loop, {"local_addr": ("127.0.0.1", 0)}, {}, payloads))
    assert [bytes(d) for d, _ in replies] == [bytes(p) for p in payloads]
    server_addr = s.get_extra_info("sockname")
    assert all(a == server_addr for _, a in replies)
    # asyncio's is a DatagramTransport from 3.12 on; ours on every version
    if PY >= (3, 12) or type(c).__module__.startswith("asyncloop"):
        assert isinstance(c, asyncio.DatagramTransport)
    assert isinstance(c, asyncio.BaseTransport)
    assert isinstance(c, asyncio.Transport)  # as _SelectorDatagramTransport
    assert c.get_extra_info("peername") == server_addr
    assert s.get_extra_info("peername") is None
    assert c.get_extra_info("nope", 42) == 42
    assert sp.received[0][1] == c.get_extra_info("sockname")
    assert c.is_closing() and s.is_closing()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_echo_ipv6(loop):
    s, c, sp, cp, replies = run(loop, echo_roundtrip(
        loop, {"local_addr": ("::1", 0)}, {}, [b"six", b"v" * 1000]))
    assert [d for d, _ in replies] == [b"six", b"v" * 1000]
    addr = sp.received[0][1]
    assert len(addr) == 4 and addr[0] == "::1"
    assert addr[:2] == c.get_extra_info("sockname")[:2]


def test_echo_unix(loop, tmp_path):
    spath = str(tmp_path / "srv.sock")
    cpath = str(tmp_path / "cli.sock")
    s, c, sp, cp, replies = run(loop, echo_roundtrip(
        loop, {"local_addr": spath, "family": socket.AF_UNIX},
        {"local_addr": cpath, "remote_addr": spath, "family": socket.AF_UNIX},
        [b"unix", b"u" * 4096]))
    assert replies == [(b"unix", spath), (b"u" * 4096, spath)]
    assert sp.received[0][1] == cpath
    assert c.get_extra_info("peername") == spath


def test_unix_unbound_sender_address_is_none(loop, tmp_path):
    spath = str(tmp_path / "srv.sock")

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=spath, family=socket.AF_UNIX)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"anon", spath)
            got = await next_datagram(p)
        t.close()
        await p.lost
        return got

    assert run(loop, main()) == (b"anon", None)


def test_sock_argument(loop):
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))

    async def main():
        t, p = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=raw)
        assert t.get_extra_info("socket").fileno() == raw.fileno()
        assert t.get_extra_info("sockname") == raw.getsockname()
        t.sendto(b"ping", peer.getsockname())
        data, addr = peer.recvfrom(100)
        assert (data, addr) == (b"ping", raw.getsockname())
        peer.sendto(b"pong", raw.getsockname())
        got = await next_datagram(p)
        t.close()
        await p.lost
        return got

    try:
        assert run(loop, main()) == (b"pong", peer.getsockname())
        assert raw.fileno() == -1  # closed by the transport
    finally:
        peer.close()
        raw.close()


def test_remote_addr_connected_send(loop):
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    paddr = peer.getsockname()

    async def main():
        t, p = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=paddr)
        t.sendto(b"one")
        t.sendto(b"two", paddr)
        t.sendto(b"three", None)
        got = [peer.recvfrom(100)[0] for _ in range(3)]
        with pytest.raises(ValueError) as ei:
            t.sendto(b"four", ("127.0.0.1", paddr[1] + 1 if paddr[1] < 65535 else 1))
        # empty datagrams: dropped before 3.13, sent from 3.13 on
        t.sendto(b"")
        t.sendto(b"five")
        got.append(peer.recvfrom(100)[0])
        t.close()
        await p.lost
        return got, str(ei.value)

    try:
        got, msg = run(loop, main())
    finally:
        peer.close()
    assert msg == f"Invalid address: must be None or {paddr}"
    assert got[:3] == [b"one", b"two", b"three"]
    assert got[3] == (b"" if PY >= (3, 13) else b"five")


def test_wrong_family_address(loop):
    rec = Recorder()
    loop.set_exception_handler(rec)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        t.sendto(b"x", "/not/an/inet/address")
        exc = await p.lost
        return t, p, exc

    t, p, exc = run(loop, main())
    # asyncio: socket.sendto's TypeError is a fatal write error
    assert isinstance(exc, TypeError)
    assert "AF_INET address must be tuple" in str(exc)
    assert len(rec.contexts) == 1
    ctx = rec.contexts[0]
    assert ctx["message"] == "Fatal write error on datagram transport"
    assert ctx["exception"] is exc and ctx["transport"] is t
    assert t.is_closing()


def test_host_with_a_nul_is_the_socket_modules_error(loop):
    # inet_pton would stop at the NUL; socket.sendto raises TypeError
    rec = Recorder()
    loop.set_exception_handler(rec)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        t.sendto(b"x", ("127.0.0.1\0junk", peer.getsockname()[1]))
        return t, await p.lost

    with peer:
        t, exc = run(loop, main())
        assert isinstance(exc, TypeError)
        assert "null character" in str(exc)
        assert rec.contexts[0]["message"] == "Fatal write error on datagram transport"
        with pytest.raises(BlockingIOError):
            peer.recv(10)  # nothing was sent


def test_sendto_bad_data(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        try:
            with pytest.raises(TypeError) as ei:
                t.sendto("text", ("127.0.0.1", 9))
            return str(ei.value)
        finally:
            t.close()
            await p.lost

    assert run(loop, main()) == "data argument must be a bytes-like object, not 'str'"


def test_sendto_on_closed_transport_warns_after_5th(loop, caplog):
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), remote_addr=peer.getsockname())
        t.close()
        await p.lost
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            for _ in range(7):
                t.sendto(b"late")
        return t

    try:
        run(loop, main())
    finally:
        peer.close()
    warned = [r for r in caplog.records if r.getMessage() == "socket.send() raised exception."]
    assert len(warned) == 3  # the 5th, 6th and 7th call


def test_big_datagrams(loop):
    """A full-size UDP datagram arrives whole; an oversize one is EMSGSIZE,
    given to error_received."""
    async def main():
        s, sp = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        c, cp = await loop.create_datagram_endpoint(
            lambda: Proto(loop), remote_addr=s.get_extra_info("sockname"))
        c.sendto(b"b" * 65507)
        data, _ = await next_datagram(sp)
        c.sendto(b"o" * 65508)
        await cp.got_error.wait()
        c.close()
        s.close()
        await cp.lost
        await sp.lost
        return data, cp.errors

    data, errors = run(loop, main())
    assert data == b"b" * 65507
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert errors[0].errno == errno.EMSGSIZE


def test_datagram_larger_than_receive_buffer(loop):
    """The kernel takes one datagram larger than SO_RCVBUF into an empty
    queue and drops those that follow; the transport reads it whole."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    srv.bind(("127.0.0.1", 0))
    srv.setblocking(False)
    rcvbuf = srv.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    size = 60000
    assert size > rcvbuf

    async def main():
        s, sp = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=srv)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for i in range(4):
                raw.sendto(bytes([i]) * size, srv.getsockname())
        await next_datagram(sp)
        for _ in range(5):
            await asyncio.sleep(0)
        s.close()
        await sp.lost
        return sp.received

    received = run(loop, main())
    assert [d for d, _ in received] == [b"\x00" * size]


def test_error_received_connection_refused(loop):
    tmp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tmp.bind(("127.0.0.1", 0))
    dead = tmp.getsockname()
    tmp.close()

    async def main():
        t, p = await loop.create_datagram_endpoint(lambda: Proto(loop), remote_addr=dead)
        t.sendto(b"anyone?")
        await p.got_error.wait()
        assert not t.is_closing()  # error_received does not close
        t.close()
        await p.lost
        return p.errors

    errors = run(loop, main())
    assert isinstance(errors[0], ConnectionRefusedError)


class SlowReceiverProto(Proto):
    def __init__(self, loop):
        super().__init__(loop)
        self.pauses = 0
        self.resumes = 0
        self.max_size = 0
        self.resumed = asyncio.Event()

    def pause_writing(self):
        self.pauses += 1

    def resume_writing(self):
        self.resumes += 1
        self.resumed.set()


def test_flood_slow_receiver_flow_control(loop, tmp_path):
    """A sender flooding a receiver that does not read: the kernel queue
    fills (a Unix datagram socket blocks its sender), the transport queues,
    pause_writing() is called past the high-water mark, and the queue stays
    bounded by what the sender chooses to add after that."""
    spath = str(tmp_path / "slow.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(spath)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: SlowReceiverProto(loop), remote_addr=spath, family=socket.AF_UNIX)
        t.set_write_buffer_limits(high=16384, low=4096)
        assert t.get_write_buffer_limits() == (4096, 16384)
        sent = 0
        while not p.pauses:
            t.sendto(b"f" * 1024)
            sent += 1
            assert sent < 100000, "pause_writing was never called"
        size = t.get_write_buffer_size()
        assert 16384 < size <= 16384 + 1024 + HEADER
        # drain: the receiver reads everything
        srv.setblocking(False)
        n = 0
        while not p.resumes:
            try:
                srv.recv(2048)
                n += 1
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert t.get_write_buffer_size() <= 4096 + HEADER * sent
        t.close()
        await p.lost
        return sent, p

    try:
        sent, p = run(loop, main())
    finally:
        srv.close()
    assert p.pauses == 1 and p.resumes == 1


def test_flow_control_callbacks_raising(loop, tmp_path):
    """pause_writing() and resume_writing() raising: each error goes to the
    exception handler (asyncio's _FlowControlMixin messages, the transport
    and its protocol), and the transport carries on."""
    spath = str(tmp_path / "raise.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(spath)
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    class Raising(asyncio.DatagramProtocol):
        def pause_writing(self):
            raise ZeroDivisionError("pause")

        def resume_writing(self):
            raise KeyError("resume")

    async def main():
        t, p = await loop.create_datagram_endpoint(
            Raising, remote_addr=spath, family=socket.AF_UNIX)
        t.set_write_buffer_limits(high=4096, low=1024)
        sent = 0
        while not contexts:
            t.sendto(b"f" * 1024)
            sent += 1
            assert sent < 100000, "pause_writing was never called"
        srv.setblocking(False)
        while len(contexts) < 2:
            try:
                srv.recv(2048)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        t.sendto(b"still open")
        t.close()
        await asyncio.sleep(0.01)
        return t, p

    try:
        t, p = run(loop, main())
    finally:
        srv.close()
    assert [(c["message"], type(c["exception"]), c["transport"], c["protocol"])
            for c in contexts] == [
        ("protocol.pause_writing() failed", ZeroDivisionError, t, p),
        ("protocol.resume_writing() failed", KeyError, t, p),
    ]


def test_flood_fast_sender_bounded(loop):
    """Many datagrams arrive faster than the server handles them: the kernel
    drops what does not fit, and the server reads the rest, one
    datagram_received per datagram, nothing else piling up."""
    async def main():
        s, sp = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        addr = s.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for i in range(5000):
                raw.sendto(struct.pack("!I", i) + bytes(508), addr)
            raw.sendto(b"end", addr)
            while not sp.received or sp.received[-1][0] != b"end":
                sp.got.clear()
                try:
                    await asyncio.wait_for(sp.got.wait(), 0.5)
                except asyncio.TimeoutError:
                    raw.sendto(b"end", addr)  # the first one was dropped
        assert s.get_write_buffer_size() == 0
        s.close()
        await sp.lost
        return sp.received

    received = run(loop, main())
    seqs = [struct.unpack("!I", d[:4])[0] for d, _ in received if len(d) == 512]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert 0 < len(seqs) <= 5000


def build_query(qid, name):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)


class DnsServer(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        qid, flags, qd = struct.unpack("!HHH", data[:6])
        question = data[12:]
        answer = (b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([10, 0, 0, 7]))
        reply = struct.pack("!HHHHHH", qid, 0x8180, qd, 1, 0, 0) + question + answer
        self.transport.sendto(reply, addr)


def test_dns_style_exchange(loop):
    async def main():
        s, _ = await loop.create_datagram_endpoint(DnsServer, local_addr=("127.0.0.1", 0))
        c, cp = await loop.create_datagram_endpoint(
            lambda: Proto(loop), remote_addr=s.get_extra_info("sockname"))
        answers = {}
        for qid, name in [(0x1234, "example.test"), (0x4321, "a.b.c.test")]:
            c.sendto(build_query(qid, name))
            data, _ = await next_datagram(cp)
            rid, flags, qd, an = struct.unpack("!HHHH", data[:8])
            assert (rid, flags, qd, an) == (qid, 0x8180, 1, 1)
            answers[name] = ".".join(str(b) for b in data[-4:])
        c.close()
        s.close()
        await cp.lost
        return answers

    assert run(loop, main()) == {"example.test": "10.0.0.7", "a.b.c.test": "10.0.0.7"}


def test_collected_open_warns(loop):
    """Dropped while open: collected once the loop lets go of it (its
    close), with asyncio's ResourceWarning, and its socket closed."""
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: asyncio.DatagramProtocol(), local_addr=("127.0.0.1", 0))
        return t.get_extra_info("socket").fileno()

    fd = run(loop, main())
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        loop.close()
        gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed by the transport's finalizer


@pytest.mark.skipif(PY < (3, 11), reason="3.10's datagram transport cannot pause reading")
def test_collected_open_while_paused_warns(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: asyncio.DatagramProtocol(), local_addr=("127.0.0.1", 0))
        t.pause_reading()  # nothing polls it now: only we hold it
        return t

    t = run(loop, main())
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del t
        gc.collect()


def test_loop_closed_with_transport_open(loop):
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)

    async def main():
        return await loop.create_datagram_endpoint(lambda: Proto(loop), sock=raw)

    t, p = run(loop, main())
    loop.close()
    assert not t.is_closing()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        t.close()
    assert t.is_closing()
    assert p.events == ["made"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        raw.close()
        del t
        gc.collect()


def test_write_buffer_limits(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        try:
            assert t.get_write_buffer_limits() == (16384, 65536)
            assert t.get_write_buffer_size() == 0
            t.set_write_buffer_limits(high=1000)
            assert t.get_write_buffer_limits() == (250, 1000)
            t.set_write_buffer_limits(low=100)
            assert t.get_write_buffer_limits() == (100, 400)
            with pytest.raises(ValueError) as ei:
                t.set_write_buffer_limits(high=1, low=2)
            return str(ei.value)
        finally:
            t.close()
            await p.lost

    assert run(loop, main()) == "high (1) must be >= low (2) must be >= 0"


def test_abort_drops_queue(loop, tmp_path):
    spath = str(tmp_path / "a.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(spath)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: SlowReceiverProto(loop), remote_addr=spath, family=socket.AF_UNIX)
        while t.get_write_buffer_size() == 0:
            t.sendto(b"q" * 512)
        size = t.get_write_buffer_size()
        t.abort()
        assert t.is_closing()
        # asyncio 3.11+ clears the queue but not its byte count
        assert t.get_write_buffer_size() == (0 if PY < (3, 11) else size)
        return await p.lost, p

    try:
        exc, p = run(loop, main())
    finally:
        srv.close()
    assert exc is None and p.events.count("lost") == 1


BAD_ARGS = [
    ({"sock": "STREAM"}, ValueError),
    ({"sock": "DGRAM", "local_addr": ("127.0.0.1", 0)}, ValueError),
    ({"local_addr": ("127.0.0.1", 0), "family": socket.AF_UNIX}, TypeError),
    ({"remote_addr": "relative/path", "family": socket.AF_INET}, Exception),
    ({"reuse_address": True}, Exception),
    ({"local_addr": ("127.0.0.1", 0), "remote_addr": ("::1", 9)}, Exception),
    ({"family": socket.AF_UNIX, "local_addr": ("127.0.0.1", 0), "allow_broadcast": True},
     Exception),
]


@pytest.mark.parametrize("kwargs,exc_type", BAD_ARGS,
                         ids=[",".join(k) for k, _ in BAD_ARGS])
def test_bad_arguments_like_asyncio(loop, kwargs, exc_type):
    def attempt(lp):
        socks = []
        kw = dict(kwargs)
        if kw.get("sock") == "STREAM":
            kw["sock"] = socket.socket()
        elif kw.get("sock") == "DGRAM":
            kw["sock"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if "sock" in kw:
            socks.append(kw["sock"])
        try:
            lp.run_until_complete(lp.create_datagram_endpoint(asyncio.DatagramProtocol, **kw))
        except BaseException as e:  # noqa: B902
            return e
        finally:
            for s in socks:
                s.close()
        return None

    ref_loop = asyncio.new_event_loop()
    try:
        ref = attempt(ref_loop)
    finally:
        ref_loop.close()
    got = attempt(loop)
    assert isinstance(ref, exc_type), ref
    def norm(e):
        return re.sub(r"fd=\d+", "fd=N", str(e))
    assert type(got) is type(ref) and norm(got) == norm(ref), (got, ref)


def test_reuse_port_and_broadcast(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT on this platform")

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0), reuse_port=True,
            allow_broadcast=True)
        sock = t.get_extra_info("socket")
        opts = (sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT),
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST))
        t.close()
        await p.lost
        return opts

    reuse, bcast = run(loop, main())
    assert reuse and bcast


def test_sendto_unconnected_after_connection_lost(loop):
    """asyncio's transport has no socket any more: sendto raises."""
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        t.close()
        await p.lost
        return t

    t = run(loop, main())
    with pytest.raises(AttributeError):
        t.sendto(b"x", ("127.0.0.1", 9))


@pytest.mark.skipif(PY < (3, 11), reason="3.10's datagram transport cannot pause reading")
def test_pause_resume_reading(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        addr = t.get_extra_info("sockname")
        t.pause_reading()
        assert not t.is_reading()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"held", addr)
            for _ in range(10):
                await asyncio.sleep(0)
            assert p.received == []
            t.resume_reading()
            assert t.is_reading()
            got = await next_datagram(p)
        t.close()
        await p.lost
        return got[0]

    assert run(loop, main()) == b"held"


def test_protocol_error_in_datagram_received_goes_to_handler(loop):
    rec = Recorder()
    loop.set_exception_handler(rec)

    class Bad(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            raise ZeroDivisionError("boom")

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Bad(loop), local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"1", t.get_extra_info("sockname"))
            await next_datagram(p)
            raw.sendto(b"2", t.get_extra_info("sockname"))
            await next_datagram(p)  # still reading: not a fatal error
        t.close()
        await p.lost
        return t

    run(loop, main())
    assert len(rec.contexts) == 2
    assert all(isinstance(c["exception"], ZeroDivisionError) for c in rec.contexts)


@pytest.mark.skipif(PY >= (3, 11), reason="3.11+ datagram transports can pause reading")
def test_pause_reading_not_implemented_on_310(loop):
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        try:
            for meth in (t.pause_reading, t.resume_reading, t.is_reading):
                with pytest.raises(NotImplementedError):
                    meth()
        finally:
            t.close()
            await p.lost

    run(loop, main())


def test_datagram_received_after_callbacks_already_queued(loop):
    """asyncio queues _read_ready behind the callbacks that were ready before
    its poll (test_datagram_send_to_non_listening_address relies on it)."""
    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"x", t.get_extra_info("sockname"))
            loop.call_soon(p.events.append, "soon")
            await next_datagram(p)
        t.close()
        await p.lost
        return p.events

    assert run(loop, main()) == ["made", "soon", "data", "lost"]


def test_callbacks_scheduled_by_datagram_received_run_before_next_datagram(loop):
    """asyncio reads one datagram per iteration: what datagram_received
    schedules with call_soon runs before the next datagram arrives."""
    class Sched(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            self.loop.call_soon(self.events.append, b"soon-" + data)

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Sched(loop), local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for d in (b"1", b"2", b"3"):
                raw.sendto(d, t.get_extra_info("sockname"))
            while len(p.received) < 3:
                await p.got.wait()
                p.got.clear()
            await asyncio.sleep(0)
        t.close()
        await p.lost
        return [e for e in p.events if e not in ("made", "lost")]

    assert run(loop, main()) == ["data", b"soon-1", "data", b"soon-2", "data", b"soon-3"]


def test_live_uv_handles_return_to_zero(asyncloop_mod):
    counters = asyncloop_mod._core._debug_counters
    before = counters()["uv_handles"]
    loop = asyncloop_mod.new_event_loop()

    async def main():
        t, p = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        t2, p2 = await loop.create_datagram_endpoint(
            lambda: Proto(loop), local_addr=("127.0.0.1", 0))
        t.close()
        await p.lost
        return t2

    t2 = run(loop, main())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        loop.close()  # t2 still open
        del t2
        gc.collect()
    assert counters()["uv_handles"] == before


def queued_socket(payloads, family=socket.AF_INET, host="127.0.0.1"):
    """A bound UDP socket with payloads already waiting in its receive
    queue (loopback delivers at once), so that the transport built on it
    finds them all together."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    with socket.socket(family, socket.SOCK_DGRAM) as raw:
        for d in payloads:
            raw.sendto(d, s.getsockname())
    return s


def test_close_in_datagram_received_stops_delivery(loop):
    """Datagrams already waiting when datagram_received closes the
    transport are never delivered."""
    class Closer(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"2":
                self.transport.close()

    async def main():
        sock = queued_socket([b"1", b"2", b"3", b"4", b"5"])
        t, p = await loop.create_datagram_endpoint(lambda: Closer(loop), sock=sock)
        await p.lost
        for _ in range(5):
            await asyncio.sleep(0)
        return [d for d, _ in p.received], p.events

    got, events = run(loop, main())
    assert got == [b"1", b"2"]
    assert events == ["made", "data", "data", "lost"]


def test_abort_in_datagram_received_stops_delivery(loop):
    class Aborter(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"3":
                self.transport.abort()

    async def main():
        sock = queued_socket([b"1", b"2", b"3", b"4", b"5"])
        t, p = await loop.create_datagram_endpoint(lambda: Aborter(loop), sock=sock)
        await p.lost
        return [d for d, _ in p.received]

    assert run(loop, main()) == [b"1", b"2", b"3"]


@pytest.mark.skipif(PY < (3, 11), reason="3.10's datagram transport cannot pause reading")
def test_pause_in_datagram_received_holds_the_rest_in_order(loop):
    """pause_reading() from datagram_received: nothing more is delivered
    until resume_reading(); then the rest come in order, at the next poll
    (after what was scheduled in the same iteration as the resume)."""
    class Pauser(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"2":
                self.transport.pause_reading()

    async def main():
        sock = queued_socket([b"1", b"2", b"3", b"4"])
        t, p = await loop.create_datagram_endpoint(lambda: Pauser(loop), sock=sock)
        while len(p.received) < 2:
            await p.got.wait()
            p.got.clear()
        for _ in range(10):
            await asyncio.sleep(0)
        held = [d for d, _ in p.received]
        t.resume_reading()
        loop.call_soon(p.events.append, "after-resume")
        while len(p.received) < 4:
            await p.got.wait()
            p.got.clear()
        t.close()
        await p.lost
        return held, [d for d, _ in p.received], p.events

    held, got, events = run(loop, main())
    assert held == [b"1", b"2"]
    assert got == [b"1", b"2", b"3", b"4"]
    assert events == ["made", "data", "data", "after-resume", "data", "data", "lost"]


def test_callback_chains_interleave_with_queued_datagrams(loop):
    """Each datagram_received schedules a callback that schedules another:
    asyncio reads the next datagram at the next poll, so it comes after
    the first callback and before the second of the previous datagram."""
    class Chain(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            self.events.append(data)
            self.loop.call_soon(self.first, data)

        def first(self, data):
            self.events.append(b"a" + data)
            self.loop.call_soon(self.events.append, b"b" + data)

    async def main():
        sock = queued_socket([b"1", b"2", b"3", b"4"])
        t, p = await loop.create_datagram_endpoint(lambda: Chain(loop), sock=sock)
        while len(p.received) < 4:
            await p.got.wait()
            p.got.clear()
        for _ in range(5):
            await asyncio.sleep(0)
        t.close()
        await p.lost
        return [e for e in p.events if isinstance(e, bytes)]

    assert run(loop, main()) == [b"1", b"a1", b"2", b"b1", b"a2", b"3", b"b2", b"a3", b"4",
                                 b"b3", b"a4", b"b4"]


def test_protocol_error_mid_batch_keeps_the_rest(loop):
    """An exception from datagram_received goes to the handler; the
    datagrams waiting behind it are still delivered, in order."""
    rec = Recorder()
    loop.set_exception_handler(rec)

    class Bad(Proto):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            if data == b"2":
                raise ZeroDivisionError("boom")

    async def main():
        sock = queued_socket([b"1", b"2", b"3", b"4"])
        t, p = await loop.create_datagram_endpoint(lambda: Bad(loop), sock=sock)
        while len(p.received) < 4:
            await p.got.wait()
            p.got.clear()
        t.close()
        await p.lost
        return [d for d, _ in p.received]

    assert run(loop, main()) == [b"1", b"2", b"3", b"4"]
    assert [type(c["exception"]) for c in rec.contexts] == [ZeroDivisionError]


def test_mixed_sizes_in_one_batch(loop):
    """Datagrams of every size up to the largest IPv4 one, waiting
    together, arrive whole and in order."""
    sizes = [1, 65507, 0, 1024, 65507, 7, 40000, 3]
    payloads = [bytes([i % 251]) * n for i, n in enumerate(sizes)]

    async def main():
        sock = queued_socket([])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for d in payloads:
                raw.sendto(d, sock.getsockname())
        t, p = await loop.create_datagram_endpoint(lambda: Proto(loop), sock=sock)
        while len(p.received) < len(payloads):
            await p.got.wait()
            p.got.clear()
        t.close()
        await p.lost
        return [d for d, _ in p.received]

    assert run(loop, main()) == payloads


TRANSPORT_AUDIT_CHILD = """
import socket
events = []
def hook(name, args):
    if name == "socket.sendto" and events is not None:
        events.append(args[1])
        if args[1][1] == 9:
            raise RuntimeError("vetoed by the audit hook")
sys.addaudithook(hook)
loop = new_loop()
errors = []
loop.set_exception_handler(lambda lp, ctx: errors.append(ctx["message"]))
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); peer.bind(("127.0.0.1", 0))
class P(asyncio.DatagramProtocol):
    def connection_lost(self, exc):
        print("lost", type(exc).__name__, exc)
async def main():
    t, p = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
    t.sendto(b"x", peer.getsockname())
    t.sendto(b"y", ("127.0.0.1", 9))
    await asyncio.sleep(0.05)
loop.run_until_complete(main())
evs = list(events)
events = None
print("events", evs == [peer.getsockname(), ("127.0.0.1", 9)], errors)
print("got", peer.recv(10))
"""


def test_sendto_audit_event(loop_kind):
    # asyncio's transport calls socket.sendto: one audit event per datagram,
    # and a hook's exception is a fatal write error
    proc = run_child(TRANSPORT_AUDIT_CHILD, loop_kind)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split("\n")[:3] == [
        "lost RuntimeError vetoed by the audit hook",
        "events True ['Fatal write error on datagram transport']",
        "got b'x'"], describe(proc)
