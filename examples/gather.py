"""asyncio.gather: run coroutines concurrently, results in argument order.

Tasks finish in order of their delays, but gather() returns results in the
order the awaitables were passed. With return_exceptions=True a failure is
returned as a value instead of being raised.
"""
import asyncio


async def fetch(name, delay):
    print(f"{name}: start")
    await asyncio.sleep(delay)
    print(f"{name}: end")
    return f"data from {name}"


async def broken(delay):
    await asyncio.sleep(delay)
    raise ValueError("broken source")


async def main():
    results = await asyncio.gather(fetch("A", 0.03), fetch("B", 0.01), fetch("C", 0.02))
    print("results:", results)

    mixed = await asyncio.gather(fetch("D", 0.01), broken(0.02), return_exceptions=True)
    print("with return_exceptions:", [repr(r) for r in mixed])

    try:
        await asyncio.gather(fetch("E", 0.01), broken(0.02))
    except ValueError as exc:
        print("without return_exceptions the error propagates:", exc)


asyncio.run(main())
