"""asyncloop: a fast asyncio event loop written in C over libuv.

Ways in:
    asyncloop.run(main())
    asyncio.run(main(), loop_factory=asyncloop.new_event_loop)   # 3.12+
    asyncio.set_event_loop_policy(asyncloop.EventLoopPolicy())   # or install()
    python -m asyncloop script.py [args]
"""

import asyncio as __asyncio
import collections as __collections  # metrics.c glue
import collections.abc as _collections_abc  # poll.c glue
import os as _os
import socket as _socket
import subprocess as _subprocess  # process.c glue
import sys as __sys
import sys as _sys  # process.c glue
import types as _types  # sendfile.c glue
import weakref as _weakref
from asyncio import base_events as __base_events
from asyncio import base_events as _poll_base_events  # poll.c glue
from asyncio import base_subprocess as _base_subprocess  # process.c glue
from asyncio import selector_events as __selector_events
from asyncio import sslproto as _sslproto
from asyncio import unix_events as __unix_events

from . import _core
from ._core import LoopMetrics as LoopMetrics  # metrics.c
from ._core import __libuv_version__ as __libuv_version__  # re-exported

__all__ = ("Loop", "new_event_loop", "run", "install", "EventLoopPolicy",
           "LoopMetrics", "Utilization", "utilization")
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


class _SendfileFallbackProtocol(_poll_base_events._SendfileFallbackProtocol):
    # sendfile.c glue: asyncio's, without its isinstance(transp,
    # transports._FlowControlMixin) check; the C socket transport has that
    # mixin's API (_protocol_paused, _loop, pause_reading, ...), not its
    # Python layout.
    def __init__(self, transp):
        self._transport = transp
        self._proto = transp.get_protocol()
        self._should_resume_reading = transp.is_reading()
        self._should_resume_writing = transp._protocol_paused
        transp.pause_reading()
        transp.set_protocol(self)
        if self._should_resume_writing:
            self._write_ready_fut = self._transport._loop.create_future()
        else:
            self._write_ready_fut = None


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
    # The accept loop: asyncio's _start_serving registers the C
    # _accept_connection (src/server.c) as the listening socket's reader; it
    # makes a plain connection's protocol and transport itself, and hands
    # the others (ssl=, or a subclass's own transport factories: see
    # __init_subclass__) to asyncio's _accept_connection2 task.
    _start_serving = _Selector._start_serving
    _accept_connection2 = _Selector._accept_connection2
    _accept_inline = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._accept_inline = all(
            getattr(cls, name) is getattr(Loop, name)
            for name in ("_accept_connection2", "_make_socket_transport", "_make_ssl_transport"))

    _ensure_fd_no_transport = _Selector._ensure_fd_no_transport

    # pipe.c: asyncio's own connect_read_pipe / connect_write_pipe (waiter,
    # debug log) over the C _make_read_pipe_transport /
    # _make_write_pipe_transport.
    connect_read_pipe = _Base.connect_read_pipe
    connect_write_pipe = _Base.connect_write_pipe

    def _timer_handle_cancelled(self, handle):
        # An asyncio.TimerHandle made by hand (asyncio.TimerHandle(when, cb,
        # args, loop)) reports its cancel here; the loop's own timers are C
        # TimerHandles, cancelled lazily in the heap, so there is nothing to
        # count (AbstractEventLoop's raises NotImplementedError).
        pass

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
    # udp.c: create_datagram_endpoint is asyncio's own coroutine (a cold
    # path, once per endpoint), so that its argument checks, messages,
    # address resolution and socket options (reuse_port, allow_broadcast,
    # Unix paths, sock=) are asyncio's exactly on each version; it ends in
    # _make_datagram_transport, the C transport of src/udp.c.
    create_datagram_endpoint = _Base.create_datagram_endpoint

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

    # sendfile.c (and the end of stream.c): loop.sendfile and
    # loop.sock_sendfile are asyncio's own (argument checks, transport
    # modes, fallback to reads and writes); their zero-copy parts are C:
    # _sock_sendfile_native (sendfile(2) first, writability only on EAGAIN)
    # and the socket transport's _sendfile_native over its poll handle.
    sendfile = _Base.sendfile
    # asyncio's _sendfile_fallback, with the protocol below in place of
    # base_events._SendfileFallbackProtocol (its code object is reused).
    _sendfile_fallback = _types.FunctionType(
        _Base._sendfile_fallback.__code__,
        {**vars(_poll_base_events), "_SendfileFallbackProtocol": _SendfileFallbackProtocol},
        "_sendfile_fallback", _Base._sendfile_fallback.__defaults__)
    sock_sendfile = _Base.sock_sendfile
    _sock_sendfile_fallback = _Base._sock_sendfile_fallback
    _check_sendfile_params = _Base._check_sendfile_params

    async def _sendfile_native(self, transp, file, offset, count):
        # selector_events' steps, with sock_sendfile(fallback=False)'s
        # checks; the transport sends in C.
        resume_reading = transp.is_reading()
        transp.pause_reading()
        await transp._make_empty_waiter()
        try:
            sock = transp._sock
            if self._debug and sock.gettimeout() != 0:
                raise ValueError("the socket must be non-blocking")
            _poll_base_events._check_ssl_socket(sock)
            self._check_sendfile_params(sock, file, offset, count)
            return await transp._sendfile_native(file, offset, count)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()

    # poll.c: sock_recvfrom/sock_recvfrom_into/sock_sendto (asyncio has
    # them from 3.11 on; offered on 3.10 too) are C coroutines as well.
    sock_recvfrom = _core.Loop._sock_recvfrom_coro
    sock_recvfrom_into = _core.Loop._sock_recvfrom_into_coro
    sock_sendto = _core.Loop._sock_sendto_coro

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

    # --- process.c: subprocesses -------------------------------------------
    # subprocess_exec/subprocess_shell are asyncio's (argument checks and
    # messages); the transport (below) spawns and reaps in C.
    subprocess_exec = _Base.subprocess_exec
    subprocess_shell = _Base.subprocess_shell
    _log_subprocess = _Base._log_subprocess

    async def _make_subprocess_transport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        # asyncio's unix loop without a child watcher: the pidfd of the
        # child, polled by this loop, reaps it (or a thread, without pidfd).
        waiter = self.create_future()
        child = await _spawn(self, args, shell, stdin, stdout, stderr, bufsize, kwargs)
        transp = _SubprocessTransport.__new__(_SubprocessTransport)
        transp._al_child = child
        transp.__init__(self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                        waiter=waiter, extra=extra, **kwargs)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    # metrics.c: loop.metrics() counts the sockets being served, as
    # asyncio's Server starts and stops serving each of them.
    def _metrics_serving(start, stop):
        def _start_serving(self, *args, **kwargs):
            start(self, *args, **kwargs)
            self._count_server(1)

        def _stop_serving(self, sock):
            self._count_server(-1)
            stop(self, sock)

        return _start_serving, _stop_serving

    _start_serving, _stop_serving = _metrics_serving(_start_serving, _stop_serving)
    del _metrics_serving


