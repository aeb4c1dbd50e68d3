/* The socket stream transport: asyncio's _SelectorSocketTransport (with
   _SelectorTransport and _FlowControlMixin) in C, for TCP and Unix stream
   sockets. loop._make_socket_transport() builds it.

   The Python socket object owns the fd, as in asyncio (closed in
   _call_connection_lost). The fd is watched with a uv_poll_t, not a
   uv_tcp_t/uv_pipe_t: those would make libuv own and close the fd. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define READ_BUF_SIZE ((size_t)256 * 1024) /* asyncio's max_size */
/* From this size on a read goes straight into its bytes object (sized by
   FIONREAD) instead of being copied there from the loop's buffer. */
#define BIG_READ ((ssize_t)16 * 1024)
/* From this size a read as big as the last one goes straight into its bytes
   object too (no FIONREAD: below BIG_READ a miss costs more than the copy). */
#define HINT_READ ((ssize_t)8 * 1024)
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* Allocated apart from the transport (see docs/architecture.md): libuv may
   still reference it after the transport is gone, until the close callback. */

/* An accepted connection's extra info, kept raw until something asks for
   it (most servers never do): asyncio's dict {'peername', 'socket',
   'sockname'} is built from it on first use (extra_build), with the
   addresses of the transport's creation, as asyncio captures them. */
typedef struct {
    PyObject *sock;       /* the socket once the transport dropped it, for 'socket' */
    unsigned char llen;   /* getsockname()'s length, or NO_SOCKNAME (it failed: None) */
    unsigned char plen;   /* accept()'s */
    unsigned char addr[]; /* the local address, then the peer's */
} lazy_extra;

#define NO_SOCKNAME 255

/* A loop.sendfile's position (allocated by the first one: most transports
   never send a file). */
typedef struct {
    long long offset, count, blocksize, total;
    int fileno;
    char waited; /* the sendfile waited for writability once */
} sf_state;

typedef struct {
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot: must be first */
    PyObject *weakreflist;
    lazy_extra *lx;   /* extra NULL while set */
    al_state *st;     /* valid while the type (which holds the module) lives */
    LoopObject *loop; /* NULL once connection_lost ran (asyncio's _loop = None) */
    PyObject *sock;   /* owns the fd; NULL once closed */
    PyObject *protocol;
    PyObject *server;
    PyObject *rctx; /* the reader's context, as asyncio's _read_ready handle's */
    PyObject *wctx; /* the writer's: copied when writes start waiting */
    al_io io;
    al_tpoll tp; /* the poll handle (al__tpoll_*) */
    Py_ssize_t conn_lost;
    al_flow flow;         /* _FlowControlMixin */
    al_wqueue wq;         /* the write queue */
    Py_ssize_t read_hint; /* read_direct's size to try without FIONREAD, or 0 */
    uint64_t skip_iter;   /* the last poll whose event for it was skipped (maybe_cut) */
    /* loop.sendfile (the section at the end of this file) */
    PyObject *empty_waiter; /* asyncio's _empty_waiter: write() raises while set */
    PyObject *sf_fut;       /* the sendfile's future while it sends */
    sf_state *sf;           /* its position: set with sf_fut, kept from then on */
    int fd;
    /* The flags, together: no padding between them (an idle connection's
       memory). */
    char buffered;
    char protocol_connected;
    char closing;
    char eof;
    char paused;
    char reading;   /* asyncio's reader registered */
    char writing;   /* asyncio's writer registered */
    char detached;  /* the loop was closed: no libuv handle any more */
    char big_reads; /* the last read was >= BIG_READ: try the direct path */
    char registered;
    char read_deferred;  /* a _read_ready handle is queued (al__loop_defer) */
    char write_deferred; /* a _write_ready handle is queued */
} StreamObject;

#define STREAM_FROM_IO(p) ((StreamObject *)((char *)(p)-offsetof(StreamObject, io)))

static int read_ready(StreamObject *self);
static int write_ready(StreamObject *self);
static int stream_close(StreamObject *self);
/* loop.sendfile, at the end of this file */
static int sendfile_ready(StreamObject *self);
static int empty_waiter_done(StreamObject *self, PyObject *exc);
static PyObject *sendfile_in_progress(StreamObject *self, const char *what);

/* --- helpers ------------------------------------------------------------- */

static inline int is_exit_error(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit) ||
           PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

static PyObject *errno_error(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return al__err_fetch();
}

/* --- extra info of an accepted connection, built on first use ------------ */

static void lazy_free(StreamObject *self)
{
    lazy_extra *lx = self->lx;
    if (lx != NULL) {
        self->lx = NULL;
        Py_XDECREF(lx->sock);
        PyMem_Free(lx);
    }
}

/* The transport lets go of its (closed) socket: while the extra info is
   not built, it keeps it for 'socket', as asyncio's dict would. Steals. */
static void lazy_keep_sock(StreamObject *self, PyObject *sock)
{
    if (self->lx != NULL && self->lx->sock == NULL) {
        self->lx->sock = sock;
    }
    else {
        Py_DECREF(sock);
    }
}

/* An address as the socket module gives it, from its raw bytes. */
static PyObject *raw_to_py(const unsigned char *raw, unsigned int len)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, raw, len);
    PyObject *v = al__sockaddr_to_py(&ss, len);
    /* another family cannot come here (server.c's fast path) */
    return v != NULL || PyErr_Occurred() ? v : Py_NewRef(Py_None);
}

/* The accepted connection's raw addresses (peer: accept()'s, as bytes) and
   its getsockname(), kept for extra_build. */
static int lazy_new(StreamObject *self, PyObject *peer, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    unsigned int llen = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        llen = len < sizeof(ss) ? (unsigned int)len : (unsigned int)sizeof(ss);
    }
    else {
        len = 0;
    }
    Py_ssize_t plen = PyBytes_GET_SIZE(peer);
    if (plen > (Py_ssize_t)sizeof(ss)) {
        plen = (Py_ssize_t)sizeof(ss);
    }
    lazy_extra *lx = PyMem_Malloc(offsetof(lazy_extra, addr) + llen + (size_t)plen);
    if (lx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    lx->sock = NULL;
    lx->llen = len == 0 ? NO_SOCKNAME : (unsigned char)llen;
    lx->plen = (unsigned char)plen;
    memcpy(lx->addr, &ss, llen);
    memcpy(lx->addr + llen, PyBytes_AS_STRING(peer), (size_t)plen);
    self->lx = lx;
    return 0;
}

/* asyncio's extra dict, in its order: peername (accept()'s), socket (a
   TransportSocket, the same object from now on), sockname. */
static int extra_build(StreamObject *self)
{
    lazy_extra *lx = self->lx;
    al_state *st = self->st;
    unsigned int llen = lx->llen == NO_SOCKNAME ? 0 : lx->llen;
    PyObject *sock = self->sock != NULL ? self->sock : lx->sock;
    PyObject *d = PyDict_New();
    PyObject *peer = d ? raw_to_py(lx->addr + llen, lx->plen) : NULL;
    PyObject *tsock = peer ? PyObject_CallOneArg(st->TransportSocket, sock ? sock : Py_None) : NULL;
    PyObject *local = !tsock                    ? NULL
                      : lx->llen == NO_SOCKNAME ? Py_NewRef(Py_None)
                                                : raw_to_py(lx->addr, llen);
    int rc = local != NULL && PyDict_SetItem(d, st->str_peername, peer) == 0 &&
                     PyDict_SetItem(d, st->str_socket, tsock) == 0 &&
                     PyDict_SetItem(d, st->str_sockname, local) == 0
                 ? 0
                 : -1;
    Py_XDECREF(peer);
    Py_XDECREF(tsock);
    Py_XDECREF(local);
    if (rc < 0) {
        Py_XDECREF(d);
        return -1;
    }
    self->extra = d;
    lazy_free(self);
    return 0;
}

/* loop.call_soon(callback, arg) through the loop's own method (arg may be
   NULL): a real Handle, in asyncio's order. */
