"""Pipe transports (src/pipe.c): loop.connect_read_pipe / connect_write_pipe.

Every test runs on asyncio's own loop (its _UnixReadPipeTransport and
_UnixWritePipeTransport are the reference) and on asyncloop, over os.pipe,
FIFOs, ptys and socketpairs.
"""

import asyncio
import errno
import gc
import logging
import os
import socket
import stat
import sys
import tty
import warnings

import pytest

from conftest import GUARD, Recorder

PY = sys.version_info[:2]


def wait(loop, aw, timeout=GUARD):
    return loop.run_until_complete(asyncio.wait_for(aw, timeout))


def run_briefly(loop, n=3):
    for _ in range(n):
        loop.call_soon(loop.stop)
        loop.run_forever()


def fd_count():
    return len(os.listdir("/proc/self/fd"))


class Proto(asyncio.Protocol):
    """Records every callback; futures for the interesting moments."""

    def __init__(self, loop):
        self.loop = loop
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()
        self.got = None  # (n, future): resolved once n bytes are in
        self.paused = loop.create_future()
        self.resumed = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data
        if self.got is not None and len(self.data) >= self.got[0] and not self.got[1].done():
            self.got[1].set_result(None)

    def eof_received(self):
        self.events.append("eof")

    def pause_writing(self):
        self.events.append("pause")
        if not self.paused.done():
            self.paused.set_result(None)

    def resume_writing(self):
        self.events.append("resume")
        if not self.resumed.done():
            self.resumed.set_result(None)

    def connection_lost(self, exc):
        self.events.append(("lost", type(exc).__name__ if exc else None))
        if not self.lost.done():
            self.lost.set_result(exc)

    def want(self, n):
        self.got = (n, self.loop.create_future())
        if len(self.data) >= n:
            self.got[1].set_result(None)
        return self.got[1]


def read_all(fd):
    out = bytearray()
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk


def connect_read(loop, fileobj):
    return wait(loop, loop.connect_read_pipe(lambda: Proto(loop), fileobj))


def connect_write(loop, fileobj):
    return wait(loop, loop.connect_write_pipe(lambda: Proto(loop), fileobj))


# ------------------------------------------------------------------ reading --

