"""Connection and server options, and bad input to the network methods:
each case runs on asyncio's own loop first, then on ours, and must give the
same result or the same exception (type and message).
"""

import asyncio
import builtins
import re
import socket

import pytest

from conftest import PY

DEADLINE = 30.0


GROUP = getattr(builtins, "BaseExceptionGroup", ())


def _text(exc):
    # Ports and fds differ from one run to the next; the words must not.
    return re.sub(r"\d+", "N", str(exc))


def outcome(loop_factory, make_coro):
    """What make_coro(loop) gives on a fresh loop: ('ok', value) or
    ('raised', type, message with its numbers masked)."""
    loop = loop_factory()
    try:
        try:
            value = loop.run_until_complete(asyncio.wait_for(make_coro(loop), DEADLINE))
        except BaseException as exc:  # noqa: BLE001 - compared, not handled
            if isinstance(exc, GROUP):
                return ("raised", type(exc),
                        sorted((type(e).__name__, _text(e)) for e in exc.exceptions))
            return ("raised", type(exc), _text(exc))
        return ("ok", value)
    finally:
        loop.close()


def same_as_asyncio(loop_factory, make_coro):
    expected = outcome(asyncio.new_event_loop, make_coro)
    got = outcome(loop_factory, make_coro)
    assert got == expected
    return got


def refused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ options

def test_happy_eyeballs_falls_back_to_the_address_that_answers(loop_factory):
    # localhost: ::1 refuses (nothing listens there), 127.0.0.1 answers.
    async def main(loop):
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        infos = await loop.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
        families = {info[0] for info in infos}
        transport, _ = await loop.create_connection(
            asyncio.Protocol, "localhost", port, happy_eyeballs_delay=0.05, interleave=1)
        peer = transport.get_extra_info("peername")[0]
        transport.close()
        server.close()
        await server.wait_closed()
        return peer, socket.AF_INET in families

    assert same_as_asyncio(loop_factory, main) == ("ok", ("127.0.0.1", True))


@pytest.mark.skipif(PY < (3, 12), reason="all_errors is new in 3.12")
def test_all_errors_raises_an_exception_group(loop_factory):
    port = refused_port()

    async def main(loop):
        await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, all_errors=True)

    got = same_as_asyncio(loop_factory, main)
    assert got[0] == "raised" and issubclass(got[1], GROUP)


def test_local_addr_and_sock(loop_factory):
    async def main(loop):
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, backlog=5,
                                          reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        t1, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                             local_addr=("127.0.0.1", 0))
        local = t1.get_extra_info("sockname")[0]
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        t2, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
        same = t2.get_extra_info("socket").fileno() == sock.fileno()
        t1.close()
        t2.close()
        server.close()
        await server.wait_closed()
        return local, same

    assert same_as_asyncio(loop_factory, main) == ("ok", ("127.0.0.1", True))


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_reuse_port_lets_two_servers_share_a_port(loop_factory):
    async def main(loop):
        a = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, reuse_port=True)
        port = a.sockets[0].getsockname()[1]
        b = await loop.create_server(asyncio.Protocol, "127.0.0.1", port, reuse_port=True)
        ok = b.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0
        for s in (a, b):
            s.close()
            await s.wait_closed()
        return ok

    assert same_as_asyncio(loop_factory, main) == ("ok", True)


@pytest.mark.skipif(PY < (3, 13), reason="keep_alive is new in 3.13")
def test_keep_alive_on_accepted_sockets(loop_factory):
    async def main(loop):
        accepted = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, t):
                accepted.set_result(t.get_extra_info("socket").getsockopt(
                    socket.SOL_SOCKET, socket.SO_KEEPALIVE))
                t.close()

        server = await loop.create_server(P, "127.0.0.1", 0, keep_alive=True)
        port = server.sockets[0].getsockname()[1]
        t, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        value = await accepted
        t.close()
        server.close()
        await server.wait_closed()
        return value != 0

    assert same_as_asyncio(loop_factory, main) == ("ok", True)


@pytest.mark.skipif(PY < (3, 13), reason="cleanup_socket is new in 3.13")
@pytest.mark.parametrize("cleanup", [True, False])
def test_unix_server_cleanup_socket(loop_factory, tmp_path, cleanup):
    import os

    async def main(loop):
        path = str(tmp_path / f"{loop.__class__.__name__}.sock")
        server = await loop.create_unix_server(asyncio.Protocol, path, cleanup_socket=cleanup)
        server.close()
        await server.wait_closed()
        exists = os.path.exists(path)
        if exists:
            os.unlink(path)
        return exists

    assert same_as_asyncio(loop_factory, main) == ("ok", not cleanup)


