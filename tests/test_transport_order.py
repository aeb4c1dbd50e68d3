"""Where a transport's I/O callbacks run among the loop's handles.

asyncio's _run_once polls, then appends the reader/writer handles of the
ready fds BEHIND the handles already queued (a task's wake-up, call_soon
callbacks), and runs what was queued then; what those callbacks schedule
runs at the next iteration, after all of this poll's I/O. Each case runs on
asyncio's loop and on ours (the ``loop`` fixture of conftest.py).
"""

import asyncio
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading

import pytest

from conftest import GUARD


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, GUARD))


class Log(asyncio.Protocol):
    def __init__(self, log, name="data", on_data=None):
        self.log = log
        self.name = name
        self.on_data = on_data
        self.got = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.log.append(self.name)
        if self.on_data is not None:
            self.on_data()
        if not self.got.done():
            self.got.set_result(data)


def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_create_connection_resumes_before_waiting_data(loop):
    async def main():
        log = []
        a, b = pair()
        b.send(b"x")
        tr, proto = await loop.create_connection(lambda: Log(log), sock=a)
        log.append("resumed")
        assert await proto.got == b"x"
        tr.close()
        b.close()
        return log

    assert run(loop, main()) == ["resumed", "data"]


def test_call_soon_queued_before_data_runs_first(loop):
    async def main():
        log = []
        a, b = pair()
        tr, proto = await loop.create_connection(lambda: Log(log), sock=a)
        for _ in range(3):  # reading has started
            await asyncio.sleep(0)
        b.send(b"x")
        loop.call_soon(log.append, "soon")
        await proto.got
        tr.close()
        b.close()
        return log

    assert run(loop, main()) == ["soon", "data"]


def _two_connections(loop, queue_first):
    async def main():
        log = []
        done = loop.create_future()

        def scheduled():
            log.append("scheduled")
            done.set_result(None)

        a1, b1 = pair()
        a2, b2 = pair()
        t1, _ = await loop.create_connection(
            lambda: Log(log, "data1", lambda: loop.call_soon(scheduled)), sock=a1)
        t2, p2 = await loop.create_connection(lambda: Log(log, "data2"), sock=a2)
        for _ in range(3):
            await asyncio.sleep(0)
        b1.send(b"x")
        b2.send(b"y")
        if queue_first:
            loop.call_soon(log.append, "soon")
        await done
        await p2.got
        for t in (t1, t2):
            t.close()
        b1.close()
        b2.close()
        return log

    return run(loop, main())


def test_two_connections_one_poll(loop):
    # What the first data_received scheduled runs after the second one.
    assert _two_connections(loop, False) == ["data1", "data2", "scheduled"]


def test_two_connections_one_poll_behind_queued(loop):
    assert _two_connections(loop, True) == ["soon", "data1", "data2", "scheduled"]


def test_pause_reading_by_queued_handle_stops_this_poll(loop):
    async def main():
        log = []
        a, b = pair()
        tr, proto = await loop.create_connection(lambda: Log(log), sock=a)
        for _ in range(3):
            await asyncio.sleep(0)
        b.send(b"x")
        loop.call_soon(tr.pause_reading)
        loop.call_soon(log.append, "paused")
        for _ in range(5):
            await asyncio.sleep(0)
        log.append("resume")
        tr.resume_reading()
        assert await proto.got == b"x"
        tr.close()
        b.close()
        return log

    assert run(loop, main()) == ["paused", "resume", "data"]


def test_close_by_queued_handle_no_data(loop):
    async def main():
        log = []
        a, b = pair()
        lost = loop.create_future()

        class P(Log):
            def connection_lost(self, exc):
                log.append("lost")
                lost.set_result(exc)

        tr, proto = await loop.create_connection(lambda: P(log), sock=a)
        for _ in range(3):
            await asyncio.sleep(0)
        b.send(b"x")
        loop.call_soon(tr.close)
        assert await lost is None
        b.close()
        return log

    assert run(loop, main()) == ["lost"]


