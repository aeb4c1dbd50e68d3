"""Benchmark asyncloop against asyncio, uvloop and rloop, side by side.

    python benchmarks/run.py              # full suite, ~2-4 minutes
    python benchmarks/run.py --quick      # smoke run, ~30 s
    python benchmarks/run.py --filter call_soon,examples --markdown

Three parts, each run on every loop that can be imported:

* micro benchmarks (micro.py): throughput in operations per second;
* memory benchmarks (micro.py): bytes that 100 000 pending timers / pending
  call_soon callbacks cost, as RSS and as tracemalloc deltas;
* the tutorial scripts in examples/*.py, timed as whole processes:
  `python script.py` (asyncio), `python benchmarks/uvloop_run.py script.py`
  (uvloop; with --rloop: rloop) and `python -m asyncloop script.py`
  (asyncloop).

A loop that fails a benchmark (or lacks what it needs) gets FAILED-style
cells in that row only; the run goes on.

Several CPythons: `--summary a.json b.json ...` prints, from the JSON of
earlier runs (one per CPython: `make bench VERSIONS="3.10 3.11"`), one table
of asyncloop's ratios per version.

Method.  Every (benchmark, loop) measurement runs in a fresh subprocess, so
no loop inherits another's heap, threads or imported modules, and a crash is
contained and reported.  The runs are repeated and interleaved -- repetition
k runs every benchmark on every loop before repetition k+1 starts, with the
loop order rotated -- so that slow drift of a loaded machine (other jobs,
CPU frequency, noisy neighbours on a VM) hits all loops alike instead of
whichever happened to run last.  Throughput reports the BEST run (highest
ops/s): noise on a shared machine only ever makes a run slower, so the best
run is the closest estimate of what the code itself costs; medians are kept
in the JSON too.  Example scripts likewise report the best (lowest) wall
time.  Memory reports the MEDIAN, since its noise (page and arena
granularity) goes both ways.

Results: a table on stdout (Markdown with --markdown), and
benchmarks/results/bench-<date>.json / .png (also copied to latest.json /
latest.png) with machine, CPU model, Python, uvloop, libuv versions and
every sample.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import micro  # noqa: E402  (the registry only; it imports no loop)

MICRO = os.path.join(HERE, "micro.py")
UVLOOP_RUN = os.path.join(HERE, "uvloop_run.py")
RESULTS = os.path.join(HERE, "results")
EXAMPLES = os.path.join(ROOT, "examples")

WORKER_TIMEOUT = 180      # seconds; a hung loop must not hang the suite
EXAMPLE_TIMEOUT = 60

# Repetitions (separate processes) and timed runs inside each process.
FULL = {"repeat": 5, "inner": 2, "mem_repeat": 3, "ex_repeat": 5}
QUICK = {"repeat": 2, "inner": 1, "mem_repeat": 1, "ex_repeat": 1}

SHORT = {"asyncio": "aio", "uvloop": "uv", "rloop": "rl", "asyncloop": "al"}


def log(msg="", end="\n"):
    print(msg, end=end, file=sys.stderr, flush=True)


class Progress:
    """One self-overwriting status line on a terminal; on a pipe or a log
    file (make, CI) one line per repetition instead of one per process."""

    def __init__(self, total):
        self.total, self.done, self.phase = total, 0, None
        self.tty = sys.stderr.isatty()

    def step(self, phase, what):
        self.done += 1
        if self.tty:
            log(f"\r\033[K  [{self.done}/{self.total}] {what}", end="")
        elif phase != self.phase:
            log(f"  {phase} (run {self.done} of {self.total}) ...")
        self.phase = phase

    def note(self, msg):
        log(("\n" if self.tty else "") + msg)

    def finish(self):
        if self.tty:
            log("\r\033[K", end="")


# --------------------------------------------------------------------------
# Subprocesses
# --------------------------------------------------------------------------

class Failure(Exception):
    """A worker that crashed, raised, hung or printed nonsense."""

    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind          # "error", "crash" or "timeout"
        self.detail = detail


def describe_exit(rc):
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def tail(text, lines=25):
    return "\n".join(text.strip().splitlines()[-lines:])


def run_process(cmd, env, timeout, cwd=ROOT):
    """Run cmd; return (stdout, seconds).  Raise Failure on any problem."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise Failure("timeout", f"no exit after {timeout} s\n{tail(err)}".rstrip()) from e
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        kind = "crash" if p.returncode < 0 else "error"
        raise Failure(kind, f"{describe_exit(p.returncode)}\n{tail(p.stderr)}".rstrip())
    return p.stdout, elapsed