static int call_soon(LoopObject *loop, PyObject *callback, PyObject *arg1, PyObject *arg2)
{
    PyObject *argv[4] = {(PyObject *)loop, callback, arg1, arg2};
    size_t n = arg1 == NULL ? 2 : (arg2 == NULL ? 3 : 4);
    PyObject *r = PyObject_VectorcallMethod(loop->state->str_call_soon, argv, n, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int call_soon_method(StreamObject *self, PyObject *name, PyObject *arg)
{
    PyObject *meth = PyObject_GetAttr((PyObject *)self, name);
    if (meth == NULL) {
        return -1;
    }
    int rc = call_soon(self->loop, meth, arg, NULL);
    Py_DECREF(meth);
    return rc;
}

/* protocol.<name>(arg): the protocol is held during the call (set_protocol
   may replace it). */
static PyObject *call_protocol(StreamObject *self, PyObject *name, PyObject *arg)
{
    PyObject *proto = Py_NewRef(self->protocol);
    PyObject *argv[2] = {proto, arg};
    PyObject *r = PyObject_VectorcallMethod(name, argv, arg == NULL ? 1 : 2, NULL);
    Py_DECREF(proto);
    return r;
}

static int log_debug(StreamObject *self, const char *fmt, PyObject *msg, PyObject *exc)
{
    al_state *st = self->loop->state;
    PyObject *f = PyUnicode_FromString(fmt);
    if (f == NULL) {
        return -1;
    }
    PyObject *r;
    if (exc != NULL) {
        PyObject *argv[5] = {st->logger, f, (PyObject *)self, msg, exc};
        PyObject *kw = PyTuple_Pack(1, st->str_exc_info);
        r = kw ? PyObject_VectorcallMethod(st->str_debug, argv, 4, kw) : NULL;
        Py_XDECREF(kw);
    }
    else {
        PyObject *argv[3] = {st->logger, f, (PyObject *)self};
        r = PyObject_VectorcallMethod(st->str_debug, argv, 3, NULL);
    }
    Py_DECREF(f);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* --- the libuv handle ------------------------------------------------------ */

/* Stops watching and closes the handle (freed by its close callback), then
   drops the reference the activity held (al__tpoll_close). */
static void poll_stop(StreamObject *self)
{
    al__tpoll_close(&self->tp, self->loop, &self->io);
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Makes the watched events match the reading/writing flags. */
static int poll_update(StreamObject *self)
{
    if (self->detached || self->loop == NULL) {
        poll_stop(self);
        return 0;
    }
    int events = (self->reading ? UV_READABLE : 0) | (self->writing ? UV_WRITABLE : 0);
    return al__tpoll_update(&self->tp, self->loop, (PyObject *)self, &self->io, self->fd, events,
                            on_poll);
}

static int check_loop_open(StreamObject *self)
{
    if (self->loop == NULL || self->loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

/* asyncio's loop._add_reader / _add_writer: *flag is self->reading or
   self->writing, put back if the watch cannot be made. */
static int add_interest(StreamObject *self, char *flag)
{
    if (check_loop_open(self) < 0) {
        return -1;
    }
    char was = *flag;
    *flag = 1;
    if (poll_update(self) < 0) {
        *flag = was;
        return -1;
    }
    return 0;
}

static inline int add_reader(StreamObject *self)
{
    return add_interest(self, &self->reading);
}

static inline int add_writer(StreamObject *self)
{
    return add_interest(self, &self->writing);
}

/* asyncio's loop._remove_reader / _remove_writer */

static int remove_reader(StreamObject *self)
{
    self->reading = 0;
    self->read_deferred = 0; /* asyncio cancels the queued handle */
    return poll_update(self);
}

static int remove_writer(StreamObject *self)
{
    self->writing = 0;
    self->write_deferred = 0;
    return poll_update(self);
}

/* The loop is closing: its libuv handles go now. The transport stays a
   valid object (closed or warning when collected, as on asyncio). */
static void stream_loop_closing(al_io *io)
{
    StreamObject *self = STREAM_FROM_IO(io);
    self->detached = 1;
    poll_stop(self); /* may free self */
}

/* --- closing ----------------------------------------------------------------- */

static int force_close(StreamObject *self, PyObject *exc)
{
    if (self->conn_lost) {
        return 0;
    }
    if (self->wq.len > 0) {
        al__wqueue_clear(&self->wq);
        if (remove_writer(self) < 0) {
            return -1;
        }
    }
    if (!self->closing) {
        self->closing = 1;
        if (remove_reader(self) < 0) {
            return -1;
        }
    }
    self->conn_lost++;
    return call_soon_method(self, self->loop->state->str_call_connection_lost, exc ? exc : Py_None);
}

/* asyncio's _fatal_error: OSError is logged in debug mode only, anything
   else goes to the exception handler; then the transport is closed. */
static int fatal_error(StreamObject *self, PyObject *exc, const char *message)
{
    if (self->loop == NULL) {
        return 0;
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        if (self->loop->debug) {
            PyObject *msg = PyUnicode_FromString(message);
            int rc = msg ? log_debug(self, "%r: %s", msg, exc) : -1;
            Py_XDECREF(msg);
            if (rc < 0) {
                return -1;
            }
        }
    }
    else if (al__transport_report(self->loop, message, exc, (PyObject *)self, self->protocol) < 0) {
        return -1;
    }
    return force_close(self, exc);
}

/* A protocol call failed: SystemExit/KeyboardInterrupt go up, as asyncio
   re-raises them; anything else is a fatal error of the transport. */
static int protocol_failed(StreamObject *self, const char *message)
{
    if (is_exit_error()) {
        return -1;
    }
    PyObject *exc = al__err_fetch();
    int rc = fatal_error(self, exc, message);
    Py_DECREF(exc);
    return rc;
}

static int os_failed(StreamObject *self, int err, const char *message)
{
    PyObject *exc = errno_error(err);
    if (exc == NULL) {
        return -1;
    }
    int rc = fatal_error(self, exc, message);
    Py_DECREF(exc);
    return rc;
}

static const char READ_ERROR[] = "Fatal read error on socket transport";
static const char WRITE_ERROR[] = "Fatal write error on socket transport";

static int stream_close(StreamObject *self)
{
    if (self->closing) {
        return 0;
    }
    self->closing = 1;
    if (remove_reader(self) < 0) {
        return -1;
    }
    if (self->wq.len == 0) {
        self->conn_lost++;
        if (remove_writer(self) < 0) {
            return -1;
        }
        return call_soon_method(self, self->loop->state->str_call_connection_lost, Py_None);
    }
    return 0;
}

/* Everything _call_connection_lost does after the protocol's call. */
static int connection_lost_cleanup(StreamObject *self)
{
    int rc = 0;
    self->reading = self->writing = 0;
    if (self->loop != NULL) {
        poll_stop(self);
        if (self->registered) {
            al__loop_unregister_transport(self->loop, self->fd, (PyObject *)self);
            self->registered = 0;
        }
    }
    al__loop_io_unlink(&self->io);
    PyObject *sock = self->sock;
    self->sock = NULL;
    if (sock != NULL) {
        PyObject *r = PyObject_CallMethod(sock, "close", NULL);
        if (r == NULL) {
            rc = -1;
        }
        Py_XDECREF(r);
        lazy_keep_sock(self, sock);
    }
    Py_CLEAR(self->protocol);
    LoopObject *loop = self->loop;
    self->loop = NULL;
    PyObject *server = self->server;
    self->server = NULL;
    if (server != NULL && server != Py_None) {
        PyObject *exc = rc < 0 ? al__err_fetch() : NULL;
#if PY_VERSION_HEX >= 0x030D0000
        PyObject *r = PyObject_CallMethod(server, "_detach", "O", (PyObject *)self);
#else
        PyObject *r = PyObject_CallMethod(server, "_detach", NULL);
#endif
        if (r == NULL) {
            if (exc != NULL) {
                PyErr_Clear();
            }
            rc = -1;
        }
        Py_XDECREF(r);
        al__err_restore(exc);
    }
    Py_XDECREF(server);
    Py_XDECREF(loop);
    return rc;
}

static PyObject *Stream_call_connection_lost(StreamObject *self, PyObject *exc)
{
    if (self->sock == NULL && self->loop == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *err = NULL;
    if (self->protocol_connected && self->protocol != NULL) {
        PyObject *r = call_protocol(self, self->loop->state->str_connection_lost, exc);
        if (r == NULL) {
            err = al__err_fetch();
        }
        Py_XDECREF(r);
    }
    /* asyncio's `finally`: an error closing replaces the protocol's. */
    if (connection_lost_cleanup(self) < 0) {
        Py_XDECREF(err);
        return NULL;
    }
    if (err == NULL && (self->empty_waiter != NULL || self->sf_fut != NULL) &&
        empty_waiter_done(self, PyObject_CallFunction(PyExc_ConnectionError, "s",
                                                      "Connection is closed by peer")) < 0) {
        return NULL;
    }
    if (err != NULL) {
        al__err_restore(err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- read path ------------------------------------------------------------- */

static int on_eof(StreamObject *self)
{
    if (self->loop->debug && log_debug(self, "%r received EOF", NULL, NULL) < 0) {
        return -1;
    }
    PyObject *r = call_protocol(self, self->loop->state->str_eof_received, NULL);
    if (r == NULL) {
        return protocol_failed(self, "Fatal error: protocol.eof_received() call failed.");
    }
    int keep_open = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (keep_open < 0) {
        return -1;
    }
    if (keep_open) {
        /* Still open for writing; no more to read. */
        return remove_reader(self);
    }
    return stream_close(self);
}

/* A big read whose callback scheduled work (a task woken by a
   StreamReader) ends the stream events of this poll: that work runs before
   the next connection is read, and the others, level-triggered, come back
   at the next poll, as if they had become ready a moment later. Reading
   every connection first keeps all their data in memory at once: out of
   cache, and glibc's heap grown and trimmed again at every poll (measured:
   20 page faults per 100 KiB round trip of a streams echo, 0 this way).
   Fairness: after a poll that skipped some, only those may cut again, so a
   connection that is always readable cannot keep the others waiting. The
   poll is told by metrics.iterations, which loop_run_once counts. */
static inline void maybe_cut(StreamObject *self, LoopObject *loop, size_t queued, Py_ssize_t n)
{
    uint64_t it = loop->metrics.iterations;
    if (n >= BIG_READ && loop->ready.len > queued &&
        (loop->skip_iter != it - 1 || self->skip_iter == it - 1)) {
        loop->cut_iter = it;
    }
}

static int deliver_data(StreamObject *self, PyObject *data)
{
    LoopObject *loop = self->loop;
    size_t queued = loop->ready.len;
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    PyObject *r = call_protocol(self, loop->state->str_data_received, data);
    Py_DECREF(data);
    if (r == NULL) {
        return protocol_failed(self, "Fatal error: protocol.data_received() call failed.");
    }
    Py_DECREF(r);
    maybe_cut(self, loop, queued, n);
    return 0;
}

/* Large reads go straight into a bytes object, saving a copy of every byte.
   Its size is the last big read's (read_hint: messages of one size, the
   usual case, cost no FIONREAD syscall), else what FIONREAD says. What comes
   beyond it lands in the loop's buffer, and a read of another size is copied
   into a bytes object of its own (1 if it handled the read, 0 to use the
   loop's buffer, -1 on error).
   The loop keeps the last one (stream_held_read) until the next: freed just
   before the next is allocated, its block is reused at once by the same size
   (any transport's), so it is never split or handed to the protocol's own
   allocations in between (StreamReader's bytearray, the bytes its read()
   returns), which with many connections grew and trimmed glibc's heap:
   a streams echo of 100 KiB, 10 connections: ~1.9 -> ~0.25 page faults per
   round trip. It costs one block of at most 256 KiB per loop. */
static int read_direct(StreamObject *self)
{
    LoopObject *loop = self->loop;
    Py_ssize_t want = self->read_hint;
    if (want == 0) {
        int avail = 0;
        if (ioctl(self->fd, FIONREAD, &avail) < 0 || avail < BIG_READ) {
            return 0;
        }
        want = (size_t)avail > READ_BUF_SIZE ? (Py_ssize_t)READ_BUF_SIZE : avail;
    }
    if (loop->stream_read_buf == NULL) {
        loop->stream_read_buf = PyMem_RawMalloc(READ_BUF_SIZE);
        if (loop->stream_read_buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    /* Freed just before the new one is allocated, the last big read's
       memory is taken again at once, by the same size: see held_read. */
    Py_CLEAR(loop->stream_held_read);
    PyObject *data = PyBytes_FromStringAndSize(NULL, want);
    if (data == NULL) {
        return -1;
    }
    struct iovec iov[2] = {{PyBytes_AS_STRING(data), (size_t)want},
                           {loop->stream_read_buf, READ_BUF_SIZE - (size_t)want}};
    ssize_t n = readv(self->fd, iov, iov[1].iov_len > 0 ? 2 : 1);
    al__metrics_bytes_in(loop, n); /* metrics */
    if (n == want) {
        self->read_hint = want;
        loop->stream_held_read = Py_NewRef(data);
        return deliver_data(self, data) < 0 ? -1 : 1;
    }
    int err = errno;
    self->read_hint = 0;
    if (n >= HINT_READ && n < BIG_READ) {
        self->read_hint = n;
    }
    if (n > 0) {
        PyObject *part = PyBytes_FromStringAndSize(NULL, n);
        if (part == NULL) {
            Py_DECREF(data);
            return -1;
        }
        size_t head = (size_t)(n < want ? n : want);
        memcpy(PyBytes_AS_STRING(part), PyBytes_AS_STRING(data), head);
        memcpy(PyBytes_AS_STRING(part) + head, loop->stream_read_buf, (size_t)n - head);
        Py_DECREF(data);
        self->big_reads = (char)(n >= BIG_READ);
        return deliver_data(self, part) < 0 ? -1 : 1;
    }
    Py_DECREF(data);
    if (n == 0) {
        return on_eof(self) < 0 ? -1 : 1;
    }
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
        return 1;
    }
    return os_failed(self, err, READ_ERROR) < 0 ? -1 : 1;
}

/* Under an SSLProtocol the read goes from the loop's buffer straight into
   its incoming BIO (al__ssl_feed): no bytes object, no FIONREAD. */
static int deliver_tls(StreamObject *self, const char *data, ssize_t n)
{
    PyObject *proto = Py_NewRef(self->protocol);
    int rc = al__ssl_feed(proto, data, n);
    Py_DECREF(proto);
    if (rc < 0) {
        return protocol_failed(self, "Fatal error: protocol.data_received() call failed.");
    }
    return 0;
}

static int read_data(StreamObject *self)
{
    LoopObject *loop = self->loop;
    int tls = Py_IS_TYPE(self->protocol, loop->state->SSLProtocolType);
    if ((self->big_reads || self->read_hint != 0) && !tls) {
        int rc = read_direct(self);
        if (rc != 0) {
            return rc < 0 ? -1 : 0;
        }
    }
    if (loop->stream_read_buf == NULL) {
        loop->stream_read_buf = PyMem_RawMalloc(READ_BUF_SIZE);
        if (loop->stream_read_buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    ssize_t n = recv(self->fd, loop->stream_read_buf, READ_BUF_SIZE, 0);
    al__metrics_bytes_in(loop, n); /* metrics */
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return 0;
        }
        return os_failed(self, errno, READ_ERROR);
    }
    if (n == 0) {
        return on_eof(self);
    }
    if (tls) {
        return deliver_tls(self, loop->stream_read_buf, n);
    }
    self->big_reads = (char)(n >= BIG_READ);
    self->read_hint = n >= HINT_READ ? n : 0;
    PyObject *data = PyBytes_FromStringAndSize(loop->stream_read_buf, n);
    if (data == NULL) {
        return -1;
    }
    return deliver_data(self, data);
}

static int read_buffered(StreamObject *self)
{
    al_state *st = self->loop->state;
    static const char GET_BUFFER_FAILED[] = "Fatal error: protocol.get_buffer() call failed.";
    PyObject *buf = call_protocol(self, st->str_get_buffer, st->minus_one);
    if (buf == NULL) {
        return protocol_failed(self, GET_BUFFER_FAILED);
    }
    Py_ssize_t size = PyObject_Size(buf);
    if (size <= 0) {
        Py_DECREF(buf);
        if (size == 0) {
            PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
        }
        return protocol_failed(self, GET_BUFFER_FAILED);
    }
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        /* what socket.recv_into() would raise */
        return protocol_failed(self, READ_ERROR);
    }
    ssize_t n = recv(self->fd, view.buf, (size_t)view.len, 0);
    int err = errno;
    al__metrics_bytes_in(self->loop, n); /* metrics */
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            return 0;
        }
        return os_failed(self, err, READ_ERROR);
    }
    if (n == 0) {
        return on_eof(self);
    }
    PyObject *nbytes = PyLong_FromSsize_t(n);
    if (nbytes == NULL) {
        return -1;
    }
    LoopObject *loop = self->loop;
    size_t queued = loop->ready.len;
    PyObject *r = call_protocol(self, st->str_buffer_updated, nbytes);
    Py_DECREF(nbytes);
    if (r == NULL) {
        return protocol_failed(self, "Fatal error: protocol.buffer_updated() call failed.");
    }
    Py_DECREF(r);
    maybe_cut(self, loop, queued, n);
    return 0;
}

static int read_ready(StreamObject *self)
{
    if (self->conn_lost) {
        return 0;
    }
    return self->buffered ? read_buffered(self) : read_data(self);
}

/* --- write path ------------------------------------------------------------ */

/* Sends what is queued (one sendmsg of up to IOV_MAX chunks), asyncio's
   _write_sendmsg. */
static int write_ready(StreamObject *self)
{
    if (self->conn_lost) {
        return 0;
    }
    if (self->sf_fut != NULL && self->wq.len == 0) {
        return sendfile_ready(self);
    }
    if (self->wq.len == 0) {
        return remove_writer(self);
    }
    struct iovec iov[IOV_MAX];
    int cnt = al__wqueue_iov(&self->wq, iov, IOV_MAX);
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)cnt;
    ssize_t n = sendmsg(self->fd, &msg, MSG_NOSIGNAL);
    al__metrics_bytes_out(self->loop, n); /* metrics */
    if (n < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            return 0;
        }
        if (remove_writer(self) < 0) {
            return -1;
        }
        al__wqueue_clear(&self->wq);
        if (os_failed(self, err, WRITE_ERROR) < 0) {
            return -1;
        }
        return self->empty_waiter ? empty_waiter_done(self, errno_error(err)) : 0;
    }
    al__wqueue_consume(&self->wq, n);
    if (al__flow_maybe_resume(&self->flow, self->wq.bytes, self->st, self->loop, (PyObject *)self,
                              &self->protocol) < 0) { /* may queue more */
        return -1;
    }
    if (self->wq.len == 0) {
        if (remove_writer(self) < 0) {
            return -1;
        }
        if (self->empty_waiter != NULL && empty_waiter_done(self, NULL) < 0) {
            return -1;
        }
        if (self->closing) {
            PyObject *r = Stream_call_connection_lost(self, Py_None);
            Py_XDECREF(r);
            return r ? 0 : -1;
        }
        if (self->eof && shutdown(self->fd, SHUT_WR) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    return 0;
}

/* f(self) in ctx, as asyncio's reader or writer Handle runs it. */
static inline int in_ctx(StreamObject *self, PyObject *ctx, int (*f)(StreamObject *))
{
    int rc = 0;
    PyObject *entered = al__ctx_enter(ctx, &rc);
    return al__ctx_leave(entered, rc == 0 ? f(self) : rc);
}

/* The events a cut skipped (maybe_cut) are kept with their transport: the
   next iteration hands them over without polling again (readiness stays
   until the transport itself reads or writes, and its callbacks check
   again), instead of one more epoll_wait per big read. */
typedef struct al_skipped {
    PyObject *transport; /* strong */
    int events;
} al_skipped;

static void skip_events(StreamObject *self, LoopObject *loop, int events)
{
    self->skip_iter = loop->skip_iter = loop->cut_iter;
    if (loop->n_skipped == loop->cap_skipped) {
        Py_ssize_t cap = loop->cap_skipped ? loop->cap_skipped * 2 : 16;
        al_skipped *a = PyMem_RawRealloc(loop->skipped, (size_t)cap * sizeof(al_skipped));
        if (a == NULL) {
            return; /* level-triggered: the next poll reports it again */
        }
        loop->skipped = a;
        loop->cap_skipped = cap;
    }
    loop->skipped[loop->n_skipped].transport = Py_NewRef((PyObject *)self);
    loop->skipped[loop->n_skipped].events = events;
    loop->n_skipped++;
}

static void poll_events(StreamObject *self, int status, int events);

static void on_poll(uv_poll_t *handle, int status, int events)
{
    StreamObject *self = handle->data;
    if (self == NULL) {
        return;
    }
    poll_events(self, status, events);
}

/* Runs the events the last iteration skipped; 0 if there were none left to
   run (the caller polls). Those skipped again are kept for the next. */
int al__stream_run_skipped(LoopObject *loop)
{
    uint64_t it = loop->metrics.iterations;
    Py_ssize_t ran = 0, i;
    /* a release below may run code that clears the list (loop.close()) */
    for (i = 0; i < loop->n_skipped; i++) {
        if (loop->cut_iter == it) {
            /* cut again: the rest stay for the next iteration, as skipped */
            for (Py_ssize_t j = i; j < loop->n_skipped; j++) {
                ((StreamObject *)loop->skipped[j].transport)->skip_iter = it;
            }
            loop->skip_iter = it;
            break;
        }
        StreamObject *self = (StreamObject *)loop->skipped[i].transport;
        if (self->loop == loop && !self->detached && self->tp.box != NULL) {
            poll_events(self, 0, loop->skipped[i].events);
            ran++;
        }
        if (i < loop->n_skipped) {
            self = (StreamObject *)loop->skipped[i].transport;
            loop->skipped[i].transport = NULL;
            Py_DECREF(self);
        }
    }
    if (i > loop->n_skipped) {
        i = loop->n_skipped;
    }
    loop->n_skipped -= i;
    if (loop->n_skipped > 0) {
        memmove(loop->skipped, loop->skipped + i, (size_t)loop->n_skipped * sizeof(al_skipped));
    }
    return ran > 0;
}

void al__stream_skipped_clear(LoopObject *loop)
{
    al_skipped *a = loop->skipped;
    Py_ssize_t n = loop->n_skipped;
    loop->skipped = NULL;
    loop->n_skipped = loop->cap_skipped = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(a[i].transport);
    }
    PyMem_RawFree(a);
}

int al__stream_skipped_traverse(LoopObject *loop, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < loop->n_skipped; i++) {
        Py_VISIT(loop->skipped[i].transport);
    }
    return 0;
}

static void poll_events(StreamObject *self, int status, int events)
{
    LoopObject *loop = self->loop;
    if (status == 0 && loop->cut_iter == loop->metrics.iterations && loop->cut_iter != 0) {
        skip_events(self, loop, events);
        return;
    }
    al__loop_hold_gil(loop);
    Py_INCREF(self);
    int rc = 0;
    if (status < 0 && loop->ready_at_poll > 0) {
        /* POLLERR behind queued handles: selectors report the fd readable
           and writable, and asyncio runs the reader's and the writer's
           (a sendfile's too) as handles, whose recv/send/sendfile take the
           error. libuv stopped the handle: it polls again meanwhile. */
        self->tp.events = 0;
        if (self->reading) {
            rc = al__loop_defer(self->loop, (PyObject *)self, loop->state->str_read_ready,
                                self->rctx, &self->read_deferred);
        }
        if (rc == 0 && self->writing) {
            rc = al__loop_defer(self->loop, (PyObject *)self, loop->state->str_write_ready,
                                self->wctx, &self->write_deferred);
        }
        if (rc == 0 && self->tp.box != NULL) {
            rc = poll_update(self);
        }
    }
    else if (status < 0 && self->sf_fut != NULL && self->wq.len == 0) {
        /* A sendfile under way takes the socket's error from sendfile(2),
           as asyncio's writer callback does from os.sendfile. */
        self->tp.events = 0;
        rc = in_ctx(self, self->wctx, sendfile_ready);
        if (rc == 0 && self->tp.box != NULL && self->tp.events == 0) {
            rc = poll_update(self);
        }
    }
    else if (status < 0) {
        /* libuv stopped the handle (POLLERR, or the fd closed under us):
           take the socket's pending error, as recv()/send() would raise. */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
            err = errno;
        }
        self->tp.events = 0; /* started again below if still wanted */
        if (err != 0) {
            /* reported by _read_ready first when both are registered */
            PyObject *ctx = al__ctx_enter(self->reading ? self->rctx : self->wctx, &rc);
            if (rc == 0) {
                rc = os_failed(self, err, self->reading ? READ_ERROR : WRITE_ERROR);
            }
            al__ctx_exit(ctx, &rc);
        }
        else {
            if (self->reading) {
                rc = in_ctx(self, self->rctx, read_ready);
            }
            if (rc == 0 && self->writing) {
                rc = in_ctx(self, self->wctx, write_ready);
            }
        }
        if (rc == 0 && self->tp.box != NULL && self->tp.events == 0) {
            rc = poll_update(self);
        }
    }
    else if (loop->ready_at_poll > 0) {
        if ((events & UV_READABLE) && self->reading) {
            rc = al__loop_defer(self->loop, (PyObject *)self, loop->state->str_read_ready,
                                self->rctx, &self->read_deferred);
        }
        if (rc == 0 && (events & UV_WRITABLE) && self->writing) {
            rc = al__loop_defer(self->loop, (PyObject *)self, loop->state->str_write_ready,
                                self->wctx, &self->write_deferred);
        }
    }
    else {
        if ((events & UV_READABLE) && self->reading) {
            rc = in_ctx(self, self->rctx, read_ready);
        }
        if (rc == 0 && (events & UV_WRITABLE) && self->writing) {
            rc = in_ctx(self, self->wctx, write_ready);
        }
    }
    if (rc < 0) {
        al__transport_callback_failed(loop, (PyObject *)self);
    }
    Py_DECREF(self);
}

/* --- Python methods ---------------------------------------------------------- */

static PyObject *none_or_null(int rc)
{
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The handles al__loop_defer queued (run in the reader's / writer's context):
   nothing once the interest was removed, the transport closed, or the
   event is gone (EAGAIN). */
static PyObject *Stream_read_ready(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->read_deferred) {
        Py_RETURN_NONE;
    }
    self->read_deferred = 0;
    if (self->loop == NULL || !self->reading) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    int rc = read_ready(self);
    Py_DECREF(self);
    return none_or_null(rc);
}

static PyObject *Stream_write_ready(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->write_deferred) {
        Py_RETURN_NONE;
    }
    self->write_deferred = 0;
    if (self->loop == NULL || !self->writing) {
        Py_RETURN_NONE;
    }
    return none_or_null(write_ready(self));
}

static PyObject *Stream_write(StreamObject *self, PyObject *data)
{
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(data), "__name__");
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not %R",
                         name);
            Py_DECREF(name);
        }
        return NULL;
    }
    if (self->eof) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call write() after write_eof()");
        return NULL;
    }
    if (self->empty_waiter != NULL) {
        return sendfile_in_progress(self, "write");
    }
    /* Exact bytes (data_received's, the echo case) need no buffer export. */
    Py_buffer view;
    int exact = PyBytes_CheckExact(data);
    if (exact) {
        view.buf = PyBytes_AS_STRING(data);
        view.len = PyBytes_GET_SIZE(data);
    }
    else if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int rc = 0;
    if (view.len == 0) {
        goto done;
    }
    if (self->conn_lost) {
        if (self->conn_lost >= self->st->log_threshold_connlost) {
            PyObject *r = PyObject_CallMethod(self->st->logger, "warning", "s",
                                              "socket.send() raised exception.");
            if (r == NULL) {
                rc = -1;
            }
            Py_XDECREF(r);
        }
        self->conn_lost++;
        goto done;
    }
    Py_ssize_t sent = 0;
    if (self->wq.len == 0) {
        /* Try to send now; only the rest is queued. */
        ssize_t n = send(self->fd, view.buf, (size_t)view.len, MSG_NOSIGNAL);
        al__metrics_bytes_out(self->loop, n); /* metrics */
        if (n < 0) {
            int err = errno;
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                rc = os_failed(self, err, WRITE_ERROR);
                goto done;
            }
            n = 0;
        }
        sent = n;
        if (sent == view.len) {
            goto done;
        }
        if (al__ctx_copy(&self->wctx) < 0 || add_writer(self) < 0) {
            rc = -1;
            goto done;
        }
    }
    rc = al__wqueue_append(&self->wq, data, view.buf, view.len, sent);
    if (rc == 0) {
        rc = al__flow_maybe_pause(&self->flow, self->wq.bytes, self->st, self->loop,
                                  (PyObject *)self, &self->protocol);
    }
