"""asyncloop: a fast asyncio event loop written in C over libuv.

Ways in:
    asyncloop.run(main())
    asyncio.run(main(), loop_factory=asyncloop.new_event_loop)   # 3.12+
    asyncio.set_event_loop_policy(asyncloop.EventLoopPolicy())   # or install()
    python -m asyncloop script.py [args]
"""

import asyncio as __asyncio
import socket as _socket
from asyncio import base_events as _poll_base_events  # poll.c glue
import sys as __sys
import weakref as _weakref
from asyncio import base_events as __base_events

from . import _core
from ._core import __libuv_version__

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy")
__version__ = "0.1.0"


_Base = __base_events.BaseEventLoop


# poll.c: the C sock_* methods, awaited by Loop's coroutines of the same name.
# The _start ones give (None, result) when the first try succeeded, else
# (future, None): the common case makes no Future.
_c_sock_recv = _core.Loop._sock_recv_start
_c_sock_recv_into = _core.Loop._sock_recv_into_start
_c_sock_sendall = _core.Loop._sock_sendall_start
_c_sock_accept = _core.Loop.sock_accept


class Loop(_core.Loop, __asyncio.AbstractEventLoop):
    """The asyncloop event loop: asyncio.AbstractEventLoop implemented in C."""

    def __init__(self):
        # State read by the asyncio methods reused below.
        self._asyncgens = _weakref.WeakSet()
        self._asyncgens_shutdown_called = False

    # Cold paths taken as they are from the running CPython's asyncio, so
    # that their behaviour (messages, warnings, per-version differences such
    # as shutdown_default_executor's timeout) is asyncio's exactly. None of
    # them is on a hot path; they only use the loop's public methods and the
    # attributes the C core exposes (_default_executor, _exception_handler,
    # _current_handle, _executor_shutdown_called, ...).
    call_exception_handler = _Base.call_exception_handler
    default_exception_handler = _Base.default_exception_handler
    set_default_executor = _Base.set_default_executor
    shutdown_default_executor = _Base.shutdown_default_executor
    _do_shutdown = _Base._do_shutdown
    shutdown_asyncgens = _Base.shutdown_asyncgens
    _asyncgen_firstiter_hook = _Base._asyncgen_firstiter_hook
    _asyncgen_finalizer_hook = _Base._asyncgen_finalizer_hook

    # poll.c: the C sock_* methods return Futures; these coroutines await
    # them, so that they are coroutines as asyncio's (create_task() takes
    # them, errors are raised when awaited). sock_connect resolves the
    # address as asyncio does, then awaits the C part (_sock_connect).
    _ensure_resolved = _Base._ensure_resolved

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from the non-blocking socket sock."""
        fut, res = _c_sock_recv(self, sock, n)
        return res if fut is None else await fut

    async def sock_recv_into(self, sock, buf):
        """Receive from sock into buf; return the number of bytes received."""
        fut, res = _c_sock_recv_into(self, sock, buf)
        return res if fut is None else await fut

    async def sock_sendall(self, sock, data):
        """Send all of data to sock."""
        fut, res = _c_sock_sendall(self, sock, data)
        return res if fut is None else await fut

    async def sock_accept(self, sock):
        """Accept a connection: (conn, address), conn non-blocking."""
        return await _c_sock_accept(self, sock)

    async def sock_connect(self, sock, address):
        """Connect to a remote socket at address."""
        _poll_base_events._check_ssl_socket(sock)
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        if sock.family == _socket.AF_INET or (
                _poll_base_events._HAS_IPv6 and sock.family == _socket.AF_INET6):
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto,
                loop=self,
            )
            _, _, _, _, address = resolved[0]
        return await self._sock_connect(sock, address)


def new_event_loop() -> Loop:
    """Return a new asyncloop event loop."""
    return Loop()


def run(main, *, debug=None, **run_kwargs):
    """Run a coroutine with asyncloop, like asyncio.run().

    On 3.12+ this is asyncio.run(main, loop_factory=new_event_loop); on
    older Pythons it drives an asyncio.Runner (3.11) or the same steps
    asyncio.run takes (3.10) on an asyncloop loop.
    """
    if __sys.version_info >= (3, 12):
        return __asyncio.run(main, debug=debug, loop_factory=new_event_loop, **run_kwargs)
    if __sys.version_info >= (3, 11):
        # Runner has no loop_factory before 3.12: hand it a policy whose
        # new_event_loop is ours, only for the duration of the run.
        return _run_with_policy(main, debug)
    return _run_310(main, debug)


def _run_with_policy(main, debug):
    # Checked first, as asyncio.run does: a Runner made here would fail in
    # close() and hide this error behind another.
    if __asyncio.events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    old = __asyncio.events._event_loop_policy
    __asyncio.set_event_loop_policy(EventLoopPolicy())
    try:
        with __asyncio.Runner(debug=debug) as runner:
            return runner.run(main)
    finally:
        __asyncio.set_event_loop_policy(old)


def _run_310(main, debug):
    # The steps of 3.10's asyncio.run, on our loop.
    from asyncio import coroutines, events

    if events._get_running_loop() is not None:
        raise RuntimeError("asyncio.run() cannot be called from a running event loop")
    if not coroutines.iscoroutine(main):
        raise ValueError("a coroutine was expected, got {!r}".format(main))
    loop = new_event_loop()
    try:
        events.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            events.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop):
    to_cancel = __asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    loop.run_until_complete(__asyncio.gather(*to_cancel, return_exceptions=True))
    for task in to_cancel:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler({
                "message": "unhandled exception during asyncio.run() shutdown",
                "exception": task.exception(),
                "task": task,
            })


class EventLoopPolicy(__asyncio.DefaultEventLoopPolicy):
    """An asyncio event loop policy whose loops are asyncloop loops."""

    def _loop_factory(self):
        return new_event_loop()

    def __repr__(self):
        return f"<{type(self).__module__}.{type(self).__qualname__}>"


def install():
    """Make asyncloop the loop of asyncio.get_event_loop_policy()."""
    if __sys.version_info >= (3, 12):
        import warnings
        with warnings.catch_warnings():
            # 3.14 deprecates the policy system; installing is still valid.
            warnings.simplefilter("ignore", DeprecationWarning)
            __asyncio.set_event_loop_policy(EventLoopPolicy())
    else:
        __asyncio.set_event_loop_policy(EventLoopPolicy())
