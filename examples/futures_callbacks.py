"""Futures and loop callbacks, the layer tasks are built on.

loop.create_future() gives an awaitable that something else resolves;
add_done_callback() runs a function when it does. call_soon() callbacks run
in FIFO order, call_later()/call_at() by deadline, and a TimerHandle can be
cancelled before it fires.
"""
import asyncio


async def main():
    loop = asyncio.get_running_loop()
    order = []

    fut = loop.create_future()
    fut.add_done_callback(lambda f: order.append(f"callback saw {f.result()}"))
    loop.call_later(0.02, fut.set_result, "answer")
    loop.call_later(0.03, order.append, "later 0.03")
    loop.call_at(loop.time() + 0.01, order.append, "call_at +0.01")
    cancelled = loop.call_later(0.015, order.append, "never")
    for i in range(3):
        loop.call_soon(order.append, f"soon {i}")
    cancelled.cancel()

    print("awaited future:", await fut)
    await asyncio.sleep(0.02)
    print("order:", order)
    print("timer cancelled:", cancelled.cancelled())

    failing = loop.create_future()
    loop.call_soon(failing.set_exception, KeyError("missing"))
    try:
        await failing
    except KeyError as exc:
        print("future exception:", repr(exc))

    dropped = loop.create_future()
    dropped.cancel()
    print("cancelled future:", dropped.cancelled(), dropped.done())


asyncio.run(main())
