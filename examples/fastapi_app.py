"""A FastAPI app served in-process by uvicorn.Server and queried by httpx.

Instead of `uvicorn.run()` (which owns the event loop), the script awaits
uvicorn.Server.serve() as a task on the running loop, bound to 127.0.0.1 on
port 0, waits for `server.started`, queries it with an httpx.AsyncClient and
then stops it by setting `server.should_exit`. The async endpoints sleep to
stand in for database queries; /users gathers three of them concurrently.
The app's lifespan hook shows startup and shutdown.
"""
import asyncio
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException


@asynccontextmanager
async def lifespan(app):
    print("app: startup")
    yield
    print("app: shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/users/{user_id}")
async def get_user(user_id: int):
    # Simulates a database query
    await asyncio.sleep(0.01 * (4 - user_id % 4))
    if user_id > 100:
        raise HTTPException(status_code=404, detail=f"no user {user_id}")
    return {"id": user_id, "name": f"User {user_id}"}


@app.get("/users")
async def get_users():
    # Fetches multiple users concurrently
    return await asyncio.gather(get_user(1), get_user(2), get_user(3))


async def start(server):
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # startup failed: surface the error
            await task
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return task, f"http://{host}:{port}"


async def main():
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    task, base = await start(server)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            responses = await asyncio.gather(*(client.get(f"/users/{i}") for i in (1, 2, 3)))
            for r in responses:
                print(r.request.url.path, r.status_code, r.json())

            r = await client.get("/users")
            print("/users", r.status_code, [user["name"] for user in r.json()])

            r = await client.get("/users/404")
            print("/users/404", r.status_code, r.json())

            r = await client.get("/users/abc")
            error = r.json()["detail"][0]
            print("/users/abc", r.status_code, error["loc"], error["type"])
    finally:
        server.should_exit = True
        await task
    print("server stopped")


asyncio.run(main())
