"""loop.metrics(), asyncloop.utilization() and the slow-callback hook (src/metrics.c).

These are asyncloop's own: asyncio's loop has no counterpart, so the tests
run on asyncloop loops only. No test asserts an upper bound on a duration:
bounds are loose (utilization below or above 0.5), or lower bounds that a
time.sleep() guarantees.
"""

import asyncio
import math
import time

import pytest

import asyncloop


@pytest.fixture
def loop():
    lp = asyncloop.new_event_loop()
    try:
        yield lp
    finally:
        if not lp.is_closed():
            lp.close()


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# ----------------------------------------------------------- the snapshot --

def test_snapshot_fields_and_immutability(loop):
    m = loop.metrics()
    assert isinstance(m, asyncloop.LoopMetrics)
    assert m.iterations == 0 and m.callbacks == 0
    assert m.idle == 0.0 and m.busy == 0.0
    assert m.longest_callback is None and m.longest_callback_duration == 0.0
    assert m.slowest_callbacks == ()
    assert m.timers_run == 0 and m.lateness_histogram == ()
    assert (m.lateness_p50, m.lateness_p90, m.lateness_p99, m.lateness_max) == (0.0,) * 4
    with pytest.raises(AttributeError):
        m.iterations = 5
    with pytest.raises(TypeError):
        m[0] = 1
    assert m.__match_args__[:3] == ("time", "loop_id", "iterations")
    assert m[2] == m.iterations


def test_counts_iterations_callbacks_and_queue_lengths(loop):
    for _ in range(10):
        loop.call_soon(lambda: None)
    h = loop.call_later(3600, lambda: None)
    loop.call_later(3600, lambda: None).cancel()
    m = loop.metrics()
    assert m.ready == 10
    assert m.timers == 1  # the cancelled one is not pending
    loop.call_soon(loop.stop)
    loop.run_forever()
    m = loop.metrics()
    assert m.ready == 0
    assert m.callbacks == 11
    assert m.iterations >= 1
    h.cancel()
    assert loop.metrics().timers == 0


def test_loop_ids_differ():
    a, b = asyncloop.new_event_loop(), asyncloop.new_event_loop()
    try:
        assert a.metrics().loop_id != b.metrics().loop_id
        assert a.metrics().loop_id == a.metrics().loop_id
    finally:
        a.close()
        b.close()


def test_metrics_of_a_closed_loop_stay_readable(loop):
    async def main():
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    before = loop.metrics()
    loop.close()
    after = loop.metrics()
    assert after.iterations == before.iterations > 0
    assert after.callbacks == before.callbacks
    assert after.idle == before.idle and after.busy == before.busy
    assert after.timers_run == before.timers_run == 1
    assert asyncloop.utilization(after).utilization == asyncloop.utilization(before).utilization


# ------------------------------------------------------------ utilization --

def test_utilization_near_zero_when_sleeping(loop):
    loop.run_until_complete(asyncio.sleep(0.3))
    u = asyncloop.utilization(loop.metrics())
    assert u.idle >= 0.2  # a lower bound only: the sleep guarantees it
    assert u.utilization < 0.5


def test_utilization_near_one_when_spinning(loop):
    async def main():
        for _ in range(10):
            loop.call_soon(spin, 0.02)
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    u = asyncloop.utilization(loop.metrics())
    assert u.active >= 0.2
    assert u.utilization > 0.5


def test_utilization_between_two_snapshots(loop):
    loop.run_until_complete(asyncio.sleep(0.2))
    first = loop.metrics()

    async def busy():
        for _ in range(10):
            spin(0.02)
            await asyncio.sleep(0)

    loop.run_until_complete(busy())
    second = loop.metrics()
    whole = asyncloop.utilization(second)
    delta = asyncloop.utilization(second, first)
    assert isinstance(delta, asyncloop.Utilization)
    assert delta.idle == pytest.approx(second.idle - first.idle)
    assert delta.active == pytest.approx(second.busy - first.busy)
    assert delta.utilization > 0.5
    assert delta.utilization > whole.utilization
    assert delta.utilization == pytest.approx(delta.active / (delta.idle + delta.active))


def test_utilization_of_an_unrun_loop_is_zero(loop):
    u = asyncloop.utilization(loop.metrics())
    assert u == (0.0, 0.0, 0.0)


