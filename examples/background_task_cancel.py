"""A background task that runs until cancelled.

A heartbeat loops forever in the background while main() works. Keep a
strong reference to background tasks (here, a set cleared by a done
callback) so they are not garbage-collected mid-flight. Cancelling the
task raises CancelledError inside it; its `finally` block runs before the
awaiting code resumes.
"""
import asyncio

background = set()


async def heartbeat(interval):
    beats = 0
    try:
        while True:
            beats += 1
            print(f"heartbeat {beats}")
            await asyncio.sleep(interval)
    finally:
        print(f"heartbeat stopped after {beats} beats")


def spawn(coro, name):
    task = asyncio.create_task(coro, name=name)
    background.add(task)
    task.add_done_callback(background.discard)
    return task


async def main():
    hb = spawn(heartbeat(0.02), "heartbeat")
    await asyncio.sleep(0)  # let the heartbeat start
    print("main: doing work")
    await asyncio.sleep(0.05)  # beats at ~0.00, 0.02, 0.04
    print("main: work finished, stopping heartbeat")
    hb.cancel()
    try:
        await hb
    except asyncio.CancelledError:
        print("main: heartbeat cancelled:", hb.cancelled())
    print("background tasks left:", len(background))

    fire_and_forget = spawn(asyncio.sleep(0.01, result="ok"), "one-shot")
    await asyncio.sleep(0.02)
    print("fire-and-forget result:", fire_and_forget.result(), "| left:", len(background))


asyncio.run(main())
