"""asyncio.Semaphore: cap how many coroutines run a section at once.

Four downloads share a Semaphore(2): only two run at a time, and a waiting
one starts as soon as a slot frees up.
"""
import asyncio

active = 0
peak = 0


async def download(sem, name, delay):
    global active, peak
    async with sem:
        active += 1
        peak = max(peak, active)
        print(f"{name}: start ({active} active)")
        await asyncio.sleep(delay)
        active -= 1
        print(f"{name}: done")
    return name


async def main():
    sem = asyncio.Semaphore(2)
    jobs = [("A", 0.03), ("B", 0.01), ("C", 0.04), ("D", 0.01)]
    results = await asyncio.gather(*(download(sem, n, d) for n, d in jobs))
    print("results:", results)
    print("peak concurrency:", peak)

    bounded = asyncio.BoundedSemaphore(1)
    async with bounded:
        print("locked() while held:", bounded.locked())
    try:
        bounded.release()
    except ValueError:
        print("BoundedSemaphore refuses an extra release()")


asyncio.run(main())
