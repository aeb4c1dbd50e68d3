"""The accept loop of a listening socket (src/server.c), each case on
asyncio's own loop and on ours: many pending connections per readiness
event, out of file descriptors, a protocol_factory that raises, servers
closed with connections pending, what an accepted connection looks like
(peername, non-blocking, TCP_NODELAY), and its context.
"""

import asyncio
import collections
import contextvars
import fcntl
import gc
import os
import socket
import sys
import warnings

import pytest

from conftest import PY, describe, run_child

DEADLINE = 60.0


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))


class Keep(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport


def record(contexts):
    """An exception handler keeping what the tests look at: not the
    exception itself, whose traceback would hold asyncio's task frame (and
    the accepted socket in it) alive."""
    def handler(loop, ctx):
        exc = ctx.get("exception")
        contexts.append({"message": ctx["message"], "exception": type(exc),
                         "keys": sorted(ctx)})
    return handler


def recv_end(sock):
    """What a client reads from a connection the server dropped: b'' or
    the reset."""
    sock.settimeout(DEADLINE)
    try:
        return sock.recv(1)
    except ConnectionResetError:
        return b""


@pytest.mark.parametrize("backlog,groups", [(100, [12]), (5, [5, 5, 2])])
def test_pending_connections_accepted_backlog_per_event(loop, backlog, groups):
    # asyncio's _accept_connection accepts at most `backlog` connections per
    # readiness event; each batch's protocols are made one iteration later.
    n = sum(groups)
    ticks = [0]
    made = []
    transports = []

    def tick():
        ticks[0] += 1
        loop.call_soon(tick)

    class P(Keep):
        def connection_made(self, transport):
            transports.append(transport)

    def factory():
        made.append(ticks[0])
        return P()

    async def main():
        lsock = socket.create_server(("127.0.0.1", 0))
        server = await loop.create_server(factory, sock=lsock, backlog=backlog)
        lsock.listen(100)  # the kernel queue holds them all; `backlog` stays the loop's
        port = lsock.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        loop.call_soon(tick)
        while len(transports) < n:
            await asyncio.sleep(0.001)
        for c in clients:
            c.close()
        for t in transports:
            t.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert sorted(collections.Counter(made).values(), reverse=True) == groups
    assert list(collections.Counter(made).values()) == groups  # in accept order


def test_accepted_connection_extra_and_socket(loop):
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            sock = transport.get_extra_info("socket")
            seen.append((
                transport.get_extra_info("peername"),
                transport.get_extra_info("sockname"),
                sock.getpeername(),
                sock.getsockname(),
                sock.gettimeout(),
                sock.type,
                sock.family,
                fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK != 0,
                fcntl.fcntl(sock.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC != 0,
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
            ))
            transport.close()

    async def main():
        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        while not seen:
            await asyncio.sleep(0.001)
        peer = c.getsockname()
        c.close()
        server.close()
        await server.wait_closed()
        return peer, port

    peer, port = run(loop, main())
    (peername, sockname, real_peer, real_sock, timeout, stype, family, nonblock, cloexec,
     nodelay) = seen[0]
    assert peername == real_peer == peer
    assert sockname == real_sock == ("127.0.0.1", port)
    assert timeout == 0.0
    assert stype == socket.SOCK_STREAM and isinstance(stype, socket.SocketKind)
    assert family == socket.AF_INET and isinstance(family, socket.AddressFamily)
    assert nonblock and cloexec and nodelay


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_accepted_ipv6_peername(loop):
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append((transport.get_extra_info("peername"),
                         transport.get_extra_info("socket").getpeername()))
            transport.close()

    async def main():
        try:
            server = await loop.create_server(P, "::1", 0)
        except OSError as exc:
            pytest.skip(f"no ::1: {exc}")
        port = server.sockets[0].getsockname()[1]
        c = socket.create_connection(("::1", port))
        while not seen:
            await asyncio.sleep(0.001)
        c.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert seen[0][0] == seen[0][1]
    assert len(seen[0][0]) == 4


def test_listening_socket_without_tcp_proto_gets_no_nodelay(loop):
    # asyncio's _set_nodelay asks for proto == IPPROTO_TCP: a listening
    # socket made with proto 0 and handed over with sock= gives accepted
    # sockets proto 0, left with Nagle on.
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            sock = transport.get_extra_info("socket")
            seen.append((sock.proto, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
            transport.close()

    async def main():
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
        lsock.bind(("127.0.0.1", 0))
        server = await loop.create_server(P, sock=lsock)
        c = socket.create_connection(lsock.getsockname())
        while not seen:
            await asyncio.sleep(0.001)
        c.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert seen == [(0, 0)]


@pytest.mark.parametrize("abstract", [False, True])
def test_unix_peername(loop, tmp_path, abstract):
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append((transport.get_extra_info("peername"),
                         transport.get_extra_info("socket").getpeername()))
            transport.close()

    async def main():
        path = str(tmp_path / "s")
        server = await loop.create_unix_server(P, path)
        c = socket.socket(socket.AF_UNIX)
        if abstract:
            c.bind(b"\0asyncloop-test-%d" % os.getpid())
        c.connect(path)
        while not seen:
            await asyncio.sleep(0.001)
        c.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    peername, real = seen[0]
    assert peername == real
    if abstract:
        assert peername == b"\0asyncloop-test-%d" % os.getpid()
    else:
        assert peername == ""


@pytest.mark.parametrize("debug", [False, True])
def test_protocol_factory_raising(loop, debug):
    # asyncio's _accept_connection2 reports the error in debug mode only;
    # the connection is dropped and the server keeps serving.
    contexts = []
    calls = [0]
    good = []

    def factory():
        calls[0] += 1
        if calls[0] == 1:
            raise ZeroDivisionError("no protocol")
        p = Keep()
        good.append(p)
        return p

    async def main():
        loop.set_debug(debug)
        loop.set_exception_handler(record(contexts))
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c1 = socket.create_connection(("127.0.0.1", port))
        while calls[0] < 1:
            await asyncio.sleep(0.001)
        gc.collect()  # asyncio leaves the socket to the collector
        assert await loop.run_in_executor(None, recv_end, c1) == b""
        c2 = socket.create_connection(("127.0.0.1", port))
        while not good or not hasattr(good[0], "transport"):
            await asyncio.sleep(0.001)
        good[0].transport.write(b"ok")
        assert await loop.run_in_executor(None, c2.recv, 2) == b"ok"
        for c in (c1, c2):
            c.close()
        good[0].transport.close()
        server.close()
        await server.wait_closed()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        run(loop, main())
    if debug:
        assert len(contexts) == 1, contexts
        assert contexts[0]["message"] == "Error on transport creation for incoming connection"
        assert contexts[0]["exception"] is ZeroDivisionError
        assert contexts[0]["keys"] == ["exception", "message"]
    else:
        assert contexts == []


def test_server_closed_with_connections_in_kernel_backlog(loop):
    # Connections the loop has not accepted yet go with the listening
    # socket: the factory never runs, nothing is reported.
    made = []
    contexts = []

    async def main():
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        server = await loop.create_server(lambda: made.append(1) or Keep(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        server.close()
        await server.wait_closed()
        for c in clients:
            assert await loop.run_in_executor(None, recv_end, c) == b""
            c.close()
        await asyncio.sleep(0.01)

    run(loop, main())
    assert made == [] and contexts == []


# asyncio 3.13's half-made transport fails again in its __del__ (_detach).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_server_closed_between_accept_and_protocol(loop):
    # The first protocol_factory call of a batch closes the server: the
    # connections accepted in the same event still get their factory call,
    # then fail to attach to the closed server and are dropped (reported in
    # debug mode), as asyncio's _accept_connection2 tasks do.
    made = []
    contexts = []
    holder = {}

    def factory():
        made.append(1)
        if len(made) == 1:
            holder["server"].close()
        return Keep()

    async def main():
        loop.set_debug(True)
        loop.set_exception_handler(record(contexts))
        lsock = socket.create_server(("127.0.0.1", 0))
        port = lsock.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        server = holder["server"] = await loop.create_server(factory, sock=lsock)
        await server.wait_closed()
        gc.collect()
        for c in clients:
            assert await loop.run_in_executor(None, recv_end, c) == b""
            c.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        run(loop, main())
    assert len(made) == 3
    failures = [c for c in contexts
                if c["message"] == "Error on transport creation for incoming connection"]
    assert len(failures) == 3, contexts
    assert all(c["exception"] is AssertionError for c in failures)


def test_protocol_factory_runs_in_a_context_of_its_own(loop):
    var = contextvars.ContextVar("var", default=None)
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            seen.append(("made", var.get()))
            transport.close()

    def factory():
        seen.append(("factory", var.get()))
        var.set(len(seen))
        return P()

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", port))
            n = len(seen)
            while len(seen) < n + 2:
                await asyncio.sleep(0.001)
            c.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    # Each factory starts from the server's context; the connection's
    # callbacks see what its factory set.
    assert seen == [("factory", None), ("made", 1), ("factory", None), ("made", 3)]


@pytest.mark.skipif(PY < (3, 13), reason="Server.close_clients/abort_clients are new in 3.13")
def test_close_clients_of_accepted_connections(loop):
    lost = []

    class P(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.append(exc)

    async def main():
        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        while len(server._clients) < 3:
            await asyncio.sleep(0.001)
        server.close()
        server.close_clients()
        await server.wait_closed()
        for c in clients:
            assert await loop.run_in_executor(None, recv_end, c) == b""
            c.close()

    run(loop, main())
    assert lost == [None, None, None]


EMFILE_CHILD = """
import errno, os, resource, socket
contexts = []

class Sub(socket.socket):
    pass

async def main(close_during_pause, subclass):
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    made = []

    class Closer(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(1)
            transport.close()

    if subclass:
        # not a plain socket.socket: accepted through its own accept()
        lsock = Sub()
        lsock.bind(("127.0.0.1", 0))
        server = await loop.create_server(Closer, sock=lsock, backlog=3)
    else:
        server = await loop.create_server(Closer, "127.0.0.1", 0, backlog=3)
    port = server.sockets[0].getsockname()[1]
    client = socket.socket()
    # No fd left: the server's accept() fails with EMFILE.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 8, hard))
    fillers = []
    while True:
        try:
            fillers.append(os.dup(0))
        except OSError as exc:
            assert exc.errno == errno.EMFILE
            break
    client.connect(("127.0.0.1", port))
    while not contexts:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    print("reports", len(contexts))
    ctx = contexts[0]
    print("message", ctx["message"])
    print("errno", errno.errorcode[ctx["exception"].errno])
    print("socket", type(ctx["socket"]).__name__)
    for fd in fillers:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    del contexts[:]
    if close_during_pause:
        server.close()
        await server.wait_closed()
        await asyncio.sleep(1.5)  # asyncio.constants.ACCEPT_RETRY_DELAY is 1 s
        print("after close", [(c["message"], type(c.get("exception")).__name__)
                              for c in contexts])
    else:
        while not made:
            await asyncio.sleep(0.01)
        print("resumed", len(made), len(contexts))
        server.close()
        await server.wait_closed()
    client.close()

loop = new_loop()
loop.run_until_complete(main(sys.argv[2] == "close", sys.argv[2] == "subclass"))
loop.close()
"""


@pytest.mark.parametrize("mode", ["resume", "close", "subclass"])
def test_emfile_on_accept(loop_kind, mode):
    proc = run_child(EMFILE_CHILD, loop_kind, mode, timeout=60)
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout.splitlines()
    # One report per accept tried in the event: `backlog` of them.
    assert out[:4] == ["reports 3", "message socket.accept() out of system resource",
                       "errno EMFILE", "socket TransportSocket"], describe(proc)
    if mode in ("resume", "subclass"):
        assert out[4] == "resumed 1 0", describe(proc)
    elif loop_kind == "asyncio":
        # asyncio's retry registers the closed socket's fd (-1) and fails.
        assert out[4].startswith("after close [") and "Exception in callback" in out[4], \
            describe(proc)
        assert "ValueError" in out[4], describe(proc)
    else:
        # asyncloop resumes only a server that still serves.
        assert out[4] == "after close []", describe(proc)


def test_subclass_transport_factory_is_used(asyncloop_mod):
    made = []

    class MyLoop(asyncloop_mod.Loop):
        def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None,
                                   server=None):
            made.append(extra["peername"])
            return super()._make_socket_transport(sock, protocol, waiter, extra=extra,
                                                  server=server)

    assert asyncloop_mod.Loop._accept_inline and not MyLoop._accept_inline
    loop = MyLoop()
    try:
        async def main():
            server = await loop.create_server(Keep, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            c = socket.create_connection(("127.0.0.1", port))
            while not made:
                await asyncio.sleep(0.001)
            assert made == [c.getsockname()]
            c.close()
            server.close()

        run(loop, main())
    finally:
        loop.close()


def test_subclass_accept_connection_is_used(asyncloop_mod):
    calls = []

    class MyLoop(asyncloop_mod.Loop):
        def _accept_connection(self, *args):
            calls.append(len(args))
            return super()._accept_connection(*args)

    loop = MyLoop()
    try:
        async def main():
            server = await loop.create_server(Keep, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            c = socket.create_connection(("127.0.0.1", port))
            while not calls:
                await asyncio.sleep(0.001)
            c.close()
            server.close()

        run(loop, main())
    finally:
        loop.close()
    assert calls and calls[0] == (7 if sys.version_info >= (3, 11) else 6)


def test_accept_connection_arguments(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        with pytest.raises(TypeError, match="missing required argument: 'sock'"):
            loop._accept_connection(Keep)
        with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
            loop._accept_connection(Keep, None, bogus=1)
        # Nothing pending: returns at once (asyncio's BlockingIOError case).
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.setblocking(False)
        assert loop._accept_connection(Keep, lsock, backlog=5) is None
        lsock.close()
    finally:
        loop.close()


@pytest.fixture(scope="module")
def tls():
    import ssl

    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.mark.parametrize("debug", [False, True])
def test_tls_handshake_failure_on_accepted_connection(loop, tls, debug):
    # The accepted connection's handshake fails (the client speaks no TLS):
    # asyncio's _accept_connection2 closes the app transport and, in debug
    # mode, reports the waiter's error with the protocol and transport.
    server_ctx, _ = tls
    contexts = []
    made = []

    async def main():
        loop.set_debug(debug)
        loop.set_exception_handler(record(contexts))
        server = await loop.create_server(lambda: made.append(1) or Keep(), "127.0.0.1", 0,
                                          ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET / HTTP/1.0\r\n\r\n" * 4)
        assert await loop.run_in_executor(None, recv_end, c) == b""
        c.close()
        for _ in range(50):
            await asyncio.sleep(0.001)
        server.close()
        await server.wait_closed()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        run(loop, main())
    assert made == [1]
    failures = [c for c in contexts
                if c["message"] == "Error on transport creation for incoming connection"]
    if debug:
        assert len(failures) == 1, contexts
        assert issubclass(failures[0]["exception"], OSError)
        assert failures[0]["keys"] == ["exception", "message", "protocol", "transport"]
    else:
        assert failures == []


def test_tls_accepted_connection_echo(loop, tls):
    server_ctx, client_ctx = tls
    seen = []

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            seen.append((transport.get_extra_info("peername"),
                         transport.get_extra_info("ssl_object") is not None))

        def data_received(self, data):
            self.transport.write(data)

    def factory():
        return Echo()

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        peers = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            peers.append(writer.get_extra_info("sockname"))
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return peers

    peers = run(loop, main())
    assert seen == [(peer, True) for peer in peers]


@pytest.mark.parametrize("server_ip,client_ip", [("127.0.100.255", "127.200.0.9"),
                                                  ("127.1.10.99", "127.255.254.100")])
def test_ipv4_addresses_as_the_socket_module_gives_them(loop, server_ip, client_ip):
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            sock = transport.get_extra_info("socket")
            seen.append((transport.get_extra_info("peername"), sock.getpeername(),
                         transport.get_extra_info("sockname"), sock.getsockname()))
            transport.close()

    async def main():
        server = await loop.create_server(P, server_ip, 0)
        port = server.sockets[0].getsockname()[1]
        c = socket.create_connection((server_ip, port), source_address=(client_ip, 0))
        while not seen:
            await asyncio.sleep(0.001)
        c.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    peername, real_peer, sockname, real_sock = seen[0]
    assert peername == real_peer and peername[0] == client_ip
    assert sockname == real_sock and sockname[0] == server_ip


def test_debug_mode_logs_each_new_connection(loop, caplog):
    made = []

    def factory():
        made.append(Keep())
        return made[-1]

    async def main():
        loop.set_debug(True)
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        while not made or not hasattr(made[0], "transport"):
            await asyncio.sleep(0.001)
        made[0].transport.close()
        c.close()
        server.close()
        await server.wait_closed()

    with caplog.at_level("DEBUG", logger="asyncio"):
        run(loop, main())
    records = [r for r in caplog.records if "got a new connection from" in r.getMessage()]
    assert len(records) == 1
    rec = records[0]
    assert rec.msg == "%r got a new connection from %r: %r"
    server, addr, conn = rec.args
    assert isinstance(server, asyncio.base_events.Server)
    assert addr[0] == "127.0.0.1" and isinstance(conn, socket.socket)


def _idle_server_extra(loop, family, where):
    """An accepted connection nobody asks anything of until it is lost:
    its extra info afterwards (the addresses of its creation)."""
    made = []
    lost = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)

        def connection_lost(self, exc):
            lost.append(exc)

    async def main():
        if family == socket.AF_UNIX:
            server = await loop.create_unix_server(P, where)
            c = socket.socket(socket.AF_UNIX)
            c.connect(where)
            addr = where
        else:
            server = await loop.create_server(P, "127.0.0.1", 0)
            addr = server.sockets[0].getsockname()
            c = socket.create_connection(addr)
        while not made:
            await asyncio.sleep(0.001)
        client = c.getsockname()
        if family != socket.AF_UNIX:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # a reset: getpeername() on the server's side would fail
        while not lost:
            await asyncio.sleep(0.001)
        t = made[0]
        s1 = t.get_extra_info("socket")
        s2 = t.get_extra_info("socket")
        got = {
            "peername": t.get_extra_info("peername"),
            "sockname": t.get_extra_info("sockname"),
            "same_socket": s1 is s2 and s1 is t._extra["socket"],
            "socket_type": type(s1).__name__,
            "socket_fileno": s1.fileno(),
            "keys": list(t._extra),
            "missing": t.get_extra_info("nope", 5),
        }
        with pytest.raises(TypeError):
            t.get_extra_info([])
        server.close()
        await server.wait_closed()
        return got, client, addr

    return run(loop, main())


def test_idle_connection_extra_info_of_its_creation(loop):
    # The transport's extra info keeps the addresses of its creation, asked
    # for only after the connection was reset and lost.
    got, client, addr = _idle_server_extra(loop, socket.AF_INET, None)
    assert got == {
        "peername": client,
        "sockname": addr,
        "same_socket": True,
        "socket_type": "TransportSocket",
        "socket_fileno": -1,
        "keys": ["peername", "socket", "sockname"],
        "missing": 5,
    }


def test_idle_unix_connection_extra_info_of_its_creation(loop, tmp_path):
    where = str(tmp_path / "s")
    got, client, addr = _idle_server_extra(loop, socket.AF_UNIX, where)
    assert client == "" and got["peername"] == ""
    assert got["sockname"] == where
    assert got["same_socket"] and got["socket_fileno"] == -1
    assert got["keys"] == ["peername", "socket", "sockname"]


def test_accepted_transport_extra_replaced(loop):
    # transport._extra (asyncio.BaseTransport's slot) can be read and set
    # before anything asked for the extra info.
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            old = transport._extra
            seen.append(list(old))
            transport._extra = {"x": 1}
            seen.append((transport.get_extra_info("x"), transport.get_extra_info("peername")))
            transport.close()

    async def main():
        server = await loop.create_server(P, "127.0.0.1", 0)
        c = socket.create_connection(server.sockets[0].getsockname())
        while len(seen) < 2:
            await asyncio.sleep(0.001)
        c.close()
        server.close()
        await server.wait_closed()

    run(loop, main())
    assert seen == [["peername", "socket", "sockname"], (1, None)]