done:
    if (!exact) {
        PyBuffer_Release(&view);
    }
    return none_or_null(rc);
}

static PyObject *Stream_writelines(StreamObject *self, PyObject *list_of_data)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (self->eof) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot call writelines() after write_eof()");
        return NULL;
    }
    if (self->empty_waiter != NULL) {
        return sendfile_in_progress(self, "writelines");
    }
    int truth = PyObject_IsTrue(list_of_data);
    if (truth <= 0) {
        return truth < 0 ? NULL : Py_NewRef(Py_None);
    }
    /* memoryview() of each first, as asyncio does: nothing is queued if
       one of them is not bytes-like. */
    PyObject *items = PySequence_List(list_of_data);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *views = PyList_New(n);
    if (views == NULL) {
        Py_DECREF(items);
        return NULL;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        PyObject *mv = PyMemoryView_FromObject(PyList_GET_ITEM(items, i));
        if (mv == NULL) {
            rc = -1;
        }
        else {
            PyList_SET_ITEM(views, i, mv);
        }
    }
    /* All of them queued, then one vectored send. */
    for (Py_ssize_t i = 0; i < n && rc == 0 && !self->conn_lost; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyList_GET_ITEM(views, i), &view, PyBUF_SIMPLE) < 0) {
            rc = -1;
            break;
        }
        if (view.len > 0) {
            rc = al__wqueue_append(&self->wq, PyList_GET_ITEM(items, i), view.buf, view.len, 0);
        }
        PyBuffer_Release(&view);
    }
    Py_DECREF(views);
    Py_DECREF(items);
    if (rc < 0) {
        return NULL;
    }
    if (self->wq.len == 0) {
        Py_RETURN_NONE;
    }
    if (write_ready(self) < 0) {
        return NULL;
    }
    /* asyncio makes a new writer handle whenever some is left */
    if (self->wq.len > 0 &&
        (al__ctx_copy(&self->wctx) < 0 || (!self->writing && add_writer(self) < 0))) {
        return NULL;
    }
    Py_RETURN_NONE;
