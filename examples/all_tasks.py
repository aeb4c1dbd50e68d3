"""Inspecting tasks: asyncio.all_tasks(), current_task(), names and state.

Useful when debugging what is still pending. asyncio.run() wraps main() in
a task too, so it shows up in all_tasks().
"""
import asyncio


async def worker(delay):
    await asyncio.sleep(delay)


def describe(tasks):
    return sorted(f"{t.get_name()}: done={t.done()}" for t in tasks)


async def main():
    me = asyncio.current_task()
    print("main runs as a task:", isinstance(me, asyncio.Task), me.get_name())
    me.set_name("main")

    short = asyncio.create_task(worker(0.01), name="short")
    long = asyncio.create_task(worker(0.03), name="long")
    print("all tasks:", describe(asyncio.all_tasks()))
    print("current task in all_tasks:", me in asyncio.all_tasks())

    await short
    print("after short finished:", describe(asyncio.all_tasks()))
    print("short:", "done" if short.done() else "pending",
          "| long:", "done" if long.done() else "pending")
    await long
    print("at the end:", describe(asyncio.all_tasks()))
    print("coroutine of long:", long.get_coro().__qualname__)


asyncio.run(main())
