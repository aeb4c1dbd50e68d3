"""Network benchmarks: asyncio, uvloop, rloop and asyncloop side by side.

    python benchmarks/net.py                     # echo + memory, ~5 min
    python benchmarks/net.py --quick             # shorter runs
    python benchmarks/net.py --filter echo --markdown

echo      An echo server (benchmarks/net_server.py) in four modes --
          Protocol, BufferedProtocol, streams, sock_* -- with 1, 10 and 100
          KiB messages over 10 concurrent connections.  The load generator
          is compiled C (echo_client.c, plain epoll, built here) pinned to
          the other core than the server.  A pure-C libuv echo server
          (uv_echo.c) is the ceiling row.  Reported: round trips per second,
          and per server CPU-second (the server's utime+stime over the timed
          window, from /proc), which is what the loop itself costs and the
          figure the ratios use.
http      Servers: an aiohttp server and uvicorn + httptools with a plain
          ASGI app, each under wrk (1 thread, 10 connections, pinned to the
          other core): requests per second and per server CPU-second.
          Clients: aiohttp's ClientSession and httpx.AsyncClient fetching
          many URLs, 10 at a time, from the C libuv server in its HTTP
          mode (on the other core): requests per client CPU-second.
memory    The server's RSS per idle connection with 10 000 connections open
          (Protocol mode).

Method: every (case, loop) runs in a fresh server process; repetitions are
interleaved (every loop runs a case before the next repetition) and the
best repetition is reported, as in run.py.  A loop that fails a case is
reported as such, with its error, and the others still run.
"""

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(HERE, "build")
SERVER = os.path.join(HERE, "net_server.py")
HTTP_APPS = os.path.join(HERE, "http_apps.py")
LOOPS = ("asyncio", "uvloop", "rloop", "asyncloop")
MODES = ("protocol", "buffered", "streams", "sock")
SIZES = (1024, 10 * 1024, 100 * 1024)
CONNECTIONS = 10
SERVER_CPU = 0
CLIENT_CPU = 1


def build_tools():
    os.makedirs(BUILD, exist_ok=True)
    uv = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"], capture_output=True,
                        text=True, check=True).stdout.split()
    for name, extra in (("echo_client", []), ("uv_echo", uv)):
        src = os.path.join(HERE, name + ".c")
        out = os.path.join(BUILD, name)
        if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
            subprocess.run(["gcc", "-O2", "-o", out, src, *extra], check=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu):
    def pin():
        if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
            os.sched_setaffinity(0, {cpu})
    return pin


class Failure(Exception):
    pass


def start_server(loop, mode, where, cmd=None, cpu=SERVER_CPU):
    if cmd is not None:
        pass
    elif loop == "libuv":
        cmd = [os.path.join(BUILD, "uv_echo"), where]
    else:
        cmd = [sys.executable, SERVER, loop, mode, where]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=pinned(cpu), env=env)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        err = proc.stderr.read().strip().splitlines()
        raise Failure(err[-1] if err else f"exited with {proc.wait()}")
    return proc


