"""asyncio.wait_for: bound an await with a timeout.

When the timeout expires the inner task is cancelled (it sees
CancelledError) and wait_for raises TimeoutError. asyncio.wait() is the
non-raising variant: it returns (done, pending) sets.
"""
import asyncio


async def operation(name, delay):
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        print(f"{name}: cancelled")
        raise
    return f"{name} finished"


async def main():
    print(await asyncio.wait_for(operation("fast", 0.01), timeout=1))

    try:
        await asyncio.wait_for(operation("slow", 10), timeout=0.02)
    except asyncio.TimeoutError:
        print("slow: timed out")

    tasks = [asyncio.create_task(operation(n, d), name=n)
             for n, d in (("t1", 0.01), ("t2", 0.02), ("t3", 10))]
    done, pending = await asyncio.wait(tasks, timeout=0.05)
    print("done:", sorted(t.get_name() for t in done))
    print("pending:", sorted(t.get_name() for t in pending))
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)

    first = [asyncio.create_task(operation(n, d), name=n)
             for n, d in (("r1", 0.03), ("r2", 0.01))]
    done, pending = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    print("first completed:", [t.result() for t in done])
    await asyncio.gather(*pending)


asyncio.run(main())
