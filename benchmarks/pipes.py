"""Pipe benchmark: asyncio, uvloop, rloop and asyncloop side by side.

    python benchmarks/pipes.py                  # read and write, 3 repetitions
    python benchmarks/pipes.py --quick          # smaller transfers
    python benchmarks/pipes.py --markdown

read    A child process (pipe_peer.c, compiled here, pinned to the other core)
        writes BYTES into a pipe as fast as it can, in 1 MiB writes; the loop
        under test reads it with loop.connect_read_pipe() and a Protocol that
        counts what data_received() gets, until EOF.
write   The loop writes BYTES with loop.connect_write_pipe() and a Protocol
        that writes 256 KiB chunks whenever it is not paused (flow control),
        then closes the transport; the child reads until EOF.

Reported: MB/s (wall) and MB per CPU-second of the process under test (its
utime+stime over the transfer, time.process_time()), which is what the loop
costs and what the ratios use.  Each (case, loop) runs in a fresh process
pinned to one core; repetitions are interleaved and the best is kept.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from net import BUILD, LOOPS, available_loops, pinned  # noqa: E402

CASES = ("read", "write")
LOOP_CPU = 0
PEER_CPU = 1
CHUNK = 256 * 1024


def build_peer():
    os.makedirs(BUILD, exist_ok=True)
    src = os.path.join(HERE, "pipe_peer.c")
    out = os.path.join(BUILD, "pipe_peer")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-o", out, src], check=True)
    return out


# ------------------------------------------------------------ child side --

def new_loop(name):
    if name == "asyncio":
        import asyncio
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop
        return rloop.new_event_loop()
    import asyncloop
    return asyncloop.new_event_loop()


def child(loop_name, case, nbytes, peer):
    import asyncio

    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)

    class Reader(asyncio.Protocol):
        def __init__(self):
            self.n = 0
            self.done = loop.create_future()

        def data_received(self, data):
            self.n += len(data)

        def eof_received(self):
            pass

        def connection_lost(self, exc):
            if not self.done.done():
                self.done.set_result(exc)

    class Writer(asyncio.Protocol):
        def __init__(self):
            self.sent = 0
            self.chunk = b"x" * CHUNK
            self.paused = False
            self.done = loop.create_future()
            self.transport = None
            self.closing = False

        def connection_made(self, transport):
            self.transport = transport

        def pump(self):
            t = self.transport
            while not self.paused and self.sent < nbytes:
                t.write(self.chunk)
                self.sent += CHUNK
            if self.sent >= nbytes and not self.closing:
                # Not from inside resume_writing(): asyncio's write pipe
                # (and rloop's) lose a buffer refilled there if close()
                # comes in the same call.
                self.closing = True
                loop.call_soon(t.close)

        def pause_writing(self):
            self.paused = True

        def resume_writing(self):
            self.paused = False
            self.pump()

        def connection_lost(self, exc):
            if not self.done.done():
                self.done.set_result(exc)

    async def run_read():
        proc = subprocess.Popen([peer, "w", str(nbytes)], stdout=subprocess.PIPE,
                                preexec_fn=pinned(PEER_CPU))
        c0, t0 = time.process_time(), time.perf_counter()
        transport, proto = await loop.connect_read_pipe(Reader, proc.stdout)
        await proto.done
        c1, t1 = time.process_time(), time.perf_counter()
        proc.wait()
        if proto.n != nbytes:
            raise RuntimeError(f"read {proto.n} bytes, not {nbytes}")
        return t1 - t0, c1 - c0

    async def run_write():
        proc = subprocess.Popen([peer, "r"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=pinned(PEER_CPU))
        c0, t0 = time.process_time(), time.perf_counter()
        transport, proto = await loop.connect_write_pipe(Writer, proc.stdin)
        proto.pump()
        await proto.done
        c1 = time.process_time()
        got = proc.stderr.read()  # the peer's count, once it has read all
        t1 = time.perf_counter()
        proc.wait()
        if int(got) != proto.sent:
            raise RuntimeError(f"peer read {got!r} bytes, not {proto.sent}")
        return t1 - t0, c1 - c0

    try:
        wall, cpu = loop.run_until_complete(run_read() if case == "read" else run_write())
    finally:
        loop.close()
    print(json.dumps({"wall": wall, "cpu": cpu, "bytes": nbytes}))


# ----------------------------------------------------------- parent side --

def run_case(loop, case, nbytes, peer):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, __file__, "--child", loop, case, str(nbytes), peer],
                       capture_output=True, text=True, env=env, preexec_fn=pinned(LOOP_CPU),
                       timeout=600)
    if r.returncode != 0:
        err = r.stderr.strip().splitlines()
        last = err[-1] if err else f"exit {r.returncode}"
        if "NotImplementedError" in last:
            return "not implemented"
        return "failed: " + last[:60]
    d = json.loads(r.stdout.strip().splitlines()[-1])
    mb = d["bytes"] / 1e6
    return {"mbps": mb / d["wall"], "per_cpu": mb / max(d["cpu"], 1e-9)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--loops", default=",".join(LOOPS))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--bytes", type=int, default=None)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("LOOP", "CASE", "BYTES", "PEER"))
    args = ap.parse_args()
    if args.child:
        name, case, nbytes, peer = args.child
        child(name, case, int(nbytes), peer)
        return
    peer = build_peer()
    nbytes = args.bytes or ((512 if args.quick else 4096) << 20)
    repeat = args.repeat or (1 if args.quick else 3)
    loops = available_loops(args.loops.split(","))
    cases = [c for c in args.cases.split(",") if c]
    results = {}
    for rep in range(repeat):
        for case in cases:
            for lp in loops:
                r = run_case(lp, case, nbytes, peer)
                print(f"  [{rep + 1}/{repeat}] {case:5} {lp:9} "
                      + (r if isinstance(r, str) else
                         f"{r['mbps']:8.0f} MB/s {r['per_cpu']:8.0f} MB/cpu-s"),
                      file=sys.stderr)
                best = results.get((case, lp))
                if isinstance(r, dict) and (not isinstance(best, dict)
                                            or r["per_cpu"] > best["per_cpu"]):
                    results[(case, lp)] = r
                elif best is None:
                    results[(case, lp)] = r
    print_table(loops, cases, results, nbytes, args.markdown)


def print_table(loops, cases, results, nbytes, markdown):
    def row(cells):
        if markdown:
            return "| " + " | ".join(cells) + " |"
        return "  ".join(f"{c:>20}" for c in cells)

    ratios = [("asyncloop", "uvloop"), ("asyncloop", "rloop"), ("asyncloop", "asyncio")]
    head = ["pipe"] + [f"{lp} MB/cpu-s (MB/s)" for lp in loops]
    head += [f"al/{b[:5]}" for _, b in ratios]
    print()
    print(row(head))
    if markdown:
        print("|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|")
    for case in cases:
        cells = [f"{case} {nbytes >> 20} MiB"]
        for lp in loops:
            r = results.get((case, lp))
            if r is None:
                cells.append("-")
            elif isinstance(r, str):
                cells.append(r)
            else:
                cells.append(f"{r['per_cpu']:.0f} ({r['mbps']:.0f})")
        for a, b in ratios:
            ra, rb = results.get((case, a)), results.get((case, b))
            if isinstance(ra, dict) and isinstance(rb, dict):
                cells.append(f"{ra['per_cpu'] / rb['per_cpu']:.2f}")
            else:
                cells.append("-")
        print(row(cells))
    print()
    print("_MB per CPU-second of the process under test (and MB per wall second); "
          "ratios per CPU-second; best of the repetitions; the peer (C) on the other core_")


if __name__ == "__main__":
    main()
