"""Which contextvars context a transport's protocol callbacks run in.

asyncio runs a transport's reader (_read_ready) in a Handle whose context is
a copy of the context current when the reader was added (at creation, or at
resume_reading()), reused for every read; the writer (_write_ready) in a copy
of the context of the write() that started waiting for writability. Each case
runs on asyncio's loop and on ours (the ``loop`` fixture of conftest.py).
"""

import asyncio
import contextvars
import os
import socket
import ssl

import pytest

from conftest import GUARD

VAR = contextvars.ContextVar("VAR", default="unset")


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, GUARD))


class Sender(asyncio.Protocol):
    """Server side: sends `payload` then EOF once connected."""

    def __init__(self, payload=b"hello"):
        self.payload = payload

    def connection_made(self, transport):
        transport.write(self.payload)
        transport.write_eof()


class Seer(asyncio.Protocol):
    """Records VAR in each callback."""

    def __init__(self, loop):
        self.seen = []
        self.done = loop.create_future()

    def data_received(self, data):
        self.seen.append(("data", VAR.get()))

    def eof_received(self):
        self.seen.append(("eof", VAR.get()))
        if not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


async def serve(loop, factory, **kw):
    server = await loop.create_server(factory, "127.0.0.1", 0, **kw)
    return server, server.sockets[0].getsockname()[1]


def test_client_sees_creation_context(loop):
    async def main():
        server, port = await serve(loop, Sender)
        VAR.set("created")
        tr, proto = await loop.create_connection(lambda: Seer(loop), "127.0.0.1", port)
        VAR.set("later")  # not copied into the transport's reader
        await proto.done
        tr.close()
        server.close()
        return proto.seen

    seen = run(loop, main())
    assert seen and all(v == "created" for _, v in seen), seen
    assert seen[-1][0] == "eof"
    assert VAR.get() == "unset"


def test_server_sees_protocol_factory_context(loop):
    class ServerSeer(Seer):
        def __init__(self):
            VAR.set("factory")
            super().__init__(loop)

    protos = []

    def factory():
        protos.append(ServerSeer())
        return protos[-1]

    async def main():
        server, port = await serve(loop, factory)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x" * 10)
        w.write_eof()
        while not protos:
            await asyncio.sleep(0)
        await protos[0].done
        w.close()
        server.close()
        return protos[0].seen

    seen = run(loop, main())
    assert ("data", "factory") in seen and ("eof", "factory") in seen, seen
    assert VAR.get() == "unset"


class ServerSetter(asyncio.Protocol):
    """Server side: sets VAR in connection_made (its own Handle's context)
    and in each data_received (the reader's); records what each read saw."""

    def __init__(self, loop, name, n):
        VAR.set("factory-" + name)
        self.name = name
        self.n = n
        self.seen = []
        self.done = loop.create_future()

    def connection_made(self, transport):
        VAR.set("made-" + self.name)

    def data_received(self, data):
        self.seen.append(VAR.get())
        VAR.set("read-" + self.name)
        if len(self.seen) == self.n and not self.done.done():
            self.done.set_result(None)


def test_accepted_reader_context_per_connection(loop):
    # Each accepted connection's reads run in one context of its own: what
    # its protocol_factory set, not what connection_made set; what a read
    # sets stays for that connection's next reads only.
    protos = []

    def factory():
        protos.append(ServerSetter(loop, str(len(protos)), 3))
        return protos[-1]

    async def main():
        server, port = await serve(loop, factory)
        a = socket.create_connection(("127.0.0.1", port))
        b = socket.create_connection(("127.0.0.1", port))
        while len(protos) < 2:
            await asyncio.sleep(0.001)
        for i in range(3):  # one read each time
            a.send(b"?")
            b.send(b"?")
            while any(len(p.seen) <= i for p in protos):
                await asyncio.sleep(0.001)
        inside = VAR.get()
        a.close()
        b.close()
        server.close()
        await server.wait_closed()
        return [p.seen for p in protos], inside

    seen, inside = run(loop, main())
    assert seen == [["factory-0", "read-0", "read-0"], ["factory-1", "read-1", "read-1"]], seen
    assert inside == "unset"
    assert VAR.get() == "unset"


