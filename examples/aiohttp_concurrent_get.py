"""aiohttp: concurrent GETs through one ClientSession with asyncio.gather.

The script serves a small aiohttp.web app on 127.0.0.1 (port 0, so the OS
picks a free port) whose handlers sleep to stand in for slow I/O. The client
shares one ClientSession (and its connection pool) across all requests and
gathers them: the responses come back in argument order, and the server sees
every request in flight at the same time.
"""
import asyncio

import aiohttp
from aiohttp import web

in_flight = 0
peak = 0


async def user(request):
    global in_flight, peak
    user_id = int(request.match_info["user_id"])
    in_flight += 1
    peak = max(peak, in_flight)
    await asyncio.sleep(0.05 * (4 - user_id))  # later users answer sooner
    in_flight -= 1
    return web.json_response({"id": user_id, "name": f"User {user_id}"})


async def page(request):
    await asyncio.sleep(0.02)
    return web.Response(text="<html><body>" + "x" * 100 + "</body></html>")


async def start_server():
    app = web.Application()
    app.add_routes([web.get("/users/{user_id}", user), web.get("/html", page)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def fetch_url(session, base, path):
    async with session.get(base + path) as response:
        body = await response.text()
        return {"path": path, "status": response.status, "size": len(body)}


async def fetch_json(session, base, path):
    async with session.get(base + path) as response:
        response.raise_for_status()
        return await response.json()


async def main():
    runner, base = await start_server()
    try:
        async with aiohttp.ClientSession() as session:
            paths = ["/html", "/users/1", "/nothing-here"]
            results = await asyncio.gather(*(fetch_url(session, base, p) for p in paths))
            for r in results:
                print(f'{r["path"]}: status={r["status"]}, size={r["size"]}')

            users = await asyncio.gather(*(fetch_json(session, base, f"/users/{i}")
                                           for i in (1, 2, 3)))
            print("users in argument order:", [u["name"] for u in users])
            print("requests in flight at once on the server:", peak)

            try:
                await fetch_json(session, base, "/missing")
            except aiohttp.ClientResponseError as exc:
                print("raise_for_status:", exc.status, exc.message)
    finally:
        await runner.cleanup()
    print("server stopped")


asyncio.run(main())