# Loop owns the C core's methods (as descriptors of Loop, not of _core.Loop)
# unless it overrides them: the interpreter's specialised call of a C method
# checks that the descriptor's class is the instance's exact type.
for __name, __descr in _core._method_descriptors(Loop).items():
    if __name not in Loop.__dict__:
        setattr(Loop, __name, __descr)
del __name, __descr


# process.c glue: the transport of a child process. The protocol plumbing
# (pipes, the order of the protocol's callbacks, wait(), close()) is
# asyncio's BaseSubprocessTransport of the running CPython, so that its
# per-version behaviour is asyncio's exactly: it runs a few times per
# process. Spawning (posix_spawn) and reaping (a pidfd the loop polls) are
# in C, in Loop._spawn_child; options posix_spawn cannot honour
# (preexec_fn, user, group, extra_groups, umask, pass_fds) go through
# subprocess.Popen as asyncio does, the child still reaped by the loop.
_PIPE = _subprocess.PIPE
_DEVNULL = _subprocess.DEVNULL
_STDOUT = _subprocess.STDOUT
_FAST_KW = {"executable", "cwd", "env", "close_fds", "start_new_session", "restore_signals"}
if __sys.version_info >= (3, 11):
    _FAST_KW.add("process_group")
_NEUTRAL_KW = {"pass_fds": (), "preexec_fn": None, "user": None, "group": None,
               "extra_groups": None, "umask": -1}