def test_connect_accepted_socket(loop_factory):
    async def main(loop):
        a, b = socket.socketpair()
        got = loop.create_future()

        class P(asyncio.Protocol):
            def data_received(self, data):
                got.set_result(data)

        t, _ = await loop.connect_accepted_socket(P, a)
        b.sendall(b"hello")
        data = await got
        t.close()
        b.close()
        return data

    assert same_as_asyncio(loop_factory, main) == ("ok", b"hello")


# ---------------------------------------------------------------- bad input

BAD_CONNECTIONS = {
    "port out of range": lambda loop: loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                                             70000),
    "unknown host": lambda loop: loop.create_connection(asyncio.Protocol,
                                                        "nonexistent.invalid", 80),
    "no host nor sock": lambda loop: loop.create_connection(asyncio.Protocol),
    "refused": lambda loop: loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                                   refused_port()),
    "ssl_handshake_timeout without ssl": lambda loop: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, ssl_handshake_timeout=1),
    "server_hostname without ssl": lambda loop: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, server_hostname="x"),
    "bad local_addr": lambda loop: loop.create_connection(
        asyncio.Protocol, "127.0.0.1", 1, local_addr=("256.1.1.1", 0)),
}


@pytest.mark.parametrize("case", sorted(BAD_CONNECTIONS))
def test_bad_create_connection(loop_factory, case):
    got = same_as_asyncio(loop_factory, BAD_CONNECTIONS[case])
    assert got[0] == "raised"


async def _udp_socket_to_create_server(loop):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        await loop.create_server(asyncio.Protocol, sock=s)


async def _port_in_use(loop):
    first = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = first.sockets[0].getsockname()[1]
    try:
        await loop.create_server(asyncio.Protocol, "127.0.0.1", port)
    finally:
        first.close()
        await first.wait_closed()


BAD_SERVERS = {
    "udp socket": _udp_socket_to_create_server,
    "port in use": _port_in_use,
    "host and sock": lambda loop: loop.create_server(asyncio.Protocol, "127.0.0.1", 0,
                                                     sock=socket.socket()),
    "neither host nor sock": lambda loop: loop.create_server(asyncio.Protocol, sock=None,
                                                             port=None),
    "bad host": lambda loop: loop.create_server(asyncio.Protocol, "nonexistent.invalid", 0),
}


@pytest.mark.parametrize("case", sorted(BAD_SERVERS))
def test_bad_create_server(loop_factory, case):
    got = same_as_asyncio(loop_factory, BAD_SERVERS[case])
    assert got[0] in ("raised", "ok")


def _transport_case(action):
    async def main(loop):
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        try:
            return action(t)
        finally:
            t.close()
            server.close()
            await server.wait_closed()

    return main


BAD_TRANSPORT_CALLS = {
    "write str": lambda t: t.write("text"),
    "write int": lambda t: t.write(5),
    "writelines of str": lambda t: t.writelines(["a"]),
    "negative limits": lambda t: t.set_write_buffer_limits(high=-1),
    "inverted limits": lambda t: t.set_write_buffer_limits(high=10, low=20),
    "write after write_eof": lambda t: (t.write_eof(), t.write(b"x")),
}


@pytest.mark.parametrize("case", sorted(BAD_TRANSPORT_CALLS))
def test_bad_transport_calls(loop_factory, case):
    same_as_asyncio(loop_factory, _transport_case(BAD_TRANSPORT_CALLS[case]))


async def _sock_recv_on_listening(loop):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.setblocking(False)
        return await loop.sock_recv(s, 10)


async def _sock_recv_on_closed(loop):
    s = socket.socket()
    s.setblocking(False)
    s.close()
    return await loop.sock_recv(s, 10)


async def _blocking_sock_in_debug(loop):
    loop.set_debug(True)
    a, b = socket.socketpair()
    with a, b:
        return await loop.sock_recv(a, 10)


async def _sock_sendall_str(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    with a, b:
        return await loop.sock_sendall(a, "text")


BAD_SOCK_CALLS = {
    "recv on a listening socket": _sock_recv_on_listening,
    "recv on a closed socket": _sock_recv_on_closed,
    "blocking socket in debug mode": _blocking_sock_in_debug,
    "sendall of str": _sock_sendall_str,
}


@pytest.mark.parametrize("case", sorted(BAD_SOCK_CALLS))
def test_bad_sock_calls(loop_factory, case):
    got = same_as_asyncio(loop_factory, BAD_SOCK_CALLS[case])
    assert got[0] == "raised"


def test_no_crash_on_getaddrinfo_garbage(loop_factory):
    async def main(loop):
        results = []
        for host, port in [(object(), 80), ("x" * 300, 80), ("127.0.0.1", object()),
                           ("127.0.0.1", -1), (b"\xff\xfe", 80)]:
            try:
                await loop.getaddrinfo(host, port)
                results.append("ok")
            except Exception as exc:  # noqa: BLE001 - compared
                results.append(type(exc).__name__)
        return results

    same_as_asyncio(loop_factory, main)
