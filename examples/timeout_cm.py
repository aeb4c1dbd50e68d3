"""asyncio.timeout() context manager (Python 3.11+).

Cancels whatever the block is awaiting when the deadline passes and turns
that into TimeoutError at the end of the block. The deadline can be moved
with reschedule(); timeout(None) means no deadline until one is set.
"""
# requires-python: >=3.11
import asyncio


async def main():
    try:
        async with asyncio.timeout(0.02) as cm:
            await asyncio.sleep(10)
    except TimeoutError:
        print("timed out; expired():", cm.expired())

    async with asyncio.timeout(1) as cm:
        await asyncio.sleep(0.01)
    print("finished in time; expired():", cm.expired())

    try:
        async with asyncio.timeout(None) as cm:
            print("deadline with timeout(None):", cm.when())
            cm.reschedule(asyncio.get_running_loop().time() + 0.02)
            await asyncio.sleep(10)
    except TimeoutError:
        print("rescheduled deadline hit")

    try:
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + 0.01):
            await asyncio.sleep(10)
    except TimeoutError:
        print("timeout_at also works with an absolute loop time")


asyncio.run(main())
