"""asyncio.Queue: a producer/consumer pipeline.

A bounded queue makes the producer wait when it is full (back-pressure).
task_done()/join() tell the producer side when every item was handled, after
which the idle consumers are cancelled.
"""
import asyncio


async def producer(queue, count):
    for i in range(count):
        await queue.put(i)
        print(f"produced {i}")
    print("producer: all items queued")


async def consumer(name, queue, handled):
    while True:
        item = await queue.get()
        await asyncio.sleep(0.01)
        handled.append((item, name))
        queue.task_done()


async def main():
    queue = asyncio.Queue(maxsize=2)
    handled = []
    consumers = [asyncio.create_task(consumer(f"c{i}", queue, handled)) for i in range(2)]
    await producer(queue, 6)
    await queue.join()
    print("queue drained, empty:", queue.empty())
    for c in consumers:
        c.cancel()
    results = await asyncio.gather(*consumers, return_exceptions=True)
    print("consumers cancelled:", all(isinstance(r, asyncio.CancelledError) for r in results))
    print("handled items:", sorted(item for item, _ in handled))

    lifo = asyncio.LifoQueue()
    prio = asyncio.PriorityQueue()
    for x in (2, 3, 1):
        lifo.put_nowait(x)
        prio.put_nowait(x)
    print("LifoQueue order:", [lifo.get_nowait() for _ in range(3)])
    print("PriorityQueue order:", [prio.get_nowait() for _ in range(3)])
    try:
        queue.get_nowait()
    except asyncio.QueueEmpty:
        print("get_nowait() on an empty queue raises QueueEmpty")
    full = asyncio.Queue(maxsize=1)
    full.put_nowait("x")
    try:
        full.put_nowait("y")
    except asyncio.QueueFull:
        print("put_nowait() on a full queue raises QueueFull")


asyncio.run(main())