def run_worker(args, env, timeout=WORKER_TIMEOUT):
    out, _ = run_process([sys.executable, MICRO, *args], env, timeout)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError) as e:
        raise Failure("error", f"worker printed no result: {out[-500:]!r}") from e


# --------------------------------------------------------------------------
# Which loops are there
# --------------------------------------------------------------------------

def child_env():
    """The environment for all subprocesses, plus asyncloop's probe result
    (its info, or the Failure explaining why it cannot be imported).

    The in-place build (repo root on PYTHONPATH) is preferred, since that is
    what `make` builds; if the repo's package cannot be imported (not built
    yet) but an installed asyncloop can, that one is used instead.
    """
    base = dict(os.environ)
    inplace = dict(base)
    inplace["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, base.get("PYTHONPATH")) if p)
    try:
        return inplace, run_worker(["probe", "asyncloop"], inplace, 60)
    except Failure as first:
        try:
            return base, run_worker(["probe", "asyncloop"], base, 60)
        except Failure:
            return inplace, first


def probe_loops(wanted):
    """Returns (env, {loop: info} for usable loops, {loop: why} for the rest)."""
    env, asyncloop_probe = child_env()
    infos, missing = {}, {}
    for name in wanted:
        try:
            if name != "asyncloop":
                infos[name] = run_worker(["probe", name], env, 60)
            elif isinstance(asyncloop_probe, Failure):
                raise asyncloop_probe
            else:
                infos[name] = asyncloop_probe
        except Failure as f:
            missing[name] = f.detail
    return env, infos, missing


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

def rotated(loops, k):
    k %= len(loops)
    return loops[k:] + loops[:k]


def run_micro(benches, loops, env, cfg, quick):
    """Returns {bench: {loop: record}}, record having "samples" or "error"."""
    res = {b.name: {lp: {} for lp in loops} for b in benches}
    timed = [b for b in benches if b.kind != "memory"]
    mem = [b for b in benches if b.kind == "memory"]
    plan = [("throughput", timed, cfg["repeat"]), ("memory", mem, cfg["mem_repeat"])]
    progress = Progress(sum(len(bs) * len(loops) * r for _, bs, r in plan))
    for phase, group, repeat in plan:
        for rep in range(repeat):
            for b in group:
                size = b.quick if quick else b.full
                for loop in rotated(loops, rep):
                    rec = res[b.name][loop]
                    progress.step(f"{phase} repetition {rep + 1}/{repeat}", f"{b.name} on {loop}")
                    if "error" in rec:
                        continue      # it failed once; don't spend time on it
                    args = ["run", b.name, loop, str(size), str(cfg["inner"])]
                    try:
                        out = run_worker(args, env)
                    except Failure as f:
                        rec["error"] = f.kind
                        rec["detail"] = f"$ {os.path.relpath(MICRO)} {' '.join(args)}\n{f.detail}"
                        progress.note(f"  !! {b.name} on {loop}: {f.kind}: "
                                      f"{f.detail.splitlines()[0]}")
                        continue
                    rec["size"] = size
                    if b.kind == "memory":
                        rec.setdefault("samples", []).append(out)
                    else:
                        rec.setdefault("samples", []).extend(
                            out["ops"] / t for t in out["times"])
    progress.finish()
    for b in benches:
        for loop in loops:
            rec = res[b.name][loop]
            s = rec.get("samples")
            if not s:
                continue
            if b.kind == "memory":
                n = s[0]["items"]
                rec["rss_per_item"] = statistics.median(x["rss_delta"] for x in s) / n
                rec["traced_per_item"] = statistics.median(x["traced_delta"] for x in s) / n
            else:
                rec["best"] = max(s)
                rec["median"] = statistics.median(s)
    return res


def find_examples(terms):
    scripts = sorted(glob.glob(os.path.join(EXAMPLES, "*.py")))
    return [s for s in scripts if selected(example_name(s), terms)]


def example_name(path):
    return "examples/" + os.path.basename(path)


def example_cmd(loop, script):
    if loop == "asyncio":
        return [sys.executable, script]
    if loop == "uvloop":
        return [sys.executable, UVLOOP_RUN, script]
    if loop == "rloop":
        return [sys.executable, UVLOOP_RUN, "--rloop", script]
    return [sys.executable, "-m", "asyncloop", script]


def stack_of(cmd, env):
    """Run a crashed or hung example again with faulthandler on, to report
    where it was (the timed runs go without, to stay plain `python x.py`)."""
    cmd = [cmd[0], "-X", "faulthandler"] + cmd[1:]
    try:
        with tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen(cmd, env=env, cwd=EXAMPLES, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)
            try:
                p.wait(EXAMPLE_TIMEOUT)
            except subprocess.TimeoutExpired:
                # SIGABRT makes faulthandler print every thread's stack.
                p.send_signal(signal.SIGABRT)
                p.wait()
            err.seek(0)
            return "re-run with -X faulthandler:\n" + tail(err.read(), 40)
    except OSError as e:
        return f"(re-run failed: {e})"


def run_examples(scripts, loops, env, cfg):
    """Wall time of each script on each loop, plus a baseline row: an empty
    script, i.e. what interpreter start-up and importing the loop cost, which
    every example's time includes."""
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.py")
        with open(empty, "w") as f:
            f.write("import asyncio\n")
        rows = [("(start-up: empty script)", empty)] + \
            [(example_name(s), s) for s in scripts]
        for name, _ in rows:
            res[name] = {lp: {} for lp in loops}
        progress = Progress(len(rows) * len(loops) * cfg["ex_repeat"])
        for rep in range(cfg["ex_repeat"]):
            for name, script in rows:
                for loop in rotated(loops, rep):
                    rec = res[name][loop]
                    progress.step(f"examples repetition {rep + 1}/{cfg['ex_repeat']}",
                                  f"{name} on {loop}")
                    if "error" in rec:
                        continue
                    cmd = example_cmd(loop, script)
                    try:
                        _, t = run_process(cmd, env, EXAMPLE_TIMEOUT, cwd=EXAMPLES)
                    except Failure as f:
                        rec["error"] = f.kind
                        rec["detail"] = f"$ {' '.join(cmd)}\n{f.detail}"
                        if f.kind != "error":
                            rec["detail"] += "\n" + stack_of(cmd, env)
                        progress.note(f"  !! {name} on {loop}: {f.kind}: "
                                      f"{f.detail.splitlines()[0]}")
                        continue
                    rec.setdefault("samples", []).append(t)
    progress.finish()
    for per_loop in res.values():
        for rec in per_loop.values():
            if rec.get("samples"):
                rec["best"] = min(rec["samples"])
                rec["median"] = statistics.median(rec["samples"])
    return res


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------

def si(x):
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def ratio(a, b):
    return a / b if a and b else None


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}"


