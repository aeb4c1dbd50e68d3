"""python -m asyncloop script.py [args]: run a script with asyncloop as the loop.

The script runs as __main__ with sys.argv as it expects, unchanged: asyncio's
policy is set to asyncloop's, so asyncio.run(), asyncio.new_event_loop() and
asyncio.get_event_loop() all give asyncloop loops.
"""

import io
import os
import runpy
import sys

import asyncloop

USAGE = "usage: python -m asyncloop [-m module | script.py] [args ...]"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
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


if __name__ == "__main__":
    sys.exit(main())
