import asyncio
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import IO, Any, TypeVar

from . import _core

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy")
__version__: str
__libuv_version__: str

_T = TypeVar("_T")
_P = TypeVar("_P", bound=asyncio.BaseProtocol)

class Loop(_core.Loop, asyncio.AbstractEventLoop):  # type: ignore[misc]
    def __init__(self) -> None: ...
    # BaseEventLoop's, as the running CPython has it (a timeout from 3.12).
    if sys.version_info >= (3, 12):
        async def shutdown_default_executor(self, timeout: float | None = None) -> None: ...
    else:
        async def shutdown_default_executor(self) -> None: ...
    # ssl.c: True: the C TLS layer; False: asyncio's sslproto (ASYNCLOOP_SSLPROTO=1)
    _c_tls: bool
    # dns.c
    async def getaddrinfo(
        self, host: bytes | str | None, port: bytes | str | int | None, *,
        family: int = 0, type: int = 0, proto: int = 0, flags: int = 0,
    ) -> list[tuple[Any, Any, int, str, tuple[Any, ...]]]: ...
    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]: ...
    # poll.c glue: coroutines awaiting the C methods (which return Futures);
    # sock_connect resolves the address as asyncio does, then _sock_connect.
    # The overrides are coroutines over _core.Loop's Future-returning methods
    # (create_task needs a coroutine): the return types differ on purpose.
    async def sock_recv(  # type: ignore[override]
        self, sock: socket.socket, n: int
    ) -> bytes: ...
    async def sock_recv_into(  # type: ignore[override]
        self, sock: socket.socket, buf: Any
    ) -> int: ...
    async def sock_sendall(  # type: ignore[override]
        self, sock: socket.socket, data: Any
    ) -> None: ...
    async def sock_accept(  # type: ignore[override]
        self, sock: socket.socket
    ) -> tuple[socket.socket, Any]: ...
    async def sock_connect(self, sock: socket.socket, address: Any) -> None: ...
    # asyncio's own BaseEventLoop methods, as the running CPython has them.
    async def sock_sendfile(  # type: ignore[override]
        self, sock: socket.socket, file: IO[bytes], offset: int = 0, count: int | None = None,
        *, fallback: bool | None = True,
    ) -> int: ...
    if sys.version_info >= (3, 12):
        async def create_connection(  # type: ignore[override]
            self, protocol_factory: Callable[[], _P], host: str | None = None,
            port: int | None = None, *, ssl: Any = None, family: int = 0, proto: int = 0,
            flags: int = 0, sock: socket.socket | None = None,
            local_addr: tuple[str, int] | None = None, server_hostname: str | None = None,
            ssl_handshake_timeout: float | None = None,
            ssl_shutdown_timeout: float | None = None,
            happy_eyeballs_delay: float | None = None, interleave: int | None = None,
            all_errors: bool = False,
        ) -> tuple[asyncio.Transport, _P]: ...

def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None, **run_kwargs: Any) -> _T: ...
def install() -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy): ...
