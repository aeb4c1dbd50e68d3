"""asyncio.TaskGroup (Python 3.11+): structured concurrency.

Leaving the `async with` block waits for every task in the group. If one
task fails, the others are cancelled and the errors are raised together as
an ExceptionGroup, which `except*` can pick apart.
"""
# requires-python: >=3.11
import asyncio


async def step(name, delay, fail=False):
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        print(f"{name}: cancelled because a sibling failed")
        raise
    if fail:
        raise ValueError(f"{name} failed")
    print(f"{name}: done")
    return name


async def main():
    async with asyncio.TaskGroup() as tg:
        t1 = tg.create_task(step("one", 0.02))
        t2 = tg.create_task(step("two", 0.01))
    print("results:", t1.result(), t2.result())

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(step("ok", 0.01))
            tg.create_task(step("bad", 0.02, fail=True))
            tg.create_task(step("slow", 10))
    except* ValueError as group:
        print("caught:", [str(e) for e in group.exceptions])


asyncio.run(main())