def test_read_pipe_resumes_before_waiting_data(loop):
    async def main():
        log = []
        r, w = os.pipe()
        os.write(w, b"x")
        f = os.fdopen(r, "rb", buffering=0)
        tr, proto = await loop.connect_read_pipe(lambda: Log(log), f)
        log.append("resumed")
        assert await proto.got == b"x"
        tr.close()
        os.close(w)
        return log

    assert run(loop, main()) == ["resumed", "data"]


def test_read_pipe_call_soon_queued_before_data_runs_first(loop):
    async def main():
        log = []
        r, w = os.pipe()
        f = os.fdopen(r, "rb", buffering=0)
        tr, proto = await loop.connect_read_pipe(lambda: Log(log), f)
        for _ in range(3):
            await asyncio.sleep(0)
        os.write(w, b"x")
        loop.call_soon(log.append, "soon")
        await proto.got
        tr.close()
        os.close(w)
        return log

    assert run(loop, main()) == ["soon", "data"]


def test_udp_second_datagram_event_behind_first_ones_callbacks(loop):
    async def main():
        log = []
        done = loop.create_future()

        class D(asyncio.DatagramProtocol):
            def __init__(self, name, schedule):
                self.name = name
                self.schedule = schedule

            def datagram_received(self, data, addr):
                log.append(self.name)
                if self.schedule:
                    loop.call_soon(log.append, "scheduled")
                else:
                    done.set_result(None)

        t1, _ = await loop.create_datagram_endpoint(
            lambda: D("d1", True), local_addr=("127.0.0.1", 0))
        t2, _ = await loop.create_datagram_endpoint(
            lambda: D("d2", False), local_addr=("127.0.0.1", 0))
        for _ in range(3):
            await asyncio.sleep(0)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", t1.get_extra_info("sockname"))
        s.sendto(b"y", t2.get_extra_info("sockname"))
        await done
        await asyncio.sleep(0)
        for t in (t1, t2):
            t.close()
        s.close()
        return log

    assert run(loop, main()) == ["d1", "d2", "scheduled"]


def test_tls_call_soon_queued_before_data_runs_first(loop):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    server_ctx.num_tickets = 0  # nothing more arrives after the handshake
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    # The server is a blocking TLS socket in a thread: its record is in our
    # socket before the call_soon (loopback delivers within sendall), with
    # no poll in between.
    lsock = socket.create_server(("127.0.0.1", 0))
    go, sent = threading.Event(), threading.Event()

    def serve():
        conn, _ = lsock.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tconn:
            go.wait(GUARD)
            tconn.sendall(b"x")
            sent.set()
            tconn.recv(1)  # until the client closes

    th = threading.Thread(target=serve)
    th.start()

    async def main():
        log = []
        tr, proto = await loop.create_connection(
            lambda: Log(log), *lsock.getsockname(), ssl=client_ctx)
        for _ in range(5):
            await asyncio.sleep(0)
        go.set()
        assert sent.wait(GUARD)
        loop.call_soon(log.append, "soon")
        assert await proto.got == b"x"
        tr.abort()
        return log

    try:
        assert run(loop, main()) == ["soon", "data"]
    finally:
        go.set()
        th.join(GUARD)
        lsock.close()


# --- call_soon_threadsafe from another thread during the poll -------------------