def test_read_pipe_data_eof(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", 0)
    t, p = connect_read(loop, pipe)
    assert p.events == ["made"]
    assert t.get_extra_info("pipe") is pipe
    assert isinstance(t, asyncio.ReadTransport)
    assert t.is_reading() if PY >= (3, 11) else True
    os.write(w, b"hello ")
    os.write(w, b"world")
    wait(loop, p.want(11))
    assert bytes(p.data) == b"hello world"
    assert not os.get_blocking(r)  # the fd is made non-blocking
    os.close(w)
    assert wait(loop, p.lost) is None
    assert p.events == ["made", "eof", ("lost", None)]
    assert t.is_closing()
    assert pipe.closed  # closed with the transport, as asyncio does
    t.close()  # closing again is a no-op


def test_transports_take_instance_attributes(loop):
    # asyncio's transports are plain Python objects: code (and CPython's own
    # test_subprocess) sets attributes on them, e.g. a mock pause_reading.
    r, w = os.pipe()
    t, p = connect_read(loop, open(r, "rb", 0))
    wt, wp = connect_write(loop, open(w, "wb", 0))
    calls = []
    t.pause_reading = lambda: calls.append("pause")
    t.pause_reading()
    wt.note = "mine"
    assert calls == ["pause"] and t.__dict__["pause_reading"] is not None
    assert wt.note == "mine" and wt.__dict__["note"] == "mine"
    del t.pause_reading
    t.close()
    wt.close()
    run_briefly(loop)


def test_read_fifo(loop, tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(path, os.O_WRONLY)
    assert stat.S_ISFIFO(os.fstat(rfd).st_mode)
    pipe = open(rfd, "rb", 0)
    t, p = connect_read(loop, pipe)
    os.write(wfd, b"x" * 60000)  # less than the FIFO holds: no blocking
    wait(loop, p.want(60000))
    os.close(wfd)
    assert wait(loop, p.lost) is None
    assert p.events == ["made", "eof", ("lost", None)]
    assert pipe.closed


def test_read_large_stream(loop):
    """More than the pipe holds at once, in order, with EOF at the end."""
    r, w = os.pipe()
    pipe = open(r, "rb", 0)
    t, p = connect_read(loop, pipe)
    payload = bytes(range(256)) * 8192  # 2 MiB
    view = memoryview(payload)

    def feed():
        nonlocal view
        try:
            n = os.write(w, view[:1 << 16])
        except BlockingIOError:
            n = 0
        view = view[n:]
        if view:
            loop.call_soon(feed)
        else:
            os.close(w)

    os.set_blocking(w, False)
    loop.call_soon(feed)
    assert wait(loop, p.lost) is None
    assert bytes(p.data) == payload


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs os.openpty()")
def test_read_pty(loop):
    master, slave = os.openpty()
    pipe = open(master, "rb", 0)
    assert stat.S_ISCHR(os.fstat(master).st_mode)
    t, p = connect_read(loop, pipe)
    os.write(slave, b"1")
    wait(loop, p.want(1))
    os.write(slave, b"2345")
    wait(loop, p.want(5))
    assert bytes(p.data) == b"12345"
    os.close(slave)
    exc = wait(loop, p.lost)
    # Linux: reading a pty master whose slave is closed gives EIO, which
    # asyncio treats as a quiet fatal error (no exception handler call).
    assert isinstance(exc, OSError) and exc.errno == errno.EIO
    assert p.events == ["made", ("lost", "OSError")]
    assert pipe.closed


def test_read_socketpair(loop):
    a, b = socket.socketpair()
    t, p = connect_read(loop, a)
    b.sendall(b"ping")
    wait(loop, p.want(4))
    b.close()
    assert wait(loop, p.lost) is None
    assert p.events == ["made", "eof", ("lost", None)]
    assert a.fileno() == -1  # the socket object closed


def test_pause_resume_reading(loop):
    r, w = os.pipe()
    t, p = connect_read(loop, open(r, "rb", 0))
    t.pause_reading()
    if PY >= (3, 11):
        assert not t.is_reading()
    t.pause_reading()  # twice: no-op
    os.write(w, b"abc")
    run_briefly(loop, 5)
    assert p.data == b""
    t.resume_reading()
    if PY >= (3, 11):
        assert t.is_reading()
    wait(loop, p.want(3))
    assert p.data == b"abc"
    t.close()
    assert wait(loop, p.lost) is None
    if PY >= (3, 11):
        assert not t.is_reading()
    t.resume_reading()  # closing: no-op
    os.close(w)


def test_read_close_with_pending_data(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", 0)
    t, p = connect_read(loop, pipe)
    t.close()
    assert t.is_closing()
    os.write(w, b"never read")
    assert wait(loop, p.lost) is None
    assert p.events == ["made", ("lost", None)]
    assert p.data == b""
    assert pipe.closed
    os.close(w)


def test_read_set_get_protocol(loop):
    r, w = os.pipe()
    t, p = connect_read(loop, open(r, "rb", 0))
    assert t.get_protocol() is p
    p2 = Proto(loop)
    t.set_protocol(p2)
    assert t.get_protocol() is p2
    os.write(w, b"to p2")
    wait(loop, p2.want(5))
    assert p.data == b""
    os.close(w)
    wait(loop, p2.lost)


def test_data_received_error_reported(loop):
    """An exception from data_received goes to the exception handler; the
    transport keeps reading (asyncio lets it out of the reader callback)."""
    r, w = os.pipe()
    rec = Recorder()
    loop.set_exception_handler(rec)

    class Bad(Proto):
        def data_received(self, data):
            super().data_received(data)
            raise ZeroDivisionError

    t, p = wait(loop, loop.connect_read_pipe(lambda: Bad(loop), open(r, "rb", 0)))
    os.write(w, b"a")
    wait(loop, p.want(1))
    run_briefly(loop)
    assert len(rec.contexts) == 1
    assert isinstance(rec.contexts[0]["exception"], ZeroDivisionError)
    os.write(w, b"b")
    wait(loop, p.want(2))
    os.close(w)
    wait(loop, p.lost)


# ------------------------------------------------------------------ writing --

def test_write_pipe(loop):
    r, w = os.pipe()
    os.set_blocking(r, False)
    pipe = open(w, "wb", 0)
    t, p = connect_write(loop, pipe)
    assert isinstance(t, asyncio.WriteTransport)
    assert t.get_extra_info("pipe") is pipe
    assert t.can_write_eof()
    assert not os.get_blocking(w)
    t.write(b"1")
    t.write(bytearray(b"23"))
    t.write(memoryview(b"456"))
    t.write(b"")
    t.writelines([b"7", bytearray(b"8"), memoryview(b"9")])
    assert t.get_write_buffer_size() == 0
    assert read_all(r) == b"123456789"
    t.write_eof()
    assert t.is_closing()
    assert wait(loop, p.lost) is None
    assert p.events == ["made", ("lost", None)]
    assert pipe.closed
    assert read_all(r) == b""  # EOF for the reader
    os.close(r)


def test_write_bad_data(loop):
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    with pytest.raises((AssertionError, TypeError)):
        t.write("text")
    t.close()
    wait(loop, p.lost)
    os.close(r)


def test_write_fifo_and_close_flushes(loop, tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    t, p = connect_write(loop, open(wfd, "wb", 0))
    payload = os.urandom(300000)  # more than the FIFO holds
    t.write(payload)
    assert t.get_write_buffer_size() > 0
    t.close()  # write_eof: the buffer is still written out
    assert t.is_closing()
    got = bytearray()
    while not p.lost.done():
        got += read_all(rfd)
        run_briefly(loop, 1)
    got += read_all(rfd)
    assert bytes(got) == payload
    assert p.lost.result() is None
    os.close(rfd)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs os.openpty()")
def test_write_pty(loop):
    master, slave = os.openpty()
    os.set_blocking(master, False)
    tty.setraw(slave)
    pipe = open(slave, "wb", 0)
    t, p = connect_write(loop, pipe)
    t.write(b"to the pty")
    got = b""
    for _ in range(100):
        run_briefly(loop, 1)
        got += read_all(master)
        if len(got) >= 10:
            break
    assert got == b"to the pty"
    t.close()
    assert wait(loop, p.lost) is None
    assert pipe.closed
    os.close(master)


def test_write_socketpair_peer_close(loop):
    a, b = socket.socketpair()
    t, p = connect_write(loop, a)
    t.write(b"hi")
    assert b.recv(10) == b"hi"
    b.close()  # the read end goes: seen through the reader asyncio registers
    assert wait(loop, p.lost) is None
    assert p.events == ["made", ("lost", None)]
    assert a.fileno() == -1


def test_flow_control_slow_reader(loop):
    """pause_writing past the high-water mark, resume_writing once drained;
    a writer that respects it keeps the buffer bounded."""
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    assert t.get_write_buffer_limits() == (16384, 65536)
    t.set_write_buffer_limits(high=32768)
    assert t.get_write_buffer_limits() == (8192, 32768)
    with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
        t.set_write_buffer_limits(high=1, low=2)
    chunk = b"z" * 8192
    written = 0
    while not p.paused.done():
        t.write(chunk)
        written += len(chunk)
        assert written < 10_000_000, "pause_writing never came"
    run_briefly(loop)
    assert p.events == ["made", "pause"]
    assert t.get_write_buffer_size() > 32768
    # The slow reader drains little by little; the writer waits.
    got = bytearray()
    while not p.resumed.done():
        got += os.read(r, 4096)
        run_briefly(loop, 1)
    assert t.get_write_buffer_size() <= 8192
    os.set_blocking(r, False)
    while len(got) < written:
        got += read_all(r)
        run_briefly(loop, 1)
    assert len(got) == written
    assert p.events == ["made", "pause", "resume"]
    t.close()
    assert wait(loop, p.lost) is None
    os.close(r)


def test_set_write_buffer_limits_pauses_at_once(loop):
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    t.write(b"x" * 200000)  # the pipe takes 64 KiB, the rest is buffered
    size = t.get_write_buffer_size()
    assert 0 < size <= 65536 * 4
    if size > 65536:
        assert "pause" in p.events
    else:
        t.set_write_buffer_limits(high=size - 1)
        assert "pause" in p.events
    t.abort()
    assert t.get_write_buffer_size() == 0
    assert wait(loop, p.lost) is None
    os.close(r)


def test_reader_closed_mid_write(loop):
    """The read end closes while data is buffered: connection_lost gets a
    BrokenPipeError (from asyncio's reader on the write end)."""
    r, w = os.pipe()
    pipe = open(w, "wb", 0)
    t, p = connect_write(loop, pipe)
    t.write(b"x" * 300000)
    assert t.get_write_buffer_size() > 0
    os.close(r)
    exc = wait(loop, p.lost)
    assert isinstance(exc, BrokenPipeError)
    assert t.get_write_buffer_size() == 0
    assert pipe.closed


def test_reader_closed_nothing_buffered(loop):
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    os.close(r)
    assert wait(loop, p.lost) is None
    assert p.events == ["made", ("lost", None)]


def test_write_to_broken_pipe_direct(loop):
    """write() itself fails with EPIPE (the watch has not fired yet): a
    quiet fatal error (OSError: debug log only) and connection_lost(exc)."""
    r, w = os.pipe()
    rec = Recorder()
    loop.set_exception_handler(rec)
    t, p = connect_write(loop, open(w, "wb", 0))
    os.close(r)
    t.write(b"data")
    exc = wait(loop, p.lost)
    assert exc is None or isinstance(exc, BrokenPipeError)
    assert rec.contexts == []


def test_writes_after_close_warn_after_5th(loop, caplog):
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    t.close()
    wait(loop, p.lost)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(5):
            t.write(b"x")
        assert [rec for rec in caplog.records if rec.name == "asyncio"] == []
        t.write(b"x")
        t.write(b"x")
    msgs = [rec.getMessage() for rec in caplog.records if rec.name == "asyncio"]
    assert msgs == ["pipe closed by peer or os.write(pipe, data) raised exception."] * 2
    os.close(r)


def test_write_after_broken_pipe_warns(loop, caplog):
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    t.write(b"x" * 300000)
    os.close(r)
    assert isinstance(wait(loop, p.lost), BrokenPipeError)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        for _ in range(7):
            t.write(b"more")
    msgs = [rec.getMessage() for rec in caplog.records if rec.name == "asyncio"]
    assert msgs == ["pipe closed by peer or os.write(pipe, data) raised exception."] * 2


def test_write_eof_twice_and_abort(loop):
    r, w = os.pipe()
    t, p = connect_write(loop, open(w, "wb", 0))
    t.write_eof()
    t.write_eof()
    t.close()
    assert wait(loop, p.lost) is None
    assert p.events == ["made", ("lost", None)]
    os.close(r)


def test_abort_drops_buffer(loop):
    r, w = os.pipe()
    os.set_blocking(r, False)
    t, p = connect_write(loop, open(w, "wb", 0))
    t.write(b"y" * 300000)
    assert t.get_write_buffer_size() > 0
    t.abort()
    assert t.is_closing()
    assert wait(loop, p.lost) is None
    assert len(read_all(r)) < 300000
    os.close(r)


# ------------------------------------------------------------- bad input --

def test_regular_file_refused(loop, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"data")
    with open(path, "rb") as f:
        with pytest.raises(ValueError, match=r"^Pipe transport is for pipes/sockets only\.$"):
            wait(loop, loop.connect_read_pipe(lambda: Proto(loop), f))
        assert not f.closed  # left to the caller, as asyncio does
    with open(path, "wb") as f:
        with pytest.raises(ValueError, match="^Pipe transport is only for pipes, sockets and "
                                             "character devices$"):
            wait(loop, loop.connect_write_pipe(lambda: Proto(loop), f))
        assert not f.closed


# asyncio's __del__ then fails in repr() (no _closing yet): unraisable.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_fileno(loop):
    r, w = os.pipe()
    try:
        with pytest.raises(AttributeError):
            wait(loop, loop.connect_read_pipe(lambda: Proto(loop), r))
        with pytest.raises(AttributeError):
            wait(loop, loop.connect_write_pipe(lambda: Proto(loop), w))
    finally:
        os.close(r)
        os.close(w)
        gc.collect()  # asyncio's half-made transports go here, under the filter


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_closed_file_refused(loop):
    r, w = os.pipe()
    f = open(r, "rb", 0)
    f.close()
    with pytest.raises(ValueError):
        wait(loop, loop.connect_read_pipe(lambda: Proto(loop), f))
    os.close(w)
    gc.collect()  # as in test_no_fileno


def test_make_pipe_transport_arguments(asyncloop_mod):
    loop = asyncloop_mod.new_event_loop()
    try:
        with pytest.raises(TypeError):
            loop._make_read_pipe_transport()
        with pytest.raises(TypeError):
            loop._make_write_pipe_transport(None, None, bogus=1)
        r, w = os.pipe()
        pr, pw = open(r, "rb", 0), open(w, "wb", 0)
        p = Proto(loop)
        waiter = loop.create_future()
        t = loop._make_read_pipe_transport(pr, p, waiter, extra={"k": 1})
        assert t.get_extra_info("k") == 1 and t.get_extra_info("pipe") is pr
        wt = loop._make_write_pipe_transport(pipe=pw, protocol=Proto(loop))
        loop.run_until_complete(waiter)
        assert p.events == ["made"]
        t.close()
        wt.close()
        run_briefly(loop)
        assert pr.closed and pw.closed
    finally:
        loop.close()


# ------------------------------------------------------- lifetime, leaks --

def test_collected_open_warns_and_closes(loop):
    r, w = os.pipe()
    pipe = open(r, "rb", 0)
    t, p = connect_read(loop, pipe)
    t.pause_reading()  # nothing references the transport once idle
    p.transport = None
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del t
        gc.collect()
    assert pipe.closed
    os.close(w)


def test_loop_closed_with_transports_open(loop_factory):
    loop = loop_factory()
    r, w = os.pipe()
    rpipe, wpipe = open(r, "rb", 0), open(w, "wb", 0)
    rt, rp = connect_read(loop, rpipe)
    wt, wp = connect_write(loop, wpipe)
    loop.close()
    assert "open" in repr(rt) and "open" in repr(wt)
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        rt.close()
    rp.transport = wp.transport = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del rt, wt
        gc.collect()
    assert sum("unclosed transport" in str(c.message) for c in caught) == 2
    assert rpipe.closed and wpipe.closed


def test_no_fd_leak(loop_factory):
    def cycle():
        loop = loop_factory()
        try:
            r, w = os.pipe()
            rt, rp = connect_read(loop, open(r, "rb", 0))
            wt, wp = connect_write(loop, open(w, "wb", 0))
            wt.write(b"x" * 1000)
            wait(loop, rp.want(1000))
            wt.close()
            wait(loop, wp.lost)
            wait(loop, rp.lost)
            a, b = socket.socketpair()
            st, sp = connect_write(loop, a)
            b.close()
            wait(loop, sp.lost)
            with pytest.raises(ValueError):
                with open(__file__, "rb") as f:
                    wait(loop, loop.connect_read_pipe(lambda: Proto(loop), f))
        finally:
            loop.close()

    cycle()
    gc.collect()
    before = fd_count()
    for _ in range(5):
        cycle()
    gc.collect()
    assert fd_count() == before


def test_asyncloop_live_handles_return(asyncloop_mod):
    gc.collect()
    before = asyncloop_mod._core._debug_counters()
    loop = asyncloop_mod.new_event_loop()
    r, w = os.pipe()
    rt, rp = connect_read(loop, open(r, "rb", 0))
    wt, wp = connect_write(loop, open(w, "wb", 0))
    wt.write(b"x" * 300000)
    assert asyncloop_mod._core._debug_counters()["uv_handles"] > before["uv_handles"]
    rt.close()
    wait(loop, rp.lost)
    wait(loop, wp.lost)
    loop.close()
    del rt, wt, rp, wp, loop
    gc.collect()
    after = asyncloop_mod._core._debug_counters()
    assert after["uv_handles"] == before["uv_handles"]
    assert after["loops"] == before["loops"]


def test_repr(loop):
    r, w = os.pipe()
    rt, rp = connect_read(loop, open(r, "rb", 0))
    wt, wp = connect_write(loop, open(w, "wb", 0))
    assert f"fd={r}" in repr(rt) and "polling" in repr(rt)
    assert f"fd={w}" in repr(wt) and "bufsize=0" in repr(wt)
    rt.close()
    assert "closing" in repr(rt)
    wait(loop, rp.lost)
    assert "closed" in repr(rt)
    wt.close()
    wait(loop, wp.lost)


def test_debug_logging(loop, caplog):
    loop.set_debug(True)
    r, w = os.pipe()
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        t, p = connect_read(loop, open(r, "rb", 0))
        t.pause_reading()
        t.resume_reading()
        os.close(w)
        wait(loop, p.lost)
    msgs = [rec.getMessage() for rec in caplog.records if rec.name == "asyncio"]
    assert any(m.startswith("Read pipe ") and "connected" in m for m in msgs)
    assert any(m.endswith("pauses reading") for m in msgs)
    assert any(m.endswith("resumes reading") for m in msgs)
    assert any(m.endswith("was closed by peer") for m in msgs)


# ------------------------------------------- shapes the subprocess code uses --

def test_child_process_pipes(loop):
    """A child's stdin and stdout (subprocess.PIPE file objects), as
    asyncio's base_subprocess connects them."""
    import subprocess
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        rt, rp = connect_read(loop, proc.stdout)
        wt, wp = connect_write(loop, proc.stdin)
        payload = os.urandom(500000)
        wt.write(payload)
        wt.close()
        assert wait(loop, wp.lost) is None
        assert wait(loop, rp.lost) is None
        assert bytes(rp.data) == payload[::-1]
        assert rp.events == ["made", "eof", ("lost", None)]
        assert proc.stdin.closed and proc.stdout.closed
    finally:
        proc.wait()


def test_system_exit_from_data_received(loop):
    r, w = os.pipe()

    class Exit(Proto):
        def data_received(self, data):
            raise SystemExit(7)

    t, p = wait(loop, loop.connect_read_pipe(lambda: Exit(loop), open(r, "rb", 0)))
    os.write(w, b"x")
    with pytest.raises(SystemExit):
        loop.run_until_complete(asyncio.sleep(GUARD))
    t.close()
    run_briefly(loop)
    os.close(w)


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="Linux only")
def test_bulk_pipes_keep_their_capacity(loop):
    """Pipes kept full in both directions keep the kernel's capacity (as on
    asyncio): a larger one would count against the user's pipe limits and
    change what the process at the other end sees."""
    import fcntl
    import threading
    r, w = os.pipe()
    size0 = fcntl.fcntl(r, fcntl.F_GETPIPE_SZ)
    t, p = connect_read(loop, open(r, "rb", 0))
    block = b"q" * size0
    for i in range(20):  # fill the pipe, let the loop drain it whole
        os.write(w, block)
        wait(loop, p.want((i + 1) * size0))
    assert fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) == size0
    os.close(w)
    wait(loop, p.lost)
    assert bytes(p.data) == block * 20

    r, w = os.pipe()
    got = bytearray()

    def drain():
        while chunk := os.read(r, size0):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        wt, wp = connect_write(loop, open(w, "wb", 0))
        wt.write(block * 20)  # the pipe is found full at each write
        wt.close()
        assert wait(loop, wp.lost) is None
    finally:
        reader.join(GUARD)
    assert fcntl.fcntl(r, fcntl.F_GETPIPE_SZ) == size0
    os.close(r)
    assert bytes(got) == block * 20


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_SETPIPE_SZ"), reason="Linux only")
def test_reads_after_a_full_pipe(loop):
    """Reads that follow one that found the pipe full (asyncloop then reads
    its capacity without FIONREAD): a partial one, and one from a pipe its
    writer has grown meanwhile, deliver every byte, in order, each read as
    one data_received."""
    import fcntl
    r, w = os.pipe()
    size = fcntl.fcntl(r, fcntl.F_GETPIPE_SZ)
    sizes = []

    class Sizes(Proto):
        def data_received(self, data):
            super().data_received(data)
            sizes.append(len(data))

    t, p = wait(loop, loop.connect_read_pipe(lambda: Sizes(loop), open(r, "rb", 0)))
    payload = os.urandom(size * 6)
    os.write(w, payload[:size])  # full
    wait(loop, p.want(size))
    os.write(w, payload[size:size + 100])  # partial
    wait(loop, p.want(size + 100))
    assert sizes == [size, 100]
    os.write(w, payload[size + 100:2 * size + 100])  # full again
    wait(loop, p.want(2 * size + 100))
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4 * size)
    except OSError:
        grown = False  # the user's pipe limits: the pipe stays as it is
    else:
        grown = True
    rest = payload[2 * size + 100:]
    os.write(w, rest[:3 * size] if grown else rest[:size])
    os.close(w)
    wait(loop, p.lost)
    assert bytes(p.data) == payload[:2 * size + 100] + (rest[:3 * size] if grown else rest[:size])
    assert sum(sizes) == len(p.data), sizes


@pytest.mark.parametrize("queued", [False, True], ids=["direct", "behind-queued"])
def test_reads_of_a_poll_before_pipe_writes(loop, is_stock, queued):
    """A poll that finds a write pipe writable and another pipe readable:
    asyncloop reads first, then writes (so that a child between two pipes
    gets its next input once its output was taken). On asyncio the order is
    the kernel's, here the writable one first; either way both run in that
    iteration."""
    order = []

    class Reader(Proto):
        def data_received(self, data):
            super().data_received(data)
            order.append("read")

    class Writer(Proto):
        def resume_writing(self):
            super().resume_writing()
            order.append("resume")

    import fcntl
    ra, wa = os.pipe()
    rb, wb = os.pipe()
    size = fcntl.fcntl(wa, fcntl.F_GETPIPE_SZ)
    try:
        wt, wp = wait(loop, loop.connect_write_pipe(lambda: Writer(loop), open(wa, "wb", 0)))
        rt, rp = wait(loop, loop.connect_read_pipe(lambda: Reader(loop), open(rb, "rb", 0)))
        wt.set_write_buffer_limits(high=1)
        wt.write(b"w" * (size + 1000))  # fills the pipe, 1000 bytes buffered
        assert wp.events == ["made", "pause"]
        run_briefly(loop)
        assert order == []
        # both ready before the next poll: pipe a writable, then b readable
        assert len(read_all_blocking(ra, size)) == size
        os.write(wb, b"r")
        if queued:
            loop.call_soon(loop.stop)  # a handle queued before the poll
            loop.run_forever()
        else:
            loop.run_until_complete(rp.want(1))  # a blocking poll, nothing queued
        if is_stock:
            assert sorted(order) == ["read", "resume"]
        else:
            assert order == ["read", "resume"]
        assert bytes(rp.data) == b"r"
        wt.close()
        rt.close()
        run_briefly(loop)
    finally:
        os.close(wb)
        os.close(ra)


def read_all_blocking(fd, n):
    out = b""
    while len(out) < n:
        out += os.read(fd, n - len(out))
    return out


def test_reads_shrink_for_a_pausing_protocol(loop, is_stock):
    """A protocol that pauses after a big read (asyncio's StreamReader does
    above twice its limit) still gets every byte in order after resuming;
    asyncloop's later reads are at most half the one that made it pause, so
    that a StreamReader keeps up without pausing (asyncio reads 256 KiB)."""
    import fcntl
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 256 * 1024)
    except OSError:
        os.close(r)
        os.close(w)
        pytest.skip("cannot grow the pipe to 256 KiB here")
    sizes = []

    class Pausing(Proto):
        def data_received(self, data):
            super().data_received(data)
            sizes.append(len(data))
            if len(data) > 128 * 1024 and not sizes[:-1]:
                self.transport.pause_reading()
                self.loop.call_soon(self.transport.resume_reading)

    payload = bytes(range(256)) * 1024  # 256 KiB
    os.write(w, payload)
    t, p = wait(loop, loop.connect_read_pipe(lambda: Pausing(loop), open(r, "rb", 0)))
    wait(loop, p.want(len(payload)))
    assert sizes[0] == len(payload)
    for _ in range(2):  # the pipe full again, twice
        os.write(w, payload)
        wait(loop, p.want(len(p.data) + len(payload)))
    os.close(w)
    wait(loop, p.lost)
    assert bytes(p.data) == payload * 3
    if not is_stock:
        assert max(sizes[1:]) <= 128 * 1024, sizes
