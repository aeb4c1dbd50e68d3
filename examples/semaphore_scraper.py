"""A scraper class that bounds concurrency with asyncio.Semaphore.

Opening hundreds of connections at once can overwhelm the target, so
AsyncScraper only lets max_concurrent fetches run at a time, while gather()
still schedules them all up front. A local aiohttp.web server on 127.0.0.1
(port 0) plays the site: its pages sleep a little, and one always fails.
The scraper reports a failure instead of raising, and the peak concurrency
seen by the client and by the server never exceeds the limit.
"""
import asyncio

import aiohttp
from aiohttp import web


class Gauge:
    """Counts how many sections are active at once and remembers the peak."""

    def __init__(self):
        self.active = 0
        self.peak = 0

    def __enter__(self):
        self.active += 1
        self.peak = max(self.peak, self.active)

    def __exit__(self, *exc):
        self.active -= 1


server_gauge = Gauge()


async def page(request):
    n = int(request.match_info["n"])
    with server_gauge:
        await asyncio.sleep(0.02 * (1 + n % 3))
    if n == 4:
        raise web.HTTPServiceUnavailable()
    return web.Response(text=f"<title>page {n}</title>" + "." * n)


async def start_server():
    app = web.Application()
    app.add_routes([web.get("/page/{n}", page)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


class AsyncScraper:
    def __init__(self, max_concurrent=10):
        self.semaphore = asyncio.Semaphore(max_concurrent)
        self.gauge = Gauge()
        self.failures = []

    async def fetch(self, session, url):
        async with self.semaphore:  # Limit concurrent connections
            with self.gauge:
                try:
                    timeout = aiohttp.ClientTimeout(total=10)
                    async with session.get(url, timeout=timeout) as resp:
                        resp.raise_for_status()
                        return await resp.text()
                except aiohttp.ClientResponseError as e:
                    self.failures.append(f"{url}: {e.status} {e.message}")
                    return None

    async def scrape_many(self, base, paths):
        async with aiohttp.ClientSession(base) as session:
            return await asyncio.gather(*(self.fetch(session, path) for path in paths))


async def main():
    runner, base = await start_server()
    try:
        paths = [f"/page/{n}" for n in range(1, 9)]
        for limit in (3, 1):
            server_gauge.peak = 0
            scraper = AsyncScraper(max_concurrent=limit)
            results = await scraper.scrape_many(base, paths)
            print(f"max_concurrent={limit}:")
            print(f"  fetched {len([r for r in results if r])}/{len(paths)} pages successfully")
            print("  sizes:", [len(r) if r else None for r in results])
            print("  failed:", scraper.failures)
            print("  peak concurrency (client):", scraper.gauge.peak)
            print("  peak concurrency (server):", server_gauge.peak)
    finally:
        await runner.cleanup()
    print("server stopped")


asyncio.run(main())
