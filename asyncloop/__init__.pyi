import asyncio
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import IO, Any, NamedTuple, TypeVar

from . import _core
from ._core import LoopMetrics as LoopMetrics

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy",
           "LoopMetrics", "Utilization", "utilization")
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
    # poll.c: the datagram sock_* as C coroutines (asyncio has them from
    # 3.11 on; asyncloop on 3.10 too).
    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]: ...
    async def sock_recvfrom_into(
        self, sock: socket.socket, buf: Any, nbytes: int = 0
    ) -> tuple[int, Any]: ...
    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int: ...
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
    # udp.c: asyncio's own create_datagram_endpoint (3.10 still has
    # reuse_address, whose default is a sentinel).
    if sys.version_info >= (3, 11):
        async def create_datagram_endpoint(  # type: ignore[override]
            self, protocol_factory: Callable[[], _P],
            local_addr: tuple[str, int] | str | None = None,
            remote_addr: tuple[str, int] | str | None = None, *, family: int = 0,
            proto: int = 0, flags: int = 0, reuse_port: bool | None = None,
            allow_broadcast: bool | None = None, sock: socket.socket | None = None,
        ) -> tuple[asyncio.DatagramTransport, _P]: ...
    else:
        async def create_datagram_endpoint(  # type: ignore[override]
            self, protocol_factory: Callable[[], _P],
            local_addr: tuple[str, int] | str | None = None,
            remote_addr: tuple[str, int] | str | None = None, *, family: int = 0,
            proto: int = 0, flags: int = 0, reuse_address: bool | None = ...,
            reuse_port: bool | None = None, allow_broadcast: bool | None = None,
            sock: socket.socket | None = None,
        ) -> tuple[asyncio.DatagramTransport, _P]: ...

    # process.c glue: asyncio's BaseEventLoop methods (their checks and
    # messages), as the running CPython has them.
    async def subprocess_exec(  # type: ignore[override]
        self, protocol_factory: Callable[[], _P], program: Any, *args: Any,
        stdin: Any = -1, stdout: Any = -1, stderr: Any = -1,
        universal_newlines: bool = False, shell: bool = False, bufsize: int = 0,
        encoding: str | None = None, errors: str | None = None, text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _P]: ...
    async def subprocess_shell(  # type: ignore[override]
        self, protocol_factory: Callable[[], _P], cmd: bytes | str, *,
        stdin: Any = -1, stdout: Any = -1, stderr: Any = -1,
        universal_newlines: bool = False, shell: bool = True, bufsize: int = 0,
        encoding: str | None = None, errors: str | None = None, text: bool | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, _P]: ...

# metrics.c: Node's eventLoopUtilization between loop.metrics() snapshots.
class Utilization(NamedTuple):
    idle: float
    active: float
    utilization: float

def utilization(current: LoopMetrics, previous: LoopMetrics | None = None) -> Utilization: ...
def new_event_loop() -> Loop: ...
def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None, **run_kwargs: Any) -> _T: ...
def install() -> None: ...

class EventLoopPolicy(asyncio.DefaultEventLoopPolicy): ...
