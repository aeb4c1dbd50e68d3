"""UDP echo benchmark: asyncio, uvloop, rloop and asyncloop side by side.

    python benchmarks/udp.py                       # 64 B and 1 KiB, 3 repetitions
    python benchmarks/udp.py --seconds 2 --repeat 1 --loops asyncio,asyncloop

A UDP echo server (an asyncio.DatagramProtocol whose datagram_received calls
transport.sendto(data, addr), the same code on every loop) runs in its own
process pinned to one core; the load generator, compiled C
(benchmarks/udp_client.c, built here as net.py builds echo_client.c), runs
pinned to the other core and keeps several datagrams in flight on one
socket. Reported: echoes per second and per server CPU-second (the server's
utime+stime over the timed window, from /proc), with the ratios of
asyncloop to each other loop per server CPU-second. Repetitions are
interleaved and the best one is kept, as in net.py. A loop that fails is
reported in its row and the others still run.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from net import (  # noqa: E402
    BUILD,
    CLIENT_CPU,
    LOOPS,
    ROOT,
    SERVER_CPU,
    Failure,
    available_loops,
    cpu_seconds,
    fmt_rate,
    pinned,
    stop_server,
)

SIZES = (64, 1024)
INFLIGHT = 8


def build_client():
    os.makedirs(BUILD, exist_ok=True)
    src = os.path.join(HERE, "udp_client.c")
    out = os.path.join(BUILD, "udp_client")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-o", out, src], check=True)
    return out


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server (python udp.py --serve LOOP PORT) ---------------------------

class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


def serve(loop_name, port):
    from net_server import loop_factory
    loop = loop_factory(loop_name)()

    async def main():
        await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
        print("ready", flush=True)
        await asyncio.Event().wait()

    loop.run_until_complete(main())


# --- the driver ----------------------------------------------------------------

def start_server(loop, port):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", loop,
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=pinned(SERVER_CPU), env=env)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        err = proc.stderr.read().strip().splitlines()
        raise Failure(err[-1] if err else f"exited with {proc.wait()}")
    return proc


def echo_case(client, loop, size, seconds, inflight):
    port = free_udp_port()
    proc = start_server(loop, port)
    try:
        subprocess.run([client, "127.0.0.1", str(port), str(size), "0.3", str(inflight)],
                       capture_output=True, preexec_fn=pinned(CLIENT_CPU), check=False)
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        out = subprocess.run([client, "127.0.0.1", str(port), str(size), str(seconds),
                              str(inflight)], capture_output=True, text=True,
                             preexec_fn=pinned(CLIENT_CPU))
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        if out.returncode != 0 or proc.poll() is not None:
            err = (proc.stderr.read() if proc.poll() is not None else out.stderr).strip()
            raise Failure(err.splitlines()[-1] if err else "client failed")
        n = int(out.stdout)
        return {"rps": n / wall, "per_cpu": n / cpu if cpu > 0 else float("nan")}
    finally:
        stop_server(proc)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", default=",".join(LOOPS))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--inflight", type=int, default=INFLIGHT)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    client = build_client()
    loops = available_loops(args.loops.split(","))
    results = {}
    for _ in range(args.repeat):
        for size in SIZES:
            for lp in loops:
                key = (size, lp)
                if isinstance(results.get(key), str):
                    continue
                try:
                    r = echo_case(client, lp, size, args.seconds, args.inflight)
                except Failure as e:
                    results[key] = f"FAILED: {e}"
                    continue
                best = results.get(key)
                if best is None or r["per_cpu"] > best["per_cpu"]:
                    results[key] = r
    print_table(loops, results, args)


def print_table(loops, results, args):
    def row(cells):
        if args.markdown:
            return "| " + " | ".join(cells) + " |"
        return "  ".join(f"{c:>18}" for c in cells)

    ratios = [("asyncloop", "uvloop"), ("asyncloop", "rloop"), ("asyncloop", "asyncio")]
    head = ["UDP echo"] + [f"{lp} /cpu-s" for lp in loops] + [f"al/{b}" for _, b in ratios]
    print()
    print(row(head))
    if args.markdown:
        print("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
    for size in SIZES:
        cells = [f"{size} B" if size < 1024 else f"{size // 1024} KiB"]
        for lp in loops:
            r = results.get((size, lp))
            if r is None:
                cells.append("-")
            elif isinstance(r, str):
                cells.append(r)
            else:
                cells.append(f"{fmt_rate(r['per_cpu'])} ({fmt_rate(r['rps'])}/s)")
        for a, b in ratios:
            ra, rb = results.get((size, a)), results.get((size, b))
            if isinstance(ra, dict) and isinstance(rb, dict):
                cells.append(f"{ra['per_cpu'] / rb['per_cpu']:.2f}")
            else:
                cells.append("-")
        print(row(cells))
    print()
    print(f"_echoes per server CPU-second (and per wall second); {args.inflight} datagrams "
          f"in flight from a C client on the other core; ratios per server CPU-second; "
          f"best of {args.repeat}_")


if __name__ == "__main__":
    main()