def test_call_soon_threadsafe_during_poll_runs_before_that_polls_io(loop):
    """Another thread's call_soon_threadsafe while the loop blocks in its
    poll, with a read event of that poll: asyncio appends the handle to
    _ready at once, and its loop thread, waiting for the GIL after select(),
    appends the reader's behind it."""
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    log, failed = [], []
    polling = threading.Event()

    async def main():
        tr, proto = await loop.create_connection(lambda: Log(log), sock=rsock)
        for _ in range(3):  # reading has started
            await asyncio.sleep(0)
        polling.set()  # nothing queued: the loop blocks in its poll next
        await proto.got
        tr.close()

    def in_thread():
        try:
            run(loop, main())
        except BaseException as exc:  # noqa: B902 - reported below
            failed.append(exc)

    old_handler = signal.signal(signal.SIGUSR1, lambda *args: None)
    old_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    old_interval = sys.getswitchinterval()
    # The GIL changes hands only where a thread waits: this thread gets it
    # when the loop thread releases it to poll, and keeps it from the byte's
    # arrival to the call below.
    sys.setswitchinterval(GUARD)
    th = threading.Thread(target=in_thread)
    try:
        th.start()
        assert polling.wait(GUARD)
        # The signal's C handler writes a byte to the wakeup fd (wsock):
        # rsock is readable, and os.kill keeps the GIL, so the loop thread
        # cannot handle that event before the handle is queued.
        os.kill(os.getpid(), signal.SIGUSR1)
        loop.call_soon_threadsafe(log.append, "threadsafe")
    finally:
        th.join(GUARD)
        sys.setswitchinterval(old_interval)
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGUSR1, old_handler)
        wsock.close()
    assert not th.is_alive()
    assert not failed, failed
    assert log == ["threadsafe", "data"]


# --- error events (POLLERR) behind queued handles --------------------------------


def test_reset_behind_queued_handle(loop):
    # The reader's handle takes the error (recv: ConnectionResetError) after
    # the queued callback; connection_lost comes after what that scheduled.
    async def main():
        log = []
        lost = loop.create_future()

        class P(Log):
            def connection_lost(self, exc):
                log.append(("lost", type(exc).__name__))
                lost.set_result(None)

        a, b = pair()
        tr, proto = await loop.create_connection(lambda: P(log), sock=a)
        for _ in range(3):
            await asyncio.sleep(0)
        tr.write(b"unread")
        b.close()  # with unread data: our end gets ECONNRESET (POLLERR)

        def soon():
            log.append(("soon", tr.is_closing()))
            loop.call_soon(log.append, "later")

        loop.call_soon(soon)
        await lost
        return log

    assert run(loop, main()) == [("soon", False), "later", ("lost", "ConnectionResetError")]


def test_sendfile_error_behind_queued_handle(loop, tmp_path):
    # A sendfile waiting for writability: the writer's handle (asyncio's
    # _sock_sendfile_native_impl) takes the error after the queued callback.
    path = tmp_path / "big"
    path.write_bytes(b"x" * (16 << 20))

    async def main():
        log = []
        a, b = pair()
        tr, proto = await loop.create_connection(lambda: Log(log), sock=a)
        for _ in range(3):
            await asyncio.sleep(0)
        with open(path, "rb") as f:

            async def send():
                try:
                    await loop.sendfile(tr, f)
                except OSError:
                    log.append("failed")

            task = loop.create_task(send())
            await asyncio.sleep(0)
            while select.select([], [a], [], 0)[1]:  # until it waits for room
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            b.close()  # unread data: ECONNRESET, POLLERR

            def soon():
                log.append("soon")
                loop.call_soon(log.append, "later")

            loop.call_soon(soon)
            await task
        tr.abort()
        return log

    assert run(loop, main()) == ["soon", "later", "failed"]


def test_write_pipe_reader_gone_behind_queued_handle(loop):
    # The write end of a pipe whose reader closed reports POLLERR: asyncio's
    # _read_ready (the peer-close watch) runs as a handle behind the queued one.
    async def main():
        log = []
        lost = loop.create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc):
                log.append(("lost", exc))
                lost.set_result(None)

        r, w = os.pipe()
        f = os.fdopen(w, "wb", buffering=0)
        tr, _ = await loop.connect_write_pipe(P, f)
        for _ in range(3):
            await asyncio.sleep(0)
        os.close(r)

        def soon():
            log.append(("soon", tr.is_closing()))
            loop.call_soon(log.append, "later")

        loop.call_soon(soon)
        await lost
        return log

    assert run(loop, main()) == [("soon", False), "later", ("lost", None)]


# --- TLS: writes made during a read ------------------------------------------------


