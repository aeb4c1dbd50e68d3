"""An aiohttp server exposing asyncloop's loop metrics at /metrics.

The Prometheus text format is made by prometheus_client (from PyPI) with a
custom collector that reads loop.metrics() at each scrape: the counters cost
the loop nothing between scrapes.

    python examples/metrics_prometheus.py --serve [--port 8080]
        serve until Ctrl-C (GET /metrics, GET / says hello)
    python examples/metrics_prometheus.py
        start on a free port of 127.0.0.1, make a few requests, scrape
        /metrics once and print the metric names found (a self-test)

It always runs on an asyncloop loop (asyncloop.run), whatever the policy.
"""

import argparse
import asyncio

from aiohttp import ClientSession, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

import asyncloop


class LoopCollector:
    """prometheus_client collector over one asyncloop loop's metrics()."""

    def __init__(self, loop):
        self.loop = loop
        self.previous = None  # utilization since the last scrape

    def collect(self):
        m = self.loop.metrics()
        util = asyncloop.utilization(m, self.previous).utilization
        self.previous = m

        def counter(name, doc, value):
            return CounterMetricFamily(f"asyncloop_{name}", doc, value=value)

        def gauge(name, doc, value):
            return GaugeMetricFamily(f"asyncloop_{name}", doc, value=value)

        yield counter("iterations", "Loop iterations.", m.iterations)
        yield counter("callbacks", "Callbacks run.", m.callbacks)
        yield counter("idle_seconds", "Seconds blocked in poll.", m.idle)
        yield counter("busy_seconds", "Seconds running callbacks.", m.busy)
        yield gauge("utilization", "Busy / (busy + idle) since the last scrape.", util)
        yield gauge("ready_callbacks", "Callbacks in the ready queue.", m.ready)
        yield gauge("pending_timers", "Pending timers.", m.timers)
        yield gauge("open_transports", "Open transports.", m.transports)
        yield gauge("open_transports_peak", "Most transports open at once.", m.transports_peak)
        yield gauge("servers", "Sockets being served.", m.servers)
        yield gauge("readers", "Fds watched for reading.", m.readers)
        yield gauge("writers", "Fds watched for writing.", m.writers)
        yield counter("received_bytes", "Bytes received by the transports.", m.bytes_received)
        yield counter("sent_bytes", "Bytes sent by the transports.", m.bytes_sent)
        yield counter("accepted_connections", "Connections accepted.", m.connections_accepted)
        yield counter("made_connections", "Connections made.", m.connections_made)
        yield gauge("longest_callback_seconds", "The slowest timed callback.",
                    m.longest_callback_duration)
        buckets, seen = [], 0
        for bound, n in m.lateness_histogram:
            seen += n
            buckets.append((repr(bound), seen))
        buckets.append(("+Inf", m.timers_run))
        yield HistogramMetricFamily("asyncloop_timer_lateness_seconds",
                                    "How late timers ran after their deadline.", buckets=buckets)


def make_app(loop):
    registry = CollectorRegistry()
    registry.register(LoopCollector(loop))

    async def metrics(request):
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def hello(request):
        return web.Response(text="hello\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", hello)
    return app


async def start(host, port):
    loop = asyncio.get_running_loop()
    # Time each callback too, so that the slowest one is known (off by default).
    loop.set_slow_callback_hook(0.0)
    runner = web.AppRunner(make_app(loop))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{host}:{port}"


async def serve(host, port):
    runner, url = await start(host, port)
    print(f"serving {url}/metrics", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def self_test():
    runner, url = await start("127.0.0.1", 0)
    try:
        async with ClientSession() as session:
            for _ in range(3):
                async with session.get(f"{url}/") as resp:
                    assert await resp.text() == "hello\n"
            await asyncio.sleep(0.01)
            async with session.get(f"{url}/metrics") as resp:
                print("status", resp.status, resp.content_type)
                text = await resp.text()
    finally:
        await runner.cleanup()
    values = {}
    for line in text.splitlines():
        if line.startswith("asyncloop_") and "{" not in line:
            name, value = line.split(" ")
            values[name] = float(value)
    for name in sorted(values):
        print(name)
    print("requests seen:", values["asyncloop_accepted_connections_total"] >= 1)
    print("bytes counted:", values["asyncloop_received_bytes_total"] > 0)
    print("timers counted:", 'asyncloop_timer_lateness_seconds_bucket{le="+Inf"}' in text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="serve until interrupted")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    try:
        if args.serve:
            asyncloop.run(serve(args.host, args.port))
        else:
            asyncloop.run(self_test())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
