import asyncio
import socket
from typing import Any, Coroutine, TypeVar

from . import _core

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy")
__version__: str
__libuv_version__: str

_T = TypeVar("_T")

class Loop(_core.Loop, asyncio.AbstractEventLoop):  # type: ignore[misc]
    def __init__(self) -> None: ...
    # poll.c glue: resolves the address as asyncio does, then _sock_connect.
    async def sock_connect(self, sock: socket.socket, address: Any) -> None: ...

def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None, **run_kwargs: Any) -> _T: ...
def install() -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy): ...
