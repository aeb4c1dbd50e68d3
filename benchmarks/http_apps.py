"""HTTP servers and clients for benchmarks/net.py, the same code on every loop.

    python http_apps.py LOOP server aiohttp|uvicorn PORT
        serves "Hello, world!" on 127.0.0.1:PORT; prints "ready"
    python http_apps.py LOOP client aiohttp|httpx URL N CONCURRENCY
        fetches URL N times, CONCURRENCY at a time; prints
        "<requests> <wall seconds> <cpu seconds>"
"""

import asyncio
import sys
import time

from net_server import loop_factory

BODY = b"Hello, world!"


async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": BODY})


async def serve_aiohttp(port):
    from aiohttp import web

    async def hello(request):
        return web.Response(body=BODY, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


async def serve_uvicorn(port):
    import uvicorn

    config = uvicorn.Config(asgi_app, host="127.0.0.1", port=port, http="httptools",
                            lifespan="off", access_log=False, log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await task


async def fetch_all(lib, url, n, concurrency):
    sem = asyncio.Semaphore(concurrency)
    if lib == "aiohttp":
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async def one():
                async with sem, session.get(url) as r:
                    assert await r.read() == BODY

            await asyncio.gather(*[one() for _ in range(n)])
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(limits=limits) as client:
            async def one():
                async with sem:
                    r = await client.get(url)
                    assert r.content == BODY

            await asyncio.gather(*[one() for _ in range(n)])


def main():
    loop_name, role, lib = sys.argv[1:4]
    loop = loop_factory(loop_name)()
    asyncio.set_event_loop(loop)
    try:
        if role == "server":
            port = int(sys.argv[4])
            serve = serve_aiohttp if lib == "aiohttp" else serve_uvicorn
            loop.run_until_complete(serve(port))
        else:
            url, n, concurrency = sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
            # Warm-up: connections, imports, caches.
            loop.run_until_complete(fetch_all(lib, url, min(200, n), concurrency))
            t0, c0 = time.perf_counter(), time.process_time()
            loop.run_until_complete(fetch_all(lib, url, n, concurrency))
            print(n, time.perf_counter() - t0, time.process_time() - c0)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