def _fd_of(obj):
    if obj is None:
        return -1
    if isinstance(obj, int):
        return obj
    return obj.fileno()


async def _spawn(loop, args, shell, stdin, stdout, stderr, bufsize, kwargs):
    """Spawn through the C core (posix_spawn on the thread pool): the
    Child, or None where an option needs subprocess.Popen."""
    for key, value in kwargs.items():
        if key not in _FAST_KW and (key not in _NEUTRAL_KW or value != _NEUTRAL_KW[key]):
            return None
    executable = kwargs.get("executable")
    if shell:
        args = ["/bin/sh", "-c", args]
        if executable is not None:
            args[0] = executable
    else:
        args = list(args)
    cwd = kwargs.get("cwd")
    env = kwargs.get("env")
    pgid = kwargs.get("process_group")
    prog = args[0] if executable is None else executable
    _sys.audit("subprocess.Popen", prog, args, cwd, env)
    exec_path = () if b"/" in _os.fsencode(prog) else _os.get_exec_path(env)
    child_ends = []  # closed by the C core once the spawn is over
    files = [None, None, None]
    devnull = -1
    fds = [-1, -1, -1]
    try:
        for i, spec in enumerate((stdin, stdout, stderr)):
            if spec == _PIPE:
                r, w = _os.pipe()
                child, parent = (r, w) if i == 0 else (w, r)
                child_ends.append(child)
                fds[i] = child
                try:
                    files[i] = open(parent, "wb" if i == 0 else "rb", buffering=bufsize)
                except BaseException:
                    _os.close(parent)
                    raise
            elif spec == _DEVNULL:
                if devnull < 0:
                    devnull = _os.open(_os.devnull, _os.O_RDWR)
                    child_ends.append(devnull)
                fds[i] = devnull
            elif spec == _STDOUT and i == 2:
                fds[2] = fds[1] if fds[1] != -1 else _sys.__stdout__.fileno()
            else:
                fds[i] = _fd_of(spec)
        ends, child_ends = child_ends, ()
        proc = await loop._spawn_child_async(
            args, executable, exec_path, cwd, env, fds[0], fds[1], fds[2],
            kwargs.get("close_fds", True), kwargs.get("start_new_session", False),
            -1 if pgid is None else pgid, kwargs.get("restore_signals", True), None, ends)
    except BaseException:
        for f in files:
            if f is not None:
                f.close()
        for fd in child_ends:
            _os.close(fd)
        raise
    proc.stdin, proc.stdout, proc.stderr = files
    return proc


class _SubprocessTransport(_base_subprocess.BaseSubprocessTransport):
    _al_child = None  # the Child _spawn made, set before __init__

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        proc = self._al_child
        if proc is not None:
            self._proc = proc
            proc._set_exit_callback(self._loop, self._process_exited)
            return
        self._proc = _subprocess.Popen(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs)
        self._child = self._loop._watch_child(self._proc.pid, self._process_exited)


# metrics.c: Node's eventLoopUtilization over loop.metrics() snapshots.
class Utilization(__collections.namedtuple("Utilization", "idle active utilization")):
    """Seconds idle (blocked in poll) and active (running), and
    active / (idle + active), between two loop.metrics() snapshots."""

    __slots__ = ()


def utilization(current, previous=None):
    """The loop's utilization in current, or between previous and current.

    current and previous are loop.metrics() snapshots of the same loop,
    previous taken first; as Node's performance.eventLoopUtilization().
    """
    if not isinstance(current, _core.LoopMetrics):
        raise TypeError(f"current must be a loop.metrics() snapshot, not {type(current).__name__}")
    idle, active = current.idle, current.busy
    if previous is not None:
        if not isinstance(previous, _core.LoopMetrics):
            raise TypeError("previous must be a loop.metrics() snapshot or None, "
                            f"not {type(previous).__name__}")
        if previous.loop_id != current.loop_id:
            raise ValueError("previous is a snapshot of another loop")
        if previous.time > current.time:
            raise ValueError("previous was taken after current")
        idle = max(0.0, idle - previous.idle)
        active = max(0.0, active - previous.busy)
    total = idle + active
    return Utilization(idle, active, active / total if total > 0 else 0.0)


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
