"""contextvars with asyncio: each task runs in a copy of the current context.

A value set inside one task is invisible to its siblings and to the parent,
while values set before create_task() are inherited. Callbacks scheduled
with call_soon() can be given an explicit context.
"""
import asyncio
import contextvars

user = contextvars.ContextVar("user", default="anonymous")


async def handle(name, delay):
    user.set(name)
    await asyncio.sleep(delay)
    return f"{name} sees user={user.get()}"


async def main():
    print("before:", user.get())
    print(await asyncio.gather(handle("alice", 0.02), handle("bob", 0.01)))
    print("parent still sees:", user.get())

    user.set("admin")
    child = asyncio.create_task(handle_inherit())
    user.set("changed-after-spawn")
    print(await child)

    ctx = contextvars.copy_context()
    ctx.run(user.set, "from-ctx")
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(lambda: done.set_result(user.get()), context=ctx)
    print("call_soon with context sees:", await done)


async def handle_inherit():
    await asyncio.sleep(0)
    return f"child inherited user={user.get()}"


asyncio.run(main())