def test_utilization_bad_arguments(loop):
    other = asyncloop.new_event_loop()
    try:
        with pytest.raises(TypeError):
            asyncloop.utilization(None)
        with pytest.raises(TypeError):
            asyncloop.utilization((1.0, 2.0))
        with pytest.raises(TypeError):
            asyncloop.utilization(loop.metrics(), 1.0)
        with pytest.raises(ValueError, match="another loop"):
            asyncloop.utilization(loop.metrics(), other.metrics())
        first = loop.metrics()
        second = loop.metrics()
        with pytest.raises(ValueError, match="after current"):
            asyncloop.utilization(first, second)
    finally:
        other.close()


# ---------------------------------------------------------- timer lateness --

def test_lateness_grows_when_a_callback_blocks(loop):
    async def quiet():
        for _ in range(5):
            await asyncio.sleep(0.001)

    loop.run_until_complete(quiet())
    before = loop.metrics()
    assert before.timers_run == 5
    assert sum(n for _, n in before.lateness_histogram) == 5

    async def blocked():
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, None)
        loop.call_soon(time.sleep, 0.15)  # the timer is due while this runs
        await fut

    loop.run_until_complete(blocked())
    after = loop.metrics()
    assert after.timers_run == 6
    assert after.lateness_max >= 0.13
    assert after.lateness_max > before.lateness_max
    assert after.lateness_p99 >= 0.13 * 0.75  # the bucket is within 25%
    assert after.lateness_p50 <= after.lateness_p90 <= after.lateness_p99 <= after.lateness_max
    bounds = [b for b, _ in after.lateness_histogram]
    assert bounds == sorted(bounds)
    assert bounds[-1] >= 0.13
    assert sum(n for _, n in after.lateness_histogram) == 6


