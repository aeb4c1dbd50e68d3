"""python uvloop_run.py script.py [args]: run a script with uvloop as the loop.

The uvloop counterpart of `python -m asyncloop script.py`, used to time the
examples on uvloop: installs uvloop's event loop policy, then runs the script
as __main__ with the sys.argv and sys.path[0] it would have had if started
directly, so asyncio.run(), asyncio.new_event_loop() and
asyncio.get_event_loop() in the script all give uvloop loops.
"""

import asyncio
import os
import runpy
import sys
import warnings

import uvloop


def main(argv):
    if not argv:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        # Python 3.14 deprecates the policy system; installing is still valid.
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    script = argv[0]
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
