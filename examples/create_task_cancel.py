"""asyncio.create_task: tasks start running as soon as the loop gets control.

Shows awaiting tasks in any order, task state (done/result), and cancelling
a task: the coroutine sees CancelledError at its await point, can clean up,
and whoever awaits the task gets CancelledError too.
"""
import asyncio


async def work(name, delay):
    print(f"{name}: started")
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        print(f"{name}: cancelled, cleaning up")
        raise
    print(f"{name}: finished")
    return delay * 100


async def main():
    slow = asyncio.create_task(work("slow", 0.03))
    fast = asyncio.create_task(work("fast", 0.01))
    print("tasks created; done yet?", slow.done(), fast.done())
    print("fast result:", await fast)
    print("slow result:", await slow)
    print("slow.done():", slow.done(), "slow.result():", slow.result())

    doomed = asyncio.create_task(work("doomed", 10))
    await asyncio.sleep(0.01)
    print("cancel() returned:", doomed.cancel())
    try:
        await doomed
    except asyncio.CancelledError:
        print("awaiting a cancelled task raises CancelledError")
    print("doomed.cancelled():", doomed.cancelled())
    print("cancel() on a finished task returns:", doomed.cancel())


asyncio.run(main())