#else
    /* WriteTransport.writelines: b''.join() then write(). */
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    PyObject *data = empty ? PyObject_CallMethod(empty, "join", "O", list_of_data) : NULL;
    Py_XDECREF(empty);
    if (data == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethod((PyObject *)self, "write", "O", data);
    Py_DECREF(data);
    return r;
#endif
}

static PyObject *Stream_write_eof(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->eof) {
        Py_RETURN_NONE;
    }
    self->eof = 1;
    if (self->wq.len == 0 && shutdown(self->fd, SHUT_WR) < 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *Stream_can_write_eof(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

static PyObject *Stream_close(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return none_or_null(stream_close(self));
}

static PyObject *Stream_abort(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return none_or_null(self->loop ? force_close(self, NULL) : 0);
}

/* asyncio's _force_close(exc): asyncio.sslproto calls it on its transport. */
static PyObject *Stream_force_close_meth(StreamObject *self, PyObject *exc)
{
    return none_or_null(self->loop ? force_close(self, exc == Py_None ? NULL : exc) : 0);
}

static PyObject *Stream_is_closing(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *Stream_is_reading(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!self->closing && !self->paused);
}

static PyObject *Stream_pause_reading(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 1;
    if (self->loop == NULL || remove_reader(self) < 0) {
        return self->loop == NULL ? Py_NewRef(Py_None) : NULL;
    }
    if (self->loop->debug && log_debug(self, "%r pauses reading", NULL, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Stream_resume_reading(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 0;
    if (al__ctx_copy(&self->rctx) < 0 || add_reader(self) < 0) {
        return NULL;
    }
    if (self->loop->debug && log_debug(self, "%r resumes reading", NULL, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Scheduled by the constructor: asyncio's _add_reader(fd, _read_ready),
   after connection_made. */
static PyObject *Stream_start_reading(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX >= 0x030B0000
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
#else
    if (self->closing) { /* 3.10 ignores pause_reading() made before this */
        Py_RETURN_NONE;
    }
#endif
    return none_or_null(add_reader(self));
}

static PyObject *Stream_get_write_buffer_size(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->wq.bytes);
}

static PyObject *Stream_get_write_buffer_limits(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyTuple_Pack(2, self->flow.low_obj, self->flow.high_obj);
}

/* Binds f(a=None, b=None, ...)-style arguments: positional, then keywords. */
static int bind_args(const char *fname, const char *const *names, Py_ssize_t n, Py_ssize_t required,
                     PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = NULL;
    }
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from %zd to %zd positional arguments but %zd "
                     "were given",
                     fname, required + 1, n + 1, nargs + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k); /* borrowed */
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                break;
            }
        }
        if (i == n) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", fname,
                         key);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument: '%s'", fname, names[i]);
            return -1;
        }
    }
    return 0;
}

