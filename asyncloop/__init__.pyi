import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from . import _core

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy")
__version__: str
__libuv_version__: str

_T = TypeVar("_T")

class Loop(_core.Loop, asyncio.AbstractEventLoop):  # type: ignore[misc]
    def __init__(self) -> None: ...
    # BaseEventLoop's, as the running CPython has it (a timeout from 3.12).
    if sys.version_info >= (3, 12):
        async def shutdown_default_executor(self, timeout: float | None = None) -> None: ...
    else:
        async def shutdown_default_executor(self) -> None: ...
    # dns.c
    async def getaddrinfo(
        self, host: bytes | str | None, port: bytes | str | int | None, *,
        family: int = 0, type: int = 0, proto: int = 0, flags: int = 0,
    ) -> list[tuple[Any, Any, int, str, tuple[Any, ...]]]: ...
    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]: ...

def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None, **run_kwargs: Any) -> _T: ...
def install() -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy): ...
