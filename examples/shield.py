"""asyncio.shield: protect an inner operation from outer cancellation.

When the outer await is cancelled (here by wait_for's timeout), the caller
gets the cancellation/timeout but the shielded task keeps running and can
still be awaited for its result.
"""
import asyncio


async def save(record):
    await asyncio.sleep(0.03)
    print(f"saved {record}")
    return f"{record} committed"


async def main():
    task = asyncio.create_task(save("order-1"))
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=0.01)
    except asyncio.TimeoutError:
        print("caller gave up waiting; task cancelled?", task.cancelled())
    print("result still arrives:", await task)

    unprotected = asyncio.create_task(save("order-2"))
    try:
        await asyncio.wait_for(unprotected, timeout=0.01)
    except asyncio.TimeoutError:
        print("without shield the task was cancelled:", unprotected.cancelled())


asyncio.run(main())