def cell(rec, fmt):
    if "error" in rec:
        return rec["error"].upper()
    v = fmt(rec)
    return "n/a" if v is None else v


def ratio_columns(loops):
    cols = []
    if "asyncloop" in loops and "uvloop" in loops:
        cols.append(("asyncloop", "uvloop"))
    if "asyncloop" in loops and "rloop" in loops:
        cols.append(("asyncloop", "rloop"))
    if "asyncloop" in loops and "asyncio" in loops:
        cols.append(("asyncloop", "asyncio"))
    if "uvloop" in loops and "asyncio" in loops:
        cols.append(("uvloop", "asyncio"))
    return cols


def micro_table(res, benches, loops):
    cols = ratio_columns(loops)
    head = ["benchmark"] + [f"{lp} ops/s" for lp in loops] + \
        [f"{SHORT[a]}/{SHORT[b]}" for a, b in cols]
    rows = []
    for b in benches:
        if b.kind == "memory":
            continue
        r = res[b.name]
        best = {lp: r[lp].get("best") for lp in loops}
        rows.append([b.name] +
                    [cell(r[lp], lambda x: si(x["best"]) if "best" in x else None)
                     for lp in loops] +
                    [fmt_ratio(ratio(best[a], best[c])) for a, c in cols])
    note = "ops/s: best of all runs; a/b = ops/s of a / ops/s of b (> 1: a is faster)"
    return head, rows, note