static PyObject *Stream_set_write_buffer_limits(StreamObject *self, PyObject *const *args,
                                                Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"high", "low"};
    PyObject *a[2];
    if (bind_args("set_write_buffer_limits", names, 2, 0, args, nargs, kwnames, a) < 0 ||
        al__flow_set_limits(&self->flow, a[0], a[1]) < 0) {
        return NULL;
    }
    if (self->loop == NULL || self->protocol == NULL) {
        Py_RETURN_NONE;
    }
    return none_or_null(al__flow_maybe_pause(&self->flow, self->wq.bytes, self->st, self->loop,
                                             (PyObject *)self, &self->protocol));
}

static PyObject *Stream_get_extra_info(StreamObject *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames)
{
    static const char *const names[] = {"name", "default"};
    PyObject *a[2];
    if (bind_args("get_extra_info", names, 2, 1, args, nargs, kwnames, a) < 0) {
        return NULL;
    }
    PyObject *dflt = a[1] ? a[1] : Py_None;
    if (self->extra == NULL && (self->lx == NULL || extra_build(self) < 0)) {
        return self->lx ? NULL : Py_NewRef(dflt);
    }
    if (PyDict_CheckExact(self->extra)) {
        PyObject *v = PyDict_GetItemWithError(self->extra, a[0]); /* borrowed */
        if (v == NULL) {
            return PyErr_Occurred() ? NULL : Py_NewRef(dflt);
        }
        return Py_NewRef(v);
    }
    return PyObject_CallMethod(self->extra, "get", "OO", a[0], dflt);
}

static int set_protocol(StreamObject *self, PyObject *protocol)
{
    int b = PyObject_IsInstance(protocol, self->st->BufferedProtocol);
    if (b < 0) {
        return -1;
    }
    self->buffered = (char)b;
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->protocol_connected = 1;
    return 0;
}

static PyObject *Stream_set_protocol(StreamObject *self, PyObject *protocol)
{
    return none_or_null(set_protocol(self, protocol));
}

