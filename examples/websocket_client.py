"""A websockets client talking to a websockets server started by the script.

The server (websockets.asyncio.server.serve on 127.0.0.1, port 0) handles
JSON commands: "echo" answers once, "count" streams several messages, "bye"
closes the connection with a reason. The client sends commands, receives
with recv() and with `async for`, and two clients run concurrently with
gather() on the same server. A clean close ends `async for` without error.
"""
import asyncio
import json

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def handler(ws):
    async for message in ws:
        request = json.loads(message)
        if request["op"] == "echo":
            await ws.send(json.dumps({"echo": request["text"]}))
        elif request["op"] == "count":
            for i in range(1, request["n"] + 1):
                await asyncio.sleep(0.005)
                await ws.send(json.dumps({"tick": i}))
            await ws.send(json.dumps({"done": request["n"]}))
        elif request["op"] == "bye":
            await ws.close(1000, "see you")


async def client(uri, name, n):
    lines = []
    async with connect(uri) as ws:
        await ws.send(json.dumps({"op": "echo", "text": f"hello from {name}"}))
        lines.append(f"{name} got {json.loads(await ws.recv())}")

        await ws.send(json.dumps({"op": "count", "n": n}))
        while "done" not in (reply := json.loads(await ws.recv())):
            lines.append(f"{name} got {reply}")
        lines.append(f"{name} stream done ({reply['done']} ticks)")

        await ws.send(json.dumps({"op": "bye"}))
        async for message in ws:  # ends when the server closes cleanly
            lines.append(f"{name} unexpected {message}")
        lines.append(f"{name} closed by server: code={ws.close_code} reason={ws.close_reason!r}")
    return lines


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        host, port = server.sockets[0].getsockname()[:2]
        uri = f"ws://{host}:{port}"

        for line in await client(uri, "solo", 2):
            print(line)

        both = await asyncio.gather(client(uri, "alice", 3), client(uri, "bob", 2))
        for lines in both:
            for line in lines:
                print(line)
    print("server stopped")


asyncio.run(main())
