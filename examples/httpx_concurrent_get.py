"""httpx.AsyncClient: concurrent GETs with asyncio.gather.

A local aiohttp.web server on 127.0.0.1 (port 0, a free port) serves JSON
posts, each handler sleeping a little like a slow API. One AsyncClient (one
connection pool, a base_url) fetches them all concurrently; gather() returns
the results in argument order even though the later posts answer first.
"""
import asyncio

import httpx
from aiohttp import web

in_flight = 0
peak = 0


async def post(request):
    global in_flight, peak
    post_id = int(request.match_info["post_id"])
    if post_id > 5:
        raise web.HTTPNotFound()
    in_flight += 1
    peak = max(peak, in_flight)
    await asyncio.sleep(0.02 * (6 - post_id))
    in_flight -= 1
    return web.json_response({"id": post_id, "title": f"post number {post_id}"})


async def start_server():
    app = web.Application()
    app.add_routes([web.get("/posts/{post_id}", post)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def fetch_url(url, client):
    response = await client.get(url)
    return {"url": url, "status": response.status_code, "length": len(response.text)}


async def main():
    runner, base = await start_server()
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            urls = [f"/posts/{i}" for i in range(1, 6)]
            results = await asyncio.gather(*(fetch_url(url, client) for url in urls))
            for r in results:
                print(f"{r['url']}: {r['status']} ({r['length']} bytes)")
            print("requests in flight at once on the server:", peak)

            response = await client.get("/posts/3")
            print("json():", response.json())

            try:
                (await client.get("/posts/42")).raise_for_status()
            except httpx.HTTPStatusError as exc:
                print("raise_for_status:", exc.response.status_code, exc.response.reason_phrase)
    finally:
        await runner.cleanup()
    print("server stopped")


asyncio.run(main())