static PyObject *Stream_get_protocol(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *Stream_repr(StreamObject *self)
{
    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    PyObject *item = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "__name__");
    int rc = item ? PyList_Append(parts, item) : -1;
    Py_XDECREF(item);
    if (rc == 0 && (self->sock == NULL || self->closing)) {
        item = PyUnicode_FromString(self->sock == NULL ? "closed" : "closing");
        rc = item ? PyList_Append(parts, item) : -1;
        Py_XDECREF(item);
    }
    if (rc == 0) {
        item = PyUnicode_FromFormat("fd=%d", self->fd);
        rc = item ? PyList_Append(parts, item) : -1;
        Py_XDECREF(item);
    }
    if (rc == 0 && self->loop != NULL && !self->loop->closed) {
        item = PyUnicode_FromString(self->reading ? "read=polling" : "read=idle");
        rc = item ? PyList_Append(parts, item) : -1;
        Py_XDECREF(item);
        if (rc == 0) {
            item = PyUnicode_FromFormat("write=<%s, bufsize=%zd>",
                                        self->writing ? "polling" : "idle", self->wq.bytes);
            rc = item ? PyList_Append(parts, item) : -1;
            Py_XDECREF(item);
        }
    }
    PyObject *res = NULL;
    if (rc == 0) {
        PyObject *sep = PyUnicode_FromString(" ");
        PyObject *joined = sep ? PyUnicode_Join(sep, parts) : NULL;
        Py_XDECREF(sep);
        if (joined != NULL) {
            res = PyUnicode_FromFormat("<%U>", joined);
            Py_DECREF(joined);
        }
    }
    Py_DECREF(parts);
    return res;
}

/* _extra: BaseTransport's slot, built first if it is still raw. */
static PyObject *Stream_get_extra(StreamObject *self, void *Py_UNUSED(c))
{
    if (self->extra == NULL && self->lx != NULL && extra_build(self) < 0) {
        return NULL;
    }
    if (self->extra == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute '_extra'",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    return Py_NewRef(self->extra);
}

static int Stream_set_extra(StreamObject *self, PyObject *v, void *Py_UNUSED(c))
{
    if (v == NULL && self->extra == NULL && self->lx == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute '_extra'",
                     Py_TYPE(self)->tp_name);
        return -1;
    }
    lazy_free(self);
    Py_XSETREF(self->extra, Py_XNewRef(v));
    return 0;
}

static PyObject *Stream_get_sock(StreamObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->sock ? self->sock : Py_None);
}

static PyObject *Stream_get_sock_fd(StreamObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *Stream_get_loop(StreamObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->loop ? (PyObject *)self->loop : Py_None);
}

static PyObject *Stream_get_protocol_paused(StreamObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->flow.paused);
}

static PyObject *Stream_get_closing(StreamObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *Stream_get_true(StreamObject *self, void *Py_UNUSED(c))
{
    Py_RETURN_TRUE;
}

/* --- object lifetime -------------------------------------------------------- */

/* asyncio's _SelectorTransport.__del__. */
static void Stream_finalize(StreamObject *self)
{
    if (self->sock == NULL) {
        return;
    }
    PyObject *exc = al__err_fetch();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed transport %R", self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    self->reading = self->writing = 0;
    if (self->loop != NULL) {
        poll_stop(self); /* not polling, or we would not be collected */
        if (self->registered) {
            al__loop_unregister_transport(self->loop, self->fd, (PyObject *)self);
            self->registered = 0;
        }
    }
    al__loop_io_unlink(&self->io);
    PyObject *sock = self->sock;
    self->sock = NULL;
    PyObject *r = PyObject_CallMethod(sock, "close", NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
    lazy_keep_sock(self, sock);
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.13's __del__ also detaches from the server. */
    if (self->server != NULL && self->server != Py_None) {
        r = PyObject_CallMethod(self->server, "_detach", "O", (PyObject *)self);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(r);
    }
#endif
    al__err_restore(exc);
}

static int Stream_traverse(StreamObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    if (self->lx != NULL) {
        Py_VISIT(self->lx->sock);
    }
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->server);
    Py_VISIT(self->rctx);
    Py_VISIT(self->wctx);
    Py_VISIT(self->empty_waiter);
    Py_VISIT(self->sf_fut);
    return 0;
}

static int Stream_clear(StreamObject *self)
{
    Py_CLEAR(self->extra);
    lazy_free(self);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->server);
    Py_CLEAR(self->rctx);
    Py_CLEAR(self->wctx);
    Py_CLEAR(self->empty_waiter);
    Py_CLEAR(self->sf_fut);
    return 0;
}

static void Stream_dealloc(StreamObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->loop != NULL && self->registered) {
        al__loop_unregister_transport(self->loop, self->fd, (PyObject *)self);
    }
    poll_stop(self); /* a stopped handle kept for the next start */
    al__loop_io_unlink(&self->io);
    Stream_clear(self);
    al__wqueue_clear(&self->wq);
    PyMem_Free(self->wq.q);
    PyMem_Free(self->sf);
    Py_CLEAR(self->sock);
    al__flow_clear(&self->flow);
    Py_CLEAR(self->loop);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)

static PyObject *Stream_make_empty_waiter(StreamObject *self, PyObject *Py_UNUSED(ignored));
static PyObject *Stream_reset_empty_waiter(StreamObject *self, PyObject *Py_UNUSED(ignored));
static PyObject *Stream_sendfile_native(StreamObject *self, PyObject *const *args,
                                        Py_ssize_t nargs);
static PyObject *Stream_get_sendfile_compatible(StreamObject *self, void *Py_UNUSED(c));
static PyObject *Stream_get_empty_waiter(StreamObject *self, void *Py_UNUSED(c));

static PyMethodDef Stream_methods[] = {
    {"write", (PyCFunction)Stream_write, METH_O, NULL},
    {"writelines", (PyCFunction)Stream_writelines, METH_O, NULL},
    {"write_eof", (PyCFunction)Stream_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)Stream_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)Stream_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)Stream_abort, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)Stream_force_close_meth, METH_O, NULL},
    {"is_closing", (PyCFunction)Stream_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)Stream_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)Stream_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)Stream_resume_reading, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)Stream_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)Stream_get_write_buffer_limits, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))Stream_set_write_buffer_limits, FASTKW,
     NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))Stream_get_extra_info, FASTKW, NULL},
    {"set_protocol", (PyCFunction)Stream_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Stream_get_protocol, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)Stream_start_reading, METH_NOARGS, NULL},
    {"_call_connection_lost", (PyCFunction)Stream_call_connection_lost, METH_O, NULL},
    {"_read_ready", (PyCFunction)Stream_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Stream_write_ready, METH_NOARGS, NULL},
    /* loop.sendfile */
    {"_make_empty_waiter", (PyCFunction)Stream_make_empty_waiter, METH_NOARGS, NULL},
    {"_reset_empty_waiter", (PyCFunction)Stream_reset_empty_waiter, METH_NOARGS, NULL},
    {"_sendfile_native", (PyCFunction)(void (*)(void))Stream_sendfile_native, METH_FASTCALL, NULL},
    {NULL, NULL},
};