class Setter(asyncio.Protocol):
    """Sets VAR to its name in data_received; records what it saw before."""

    def __init__(self, loop, name, n):
        self.name = name
        self.n = n
        self.seen = []
        self.done = loop.create_future()

    def data_received(self, data):
        self.seen.append(VAR.get())
        VAR.set(self.name)
        if len(self.seen) == self.n and not self.done.done():
            self.done.set_result(None)


class Ping(asyncio.Protocol):
    """Server side: sends one byte per received byte, one write each."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        for _ in data:
            self.transport.write(b".")


def test_var_set_in_data_received_stays_with_transport(loop):
    async def main():
        server, port = await serve(loop, Ping)
        a_tr, a = await loop.create_connection(lambda: Setter(loop, "a", 3), "127.0.0.1", port)
        b_tr, b = await loop.create_connection(lambda: Setter(loop, "b", 3), "127.0.0.1", port)
        for _ in range(3):  # one read each time: wait for the answer
            n = len(a.seen) + 1
            a_tr.write(b"?")
            b_tr.write(b"?")
            while len(a.seen) < n or len(b.seen) < n:
                await asyncio.sleep(0.001)
        inside = VAR.get()
        a_tr.close()
        b_tr.close()
        server.close()
        return a.seen, b.seen, inside

    a_seen, b_seen, inside = run(loop, main())
    assert a_seen == ["unset", "a", "a"], a_seen
    assert b_seen == ["unset", "b", "b"], b_seen
    assert inside == "unset"
    assert VAR.get() == "unset"


class SendOnRequest(asyncio.Protocol):
    """Server side: answers the first data with a payload and EOF."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(b"hello")
        self.transport.write_eof()


def test_resume_reading_takes_a_new_context(loop):
    async def main():
        server, port = await serve(loop, SendOnRequest)
        VAR.set("created")
        tr, proto = await loop.create_connection(lambda: Seer(loop), "127.0.0.1", port)
        tr.pause_reading()
        tr.write(b"go")
        await asyncio.sleep(0.05)
        assert proto.seen == []

        async def resume():
            VAR.set("resumed")
            tr.resume_reading()

        await loop.create_task(resume())
        await proto.done
        tr.close()
        server.close()
        return proto.seen

    seen = run(loop, main())
    assert seen and all(v == "resumed" for _, v in seen), seen


def test_resume_writing_runs_in_the_writes_context(loop):
    total = 32 * 1024 * 1024

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.got = 0
            self.done = loop.create_future()

        def data_received(self, data):
            self.got += len(data)
            if self.got >= total and not self.done.done():
                self.done.set_result(None)

    class Writer(asyncio.Protocol):
        def __init__(self):
            self.seen = []
            self.resumed = loop.create_future()

        def pause_writing(self):
            self.seen.append(("pause", VAR.get()))

        def resume_writing(self):
            self.seen.append(("resume", VAR.get()))
            if not self.resumed.done():
                self.resumed.set_result(None)

    sinks = []

    def sink_factory():
        sinks.append(Sink())
        return sinks[-1]

    async def main():
        server, port = await serve(loop, sink_factory)
        VAR.set("created")
        tr, proto = await loop.create_connection(Writer, "127.0.0.1", port)

        async def write():
            VAR.set("writer")
            tr.write(b"x" * total)

        await loop.create_task(write())
        assert tr.get_write_buffer_size() > 0
        await proto.resumed
        while not sinks:
            await asyncio.sleep(0)
        await sinks[0].done
        tr.close()
        server.close()
        return proto.seen

    seen = run(loop, main())
    assert ("pause", "writer") in seen and ("resume", "writer") in seen, seen


