"""asyncloop: a fast asyncio event loop written in C over libuv.

Ways in:
    asyncloop.run(main())
    asyncio.run(main(), loop_factory=asyncloop.new_event_loop)   # 3.12+
    asyncio.set_event_loop_policy(asyncloop.EventLoopPolicy())   # or install()
    python -m asyncloop script.py [args]
"""

import asyncio as __asyncio
import collections.abc as _collections_abc  # poll.c glue
import os as _os
import socket as _socket
import sys as __sys
import weakref as _weakref
from asyncio import base_events as __base_events
from asyncio import base_events as _poll_base_events  # poll.c glue
from asyncio import selector_events as __selector_events
from asyncio import sslproto as _sslproto
from asyncio import unix_events as __unix_events

from . import _core
from ._core import __libuv_version__ as __libuv_version__  # re-exported

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy")
__version__ = "0.1.0"


_Base = __base_events.BaseEventLoop
_Base_logger = __base_events.logger
_Selector = __selector_events.BaseSelectorEventLoop
_Unix = __unix_events._UnixSelectorEventLoop

# ssl.c: asyncio's own start_tls (its checks, messages and per-version
# keywords), with _core.SSLProtocol where it names sslproto.SSLProtocol.
_start_tls_c = type(_Base.start_tls)(
    _Base.start_tls.__code__,
    dict(vars(__base_events),
         sslproto=type(_sslproto)("sslproto_c", None)),
    "start_tls", _Base.start_tls.__defaults__, _Base.start_tls.__closure__)
_start_tls_c.__kwdefaults__ = _Base.start_tls.__kwdefaults__
_start_tls_c.__globals__["sslproto"].SSLProtocol = _core.SSLProtocol


# poll.c: Loop.sock_recv/sock_recv_into/sock_sendall/sock_accept return
# _core.SockCall objects, coroutines written in C: asyncio.iscoroutine()
# and create_task() take them as Coroutines.
_collections_abc.Coroutine.register(_core.SockCall)


class Loop(_core.Loop, __asyncio.AbstractEventLoop):
    """The asyncloop event loop: asyncio.AbstractEventLoop implemented in C."""

    def __init__(self):
        # State read by the asyncio methods reused below.
        self._asyncgens = _weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._unix_server_sockets = {}  # 3.13: listening sockets to unlink

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

    # --- networking: connection set-up (cold paths) --------------------
    # Opening a connection or a server happens once per connection: these
    # are asyncio's own methods, so that every argument check, message,
    # per-version keyword (all_errors, keep_alive, cleanup_socket, ...),
    # happy eyeballs (asyncio.staggered) and the Server object are exactly
    # asyncio's. They end in the C core: getaddrinfo (src/dns.c),
    # sock_connect and the accept watcher (src/poll.c) and
    # _make_socket_transport (src/stream.c), where the per-byte work is.
    create_connection = _Base.create_connection
    _connect_sock = _Base._connect_sock
    _create_connection_transport = _Base._create_connection_transport
    _ensure_resolved = _Base._ensure_resolved
    create_server = _Base.create_server
    _create_server_getaddrinfo = _Base._create_server_getaddrinfo
    connect_accepted_socket = _Base.connect_accepted_socket
    create_unix_connection = _Unix.create_unix_connection
    create_unix_server = _Unix.create_unix_server
    # The accept loop: asyncio's, including its EMFILE handling (log,
    # stop accepting for a second, resume).
    _start_serving = _Selector._start_serving
    _accept_connection = _Selector._accept_connection
    _accept_connection2 = _Selector._accept_connection2
    # sock_sendfile falls back to sock_sendall as asyncio's does where the
    # native path is unavailable.
    sock_sendfile = _Base.sock_sendfile
    _sock_sendfile_native = _Base._sock_sendfile_native
    _sock_sendfile_fallback = _Base._sock_sendfile_fallback
    _check_sendfile_params = _Base._check_sendfile_params

    _ensure_fd_no_transport = _Selector._ensure_fd_no_transport

    def _add_reader(self, fd, callback, *args):
        # The listening socket is no transport's: add_reader's check passes.
        return self.add_reader(fd, callback, *args)

    def _remove_reader(self, fd):
        return self.remove_reader(fd)

    def _stop_serving(self, sock):
        # asyncio's unix loop: also unlink a Unix server's socket file if
        # it is still the one we bound (3.13's cleanup_socket).
        path = sock.getsockname() if sock in self._unix_server_sockets else None
        self._remove_reader(sock.fileno())
        sock.close()
        if path is not None:
            prev_ino = self._unix_server_sockets.pop(sock)
            try:
                if _os.stat(path).st_ino == prev_ino:
                    _os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                _Base_logger.error("Unable to clean up listening UNIX socket %r: %r",
                                           path, err)

    # ssl.c: TLS in C (_core.SSLProtocol drives the user's SSLContext
    # through MemoryBIO/SSLObject) between the C socket transport and the
    # app protocol. _c_tls = False (or ASYNCLOOP_SSLPROTO=1 in the
    # environment) selects asyncio's own sslproto.SSLProtocol instead, so
    # that tests can compare the two.
    _c_tls = _os.environ.get("ASYNCLOOP_SSLPROTO", "") in ("", "0")

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *,
                            server_side=False, server_hostname=None, extra=None,
                            server=None, **timeouts):
        self._ensure_fd_no_transport(rawsock)
        cls = _core.SSLProtocol if self._c_tls else _sslproto.SSLProtocol
        ssl_protocol = cls(self, protocol, sslcontext, waiter, server_side,
                           server_hostname, **timeouts)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    def start_tls(self, transport, protocol, sslcontext, **kwargs):
        fn = _start_tls_c if self._c_tls else _Base.start_tls
        return fn(self, transport, protocol, sslcontext, **kwargs)

    # dns.c: the lookups run in C (_getaddrinfo/_getnameinfo return a
    # Future); these coroutine functions keep asyncio's signatures. In debug
    # mode getaddrinfo goes through asyncio's own _getaddrinfo_debug in the
    # default executor, so that its log records are asyncio's exactly.
    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):
        if self.get_debug():
            return await self.run_in_executor(
                None, self._getaddrinfo_debug, host, port, family, type, proto, flags)
        return await self._getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        return await self._getnameinfo(sockaddr, flags)

    _getaddrinfo_debug = _Base._getaddrinfo_debug
    # poll.c: the C sock_* methods return Futures; these coroutines await
    # them, so that they are coroutines as asyncio's (create_task() takes
    # them, errors are raised when awaited). sock_connect resolves the
    # address as asyncio does, then awaits the C part (_sock_connect).
    _ensure_resolved = _Base._ensure_resolved

    # sock_recv/sock_recv_into/sock_sendall/sock_accept return a C
    # coroutine (_core.SockCall, registered above as a Coroutine): nothing
    # happens until it is awaited, as with an async def.
    sock_recv = _core.Loop._sock_recv_coro
    sock_recv_into = _core.Loop._sock_recv_into_coro
    sock_sendall = _core.Loop._sock_sendall_coro
    sock_accept = _core.Loop._sock_accept_coro

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
        raise ValueError(f"a coroutine was expected, got {main!r}")
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
