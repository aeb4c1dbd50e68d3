"""Running blocking code without blocking the loop.

asyncio.to_thread() and loop.run_in_executor() run a plain function in a
worker thread and give back an awaitable. Meanwhile the loop keeps running:
here the blocking function waits for a threading.Event that only a
coroutine on the loop sets. A worker thread can also hand work back to the
loop with call_soon_threadsafe() or run_coroutine_threadsafe().
"""
import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

request_id = contextvars.ContextVar("request_id", default="none")


def blocking_io(label, seconds):
    time.sleep(seconds)  # would freeze the loop if called directly
    in_worker = threading.current_thread() is not threading.main_thread()
    return f"{label} done in a worker thread: {in_worker}"


def wait_for_loop(event):
    ok = event.wait(timeout=5)
    return f"worker saw the loop set the event: {ok}"


def read_context():
    return f"to_thread sees request_id={request_id.get()}"


async def double(x):
    await asyncio.sleep(0.01)
    return x * 2


def call_into_loop(loop, fut):
    loop.call_soon_threadsafe(fut.set_result, "set from a worker thread")
    return asyncio.run_coroutine_threadsafe(double(21), loop).result(timeout=5)


async def main():
    loop = asyncio.get_running_loop()
    print(await asyncio.to_thread(blocking_io, "to_thread", 0.01))

    event = threading.Event()
    waiting = asyncio.create_task(asyncio.to_thread(wait_for_loop, event))
    await asyncio.sleep(0.01)
    print("loop is still responsive while the worker blocks")
    event.set()
    print(await waiting)

    request_id.set("req-42")
    print(await asyncio.to_thread(read_context))

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = await asyncio.gather(
            loop.run_in_executor(pool, blocking_io, "executor job 1", 0.02),
            loop.run_in_executor(pool, blocking_io, "executor job 2", 0.01),
        )
    for r in results:
        print(r)
    print(await loop.run_in_executor(None, sum, [1, 2, 3]), "from the default executor")

    fut = loop.create_future()
    doubled = await asyncio.to_thread(call_into_loop, loop, fut)
    print(await fut)
    print("run_coroutine_threadsafe result:", doubled)


asyncio.run(main())