def test_datagram_received_sees_creation_context(loop):
    class Dgram(asyncio.DatagramProtocol):
        def __init__(self):
            self.seen = []
            self.done = loop.create_future()

        def datagram_received(self, data, addr):
            self.seen.append(VAR.get())
            VAR.set("inside")
            if len(self.seen) == 2:
                self.done.set_result(None)

    async def main():
        VAR.set("created")
        tr, proto = await loop.create_datagram_endpoint(Dgram, local_addr=("127.0.0.1", 0))
        VAR.set("later")
        addr = tr.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"a", addr)
            s.sendto(b"b", addr)
            await proto.done
        tr.close()
        return proto.seen

    assert run(loop, main()) == ["created", "inside"]
    assert VAR.get() == "unset"


def test_read_pipe_sees_creation_context(loop):
    rfd, wfd = os.pipe()

    async def main():
        VAR.set("created")
        with open(rfd, "rb", buffering=0) as f:
            tr, proto = await loop.connect_read_pipe(lambda: Seer(loop), f)
            VAR.set("later")
            os.write(wfd, b"data")
            os.close(wfd)
            await proto.done
            tr.close()
        return proto.seen

    seen = run(loop, main())
    assert seen == [("data", "created"), ("eof", "created")], seen


def test_write_pipe_resume_writing_context(loop):
    rfd, wfd = os.pipe()
    total = 4 * 1024 * 1024

    class Writer(asyncio.Protocol):
        def __init__(self):
            self.seen = []
            self.resumed = loop.create_future()

        def pause_writing(self):
            self.seen.append(("pause", VAR.get()))

        def resume_writing(self):
            self.seen.append(("resume", VAR.get()))
            if not self.resumed.done():
                self.resumed.set_result(None)

    async def main():
        VAR.set("created")
        with open(wfd, "wb", buffering=0) as f:
            tr, proto = await loop.connect_write_pipe(Writer, f)

            async def write():
                VAR.set("writer")
                tr.write(b"x" * total)

            await loop.create_task(write())
            got = 0
            while got < total:  # drained from a thread: the loop stays free
                got += len(await loop.run_in_executor(None, os.read, rfd, 1 << 20))
            await proto.resumed
            tr.close()
        os.close(rfd)
        return proto.seen

    seen = run(loop, main())
    assert ("pause", "writer") in seen and ("resume", "writer") in seen, seen



@pytest.fixture(scope="module")
def tls():
    tm = pytest.importorskip("trustme")
    ca = tm.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_tls_data_received_sees_creation_context(loop, tls):
    server_ctx, client_ctx = tls

    class ServerSeer(Seer):
        def __init__(self):
            VAR.set("factory")
            super().__init__(loop)

        def connection_made(self, transport):
            transport.write(b"hello")

    protos = []

    def factory():
        protos.append(ServerSeer())
        return protos[-1]

    class Client(Seer):
        def connection_made(self, transport):
            transport.write(b"ping")

        def data_received(self, data):
            super().data_received(data)
            if not self.done.done():
                self.done.set_result(None)

    async def main():
        server, port = await serve(loop, factory, ssl=server_ctx)
        VAR.set("created")
        tr, proto = await loop.create_connection(
            lambda: Client(loop), "127.0.0.1", port, ssl=client_ctx,
            server_hostname="127.0.0.1")
        VAR.set("later")
        await proto.done
        while not protos or not protos[0].seen:
            await asyncio.sleep(0.001)
        tr.close()
        server.close()
        return proto.seen, protos[0].seen

    client_seen, server_seen = run(loop, main())
    # 3.10's SSLProtocol may also report an EOF: same context
    assert client_seen[0] == ("data", "created"), client_seen
    assert all(v == "created" for _, v in client_seen), client_seen
    assert server_seen[0] == ("data", "factory"), server_seen


def test_transport_in_its_own_context_is_collected(loop):
    """A cycle through the transport's context (a var holding the transport)
    is collected once the transport is closed."""
    import gc
    import weakref

    holder = contextvars.ContextVar("holder")

    async def main():
        server, port = await serve(loop, Sender)
        box = []
        holder.set(box)  # the transport's reader context holds box
        tr, proto = await loop.create_connection(lambda: Seer(loop), "127.0.0.1", port)
        box.append(tr)  # box holds the transport
        await proto.done
        tr.close()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        server.close()
        return weakref.ref(tr)

    ref = run(loop, main())
    gc.collect()
    assert ref() is None
