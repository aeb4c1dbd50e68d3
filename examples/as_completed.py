"""asyncio.as_completed: handle results in the order they finish.

Unlike gather(), which keeps argument order, as_completed() yields awaitables
that produce results earliest-first. A timeout bounds the whole iteration.
"""
import asyncio


async def job(name, delay):
    await asyncio.sleep(delay)
    return f"{name} ({delay}s)"


async def main():
    jobs = [job("job 1", 0.03), job("job 2", 0.01), job("job 3", 0.02)]
    for next_done in asyncio.as_completed(jobs):
        print("completed:", await next_done)

    jobs = [job("quick", 0.01), job("too slow", 5)]
    try:
        for next_done in asyncio.as_completed(jobs, timeout=0.03):
            print("completed:", await next_done)
    except asyncio.TimeoutError:
        print("as_completed timed out waiting for the rest")


asyncio.run(main())