def memory_table(res, benches, loops):
    cols = [(a, b) for a, b in ratio_columns(loops)]
    head = ["pending items (RSS / tracemalloc)"] + [f"{lp} B/item" for lp in loops] + \
        [f"{SHORT[a]}/{SHORT[b]} RSS" for a, b in cols]
    rows = []
    for b in benches:
        if b.kind != "memory":
            continue
        r = res[b.name]
        rss = {lp: r[lp].get("rss_per_item") for lp in loops}
        rows.append([f"{b.name} ({b.full:,})"] +
                    [cell(r[lp], lambda x: f"{x['rss_per_item']:.0f} / {x['traced_per_item']:.0f}"
                          if "rss_per_item" in x else None) for lp in loops] +
                    [fmt_ratio(ratio(rss[a], rss[c])) for a, c in cols])
    note = ("bytes per pending item, median of runs: RSS delta / tracemalloc delta "
            "(tracemalloc misses plain malloc); a/b RSS < 1: a uses less memory")
    return head, rows, note


def examples_table(res, loops):
    cols = ratio_columns(loops)
    head = ["script (wall time)"] + [f"{lp} ms" for lp in loops] + \
        [f"{SHORT[a]}/{SHORT[b]}" for a, b in cols]
    rows = []
    for name, r in res.items():
        best = {lp: r[lp].get("best") for lp in loops}
        # Speed ratio: time of b / time of a, so > 1 still means a is faster.
        rows.append([name] +
                    [cell(r[lp], lambda x: f"{x['best'] * 1e3:.0f}" if "best" in x else None)
                     for lp in loops] +
                    [fmt_ratio(ratio(best[c], best[a])) for a, c in cols])
    note = ("whole process incl. interpreter start-up, best of runs; "
            "a/b = time of b / time of a (> 1: a is faster)")
    return head, rows, note


def render(head, rows, note, markdown):
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out += ["", f"_{note}_"]
        return "\n".join(out)
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]

    def line(r):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    out = [line(head), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    out.append(f"({note})")
    return "\n".join(out)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_avg():
    try:
        return os.getloadavg()
    except OSError:
        return None


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(infos, started_at):
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "date": started_at.isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory": mem,
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "python_executable": sys.executable,
        "uvloop_version": infos.get("uvloop", {}).get("version"),
        "uvloop_libuv_version": infos.get("uvloop", {}).get("libuv"),
        "rloop_version": infos.get("rloop", {}).get("version"),
        "asyncloop_version": infos.get("asyncloop", {}).get("version"),
        "asyncloop_libuv_version": infos.get("asyncloop", {}).get("libuv"),
        "asyncloop_file": infos.get("asyncloop", {}).get("file"),
        "git": git_rev(),
    }


