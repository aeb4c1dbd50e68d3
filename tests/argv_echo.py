"""Helper for tests/test_examples.py: report how this script was started."""
import asyncio
import json
import os
import sys


async def main():
    loop = asyncio.get_running_loop()
    print(json.dumps({
        "argv": sys.argv,
        "name": __name__,
        "path0": sys.path[0],
        "file": os.path.abspath(__file__),
        "loop_module": type(loop).__module__,
    }))


asyncio.run(main())