class _BioClient:
    """A TLS client over a blocking socket and memory BIOs: what it sends
    after the handshake goes out in one send()."""

    def __init__(self, ctx, addr):
        self.sock = socket.create_connection(addr, timeout=GUARD)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
        self.flush()

    def flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def read(self, n=None):
        """Decrypted bytes: n of them, or all until the server is gone."""
        got = b""
        while n is None or len(got) < n:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                self.fill()
                continue
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            got += chunk
        return got


def test_tls_write_in_data_received_before_eof_that_aborts(loop):
    """One read brings a record and the peer's close_notify: data_received
    writes, then eof_received aborts. asyncio (3.11+) encrypts and sends
    each write at once, so the reply is out before the abort (3.10's
    sslproto sends it at once too, and shuts down without eof_received)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    server_ctx.num_tickets = 0
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    got = []

    def client(addr):
        c = _BioClient(client_ctx, addr)
        try:
            got.append(c.read(5))  # the server's handshake is over
            c.obj.write(b"ping")
            try:
                c.obj.unwrap()  # close_notify, behind the record
            except ssl.SSLWantReadError:
                pass
            c.flush()  # both in one send
            got.append(c.read())
        finally:
            c.sock.close()

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transport.write(b"hello")

        def data_received(self, data):
            self.transport.write(b"reply:" + data)

        def eof_received(self):
            self.transport.abort()

    async def main():
        server = await loop.create_server(P, "127.0.0.1", 0, ssl=server_ctx)
        addr = server.sockets[0].getsockname()
        th = threading.Thread(target=client, args=(addr,))
        th.start()
        try:
            while th.is_alive():
                await asyncio.sleep(0.01)
        finally:
            th.join(GUARD)
            server.close()

    run(loop, main())
    assert got == [b"hello", b"reply:ping"]


# --- datagram error and writable events behind queued handles ---------------


def _wait_fd(fd, events):
    # Blocks (the loop too) until the kernel reports the event, so that the
    # next poll sees it with the callback below already queued.
    p = select.poll()
    p.register(fd, events)
    assert p.poll(GUARD * 1000)


def test_udp_icmp_error_behind_queued_handle(loop):
    # A connected datagram socket's ICMP port unreachable: asyncio's reader
    # handle, queued behind the callback, takes it from recvfrom()
    # (ConnectionRefusedError -> error_received); what the callback
    # scheduled runs at the next iteration.
    async def main():
        log = []
        err = loop.create_future()

        class D(asyncio.DatagramProtocol):
            def error_received(self, exc):
                log.append(("error", type(exc).__name__))
                err.set_result(None)

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nobody listens there: ICMP port unreachable
        tr, _ = await loop.create_datagram_endpoint(D, remote_addr=("127.0.0.1", port))
        for _ in range(3):
            await asyncio.sleep(0)
        tr.sendto(b"x")
        _wait_fd(tr.get_extra_info("socket").fileno(), 0)  # POLLERR

        def soon():
            log.append("soon")
            loop.call_soon(log.append, "later")

        loop.call_soon(soon)
        await err
        await asyncio.sleep(0)
        tr.close()
        return log

    assert run(loop, main()) == ["soon", ("error", "ConnectionRefusedError"), "later"]


def test_udp_sendto_flush_behind_queued_handle(loop, tmp_path):
    # sendto() queued after EAGAIN: asyncio's writer handle (_sendto_ready)
    # flushes it and resumes the protocol behind the queued callback.
    async def main():
        log = []
        resumed = loop.create_future()

        class D(asyncio.DatagramProtocol):
            def pause_writing(self):
                log.append("paused")

            def resume_writing(self):
                log.append("resumed")
                resumed.set_result(None)

        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.bind(str(tmp_path / "a"))
        b.bind(str(tmp_path / "b"))
        a.connect(str(tmp_path / "b"))  # b's queue full: a's send() blocks
        a.setblocking(False)
        b.setblocking(False)
        tr, _ = await loop.create_datagram_endpoint(D, sock=a)
        for _ in range(3):
            await asyncio.sleep(0)
        # paused by one queued datagram; resumed once it is sent (low=99:
        # 3.13.0's _sendto_ready leaves its 8 header bytes counted)
        tr.set_write_buffer_limits(high=99, low=99)
        while not tr.get_write_buffer_size():
            tr.sendto(b"x" * 100)
        while True:  # room again: the next poll reports a writable
            try:
                b.recv(4096)
            except BlockingIOError:
                break
        _wait_fd(a.fileno(), select.POLLOUT)

        def soon():
            log.append(("soon", tr.get_write_buffer_size() > 0))
            loop.call_soon(log.append, "later")

        loop.call_soon(soon)
        await resumed
        await asyncio.sleep(0)
        tr.close()
        b.close()
        return log

    assert run(loop, main()) == ["paused", ("soon", True), "resumed", "later"]


# --- a child's exit among the loop's handles ------------------------------------
#
# asyncio 3.12+ reaps through PidfdChildWatcher: the pidfd's reader handle
# (_do_wait, queued behind the handles queued before the poll) reaps and
# call_soon_threadsafe()s transport._process_exited, which call_soon()s
# protocol.process_exited and, once every pipe is gone, connection_lost.
# ThreadedChildWatcher (3.10, 3.11) takes the same two hops from its
# thread, at a time the program cannot know: there only the orders every
# run gives are fixed (process_exited, then connection_lost; the pipe's
# pipe_connection_lost before connection_lost).

CHILD = "import os; os.read(0, 1)"  # exits once its stdin has a byte


def _pidfd():
    # Whether both loops reap through a pidfd (ours without one: a thread).
    if sys.version_info < (3, 12) or os.environ.get("ASYNCLOOP_NO_PIDFD"):
        return False
    from asyncio.unix_events import can_use_pidfd

    return can_use_pidfd()


def _exit_order(loop, stdout):
    async def main():
        log = []
        lost = loop.create_future()

        class P(asyncio.SubprocessProtocol):
            def pipe_connection_lost(self, fd, exc):
                log.append(("pipe_lost", fd))

            def process_exited(self):
                log.append(("exited", tr.get_returncode()))

            def connection_lost(self, exc):
                log.append("lost")
                lost.set_result(None)

        r, w = os.pipe()
        try:
            tr, _ = await loop.subprocess_exec(
                P, sys.executable, "-c", CHILD, stdin=r, stdout=stdout,
                stderr=subprocess.DEVNULL)
        finally:
            os.close(r)
        for _ in range(3):
            await asyncio.sleep(0)
        os.write(w, b"x")
        os.close(w)
        # exited: its pidfd and its stdout's EOF are ready
        try:
            os.waitid(os.P_PID, tr.get_pid(), os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass  # a ThreadedChildWatcher's thread reaped it already

        def hop(n):
            log.append(("hop", n, tr.get_returncode()))
            if n < 4:
                loop.call_soon(hop, n + 1)

        loop.call_soon(hop, 1)
        await lost
        while len([x for x in log if x[0] == "hop"]) < 4:
            await asyncio.sleep(0)
        tr.close()
        return log

    return run(loop, main())


def test_process_exit_behind_queued_handles(loop):
    log = _exit_order(loop, subprocess.DEVNULL)
    if _pidfd():
        assert log == [("hop", 1, None), ("hop", 2, None), ("hop", 3, 0), ("exited", 0),
                       "lost", ("hop", 4, 0)]
    else:
        assert [x for x in log if x[0] != "hop"] == [("exited", 0), "lost"]
        assert log[0] == ("hop", 1, None)


def test_process_exit_and_stdout_eof_behind_queued_handles(loop):
    log = _exit_order(loop, subprocess.PIPE)
    if _pidfd():
        assert log == [("hop", 1, None), ("hop", 2, None), ("hop", 3, 0), ("pipe_lost", 1),
                       ("exited", 0), "lost", ("hop", 4, 0)]
    else:
        assert [x for x in log if x[0] != "hop"] in (
            [("pipe_lost", 1), ("exited", 0), "lost"], [("exited", 0), ("pipe_lost", 1), "lost"])
        assert log[0] == ("hop", 1, None)