def header(meta, loops, missing, markdown):
    parts = [f"{meta['cpu_model']} x{meta['cpu_count']}",
             f"Python {meta['python']}"]
    if meta["uvloop_version"]:
        parts.append(f"uvloop {meta['uvloop_version']} (libuv {meta['uvloop_libuv_version']})")
    if meta.get("rloop_version"):
        parts.append(f"rloop {meta['rloop_version']}")
    if meta["asyncloop_version"]:
        parts.append(f"asyncloop {meta['asyncloop_version']} "
                     f"(libuv {meta['asyncloop_libuv_version']})")
    text = ", ".join(parts) + f"; {meta['date']}"
    if missing:
        text += "; NOT RUN: " + ", ".join(missing)
    return f"_{text}_" if markdown else text


# Ratio axis ticks: coarse for wide ranges, fine near parity.
WIDE_TICKS = (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
NARROW_TICKS = (0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2)


def plot(path, title, res, benches, ex_res, loops):
    """Bar chart of the ratios, one panel per table; log scale, so 2x faster
    and 2x slower are the same distance from 1."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        log("matplotlib is not installed: no chart "
            "(pip install -r benchmarks/requirements.txt)")
        return False
    cols = ratio_columns(loops)
    if not cols:
        return False
    # With asyncloop present, its two ratios are the point; without it, show
    # uvloop/asyncio so the chart is still useful while asyncloop is missing.
    if any(a == "asyncloop" for a, _ in cols):
        cols = [c for c in cols if c[0] == "asyncloop"]

    panels = []
    timed = [b for b in benches if b.kind != "memory"]
    if timed:
        panels.append(("throughput (> 1: faster)", [b.name for b in timed],
                       lambda a, c, n: ratio(res[n][a].get("best"), res[n][c].get("best"))))
    mem = [b for b in benches if b.kind == "memory"]
    if mem:
        panels.append(("memory per pending item, RSS (< 1: less)", [b.name for b in mem],
                       lambda a, c, n: ratio(res[n][a].get("rss_per_item"),
                                             res[n][c].get("rss_per_item"))))
    if ex_res:
        panels.append(("example scripts, wall time (> 1: faster)", list(ex_res),
                       lambda a, c, n: ratio(ex_res[n][c].get("best"), ex_res[n][a].get("best"))))
    if not panels:
        return False

    heights = [max(1.5, 0.25 * len(names) * len(cols) + 1.0) for _, names, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    colors = ["tab:blue", "tab:red", "tab:orange", "tab:green"]
    bar = 0.8 / len(cols)
    for ax, (panel_title, names, get) in zip(axes[:, 0], panels, strict=True):
        spread = 1.5
        for j, (a, c) in enumerate(cols):
            vals = [get(a, c, n) for n in names]
            ys = [i + (j - (len(cols) - 1) / 2) * bar for i in range(len(names))]
            # Bars grow from 1.0 (parity) towards the ratio, left for < 1 and
            # right for > 1.  Missing values (failed or absent loop) get none.
            ax.barh(ys, [(v - 1.0) if v else 0 for v in vals], left=1.0,
                    height=bar, color=colors[j], label=f"{a} / {c}")
            for y, v in zip(ys, vals, strict=True):
                if v:
                    ax.text(v, y, f" {v:.2f} ",
                            va="center", ha="left" if v >= 1 else "right", fontsize=7)
            spread = max([spread] + [max(v, 1 / v) for v in vals if v])
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        # Symmetric around 1 in log space, with room for the labels.
        ax.set_xlim(1 / spread ** 1.25, spread ** 1.25)
        lo, hi = ax.get_xlim()
        ticks = WIDE_TICKS if spread > 2.5 else NARROW_TICKS
        ax.set_xticks([t for t in ticks if lo <= t <= hi])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([n.replace("examples/", "") for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(panel_title, fontsize=10)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def summary(paths, markdown):
    """One table of asyncloop's throughput ratios per CPython, from the JSON
    files of earlier runs (make bench VERSIONS=...)."""
    out = []
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        meta, micro_res = doc["meta"], doc.get("micro", {})
        loops = [lp for lp in micro.LOOPS
                 if any(lp in r["loops"] for r in micro_res.values())]
        cols = [c for c in ratio_columns(loops) if c[0] == "asyncloop"]
        head = [f"CPython {meta['python']}"] + [f"{SHORT[a]}/{SHORT[b]}" for a, b in cols]
        rows = []
        for name, r in micro_res.items():
            if r["kind"] == "memory":
                continue
            per = r["loops"]

            def val(a, c, per=per):
                if "error" in per.get(a, {}) or "error" in per.get(c, {}):
                    bad = a if "error" in per.get(a, {}) else c
                    return f"{bad}: {per[bad]['error'].upper()}"
                return fmt_ratio(ratio(per.get(a, {}).get("best"), per.get(c, {}).get("best")))
            rows.append([name] + [val(a, c) for a, c in cols])
        note = (f"{os.path.basename(path)}: ops/s of asyncloop / ops/s of the other loop, "
                "best of runs (> 1: asyncloop is faster)")
        out += [render(head, rows, note, markdown), ""]
    print("\n".join(out).rstrip())
    return 0


def selected(name, terms):
    return not terms or any(t in name.lower() for t in terms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes, fewer repetitions (~30 s smoke run)")
    ap.add_argument("--filter", metavar="NAME[,NAME]", default="",
                    help="run only benchmarks whose name contains one of these "
                         "substrings; examples are named examples/<script>.py")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--loops", default=",".join(micro.LOOPS),
                    help="comma-separated subset of: " + ", ".join(micro.LOOPS))
    ap.add_argument("--repeat", type=int, metavar="N",
                    help="processes per (benchmark, loop) (default: 5, --quick: 2)")
    ap.add_argument("--no-examples", action="store_true", help="skip the examples/ scripts")
    ap.add_argument("--no-save", action="store_true", help="write no JSON or PNG")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--save-as", metavar="PATH",
                    help="also write the JSON results to PATH (for --summary)")
    ap.add_argument("--summary", nargs="+", metavar="JSON",
                    help="print asyncloop's ratios per CPython from earlier runs' JSON and exit")
    opts = ap.parse_args()

    if opts.summary:
        return summary(opts.summary, opts.markdown)

    if opts.list:
        for b in micro.BENCHMARKS:
            print(f"{b.name:24} {b.doc}")
        for s in find_examples([]):
            print(f"{example_name(s):24} example script")
        return 0

    cfg = dict(QUICK if opts.quick else FULL)
    if opts.repeat:
        cfg["repeat"] = cfg["ex_repeat"] = opts.repeat
        cfg["mem_repeat"] = min(opts.repeat, cfg["mem_repeat"]) or 1
    terms = [t.strip().lower() for t in opts.filter.split(",") if t.strip()]
    wanted = [lp.strip() for lp in opts.loops.split(",") if lp.strip()]
    bad = [lp for lp in wanted if lp not in micro.LOOPS]
    if bad:
        ap.error(f"unknown loop(s): {', '.join(bad)}")

    started = time.monotonic()
    started_at = datetime.datetime.now().astimezone()
    log("probing loops ...")
    env, infos, missing = probe_loops(wanted)
    for name in wanted:
        if name in infos:
            i = infos[name]
            extra = f", libuv {i['libuv']}" if i.get("libuv") else ""
            log(f"  {name:10} {i.get('version')}{extra}  [{i.get('class')}]")
        else:
            log(f"  {name:10} NOT AVAILABLE -- skipped:\n"
                + "\n".join("      " + ln for ln in missing[name].splitlines()[-3:]))
    loops = [lp for lp in wanted if lp in infos]
    if not loops:
        log("no loop available")
        return 1

    benches = [b for b in micro.BENCHMARKS if selected(b.name, terms)]
    scripts = [] if opts.no_examples else find_examples(terms)
    if not opts.no_examples and not glob.glob(os.path.join(EXAMPLES, "*.py")):
        log(f"no scripts in {os.path.relpath(EXAMPLES)}/: example timings skipped")
    if not benches and not scripts:
        log(f"nothing matches --filter {opts.filter!r} (see --list)")
        return 2

    load_before = load_avg()
    res, ex_res = {}, {}
    if benches:
        log(f"micro benchmarks: {len(benches)} x {len(loops)} loops, "
            f"{cfg['repeat']} processes x {cfg['inner']} timed runs each "
            f"(memory: {cfg['mem_repeat']} processes)")
        res = run_micro(benches, loops, env, cfg, opts.quick)
    if scripts:
        log(f"example scripts: {len(scripts)} + start-up baseline x {len(loops)} loops, "
            f"best of {cfg['ex_repeat']}")
        ex_res = run_examples(scripts, loops, env, cfg)
    elapsed = time.monotonic() - started

    meta = machine_info(infos, started_at)
    meta["load_avg_before"] = load_before
    meta["load_avg_after"] = load_avg()
    show = wanted  # keep absent loops as columns so their absence is visible
    for name in missing:
        for per_loop in list(res.values()) + list(ex_res.values()):
            per_loop[name] = {"error": "missing"}

    md = opts.markdown
    out = [header(meta, wanted, missing, md), ""]
    if any(b.kind != "memory" for b in benches):
        out += [render(*micro_table(res, benches, show), md), ""]
    if any(b.kind == "memory" for b in benches):
        out += [render(*memory_table(res, benches, show), md), ""]
    if ex_res:
        out += [render(*examples_table(ex_res, show), md), ""]

    # A failure on asyncio too is the benchmark's or script's problem (say, an
    # example using TaskGroup on Python 3.10), not the loop's: it is listed,
    # but only failures of asyncloop where asyncio succeeded fail the run; a
    # rival (uvloop, rloop) that fails or lacks a feature is listed too.
    failures, broken, rivals = [], [], []
    for tbl in (res, ex_res):
        for n, per_loop in tbl.items():
            for lp, r in per_loop.items():
                if r.get("error") in (None, "missing"):
                    continue
                if "error" in per_loop.get("asyncio", {}):
                    broken.append((n, lp, r))
                else:
                    (failures if lp in ("asyncio", "asyncloop") else rivals).append((n, lp, r))
    for title, items in (("FAILURES", failures), ("FAILING ON ASYNCIO TOO", broken),
                         ("FAILING ON UVLOOP OR RLOOP ONLY (not counted)", rivals)):
        if items:
            out.append(f"{title}:")
            for n, lp, r in items:
                out.append(f"--- {n} on {lp}: {r['error']}")
                out.append(r["detail"])
            out.append("")
    for name, why in missing.items():
        out.append(f"{name} was not run: {why.splitlines()[-1] if why else '?'}")
    print("\n".join(out).rstrip())
    log(f"\ntotal time: {elapsed:.0f} s")

    if not opts.no_save:
        os.makedirs(RESULTS, exist_ok=True)
        stamp = started_at.strftime("%Y%m%d-%H%M%S")
        base = os.path.join(RESULTS, f"bench-{stamp}")
        meta.update({"quick": opts.quick, "filter": terms, "loops": loops,
                     "not_available": missing, "settings": cfg,
                     "elapsed_seconds": round(elapsed, 1),
                     "method": "fresh process per (benchmark, loop, repetition), interleaved; "
                               "throughput = best ops/s, examples = best wall time, "
                               "memory = median bytes/item"})
        doc = {"meta": meta,
               "micro": {b.name: {"doc": b.doc, "unit": b.unit, "kind": b.kind,
                                  "loops": res[b.name]} for b in benches},
               "examples": ex_res}
        with open(base + ".json", "w") as f:
            json.dump(doc, f, indent=1)
        shutil.copyfile(base + ".json", os.path.join(RESULTS, "latest.json"))
        if opts.save_as:
            shutil.copyfile(base + ".json", opts.save_as)
        log(f"wrote {os.path.relpath(base)}.json")
        if plot(base + ".png", header(meta, wanted, missing, False),
                res, benches, ex_res, loops):
            shutil.copyfile(base + ".png", os.path.join(RESULTS, "latest.png"))
            log(f"wrote {os.path.relpath(base)}.png")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
