"""An echo server on one loop, in one mode, for benchmarks/net.py.

    python net_server.py LOOP MODE PORT|unix:PATH

LOOP: asyncio, uvloop, rloop, asyncloop.  MODE: protocol (asyncio.Protocol),
buffered (asyncio.BufferedProtocol), streams (start_server, reader/writer),
sock (a listening socket served with sock_accept/sock_recv/sock_sendall).
Prints "ready" once listening, then serves until killed.  The same server
code runs on every loop.
"""

import asyncio
import socket
import sys


def loop_factory(name):
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    if name == "rloop":
        import rloop
        return rloop.new_event_loop
    if name == "asyncloop":
        import asyncloop
        return asyncloop.new_event_loop
    raise SystemExit(f"unknown loop {name!r}")


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray(256 * 1024)
        self.view = memoryview(self.buffer)

    def get_buffer(self, sizehint):
        return self.view

    def buffer_updated(self, nbytes):
        self.transport.write(self.view[:nbytes])


async def echo_stream(reader, writer):
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def echo_sock(loop, conn):
    try:
        while data := await loop.sock_recv(conn, 256 * 1024):
            await loop.sock_sendall(conn, data)
    finally:
        conn.close()


def listening_socket(where):
    if where.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(where[5:])
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(where)))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(mode, where):
    loop = asyncio.get_running_loop()
    sock = listening_socket(where)
    if mode == "protocol":
        server = await loop.create_server(EchoProtocol, sock=sock)
    elif mode == "buffered":
        server = await loop.create_server(EchoBufferedProtocol, sock=sock)
    elif mode == "streams":
        server = await asyncio.start_server(echo_stream, sock=sock, limit=256 * 1024)
    elif mode == "sock":
        server = None
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print("ready", flush=True)
    if server is not None:
        # Not serve_forever(): rloop 0.5's stops listening (the socket goes
        # away); waiting on a future serves the same on every loop.
        await loop.create_future()
    tasks = set()
    while True:
        conn, _ = await loop.sock_accept(sock)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(echo_sock(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main():
    name, mode, where = sys.argv[1:4]
    loop = loop_factory(name)()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(mode, where))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