static PyGetSetDef Stream_getset[] = {
    {"_extra", (getter)Stream_get_extra, (setter)Stream_set_extra, NULL, NULL},
    {"_sock", (getter)Stream_get_sock, NULL, NULL, NULL},
    {"_sock_fd", (getter)Stream_get_sock_fd, NULL, NULL, NULL},
    {"_loop", (getter)Stream_get_loop, NULL, NULL, NULL},
    {"_protocol_paused", (getter)Stream_get_protocol_paused, NULL, NULL, NULL},
    {"_closing", (getter)Stream_get_closing, NULL, NULL, NULL},
    {"_start_tls_compatible", (getter)Stream_get_true, NULL, NULL, NULL},
    {"_sendfile_compatible", (getter)Stream_get_sendfile_compatible, NULL, NULL, NULL},
    {"_empty_waiter", (getter)Stream_get_empty_waiter, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Stream_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(StreamObject, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot Stream_slots[] = {
    {Py_tp_dealloc, Stream_dealloc},
    {Py_tp_finalize, Stream_finalize},
    {Py_tp_traverse, Stream_traverse},
    {Py_tp_clear, Stream_clear},
    {Py_tp_repr, Stream_repr},
    {Py_tp_methods, Stream_methods},
    {Py_tp_getset, Stream_getset},
    {Py_tp_members, Stream_members},
    {Py_tp_doc, "A socket stream transport (asyncio's _SelectorSocketTransport)."},
    {0, NULL},
};

/* Not Py_TPFLAGS_IMMUTABLETYPE: asyncio.Transport is a mutable (Python)
   class, and an immutable subtype of it is deprecated (an error in 3.14). */
static PyType_Spec Stream_spec = {
    .name = "asyncloop._core.SocketTransport",
    .basicsize = sizeof(StreamObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Stream_slots,
};

/* --- loop._make_socket_transport -------------------------------------------- */

static PyObject *sock_call_or_none(PyObject *sock, const char *name)
{
    PyObject *r = PyObject_CallMethod(sock, name, NULL);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        r = Py_NewRef(Py_None);
    }
    return r;
}

/* sock.getsockname() (None if it fails) of an accepted connection: a
   plain socket.socket of a family al__sockaddr_to_py knows (server.c). */
static PyObject *accepted_sockname(PyObject *sock, int fd)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        Py_RETURN_NONE;
    }
    PyObject *v = al__sockaddr_to_py(&ss, len);
    if (v == NULL && !PyErr_Occurred()) {
        return sock_call_or_none(sock, "getsockname");
    }
    return v;
}

/* nodelay: -1 asks asyncio's base_events._set_nodelay, 0/1 is its answer
   known by the caller (server.c, from the listening socket). */
static int stream_init(StreamObject *self, LoopObject *loop, PyObject *sock, PyObject *protocol,
                       PyObject *waiter, PyObject *extra, PyObject *server, int nodelay,
                       PyObject *ctx)
{
    al_state *st = loop->state;
    /* server.c's plain accepted connection: extra is accept()'s raw peer
       address, the dict is built on first use (lazy_extra) */
    int lazy = nodelay >= 0 && PyBytes_CheckExact(extra);
    if (!lazy) {
        self->extra = extra != Py_None ? Py_NewRef(extra) : PyDict_New();
        if (self->extra == NULL) {
            return -1;
        }
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    /* asyncio's reader handle: a copy of the creating task's context (an
       accepted connection's own context: that context itself, which no
       one else enters from now on, so it holds what the copy would) */
    if (ctx != NULL) {
        self->rctx = Py_NewRef(ctx);
    }
    else if (al__ctx_copy(&self->rctx) < 0) {
        return -1;
    }
    al__flow_set_default(&self->flow, st);
    PyObject *v;
    int rc;
    if (!lazy) {
        v = PyObject_CallOneArg(st->TransportSocket, sock);
        rc = v ? PyObject_SetItem(self->extra, st->str_socket, v) : -1;
        Py_XDECREF(v);
        if (rc < 0) {
            return -1;
        }
    }
    /* an accepted socket's fd, asked once */
    int fd = nodelay < 0 ? -1 : PyObject_AsFileDescriptor(sock);
    if (nodelay >= 0 && fd < 0) {
        return -1;
    }
    if (lazy) {
        rc = lazy_new(self, extra, fd);
    }
    else {
        v = nodelay < 0 ? sock_call_or_none(sock, "getsockname") : accepted_sockname(sock, fd);
        rc = v ? PyObject_SetItem(self->extra, st->str_sockname, v) : -1;
        Py_XDECREF(v);
    }
    if (rc < 0) {
        return -1;
    }
    rc = lazy ? 1 : PySequence_Contains(self->extra, st->str_peername);
    if (rc < 0) {
        return -1;
    }
    if (rc == 0) {
        v = sock_call_or_none(sock, "getpeername");
        rc = v ? PyObject_SetItem(self->extra, st->str_peername, v) : -1;
        Py_XDECREF(v);
        if (rc < 0) {
            return -1;
        }
    }
    if (fd < 0 && (fd = PyObject_AsFileDescriptor(sock)) < 0) {
        return -1;
    }
    self->sock = Py_NewRef(sock);
    self->fd = fd;
    if (set_protocol(self, protocol) < 0) {
        return -1;
    }
    self->server = Py_NewRef(server);
    if (server != Py_None) {
#if PY_VERSION_HEX >= 0x030D0000
        v = PyObject_CallMethod(server, "_attach", "O", (PyObject *)self);
#else
        v = PyObject_CallMethod(server, "_attach", NULL);
#endif
        if (v == NULL) {
            return -1;
        }
        Py_DECREF(v);
    }
    if (al__loop_register_transport(loop, fd, (PyObject *)self) < 0) {
        return -1;
    }
    self->registered = 1;
    /* metrics: accepted by a server, or made by create_connection & co */
    *(server != Py_None ? &loop->metrics.accepted : &loop->metrics.connected) += 1;
    /* _SelectorSocketTransport: Nagle off on TCP sockets. */
    if (nodelay < 0) {
        v = PyObject_CallOneArg(st->set_nodelay, sock);
        if (v == NULL) {
            return -1;
        }
        Py_DECREF(v);
    }
    else if (nodelay > 0) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
            PyErr_SetFromErrno(PyExc_OSError); /* as sock.setsockopt() */
            return -1;
        }
    }
    PyObject *made = PyObject_GetAttr(protocol, st->str_connection_made);
    rc = made ? call_soon(loop, made, (PyObject *)self, NULL) : -1;
    Py_XDECREF(made);
    /* Reading starts once connection_made() has run. */
    if (rc < 0 || call_soon_method(self, st->str_start_reading, NULL) < 0) {
        return -1;
    }
    if (waiter != Py_None &&
        call_soon(loop, st->set_result_unless_cancelled, waiter, Py_None) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *stream_new(LoopObject *loop, PyObject *sock, PyObject *protocol, PyObject *waiter,
                            PyObject *extra, PyObject *server, int nodelay, PyObject *ctx)
{
    al_state *st = loop->state;
    PyTypeObject *tp = st->SocketTransportType;
    StreamObject *t = (StreamObject *)tp->tp_alloc(tp, 0);
    if (t == NULL) {
        return NULL;
    }
    t->st = st;
    t->fd = -1;
    t->io.loop_closing = stream_loop_closing;
    al__loop_io_link(loop, &t->io);
    if (stream_init(t, loop, sock, protocol, waiter, extra, server, nodelay, ctx) < 0) {
        Py_DECREF(t); /* warns and closes the socket, as asyncio's __del__ */
        return NULL;
    }
    return (PyObject *)t;
}

PyObject *al__loop_make_socket_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames)
{
    static const char *const names[] = {"sock", "protocol", "waiter", "extra", "server"};
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[5];
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "_make_socket_transport() takes from 3 to 4 positional arguments but %zd "
                     "were given",
                     nargs + 1);
        return NULL;
    }
    if (bind_args("_make_socket_transport", names, 5, 2, args, nargs, kwnames, a) < 0) {
        return NULL;
    }
    return stream_new(self, a[0], a[1], a[2] ? a[2] : Py_None, a[3] ? a[3] : Py_None,
                      a[4] ? a[4] : Py_None, -1, NULL);
}

PyObject *al__stream_accepted(LoopObject *loop, PyObject *sock, PyObject *protocol, PyObject *extra,
                              PyObject *server, int nodelay, PyObject *ctx)
{
    return stream_new(loop, sock, protocol, Py_None, extra, server, nodelay, ctx);
}

/* --- module state ------------------------------------------------------------ */

int al__stream_init(PyObject *module, al_state *st)
{
    INTERN(str_call_soon, "call_soon");
    INTERN(str_connection_made, "connection_made");
    INTERN(str_connection_lost, "connection_lost");
    INTERN(str_data_received, "data_received");
    INTERN(str_get_buffer, "get_buffer");
    INTERN(str_buffer_updated, "buffer_updated");
    INTERN(str_eof_received, "eof_received");
    INTERN(str_pause_writing, "pause_writing");
    INTERN(str_resume_writing, "resume_writing");
    INTERN(str_transport, "transport");
    INTERN(str_protocol, "protocol");
    INTERN(str_socket, "socket");
    INTERN(str_sockname, "sockname");
    INTERN(str_peername, "peername");
    INTERN(str_exc_info, "exc_info");
    INTERN(str_start_reading, "_start_reading");
    INTERN(str_call_connection_lost, "_call_connection_lost");
    INTERN(str_write_ready, "_write_ready");
    if ((st->minus_one = PyLong_FromLong(-1)) == NULL ||
        (st->write_high = PyLong_FromLong(64L * 1024)) == NULL ||
        (st->write_low = PyLong_FromLong(16L * 1024)) == NULL ||
        (st->BufferedProtocol = al__import_attr("asyncio.protocols", "BufferedProtocol")) == NULL ||
        (st->TransportSocket = al__import_attr("asyncio.trsock", "TransportSocket")) == NULL ||
        (st->set_nodelay = al__import_attr("asyncio.base_events", "_set_nodelay")) == NULL) {
        return -1;
    }
    PyObject *threshold = al__import_attr("asyncio.constants", "LOG_THRESHOLD_FOR_CONNLOST_WRITES");
    if (threshold == NULL) {
        return -1;
    }
    st->log_threshold_connlost = PyLong_AsSsize_t(threshold);
    Py_DECREF(threshold);
    if (st->log_threshold_connlost == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *base = al__import_attr("asyncio.transports", "Transport");
    if (base == NULL) {
        return -1;
    }
    /* Our struct puts BaseTransport's one slot, _extra, right after the
       object header: check that asyncio.Transport is laid out so. */
    PyTypeObject *bt = (PyTypeObject *)base;
    if (!PyType_Check(base) ||
        bt->tp_basicsize !=
            (Py_ssize_t)offsetof(StreamObject, extra) + (Py_ssize_t)sizeof(PyObject *) ||
        bt->tp_itemsize != 0) {
        PyErr_SetString(PyExc_ImportError,
                        "asyncio.Transport has an unexpected layout (its __slots__ changed?)");
        Py_DECREF(base);
        return -1;
    }
    st->SocketTransportType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Stream_spec, base);
    Py_DECREF(base);
    if (st->SocketTransportType == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->SocketTransportType);
}

int al__stream_traverse(al_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->SocketTransportType);
    Py_VISIT(st->BufferedProtocol);
    Py_VISIT(st->TransportSocket);
    Py_VISIT(st->set_nodelay);
    return 0;
}