def stop_server(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def echo_case(loop, mode, size, seconds):
    port = str(free_port())
    proc = start_server(loop, mode, port)
    client = os.path.join(BUILD, "echo_client")
    try:
        # Warm-up: connections made, allocators and caches settled.
        subprocess.run([client, "127.0.0.1", port, str(CONNECTIONS), str(size), "0.3"],
                       capture_output=True, preexec_fn=pinned(CLIENT_CPU), check=False)
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        out = subprocess.run(
            [client, "127.0.0.1", port, str(CONNECTIONS), str(size), str(seconds)],
            capture_output=True, text=True, preexec_fn=pinned(CLIENT_CPU))
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        if out.returncode != 0 or proc.poll() is not None:
            err = (proc.stderr.read() if proc.poll() is not None else out.stderr).strip()
            raise Failure(err.splitlines()[-1] if err else "client failed")
        n = int(out.stdout)
        return {"rps": n / wall, "per_cpu": n / cpu if cpu > 0 else float("nan")}
    finally:
        stop_server(proc)


def http_server_case(loop, lib, seconds):
    port = str(free_port())
    cmd = [sys.executable, HTTP_APPS, loop, "server", lib, port]
    proc = start_server(loop, None, None, cmd=cmd)
    url = f"http://127.0.0.1:{port}/"
    try:
        wrk = ["wrk", "-t1", "-c10", url]
        subprocess.run(wrk + ["-d1s"], capture_output=True, preexec_fn=pinned(CLIENT_CPU))
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(wrk + [f"-d{max(1, round(seconds))}s"], capture_output=True,
                             text=True, preexec_fn=pinned(CLIENT_CPU))
        cpu = cpu_seconds(proc.pid) - cpu0
        if proc.poll() is not None:
            raise Failure((proc.stderr.read().strip().splitlines() or ["server exited"])[-1])
        total = None
        rps = None
        for line in out.stdout.splitlines():
            if "requests in" in line:
                total = int(line.split()[0])
            if line.startswith("Requests/sec:"):
                rps = float(line.split()[1])
        if "Non-2xx" in out.stdout or "Socket errors" in out.stdout or total is None:
            raise Failure("wrk saw errors: " + " ".join(out.stdout.split()[-12:]))
        return {"rps": rps, "per_cpu": total / cpu if cpu > 0 else float("nan")}
    finally:
        stop_server(proc)


def http_client_case(loop, lib, n):
    port = str(free_port())
    proc = start_server("libuv", None, None,
                        cmd=[os.path.join(BUILD, "uv_echo"), port, "http"], cpu=CLIENT_CPU)
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        out = subprocess.run([sys.executable, HTTP_APPS, loop, "client", lib,
                              f"http://127.0.0.1:{port}/", str(n), "10"],
                             capture_output=True, text=True, env=env,
                             preexec_fn=pinned(SERVER_CPU))
        if out.returncode != 0:
            err = out.stderr.strip().splitlines()
            raise Failure(err[-1] if err else f"exit {out.returncode}")
        count, wall, cpu = out.stdout.split()
        return {"rps": int(count) / float(wall), "per_cpu": int(count) / float(cpu)}
    finally:
        stop_server(proc)


def memory_case(loop, nconn):
    port = free_port()
    proc = start_server(loop, "protocol", str(port))
    socks = []
    try:
        time.sleep(0.2)
        before = rss_bytes(proc.pid)
        for _ in range(nconn):
            s = socket.create_connection(("127.0.0.1", port))
            socks.append(s)
        # Every connection accepted and idle: one byte echoed on the last.
        socks[-1].sendall(b"x")
        socks[-1].recv(1)
        time.sleep(0.5)
        after = rss_bytes(proc.pid)
        if proc.poll() is not None:
            raise Failure("server exited")
        return {"bytes_per_conn": (after - before) / nconn}
    finally:
        for s in socks:
            s.close()
        stop_server(proc)


def available_loops(wanted):
    loops = []
    for name in wanted:
        mod = {"asyncio": "asyncio", "uvloop": "uvloop", "rloop": "rloop",
               "asyncloop": "asyncloop"}[name]
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        if r.returncode == 0:
            loops.append(name)
        else:
            print(f"  {name}: NOT AVAILABLE", file=sys.stderr)
    return loops


def fmt_rate(x):
    if x != x:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--filter", default="", help="echo, memory, or a mode name")
    ap.add_argument("--loops", default=",".join(LOOPS))
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--chart", metavar="PNG", help="also draw the ratios to this PNG file")
    args = ap.parse_args()
    seconds = args.seconds or (1.0 if args.quick else 2.0)
    repeat = args.repeat or (1 if args.quick else 3)
    filters = [f for f in args.filter.split(",") if f]

    def wanted(*names):
        return not filters or any(f in names for f in filters)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    build_tools()
    loops = available_loops(args.loops.split(","))
    print(f"loops: {', '.join(loops)}; {CONNECTIONS} connections, {seconds:g} s per run, "
          f"best of {repeat}", file=sys.stderr)

    results = {}
    cases = []
    if wanted("echo", *MODES):
        for mode in MODES:
            if filters and mode not in filters and "echo" not in filters:
                continue
            for size in SIZES:
                cases.append(("echo", mode, size))
    for rep in range(repeat):
        for _kind, mode, size in cases:
            rows = loops + (["libuv"] if mode == "protocol" else [])
            order = rows[rep % len(rows):] + rows[:rep % len(rows)]
            for loop in order:
                key = (mode, size, loop)
                if isinstance(results.get(key), str):
                    continue
                try:
                    r = echo_case(loop, mode, size, seconds)
                except Failure as exc:
                    results[key] = f"fails: {exc}"[:60]
                    continue
                best = results.get(key)
                if best is None or r["per_cpu"] > best["per_cpu"]:
                    results[key] = r
        print(f"  repetition {rep + 1}/{repeat} done", file=sys.stderr)

    http = {}
    http_cases = []
    if wanted("http"):
        http_cases = [("server", "aiohttp"), ("server", "uvicorn"), ("client", "aiohttp"),
                      ("client", "httpx")]
        for rep in range(repeat):
            for role, lib in http_cases:
                order = loops[rep % len(loops):] + loops[:rep % len(loops)]
                for loop in order:
                    key = (role, lib, loop)
                    if isinstance(http.get(key), str):
                        continue
                    try:
                        if role == "server":
                            r = http_server_case(loop, lib, seconds)
                        else:
                            r = http_client_case(loop, lib, 2000 if args.quick else 5000)
                    except Failure as exc:
                        http[key] = f"fails: {exc}"[:60]
                        continue
                    best = http.get(key)
                    if best is None or r["per_cpu"] > best["per_cpu"]:
                        http[key] = r

    mem = {}
    if wanted("memory"):
        n = 2000 if args.quick else 10000
        for loop in loops:
            try:
                mem[loop] = memory_case(loop, n)
            except (Failure, OSError) as exc:
                mem[loop] = f"fails: {exc}"[:60]

    print_tables(loops, cases, results, mem, args.markdown, http_cases, http)
    if args.chart:
        draw_chart(args.chart, cases, results, http_cases, http)


def draw_chart(path, cases, results, http_cases, http):
    """asyncloop's per-CPU-second ratio to each other loop, one group a case."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart", file=sys.stderr)
        return
    labels, table = [], {b: [] for b in ("uvloop", "rloop", "asyncio")}
    rows = [((mode, size), f"{mode} {size // 1024}K", results) for _, mode, size in cases]
    rows += [((role, lib), f"{lib} {role}", http) for role, lib in http_cases]
    for key, label, source in rows:
        labels.append(label)
        a = source.get((*key, "asyncloop"))
        for b in table:
            r = source.get((*key, b))
            ok = isinstance(a, dict) and isinstance(r, dict)
            table[b].append(a["per_cpu"] / r["per_cpu"] if ok else 0.0)
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 0.7), 4.5))
    width = 0.27
    for i, (b, values) in enumerate(table.items()):
        xs = [j + (i - 1) * width for j in range(len(labels))]
        ax.bar(xs, values, width, label=f"asyncloop / {b}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_ylabel("ratio per server CPU-second (> 1: asyncloop faster)")
    ax.set_title("asyncloop network benchmarks (0: the other loop failed the case)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}", file=sys.stderr)


def print_tables(loops, cases, results, mem, markdown, http_cases=(), http=None):
    def row(cells):
        if markdown:
            return "| " + " | ".join(cells) + " |"
        return "  ".join(f"{c:>14}" for c in cells)

    if cases:
        print()
        head = ["echo mode, size"] + [f"{lp} /cpu-s" for lp in loops] + ["libuv C"]
        ratios = [("asyncloop", "uvloop"), ("asyncloop", "rloop"), ("asyncloop", "asyncio"),
                  ("asyncloop", "libuv")]
        head += [f"al/{b[:5]}" for _, b in ratios]
        print(row(head))
        if markdown:
            print("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
        for _, mode, size in cases:
            cells = [f"{mode} {size // 1024} KiB"]
            for lp in loops + ["libuv"]:
                r = results.get((mode, size, lp))
                if r is None:
                    cells.append("-")
                elif isinstance(r, str):
                    cells.append(r)
                else:
                    cells.append(f"{fmt_rate(r['per_cpu'])} ({fmt_rate(r['rps'])}/s)")
            for a, b in ratios:
                ra, rb = results.get((mode, size, a)), results.get((mode, size, b))
                if isinstance(ra, dict) and isinstance(rb, dict):
                    cells.append(f"{ra['per_cpu'] / rb['per_cpu']:.2f}")
                else:
                    cells.append("-")
            print(row(cells))
        print()
        print("_round trips per server CPU-second (and per wall second); ratios per "
              "server CPU-second; best of the repetitions_")
    if http_cases:
        print()
        head = ["HTTP"] + [f"{lp} /cpu-s" for lp in loops]
        ratios = [("asyncloop", "uvloop"), ("asyncloop", "rloop"), ("asyncloop", "asyncio")]
        head += [f"al/{b[:5]}" for _, b in ratios]
        print(row(head))
        if markdown:
            print("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
        for role, lib in http_cases:
            cells = [f"{lib} {role}"]
            for lp in loops:
                r = http.get((role, lib, lp))
                if r is None:
                    cells.append("-")
                elif isinstance(r, str):
                    cells.append(r)
                else:
                    cells.append(f"{fmt_rate(r['per_cpu'])} ({fmt_rate(r['rps'])}/s)")
            for a, b in ratios:
                ra, rb = http.get((role, lib, a)), http.get((role, lib, b))
                if isinstance(ra, dict) and isinstance(rb, dict):
                    cells.append(f"{ra['per_cpu'] / rb['per_cpu']:.2f}")
                else:
                    cells.append("-")
            print(row(cells))
        print()
        print("_requests per CPU-second of the Python process under test (server or "
              "client), and per wall second; wrk or the C server on the other core_")
    if mem:
        print()
        print(row(["idle connection"] + [f"{lp} B/conn" for lp in loops] + ["al/uv"]))
        if markdown:
            print("|" + "|".join([":---"] + ["---:"] * (len(loops) + 1)) + "|")
        cells = ["RSS per connection"]
        for lp in loops:
            m = mem.get(lp)
            cells.append(m if isinstance(m, str) else f"{m['bytes_per_conn']:.0f}")
        a, b = mem.get("asyncloop"), mem.get("uvloop")
        cells.append(f"{a['bytes_per_conn'] / b['bytes_per_conn']:.2f}"
                     if isinstance(a, dict) and isinstance(b, dict) else "-")
        print(row(cells))


if __name__ == "__main__":
    main()