def test_lateness_of_cancelled_and_nan_timers(loop):
    loop.call_later(0, lambda: None).cancel()
    loop.call_at(math.nan, lambda: None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    m = loop.metrics()
    assert m.timers_run == 1  # the NaN one, due at once: not late
    assert m.lateness_max == 0.0


# -------------------------------------------------------------- transports --

async def _echo_exchange(loop, payloads):
    handled = loop.create_future()

    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
        handled.set_result(None)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    during = loop.metrics()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = 0
    for p in payloads:
        writer.write(p)
        await writer.drain()
        want = got + len(p)
        while got < want:
            got += len(await reader.read(65536))
    open_now = loop.metrics()
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    # The server's side closes after it sees the client's EOF; 3.10's
    # Server.wait_closed() does not wait for its connections.
    await handled
    return during, open_now, got


def test_byte_and_connection_counters_match_an_echo_exchange(loop):
    payloads = [b"x" * 1000, b"y" * 100_000, b"z"]
    during, open_now, got = loop.run_until_complete(_echo_exchange(loop, payloads))
    total = sum(map(len, payloads))
    assert got == total
    assert during.servers == 1 and during.readers == 1  # the listening socket
    assert open_now.transports == 2
    m = loop.metrics()
    # Both ends are this loop's transports: each byte is sent and received twice.
    assert m.bytes_sent == 2 * total
    assert m.bytes_received == 2 * total
    assert m.connections_accepted == 1
    assert m.connections_made == 1
    assert m.transports_peak == 2
    assert m.transports == 0
    assert m.servers == 0 and m.readers == 0 and m.writers == 0


def test_byte_counters_count_pipes_and_datagrams(loop):
    import os
    import socket

    async def main():
        received = []
        done = loop.create_future()

        class Reader(asyncio.Protocol):
            def data_received(self, data):
                received.append(data)

            def connection_lost(self, exc):
                done.set_result(None)

        r, w = os.pipe()
        rt, _ = await loop.connect_read_pipe(Reader, os.fdopen(r, "rb", 0))
        wt, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(w, "wb", 0))
        wt.write(b"p" * 5000)
        wt.close()
        await done
        got = loop.create_future()

        class Echo(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if not got.done():
                    got.set_result(data)

        ut, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        with peer:
            ut.sendto(b"d" * 300, peer.getsockname())
            data, addr = peer.recvfrom(1000)
            peer.sendto(b"e" * 200, addr)
            assert await got == b"e" * 200
        ut.close()
        return b"".join(received)

    before = loop.metrics()
    assert loop.run_until_complete(main()) == b"p" * 5000
    m = loop.metrics()
    assert m.bytes_sent - before.bytes_sent == 5000 + 300
    assert m.bytes_received - before.bytes_received == 5000 + 200


def test_readers_and_writers_now(loop):
    import socket

    a, b = socket.socketpair()
    try:
        loop.add_reader(a, lambda: None)
        loop.add_writer(b, lambda: None)
        loop.add_writer(a, lambda: None)
        m = loop.metrics()
        assert (m.readers, m.writers) == (1, 2)
        loop.remove_reader(a)
        loop.remove_writer(a)
        loop.remove_writer(b)
        m = loop.metrics()
        assert (m.readers, m.writers) == (0, 0)
    finally:
        a.close()
        b.close()


# -------------------------------------------------------- slow callbacks --

def test_no_callback_is_timed_by_default(loop):
    loop.call_soon(time.sleep, 0.02)
    loop.call_soon(loop.stop)
    loop.run_forever()
    m = loop.metrics()
    assert m.longest_callback is None
    assert m.slowest_callbacks == ()


def test_hook_fires_above_the_threshold_and_never_below(loop):
    calls = []
    loop.set_slow_callback_hook(0.05, lambda what, dt: calls.append((what, dt)))
    for _ in range(50):
        loop.call_soon(lambda: None)
    loop.call_soon(time.sleep, 0.1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert any("sleep" in what and dt >= 0.1 for what, dt in calls)
    assert all(dt >= 0.05 for _, dt in calls)
    assert all(isinstance(what, str) for what, _ in calls)
    m = loop.metrics()
    assert "sleep" in m.longest_callback
    assert m.longest_callback_duration >= 0.1
    durations = [dt for dt, _ in m.slowest_callbacks]
    assert len(durations) == 5
    assert durations == sorted(durations, reverse=True)
    # Off again: not called any more.
    loop.set_slow_callback_hook(None)
    n = len(calls)
    loop.call_soon(time.sleep, 0.06)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(calls) == n


def test_hook_shows_the_task_as_asyncio_does(loop):
    calls = []
    loop.set_slow_callback_hook(0.03, lambda what, dt: calls.append(what))

    async def blocker():
        time.sleep(0.05)

    loop.run_until_complete(blocker())
    assert any(what.startswith("<Task") and "blocker" in what for what in calls)


def test_threshold_alone_records_the_slowest(loop):
    loop.set_slow_callback_hook(0.0)
    loop.call_soon(time.sleep, 0.03)
    loop.call_soon(loop.stop)
    loop.run_forever()
    m = loop.metrics()
    assert "sleep" in m.longest_callback
    assert m.longest_callback_duration >= 0.03


def test_debug_mode_records_the_slowest(loop):
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0
    loop.call_soon(time.sleep, 0.03)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert "sleep" in loop.metrics().longest_callback


def test_hook_that_raises_goes_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def hook(what, dt):
        raise ZeroDivisionError("boom")

    loop.set_slow_callback_hook(0.0, hook)
    ran = []
    loop.call_soon(ran.append, 1)
    loop.call_soon(ran.append, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert ran == [1, 2]  # the loop went on
    assert len(contexts) == 3
    ctx = contexts[0]
    assert ctx["message"] == "Exception in slow callback hook"
    assert isinstance(ctx["exception"], ZeroDivisionError)
    assert ctx["hook"] is hook
    assert isinstance(ctx["handle"], asyncloop._core.Handle)


def test_hook_that_raises_systemexit_ends_the_run(loop):
    def hook(what, dt):
        raise SystemExit(3)

    loop.set_slow_callback_hook(0.0, hook)
    loop.call_soon(lambda: None)
    with pytest.raises(SystemExit):
        loop.run_forever()


@pytest.mark.parametrize(
    "args, exc",
    [
        ((-1, print), ValueError),
        ((-0.001,), ValueError),
        ((math.nan, print), ValueError),
        (("1", print), TypeError),
        ((True, print), TypeError),
        ((0.1, 42), TypeError),
        ((None, print), TypeError),
        ((), TypeError),
        ((0.1, print, 3), TypeError),
    ],
)
def test_hook_bad_arguments(loop, args, exc):
    with pytest.raises(exc):
        loop.set_slow_callback_hook(*args)
    # Nothing was turned on.
    loop.call_soon(time.sleep, 0.001)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert loop.metrics().longest_callback is None


def test_hook_keywords(loop):
    calls = []
    loop.set_slow_callback_hook(threshold=0.0, hook=lambda w, d: calls.append(w))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls
    with pytest.raises(TypeError):
        loop.set_slow_callback_hook(0.1, fn=print)
    with pytest.raises(TypeError):
        loop.set_slow_callback_hook(0.1, threshold=0.2)


# ------------------------------------------------- python -m asyncloop --stats --

STATS_SCRIPT = """
import asyncio, sys, time
async def main():
    srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    r, w = await asyncio.open_connection(*srv.sockets[0].getsockname())
    for _ in range(5):
        await asyncio.sleep(0.001)
    time.sleep(0.05)
    w.close()
    srv.close()
    await srv.wait_closed()
asyncio.run(main())
print("ran", sys.argv[1:])
"""


def test_stats_report(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "script.py"
    script.write_text(STATS_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run(
        [sys.executable, "-m", "asyncloop", "--stats", str(script), "a", "b"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran ['a', 'b']\n"
    err = proc.stderr
    for label in ("wall time", "utilization", "iterations", "callbacks", "timer lateness",
                  "p50", "p90", "p99", "(5 timers)", "peak transports  2",
                  "slowest callbacks:"):
        assert label in err, err
    slow = err.split("slowest callbacks:\n", 1)[1].splitlines()
    assert len(slow) == 5
    assert "main()" in slow[0]  # the task step that slept 50 ms


def test_stats_report_after_a_failing_script(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "script.py"
    script.write_text("import asyncio\nasyncio.run(asyncio.sleep(0))\nraise SystemExit(4)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, "-m", "asyncloop", "--stats", str(script)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 4
    assert "asyncloop --stats (1 loop)" in proc.stderr


# --------------------------------------------- examples/metrics_prometheus.py --

def test_prometheus_example_is_scraped(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    pytest.importorskip("prometheus_client", reason="tests/requirements.txt: prometheus_client")
    pytest.importorskip("aiohttp", reason="tests/requirements.txt: aiohttp")
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [sys.executable, str(root / "examples" / "metrics_prometheus.py"),
         "--serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), (line, proc.stderr.read())
        url = line.split()[1]
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            first = resp.read().decode()
        with urllib.request.urlopen(url, timeout=30) as resp:
            second = resp.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err

    def value(text, name):
        for ln in text.splitlines():
            if ln.startswith(name + " "):
                return float(ln.split()[1])
        raise AssertionError(f"{name} not in {text}")

    assert "# TYPE asyncloop_iterations_total counter" in first
    assert "# TYPE asyncloop_timer_lateness_seconds histogram" in first
    assert 'asyncloop_timer_lateness_seconds_bucket{le="+Inf"}' in first
    assert value(first, "asyncloop_servers") == 1
    assert value(first, "asyncloop_accepted_connections_total") == 1
    # The second scrape sees the first one's connection and bytes.
    assert value(second, "asyncloop_accepted_connections_total") == 2
    assert value(second, "asyncloop_sent_bytes_total") > value(first, "asyncloop_sent_bytes_total")
    assert value(second, "asyncloop_iterations_total") > value(first, "asyncloop_iterations_total")
    assert 0.0 <= value(second, "asyncloop_utilization") <= 1.0


def test_hook_may_turn_itself_off(loop):
    calls = []

    def hook(what, dt):
        calls.append(what)
        loop.set_slow_callback_hook(None)

    loop.set_slow_callback_hook(0.0, hook)
    for _ in range(3):
        loop.call_soon(lambda: None)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(calls) == 1


def test_hook_fires_in_debug_mode_too(loop):
    calls = []
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0
    loop.set_slow_callback_hook(0.02, lambda what, dt: calls.append(dt))
    loop.call_soon(time.sleep, 0.03)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls and all(dt >= 0.02 for dt in calls)