void al__stream_clear(al_state *st)
{
    Py_CLEAR(st->SocketTransportType);
    Py_CLEAR(st->BufferedProtocol);
    Py_CLEAR(st->TransportSocket);
    Py_CLEAR(st->set_nodelay);
    Py_CLEAR(st->minus_one);
    Py_CLEAR(st->write_high);
    Py_CLEAR(st->write_low);
    PyObject **names[] = {
        &st->str_call_soon,
        &st->str_connection_made,
        &st->str_connection_lost,
        &st->str_data_received,
        &st->str_get_buffer,
        &st->str_buffer_updated,
        &st->str_eof_received,
        &st->str_pause_writing,
        &st->str_resume_writing,
        &st->str_transport,
        &st->str_protocol,
        &st->str_socket,
        &st->str_sockname,
        &st->str_peername,
        &st->str_exc_info,
        &st->str_start_reading,
        &st->str_call_connection_lost,
        &st->str_write_ready,
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Py_CLEAR(*names[i]);
    }
}

/* --- loop.sendfile: the zero-copy path ----------------------------------------- */

/* asyncio's selector loop: loop.sendfile (borrowed) calls the loop's
   _sendfile_native (asyncloop/__init__.py), which pauses reading, waits
   on _make_empty_waiter() for the write queue to drain, makes
   sock_sendfile's checks and awaits _sendfile_native() here: sendfile(2)
   from the file straight to the socket, waiting for writability on the
   transport's own poll handle whenever the socket is full. write() raises
   while the empty waiter is set, so the queue stays empty meanwhile and
   write_ready() hands the writable events to sendfile_ready(). */

static PyObject *sendfile_in_progress(StreamObject *self, const char *what)
{
    (void)self;
    PyErr_Format(PyExc_RuntimeError, "unable to %s; sendfile is in progress", what);
    return NULL;
}

static int future_done(al_state *st, PyObject *fut)
{
    PyObject *r =
        PyObject_VectorcallMethod(st->str_done, &fut, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    int done = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    return done;
}

/* fut.set_result(value) or fut.set_exception(value), value stolen. */
static int future_complete(al_state *st, PyObject *fut, PyObject *value, int is_exc)
{
    if (value == NULL) {
        return -1;
    }
    PyObject *argv[2] = {fut, value};
    PyObject *r = PyObject_VectorcallMethod(is_exc ? st->str_set_exception : st->str_set_result,
                                            argv, 2, NULL);
    Py_DECREF(value);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The queue drained (exc NULL) or failed: the empty waiter's result or
   exception, as asyncio's _write_ready sets it; an exception (stolen) also
   ends a sendfile under way. A done waiter is left as it is. */
static int empty_waiter_done(StreamObject *self, PyObject *exc)
{
    al_state *st = self->st;
    int rc = 0;
    if (self->empty_waiter != NULL) {
        PyObject *w = Py_NewRef(self->empty_waiter);
        int done = future_done(st, w);
        if (done < 0) {
            rc = -1;
        }
        else if (!done) {
            rc = exc ? future_complete(st, w, Py_NewRef(exc), 1)
                     : future_complete(st, w, Py_NewRef(Py_None), 0);
        }
        Py_DECREF(w);
    }
    if (rc == 0 && exc != NULL && self->sf_fut != NULL) {
        PyObject *fut = self->sf_fut;
        self->sf_fut = NULL;
        int done = future_done(st, fut);
        if (done == 0 &&
            al__sendfile_update_filepos(self->sf->fileno, self->sf->offset, self->sf->total) < 0) {
            done = -1;
        }
        rc = done < 0 ? -1 : done ? 0 : future_complete(st, fut, Py_NewRef(exc), 1);
        Py_DECREF(fut);
    }
    Py_XDECREF(exc);
    return rc;
}

/* Writable while a sendfile is under way (the queue is empty): send until
   the socket is full, then wait; when done, resolve the future with asyncio's
   result, exception and file position. */
static int sendfile_ready(StreamObject *self)
{
    al_state *st = self->st;
    int done = future_done(st, self->sf_fut);
    if (done < 0) {
        return -1;
    }
    if (done) { /* cancelled: stop, as asyncio's cancellation callback */
        Py_CLEAR(self->sf_fut);
        return self->writing ? remove_writer(self) : 0;
    }
    int err = 0;
    int rc = al__sendfile_round(self->fd, self->sf->fileno, &self->sf->offset, self->sf->count,
                                self->sf->blocksize, &self->sf->total, &err);
    if (rc == 0) {
        self->sf->waited = 1;
        if (al__ctx_copy(&self->wctx) < 0) {
            return -1;
        }
        return self->writing ? 0 : add_writer(self);
    }
    PyObject *fut = self->sf_fut;
    self->sf_fut = NULL;
    int midway = self->sf->waited || self->sf->total > 0;
    if (self->writing && remove_writer(self) < 0) {
        Py_DECREF(fut);
        return -1;
    }
    PyObject *value;
    int is_exc = 1;
    if (al__sendfile_update_filepos(self->sf->fileno, self->sf->offset, self->sf->total) < 0) {
        value = al__err_fetch();
    }
    else if (rc == 1) {
        value = PyLong_FromLongLong(self->sf->total);
        is_exc = 0;
    }
    else {
        value = al__sendfile_error(st, err, self->sf->total, midway);
    }
    rc = future_complete(st, fut, value, is_exc);
    Py_DECREF(fut);
    return rc;
}

/* _sendfile_native(file, offset, count) -> Future[int]: asyncio's
   _sock_sendfile_native on this transport's socket, after its checks. */
static PyObject *Stream_sendfile_native(StreamObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    al_state *st = self->st;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_sendfile_native(file, offset, count)");
        return NULL;
    }
    if (self->sf_fut != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sendfile is already in progress");
        return NULL;
    }
    if (check_loop_open(self) < 0) {
        return NULL;
    }
    int fileno;
    long long blocksize;
    if (al__sendfile_file_fd(st, args[0], args[2], &fileno, &blocksize) < 0) {
        return NULL;
    }
    long long offset = PyLong_AsLongLong(args[1]);
    long long count = -1;
    if (args[2] != Py_None) {
        count = PyLong_AsLongLong(args[2]);
        if (count == 0) {
            count = -1;
        }
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *fut = PyObject_CallMethod((PyObject *)self->loop, "create_future", NULL);
    if (fut == NULL) {
        return NULL;
    }
    int rc;
    if (blocksize == 0) { /* empty file */
        rc = future_complete(st, fut, PyLong_FromLong(0), 0);
    }
    else if (self->conn_lost || self->sock == NULL) {
        rc = future_complete(
            st, fut,
            PyObject_CallFunction(PyExc_ConnectionError, "s", "Connection is closed by peer"), 1);
    }
    else if (self->sf == NULL && (self->sf = PyMem_Malloc(sizeof(sf_state))) == NULL) {
        PyErr_NoMemory();
        rc = -1;
    }
    else {
        self->sf_fut = Py_NewRef(fut);
        self->sf->fileno = fileno;
        self->sf->offset = offset;
        self->sf->count = count;
        self->sf->blocksize = blocksize;
        self->sf->total = 0;
        self->sf->waited = 0;
        Py_INCREF(self);
        rc = sendfile_ready(self);
        if (rc < 0) {
            Py_CLEAR(self->sf_fut);
        }
        Py_DECREF(self);
    }
    if (rc < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    return fut;
}

static PyObject *Stream_make_empty_waiter(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->empty_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Empty waiter is already set");
        return NULL;
    }
    if (check_loop_open(self) < 0) {
        return NULL;
    }
    PyObject *fut = PyObject_CallMethod((PyObject *)self->loop, "create_future", NULL);
    if (fut == NULL) {
        return NULL;
    }
    if (self->wq.len == 0 && future_complete(self->st, fut, Py_NewRef(Py_None), 0) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    self->empty_waiter = Py_NewRef(fut);
    return fut;
}

static PyObject *Stream_reset_empty_waiter(StreamObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(self->empty_waiter);
    if (self->sf_fut != NULL) {
        /* The sendfile was cancelled while it waited: its writer goes. */
        Py_CLEAR(self->sf_fut);
        if (self->writing && self->wq.len == 0 && self->loop != NULL) {
            Py_INCREF(self);
            int rc = remove_writer(self);
            Py_DECREF(self);
            if (rc < 0) {
                return NULL;
            }
        }
    }
    Py_RETURN_NONE;
}

static PyObject *Stream_get_sendfile_compatible(StreamObject *self, void *Py_UNUSED(c))
{
    (void)self;
    PyObject *mode = al__import_attr("asyncio.constants", "_SendfileMode");
    if (mode == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_GetAttrString(mode, "TRY_NATIVE");
    Py_DECREF(mode);
    return r;
}

static PyObject *Stream_get_empty_waiter(StreamObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->empty_waiter ? self->empty_waiter : Py_None);
}
