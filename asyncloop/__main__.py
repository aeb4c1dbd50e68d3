"""python -m asyncloop [--stats] script.py [args]: run a script with asyncloop as the loop.

The script runs as __main__ with sys.argv as it expects, unchanged: asyncio's
policy is set to asyncloop's, so asyncio.run(), asyncio.new_event_loop() and
asyncio.get_event_loop() all give asyncloop loops.

--stats times every callback of every asyncloop loop the script makes and,
at exit, prints a short report of their metrics (loop.metrics()) to stderr.
"""

import io
import os
import runpy
import sys

import asyncloop

USAGE = "usage: python -m asyncloop [--stats] [-m module | script.py] [args ...]"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--stats":
        stats = _Stats()
        try:
            return _main(argv[1:])
        finally:
            stats.report(sys.stderr)
    return _main(argv)


def _main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    asyncloop.install()
    if argv[0] == "-m":
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return 0
    script = os.path.abspath(argv[0])  # __file__ is absolute, as with `python script.py`
    if not os.path.exists(script):
        print(f"python -m asyncloop: can't open file {argv[0]!r}", file=sys.stderr)
        return 2
    sys.argv = argv[:]  # argv[0] as given, as `python script.py` leaves it
    sys.path[0] = os.path.dirname(script)
    _run_script(script)
    return 0


def _run_script(path):
    # What `python script.py` does: a fresh __main__ whose __file__ is the
    # absolute path (runpy.run_path would also rewrite sys.argv[0]).
    import importlib.machinery
    import types

    try:
        with io.open_code(path) as f:
            code = compile(f.read(), path, "exec")
    except SyntaxError as exc:
        # Reported as the interpreter reports a script that does not
        # compile: the error alone, no traceback through this launcher.
        _exit_uncaught(exc.with_traceback(None))
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", path)
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    except (SystemExit, KeyboardInterrupt):
        # Left to the interpreter: its exit status, and for Ctrl-C its
        # death by SIGINT, are not ours to imitate.
        raise
    except BaseException as exc:
        # The traceback starts at the script, as with `python script.py`.
        tb = exc.__traceback__
        _exit_uncaught(exc.with_traceback(tb.tb_next if tb is not None else None))


def _exit_uncaught(exc):
    # As the interpreter ends on an uncaught exception: sys.excepthook (the
    # script may have installed its own), then status 1.
    sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.exit(1)



class _Stats:
    """--stats: every loop made from now on times its callbacks; report()
    sums their metrics (a closed loop's stay readable)."""

    def __init__(self):
        import time

        self.loops = []
        self.t0 = time.perf_counter()
        init = asyncloop.Loop.__init__
        loops = self.loops

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.set_slow_callback_hook(0.0)  # time each: keeps the 5 slowest
            loops.append(self)

        asyncloop.Loop.__init__ = __init__

    def report(self, out):
        import time

        wall = time.perf_counter() - self.t0
        snaps = [loop.metrics() for loop in self.loops]
        busy = sum(m.busy for m in snaps)
        idle = sum(m.idle for m in snaps)
        util = busy / (busy + idle) if busy + idle > 0 else 0.0
        hist = {}
        for m in snaps:
            for bound, n in m.lateness_histogram:
                hist[bound] = hist.get(bound, 0) + n
        late_max = max((m.lateness_max for m in snaps), default=0.0)
        timers = sum(hist.values())

        def quantile(q):
            rank, seen = max(1, -int(-q * timers // 1)), 0
            for bound in sorted(hist):
                seen += hist[bound]
                if seen >= rank:
                    return min(bound, late_max)
            return late_max

        slowest = sorted((c for m in snaps for c in m.slowest_callbacks), reverse=True)[:5]
        ms = lambda s: f"{s * 1e3:.3f} ms"  # noqa: E731
        lines = [
            f"asyncloop --stats ({len(snaps)} loop{'s' if len(snaps) != 1 else ''})",
            f"  wall time        {wall:.3f} s",
            f"  utilization      {util:.1%} (busy {busy:.3f} s, idle {idle:.3f} s)",
            f"  iterations       {sum(m.iterations for m in snaps)}",
            f"  callbacks        {sum(m.callbacks for m in snaps)}",
            f"  timer lateness   p50 {ms(quantile(0.5))}  p90 {ms(quantile(0.9))}  "
            f"p99 {ms(quantile(0.99))}  max {ms(late_max)}  ({timers} timers)",
            f"  peak transports  {max((m.transports_peak for m in snaps), default=0)}",
            "  slowest callbacks:" if slowest else "  slowest callbacks: none",
        ]
        for dt, what in slowest:
            if len(what) > 100:
                what = what[:97] + "..."
            lines.append(f"    {ms(dt):>12}  {what}")
        out.write("\n".join(lines) + "\n")
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
