"""asyncio.Event and asyncio.Lock.

An Event lets several waiters block until one coroutine signals them. A Lock
serialises a read-modify-write section that contains an await, which would
otherwise lose updates.
"""
import asyncio


async def waiter(name, event):
    print(f"{name}: waiting for the event")
    await event.wait()
    print(f"{name}: got the event")


async def increment(state, lock):
    if lock is None:
        value = state["n"]
        await asyncio.sleep(0)  # another task runs here and reads the same value
        state["n"] = value + 1
        return
    async with lock:
        value = state["n"]
        await asyncio.sleep(0)
        state["n"] = value + 1


async def main():
    event = asyncio.Event()
    waiters = [asyncio.create_task(waiter(n, event)) for n in ("w1", "w2")]
    await asyncio.sleep(0.01)
    print("is_set before:", event.is_set())
    event.set()
    await asyncio.gather(*waiters)
    print("is_set after:", event.is_set())

    for lock in (None, asyncio.Lock()):
        state = {"n": 0}
        await asyncio.gather(*(increment(state, lock) for _ in range(10)))
        print("with lock:" if lock else "without lock:", state["n"])

    lock = asyncio.Lock()
    async with lock:
        print("lock.locked() inside:", lock.locked())
    print("lock.locked() outside:", lock.locked())

    cond = asyncio.Condition()
    items = []

    async def consume():
        async with cond:
            await cond.wait_for(lambda: items)
            print("condition consumer got:", items.pop())

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    async with cond:
        items.append("item")
        cond.notify()
    await task


asyncio.run(main())
