"""python uvloop_run.py [--rloop] script.py [args]: run a script with uvloop (or rloop) as the loop.

The uvloop counterpart of `python -m asyncloop script.py`, used to time the
examples on uvloop: installs uvloop's event loop policy, then runs the script
as __main__ with the sys.argv and sys.path[0] it would have had if started
directly, so asyncio.run(), asyncio.new_event_loop() and
asyncio.get_event_loop() in the script all give uvloop loops (rloop loops
with --rloop, which installs rloop's policy instead).
"""

import asyncio
import os
import runpy
import sys
import warnings


def main(argv):
    use_rloop = argv[:1] == ["--rloop"]
    if use_rloop:
        argv = argv[1:]
    if not argv:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    if use_rloop:
        import rloop as impl
    else:
        import uvloop as impl
    with warnings.catch_warnings():
        # Python 3.14 deprecates the policy system; installing is still valid.
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(impl.EventLoopPolicy())
    script = argv[0]
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
