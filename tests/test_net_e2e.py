"""End to end: asyncio streams, servers and the real libraries users run on
asyncloop (aiohttp, httpx, uvicorn, FastAPI, websockets), each case on
asyncio's own loop and on ours.  Everything listens on 127.0.0.1 or a Unix
socket in a temporary directory; nothing reaches the internet.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import PY, pythonpath_env

DEADLINE = 60.0  # hang guard for one whole scenario


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ asyncio streams

async def _echo_lines(reader, writer):
    try:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
    finally:
        writer.close()


def test_streams_tcp(loop):
    async def main():
        server = await asyncio.start_server(_echo_lines, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello\nworld\n")
            assert await reader.readline() == b"HELLO\n"
            assert await reader.readexactly(3) == b"WOR"
            assert await reader.readuntil(b"\n") == b"LD\n"
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
        return True

    assert run(loop, main())


def test_streams_unix(loop, tmp_path):
    path = str(tmp_path / "s.sock")

    async def main():
        server = await asyncio.start_unix_server(_echo_lines, path)
        async with server:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"abc\n")
            assert await reader.readline() == b"ABC\n"
            writer.close()
            await writer.wait_closed()

    run(loop, main())


def test_streams_limit_overrun(loop):
    async def handler(reader, writer):
        writer.write(b"x" * 100 + b"\n")
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=10)
            with pytest.raises(ValueError, match="longer than limit|exceed the limit"):
                await reader.readline()
            writer.close()
            await writer.wait_closed()

    run(loop, main())


def test_streams_large_transfer(loop):
    payload = os.urandom(4 * 1024 * 1024)

    async def handler(reader, writer):
        data = await reader.readexactly(len(payload))
        writer.write(data)
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
            await writer.wait_closed()

    run(loop, main())


# ------------------------------------------------------------------- servers

def test_server_api(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, start_serving=False)
        assert server.get_loop() is loop
        assert not server.is_serving()
        await server.start_serving()
        assert server.is_serving()
        (sock,) = server.sockets
        assert sock.getsockname()[0] == "127.0.0.1"
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        assert server.sockets == ()

    run(loop, main())


def test_server_many_hosts_and_families(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, ["127.0.0.1", "::1"], 0)
        families = sorted(s.family for s in server.sockets)
        server.close()
        await server.wait_closed()
        return families

    assert run(loop, main()) == [socket.AF_INET, socket.AF_INET6]


def test_server_serve_forever_cancelled(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0.01)
        assert server.is_serving()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()

    run(loop, main())


@pytest.mark.skipif(PY < (3, 13), reason="Server.close_clients/abort_clients are new in 3.13")
@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
def test_server_close_clients(loop, method):
    lost = []

    class P(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.append(exc)

    async def main():
        server = await loop.create_server(P, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not server._clients:
            await asyncio.sleep(0.001)
        server.close()
        getattr(server, method)()
        await server.wait_closed()
        assert await reader.read() == b""
        writer.close()

    run(loop, main())
    assert lost == [None]


def test_connection_refused_leaves_no_fd(loop):
    port = free_port()

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)

    run(loop, main())  # warm-up: what a loop opens on its first run stays open
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        run(loop, main())
    assert len(os.listdir("/proc/self/fd")) <= before


def test_create_connection_ssl_false_arguments(loop):
    async def main():
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1,
                                         server_hostname="x")
        with socket.socket() as sock, pytest.raises(
                ValueError, match="host/port and sock can not be specified at the same time"):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, sock=sock)

    run(loop, main())


# ------------------------------------------------------------------- aiohttp

def test_aiohttp_server_and_client_with_websocket(loop):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def hello(request):
        return web.Response(text="hello " + request.match_info["name"])

    async def ws_echo(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data[::-1])
        return ws

    async def main():
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        app.router.add_get("/ws", ws_echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                texts = await asyncio.gather(*[
                    (await session.get(f"http://127.0.0.1:{port}/hello/{i}")).text()
                    for i in range(20)
                ])
                assert texts == [f"hello {i}" for i in range(20)]
                async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                    await ws.send_str("asyncloop")
                    msg = await ws.receive()
                    assert msg.data == "poolcnysa"
        finally:
            await runner.cleanup()

    run(loop, main())


# --------------------------------------------------------------------- httpx

def test_httpx_client(loop):
    httpx = pytest.importorskip("httpx")

    async def handler(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong")
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed its keep-alive connection
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            responses = await asyncio.gather(
                *[client.get(f"http://127.0.0.1:{port}/{i}") for i in range(10)])
        assert [r.text for r in responses] == ["pong"] * 10
        server.close()
        await server.wait_closed()

    run(loop, main())


# ----------------------------------------------------- uvicorn and FastAPI

async def _asgi_app(scope, receive, send):
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"asgi " + scope["path"].encode()})


async def _serve_uvicorn_and_get(app, path):
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        return data
    finally:
        server.should_exit = True
        await task


def test_uvicorn_in_process(loop):
    data = run(loop, _serve_uvicorn_and_get(_asgi_app, "/x"))
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert b"\r\n\r\n7\r\nasgi /x\r\n0\r\n\r\n" in data


def test_fastapi_in_process(loop):
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()

    @app.get("/items/{item}")
    async def item(item: int):
        return {"item": item, "double": item * 2}

    data = run(loop, _serve_uvicorn_and_get(app, "/items/21"))
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b'{"item":21,"double":42}')


def test_uvicorn_subprocess_with_asyncloop_loop(tmp_path):
    pytest.importorskip("uvicorn")
    (tmp_path / "app.py").write_text(
        "import asyncio\n"
        "async def app(scope, receive, send):\n"
        "    loop = type(asyncio.get_running_loop())\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body',\n"
        "                'body': (loop.__module__ + '.' + loop.__qualname__).encode()})\n")
    port = free_port()
    env = pythonpath_env()  # python -m puts the cwd (app.py) on sys.path
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
         "--port", str(port), "--loop", "asyncloop:new_event_loop", "--lifespan", "off"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    chunks = []
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
                    body = b"".join(chunks)
                    break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        assert body is not None, proc.stdout.read().decode(errors="replace")
        assert b"\r\nasyncloop.Loop\r\n0\r\n" in body, body
    finally:
        proc.terminate()
        proc.wait(30)


def test_uvicorn_subprocess_over_tls_with_asyncloop_loop(tmp_path):
    # uvicorn's command line with --ssl-keyfile/--ssl-certfile on asyncloop:
    # the server's TLS is asyncloop's C layer; the client is httpx (on
    # asyncio's loop here), trusting the test CA.
    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    keyfile, certfile = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    (tmp_path / "app.py").write_text(
        "import asyncio\n"
        "async def app(scope, receive, send):\n"
        "    loop = type(asyncio.get_running_loop())\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body',\n"
        "                'body': (loop.__module__ + '.' + loop.__qualname__ + ' '\n"
        "                         + scope['scheme']).encode()})\n")
    port = free_port()
    env = pythonpath_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
         "--port", str(port), "--loop", "asyncloop:new_event_loop", "--lifespan", "off",
         "--ssl-keyfile", str(keyfile), "--ssl-certfile", str(certfile)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        text = None
        for _ in range(300):
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/", verify=client_ctx, timeout=5)
                text = r.text
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        assert text is not None, proc.stdout.read().decode(errors="replace")
        assert text == "asyncloop.Loop https"
        # a client that does not trust the CA is refused by the handshake
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{port}/", timeout=5)
    finally:
        proc.terminate()
        proc.wait(30)


# ---------------------------------------------------------------- websockets

def test_websockets_client_and_server(loop):
    websockets = pytest.importorskip("websockets")

    async def echo(ws, *args):
        async for message in ws:
            await ws.send(message * 2)

    async def main():
        async with websockets.serve(echo, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
                await ws.send("ab")
                assert await ws.recv() == "abab"

    run(loop, main())


def test_policy_child_watcher_methods(asyncloop_mod):
    # aiohttp's test tooling calls these on 3.10-3.13.
    import warnings

    policy = asyncloop_mod.EventLoopPolicy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        watcher = policy.get_child_watcher()
        policy.set_child_watcher(watcher)
        assert policy.get_child_watcher() is watcher

