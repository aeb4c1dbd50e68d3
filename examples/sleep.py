"""Coroutines and asyncio.sleep: awaiting one after another runs sequentially.

Calling a coroutine function only creates a coroutine object; nothing runs
until it is awaited. asyncio.sleep() suspends the caller without blocking
the loop, and can hand a value back via its `result` argument.
"""
import asyncio


async def greet(name, delay):
    await asyncio.sleep(delay)
    print(f"hello, {name}")
    return name.upper()


async def main():
    coro = greet("never awaited", 0)
    print("calling a coroutine function returns:", type(coro).__name__)
    coro.close()  # discard it cleanly instead of leaving it un-awaited

    print("sequential:", await greet("alice", 0.01), await greet("bob", 0.01))
    print("sleep(0) returns:", await asyncio.sleep(0))
    print("sleep can return a value:", await asyncio.sleep(0.01, result="done"))
    print("iscoroutinefunction(greet):", asyncio.iscoroutinefunction(greet))


asyncio.run(main())
