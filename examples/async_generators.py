"""Async generators and async iteration.

Covers `async for`, async comprehensions, an async iterator class, aclose()
running a generator's `finally`, asend(), and asyncio.run() finalizing a
generator that was left suspended (via loop.shutdown_asyncgens()).
"""
import asyncio


async def ticker(n, delay=0.005):
    try:
        for i in range(n):
            await asyncio.sleep(delay)
            yield i
    finally:
        print(f"ticker({n}): cleanup")


class Countdown:
    """An async iterator written by hand."""

    def __init__(self, start):
        self.current = start

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.current <= 0:
            raise StopAsyncIteration
        await asyncio.sleep(0)
        self.current -= 1
        return self.current + 1


async def accumulator():
    total = 0
    while True:
        value = yield total
        total += value


leftover = None


async def main():
    global leftover
    async for value in ticker(3):
        print("got", value)

    print("comprehension:", [v * v async for v in ticker(4) if v % 2 == 0])
    print("countdown:", [v async for v in Countdown(3)])

    gen = ticker(10)
    print("first two:", await gen.__anext__(), await gen.__anext__())
    await gen.aclose()
    print("after aclose:", await anext_or(gen, "exhausted"))

    acc = accumulator()
    await acc.asend(None)
    print("asend:", [await acc.asend(x) for x in (1, 2, 3)])
    await acc.aclose()

    leftover = ticker(5)
    print("leftover started:", await leftover.__anext__())
    print("main returns; asyncio.run() will finalize the leftover generator")


async def anext_or(agen, default):
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return default


asyncio.run(main())
