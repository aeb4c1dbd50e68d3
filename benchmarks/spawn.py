"""Subprocess benchmarks: asyncio, uvloop, rloop and asyncloop side by side.

    python benchmarks/spawn.py                 # 200 and 500 `true`, 64 MiB through cat
    python benchmarks/spawn.py --methods       # also: the raw spawn methods in C
    python benchmarks/spawn.py --floor         # also: cat's row without a loop, in C
    python benchmarks/spawn.py --markdown

spawn     N concurrent asyncio.create_subprocess_exec("true") started with
          asyncio.gather, then all awaited (wait()): wall time, best of
          --reps repetitions, each loop in a fresh process (one warm-up
          round first). Lower is better; the ratios are speed-ups
          (other loop's time / asyncloop's).
cat       64 MiB written to `cat` and read back through communicate():
          wall time, best of --reps. With that run's counts (getrusage,
          of the loop's process and of cat): CPU ms, context switches
          (voluntary / involuntary) and minor page faults; on a loaded
          machine these say more than the wall time.
floor     (--floor) the cat row without a loop and without Python
          (cat_floor.c, built here): a C parent that polls both pipes and
          reads stdout into one growing buffer, reading first when both
          are ready (and writing first, and over socketpairs as uv_spawn
          makes them for uvloop, for comparison).
methods   (--methods) the ways of spawning without any event loop or
          Python (spawn_methods.c, built here): uv_spawn, posix_spawn,
          vfork+execve, fork+execve, and CPython's subprocess.Popen
          (_posixsubprocess, vfork) from Python, for N `true` processes
          started then reaped: the measurement behind process.c's choice.

A loop that lacks subprocesses or fails is reported as such.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.join(HERE, "build")
LOOPS = ("asyncio", "uvloop", "rloop", "asyncloop")
CAT_BYTES = 64 * 1024 * 1024


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
    sys.path.insert(0, ROOT)
    import asyncloop
    return asyncloop.new_event_loop()


def worker(name, counts, reps):
    import asyncio

    loop = new_loop(name)
    asyncio.set_event_loop(loop)
    if name == "asyncio" and sys.version_info < (3, 12):
        asyncio.get_child_watcher().attach_loop(loop)

    async def spawn(n):
        t0 = time.perf_counter()
        procs = await asyncio.gather(*[asyncio.create_subprocess_exec("true")
                                       for _ in range(n)])
        await asyncio.gather(*[p.wait() for p in procs])
        return time.perf_counter() - t0

    async def cat():
        data = b"x" * CAT_BYTES
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec("cat", stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE)
        out, _ = await proc.communicate(data)
        assert len(out) == CAT_BYTES
        return time.perf_counter() - t0

    def cat_counted():
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = loop.run_until_complete(cat())
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        counts = {}
        for who, a, b in (("self", r0, r1), ("cat", c0, c1)):
            counts[who] = {
                "cpu_ms": round((b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime) * 1e3, 1),
                "vcsw": b.ru_nvcsw - a.ru_nvcsw, "ivcsw": b.ru_nivcsw - a.ru_nivcsw,
                "minflt": b.ru_minflt - a.ru_minflt}
        return wall, counts

    out = {}
    try:
        loop.run_until_complete(spawn(10))  # warm-up
        for n in counts:
            out[f"spawn{n}"] = min(loop.run_until_complete(spawn(n)) for _ in range(reps))
        out["cat"], out["cat_counts"] = min(cat_counted() for _ in range(reps))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        out["error"] = f"{type(exc).__name__}: {exc}"[:60]
    finally:
        loop.close()
    print(json.dumps(out))


def run_worker(name, counts, reps):
    cmd = [sys.executable, __file__, "--worker", name, "--reps", str(reps),
           "--n", *map(str, counts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        lines = (proc.stderr.strip().splitlines() or ["failed"])
        return {"error": lines[-1][:60]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def floor(reps):
    """cat_floor.c: lines to print, the best wall time of each variant."""
    os.makedirs(BUILD, exist_ok=True)
    src = os.path.join(HERE, "cat_floor.c")
    exe = os.path.join(BUILD, "cat_floor")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    lines = [f"\nThe cat row with no loop, C (cat_floor.c), {CAT_BYTES >> 20} MiB, best of {reps}:",
             f"  {'variant':<24}{'wall ms':>9}{'CPU ms':>8}{'cat CPU':>8}{'cat vcsw':>9}"
             f"{'ivcsw':>7}{'minflt':>8}{'polls':>7}"]
    for kind, order in (("pipe", "read-first"), ("pipe", "write-first"),
                        ("socketpair", "read-first")):
        r = subprocess.run([exe, kind, str(CAT_BYTES >> 20), str(reps), order],
                           capture_output=True, text=True, check=True)
        runs = [dict(kv.split("=") for kv in line.split()) for line in r.stdout.splitlines()]
        b = {k: float(v) for k, v in min(runs, key=lambda x: float(x["wall_ms"])).items()}
        lines.append(f"  {kind + ' ' + order:<24}{b['wall_ms']:>9.1f}"
                     f"{b['self_user_ms'] + b['self_sys_ms']:>8.1f}"
                     f"{b['cat_user_ms'] + b['cat_sys_ms']:>8.1f}{b['cat_vcsw']:>9.0f}"
                     f"{b['self_ivcsw']:>7.0f}{b['self_minflt']:>8.0f}{b['polls']:>7.0f}")
    return lines


def methods(counts, reps):
    os.makedirs(BUILD, exist_ok=True)
    src = os.path.join(HERE, "spawn_methods.c")
    exe = os.path.join(BUILD, "spawn_methods")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        uv = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv"], capture_output=True,
                            text=True, check=True).stdout.split()
        subprocess.run(["cc", "-O2", "-o", exe, src, *uv], check=True)
    rows = {}
    for m in ("uv", "posix_spawn", "vfork", "fork"):
        rows[m] = {n: min(float(subprocess.run([exe, m, str(n)], capture_output=True,
                                               text=True, check=True).stdout)
                          for _ in range(reps)) for n in counts}
    popen = {}
    for n in counts:
        best = None
        for _ in range(reps):
            t0 = time.perf_counter()
            ps = [subprocess.Popen(["/bin/true"]) for _ in range(n)]
            for p in ps:
                p.wait()
            t = time.perf_counter() - t0
            best = t if best is None else min(best, t)
        popen[n] = best
    rows["Popen (_posixsubprocess)"] = popen
    print(f"\nSpawning N `true` and reaping them, no event loop (s, best of {reps}):")
    print(f"{'method':<26}" + "".join(f"{'N=' + str(n):>10}" for n in counts))
    for m, r in rows.items():
        print(f"{m:<26}" + "".join(f"{r[n]:>10.3f}" for n in counts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--n", type=int, nargs="+", default=[200, 500])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--methods", action="store_true")
    ap.add_argument("--floor", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.n, args.reps)
        return
    results = {name: run_worker(name, args.n, args.reps) for name in LOOPS}
    cases = [f"spawn{n}" for n in args.n] + ["cat"]
    labels = {f"spawn{n}": f"spawn {n} x true" for n in args.n}
    labels["cat"] = f"{CAT_BYTES >> 20} MiB through cat"
    sep = " | " if args.markdown else "  "
    head = ["case"] + list(LOOPS) + ["vs uvloop", "vs rloop", "vs asyncio"]
    widths = [20, 12, 12, 12, 12, 10, 10, 10]
    print(f"Python {sys.version.split()[0]}; wall seconds, best of {args.reps} "
          "(ratios: other loop's time / asyncloop's, > 1 is faster)")
    print(sep.join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    if args.markdown:
        print(sep.join("-" * w for w in widths))
    for case in cases:
        row = [labels[case]]
        for name in LOOPS:
            r = results[name]
            row.append(f"{r[case]:.3f}" if case in r else ("n/a: " + r.get("error", "?"))[:12])
        ours = results["asyncloop"].get(case)
        for name in ("uvloop", "rloop", "asyncio"):
            other = results[name].get(case)
            row.append(f"{other / ours:.2f}x" if ours and other else "-")
        print(sep.join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\nThe cat row's best run, counted (getrusage; {CAT_BYTES >> 20} MiB):")
    print(f"  {'loop':<10}{'CPU ms':>8}{'cat CPU':>8}{'cat vcsw':>9}{'ivcsw':>7}{'minflt':>8}")
    for name in LOOPS:
        c = results[name].get("cat_counts")
        if c:
            print(f"  {name:<10}{c['self']['cpu_ms']:>8.1f}{c['cat']['cpu_ms']:>8.1f}"
                  f"{c['cat']['vcsw']:>9}{c['self']['ivcsw']:>7}{c['self']['minflt']:>8}")
    if args.floor:
        for line in floor(args.reps):
            print(line)
    for name in LOOPS:
        if "error" in results[name]:
            print(f"{name}: {results[name]['error']}")
    if args.methods:
        methods(args.n, args.reps)


if __name__ == "__main__":
    main()
