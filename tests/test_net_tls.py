"""TLS over the C stream transport (asyncio.sslproto on top, as asyncio's
selector loop does), each case on asyncio's own loop and on ours, with
certificates made by trustme for 127.0.0.1.
"""

import asyncio
import ssl

import pytest

trustme = pytest.importorskip("trustme")

DEADLINE = 60.0


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))


@pytest.fixture(scope="module")
def tls():
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def _upper(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


def test_tls_streams(loop, tls):
    server_ctx, client_ctx = tls

    async def main():
        server = await asyncio.start_server(_upper, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            assert writer.get_extra_info("ssl_object").version().startswith("TLS")
            writer.write(b"secret\n" * 1000)
            for _ in range(1000):
                assert await reader.readline() == b"SECRET\n"
            writer.close()
            await writer.wait_closed()

    run(loop, main())


def test_tls_bad_certificate_is_refused(loop, tls):
    server_ctx, _ = tls

    async def main():
        server = await asyncio.start_server(_upper, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            untrusting = ssl.create_default_context()  # does not know trustme's CA
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=untrusting)

    run(loop, main())


def test_start_tls_upgrade(loop, tls):
    server_ctx, client_ctx = tls

    async def handler(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"OK\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        await _upper(reader, writer)

    async def main():
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"OK\n"
            await writer.start_tls(client_ctx, server_hostname="127.0.0.1")
            writer.write(b"now private\n")
            assert await reader.readline() == b"NOW PRIVATE\n"
            writer.close()
            await writer.wait_closed()

    if not hasattr(asyncio.StreamWriter, "start_tls"):
        pytest.skip("StreamWriter.start_tls is new in 3.11")
    run(loop, main())


def test_aiohttp_https(loop, tls):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    server_ctx, client_ctx = tls

    async def hello(request):
        return web.Response(text="over tls")

    async def main():
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"https://127.0.0.1:{port}/", ssl=client_ctx) as r:
                    assert await r.text() == "over tls"
        finally:
            await runner.cleanup()

    run(loop, main())
