/* Pipe transports: asyncio's _UnixReadPipeTransport and
   _UnixWritePipeTransport (with _FlowControlMixin) in C, for pipes, FIFOs,
   character devices (ptys) and sockets. loop._make_read_pipe_transport()
   and loop._make_write_pipe_transport() build them; so do
   al__read_pipe_new / al__write_pipe_new for the subprocess code.

   As in asyncio the pipe object owns the fd and is closed by
   _call_connection_lost. The fd is watched with a uv_poll_t and read or
   written with read()/write() directly. One struct serves both types. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_READ ((Py_ssize_t)256 * 1024) /* asyncio's max_size */
/* From this size on a read goes straight into its bytes object (sized by
   FIONREAD); smaller ones go through a stack buffer. */
#define BIG_READ ((Py_ssize_t)16 * 1024)
#define SMALL_READ ((Py_ssize_t)64 * 1024)
/* Writes of one writable event after a partial one (write_ready). */
#define WRITE_RETRIES 8

/* Chunks given to one writev(): a pipe takes at most 1 MiB anyway. */
#define WRITE_IOV 64
/* A pipe keeps the kernel's default capacity: F_SETPIPE_SZ beyond it counts
   against the user's pipe-user-pages limits (pipes other processes of the
   user create are then made smaller) and changes what the peer sees. */

/* Allocated apart from the transport (see docs/architecture.md). */

typedef struct {
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot: must be first */
    PyObject *weakreflist;
    PyObject *dict; /* instance attributes, as asyncio's Python transports take */
    al_state *st;
    LoopObject *loop; /* NULL once connection_lost ran (asyncio's _loop = None) */
    PyObject *pipe;   /* owns the fd; NULL once closed */
    PyObject *protocol;
    PyObject *rctx; /* the reader's context (al__ctx_copy) */
    PyObject *wctx; /* the writer's: copied when writes start waiting */
    al_io io;
    al_tpoll tp; /* the poll handle (al__tpoll_*) */
    int fd;
    Py_ssize_t conn_lost;
    /* write side: the buffer (asyncio's bytearray) and flow control */
    al_wqueue wq; /* the buffer (its bytes: asyncio's len(self._buffer)) */
    al_flow flow; /* _FlowControlMixin (the write side's) */
    char is_write;
    char closing;
    char paused;
    char reading;         /* a reader registered (write side: the peer-close watch) */
    char writing;         /* a writer registered */
    char detached;        /* the loop was closed: no libuv handle any more */
    char read_deferred;   /* a _read_ready handle is queued (al__loop_defer) */
    char write_deferred;  /* a _write_ready handle is queued */
    char late_linked;     /* in loop->late_writes (a reference held there) */
    char late;            /* a writable event waits there: LATE_RUN or LATE_QUEUE */
    PyObject *late_next;  /* the next in loop->late_writes (borrowed) */
    Py_ssize_t read_cap;  /* the largest read (see Read_pause_reading) */
    Py_ssize_t pipe_size; /* a FIFO's capacity (F_GETPIPE_SZ at creation), or 0 */
    Py_ssize_t full_size; /* the last read emptied a full FIFO: the next one's size */
    Py_ssize_t last_read; /* what the last read returned */
} PipeObject;

/* How a writable event kept for after the poll's other events is handled
   (al__pipe_run_late_writes): at once, or queued as a _write_ready Handle
   (the poll found handles queued: its events go behind them). */
#define LATE_RUN 1
#define LATE_QUEUE 2

#define PIPE_FROM_IO(p) ((PipeObject *)((char *)(p)-offsetof(PipeObject, io)))

static const char READ_ERROR[] = "Fatal read error on pipe transport";
static const char WRITE_ERROR[] = "Fatal write error on pipe transport";

/* --- helpers ------------------------------------------------------------- */

static PyObject *none_or_null(int rc)
{
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* loop.call_soon(callback[, arg1[, arg2]]) through the loop's method. */
static int call_soon2(LoopObject *loop, PyObject *callback, PyObject *arg1, PyObject *arg2)
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

static inline int call_soon(LoopObject *loop, PyObject *callback, PyObject *arg)
{
    return call_soon2(loop, callback, arg, NULL);
}

static int call_soon_method(PipeObject *self, PyObject *obj, const char *name, PyObject *arg)
{
    PyObject *meth = PyObject_GetAttrString(obj, name);
    if (meth == NULL) {
        return -1;
    }
    int rc = call_soon(self->loop, meth, arg);
    Py_DECREF(meth);
    return rc;
}

static PyObject *call_protocol(PipeObject *self, PyObject *name, PyObject *arg)
{
    PyObject *proto = Py_NewRef(self->protocol);
    PyObject *argv[2] = {proto, arg};
    PyObject *r = PyObject_VectorcallMethod(name, argv, arg == NULL ? 1 : 2, NULL);
    Py_DECREF(proto);
    return r;
}

/* logger.<level>(fmt, self[, msg], exc_info=exc) */
static int log_msg(PipeObject *self, const char *level, const char *fmt, const char *msg,
                   PyObject *exc)
{
    PyObject *r;
    if (exc != NULL) {
        PyObject *meth = PyObject_GetAttrString(self->st->logger, level);
        PyObject *args = meth ? Py_BuildValue("(sOs)", fmt, (PyObject *)self, msg) : NULL;
        PyObject *kw = args ? Py_BuildValue("{sO}", "exc_info", exc) : NULL;
        r = kw ? PyObject_Call(meth, args, kw) : NULL;
        Py_XDECREF(meth);
        Py_XDECREF(args);
        Py_XDECREF(kw);
    }
    else {
        r = PyObject_CallMethod(self->st->logger, level, "sO", fmt, (PyObject *)self);
    }
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static PyObject *errno_error(int err)
{
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return al__err_fetch();
}

/* --- the libuv handle ------------------------------------------------------ */

/* Stops watching and closes the handle (freed by its close callback). */
static void poll_stop(PipeObject *self)
{
    al__tpoll_close(&self->tp, self->loop, &self->io);
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Makes the watched events match the reading/writing flags. */
static int poll_update(PipeObject *self)
{
    if (self->detached || self->loop == NULL) {
        poll_stop(self);
        return 0;
    }
    int events = (self->reading ? UV_READABLE : 0) | (self->writing ? UV_WRITABLE : 0);
    return al__tpoll_update(&self->tp, self->loop, (PyObject *)self, &self->io, self->fd, events,
                            on_poll);
}

/* asyncio's loop._add_reader/_add_writer: RuntimeError on a closed loop. */
static int add_interest(PipeObject *self, char *flag)
{
    if (self->loop == NULL || self->loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
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

/* asyncio's loop._remove_reader/_remove_writer: nothing on a closed loop. */
static int remove_interest(PipeObject *self, char *flag)
{
    *flag = 0;
    /* asyncio cancels the queued handle */
    if (flag == &self->reading) {
        self->read_deferred = 0;
    }
    else if (flag == &self->writing) {
        self->write_deferred = 0;
        self->late = 0;
    }
    if (self->loop == NULL) {
        return 0;
    }
    return poll_update(self);
}

static void pipe_loop_closing(al_io *io)
{
    PipeObject *self = PIPE_FROM_IO(io);
    self->detached = 1;
    poll_stop(self); /* may free self */
}

/* --- closing ------------------------------------------------------------------ */

/* _close(exc): both sides (the write side also drops its buffer). */
static int pipe_close_exc(PipeObject *self, PyObject *exc)
{
    self->closing = 1;
    if (self->is_write) {
        if (self->wq.bytes > 0 && remove_interest(self, &self->writing) < 0) {
            return -1;
        }
        al__wqueue_clear(&self->wq);
    }
    if (remove_interest(self, &self->reading) < 0) {
        return -1;
    }
    if (self->loop == NULL) {
        return 0;
    }
    PyObject *meth = PyObject_GetAttr((PyObject *)self, self->st->str_call_connection_lost);
    if (meth == NULL) {
        return -1;
    }
    int rc = call_soon(self->loop, meth, exc ? exc : Py_None);
    Py_DECREF(meth);
    return rc;
}

/* _fatal_error: the read side is quiet about EIO only (a pty whose other
   end closed), the write side about any OSError (debug log). */
static int fatal_error(PipeObject *self, PyObject *exc, const char *message)
{
    if (self->loop == NULL) {
        return 0;
    }
    int quiet;
    if (self->is_write) {
        quiet = PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError);
    }
    else {
        quiet = 0;
        if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
            PyObject *en = PyObject_GetAttrString(exc, "errno");
            if (en == NULL) {
                return -1;
            }
            quiet = PyLong_Check(en) && PyLong_AsLong(en) == EIO;
            Py_DECREF(en);
        }
    }
    if (quiet) {
        if (self->loop->debug && log_msg(self, "debug", "%r: %s", message, exc) < 0) {
            return -1;
        }
    }
    else if (al__transport_report(self->loop, message, exc, (PyObject *)self, self->protocol) < 0) {
        return -1;
    }
    return pipe_close_exc(self, exc);
}

static int os_failed(PipeObject *self, int err, const char *message)
{
    PyObject *exc = errno_error(err);
    if (exc == NULL) {
        return -1;
    }
    int rc = fatal_error(self, exc, message);
    Py_DECREF(exc);
    return rc;
}

static PyObject *Pipe_call_connection_lost(PipeObject *self, PyObject *exc)
{
    if (self->pipe == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *err = NULL;
    if (self->protocol != NULL) {
        PyObject *r = call_protocol(self, self->st->str_connection_lost, exc);
        if (r == NULL) {
            err = al__err_fetch();
        }
        Py_XDECREF(r);
    }
    /* asyncio's `finally`: pipe.close(), then _pipe, _protocol, _loop = None */
    self->reading = self->writing = 0;
    poll_stop(self);
    al__loop_io_unlink(&self->io);
    PyObject *pipe = self->pipe;
    self->pipe = NULL;
    PyObject *r = PyObject_CallMethod(pipe, "close", NULL);
    Py_DECREF(pipe);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->loop);
    if (r == NULL) {
        Py_XDECREF(err);
        return NULL;
    }
    Py_DECREF(r);
    if (err != NULL) {
        al__err_restore(err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- read side ---------------------------------------------------------------- */

static int read_ready(PipeObject *self)
{
    char small[SMALL_READ];
    PyObject *data;
    int avail = 0, err;
    ssize_t n;
    /* A FIFO found full at the last read likely is again (its writer is
       ahead): read its capacity without asking FIONREAD, and let a second
       buffer catch what a pipe grown by its other end holds beyond it. */
    Py_ssize_t want = self->full_size;
    if (want == 0 && ioctl(self->fd, FIONREAD, &avail) == 0 && avail >= BIG_READ) {
        want = avail > self->read_cap ? self->read_cap : avail;
    }
    if (want > 0) {
        data = PyBytes_FromStringAndSize(NULL, want);
        if (data == NULL) {
            return -1;
        }
        struct iovec iov[2] = {{PyBytes_AS_STRING(data), (size_t)want}, {small, sizeof(small)}};
        n = readv(self->fd, iov, self->full_size > 0 ? 2 : 1);
        err = errno; /* before the frees below */
        al__metrics_bytes_in(self->loop, n);
        if (n > 0 && n != want) {
            PyObject *part = PyBytes_FromStringAndSize(NULL, n);
            if (part != NULL) {
                memcpy(PyBytes_AS_STRING(part), PyBytes_AS_STRING(data),
                       (size_t)(n < want ? n : want));
                if (n > want) {
                    memcpy(PyBytes_AS_STRING(part) + want, small, (size_t)(n - want));
                }
            }
            Py_SETREF(data, part);
            if (data == NULL) {
                return -1;
            }
        }
        else if (n <= 0) {
            Py_CLEAR(data);
        }
    }
    else {
        n = read(self->fd, small, sizeof(small));
        err = errno;
        al__metrics_bytes_in(self->loop, n);
        data = NULL;
        if (n > 0 && (data = PyBytes_FromStringAndSize(small, n)) == NULL) {
            return -1;
        }
    }
    /* full: it gave the FIFO's whole capacity */
    self->full_size = n > 0 && n == self->pipe_size && n <= self->read_cap ? n : 0;
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            return 0;
        }
        return os_failed(self, err, READ_ERROR);
    }
    if (n > 0) {
        self->last_read = n;
        PyObject *r = call_protocol(self, self->st->str_data_received, data);
        Py_DECREF(data);
        if (r == NULL) {
            return -1; /* as asyncio's Handle reports it */
        }
        Py_DECREF(r);
        return 0;
    }
    /* EOF */
    if (self->loop->debug && log_msg(self, "info", "%r was closed by peer", NULL, NULL) < 0) {
        return -1;
    }
    self->closing = 1;
    if (remove_interest(self, &self->reading) < 0) {
        return -1;
    }
    if (call_soon_method(self, self->protocol, "eof_received", NULL) < 0) {
        return -1;
    }
    PyObject *meth = PyObject_GetAttr((PyObject *)self, self->st->str_call_connection_lost);
    int rc = meth ? call_soon(self->loop, meth, Py_None) : -1;
    Py_XDECREF(meth);
    return rc;
}

/* --- write side ---------------------------------------------------------------- */

/* The peer-close watch fired: asyncio's _UnixWritePipeTransport._read_ready. */
static int peer_closed(PipeObject *self)
{
    if (self->loop->debug && log_msg(self, "info", "%r was closed by peer", NULL, NULL) < 0) {
        return -1;
    }
    if (self->wq.bytes > 0) {
        PyObject *exc = PyObject_CallNoArgs(PyExc_BrokenPipeError);
        if (exc == NULL) {
            return -1;
        }
        int rc = pipe_close_exc(self, exc);
        Py_DECREF(exc);
        return rc;
    }
    return pipe_close_exc(self, NULL);
}

static int write_ready(PipeObject *self)
{
    if (self->wq.bytes == 0) {
        return remove_interest(self, &self->writing);
    }
    struct iovec iov[WRITE_IOV];
    ssize_t n;
    /* A partial write is retried at once, while it moves data: the reader
       on another CPU empties the pipe about as fast as a write fills it,
       so the next write usually finds room, and an epoll_wait per pipeful
       is saved (64 KiB writes to a reading peer: 3 of 4 waits gone). The
       write that finds no room ends the round (EAGAIN). */
    for (int tries = 0;; tries++) {
        int cnt = al__wqueue_iov(&self->wq, iov, WRITE_IOV);
        n = writev(self->fd, iov, cnt);
        al__metrics_bytes_out(self->loop, n);
        if (n <= 0 || n == self->wq.bytes || tries == WRITE_RETRIES) {
            break;
        }
        al__wqueue_consume(&self->wq, n);
    }
    if (n < 0) {
        int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
            return 0;
        }
        al__wqueue_clear(&self->wq);
        self->conn_lost++;
        if (remove_interest(self, &self->writing) < 0) {
            return -1;
        }
        return os_failed(self, err, WRITE_ERROR);
    }
    if (n == self->wq.bytes) {
        al__wqueue_clear(&self->wq);
        /* asyncio's _remove_writer. The watch itself is updated by on_poll
           after this: a bulk writer refills from resume_writing below, and
           the watch then stays as it is (saving two epoll_ctl per refill). */
        self->writing = 0;
        if (al__flow_maybe_resume(&self->flow, self->wq.bytes, self->st, self->loop,
                                  (PyObject *)self,
                                  &self->protocol) < 0) { /* may append to the buffer */
            return -1;
        }
        if (self->closing) {
            if (remove_interest(self, &self->reading) < 0) {
                return -1;
            }
            PyObject *r = Pipe_call_connection_lost(self, Py_None);
            Py_XDECREF(r);
            return r ? 0 : -1;
        }
        return 0;
    }
    al__wqueue_consume(&self->wq, n);
    return 0;
}

/* f(self) in ctx, as asyncio's reader or writer Handle runs it. */
static inline int in_ctx(PipeObject *self, PyObject *ctx, int (*f)(PipeObject *))
{
    int rc = 0;
    PyObject *entered = al__ctx_enter(ctx, &rc);
    return al__ctx_leave(entered, rc == 0 ? f(self) : rc);
}

/* A writable event is handled after the poll's other events (reads of
   other pipes): a child between two pipes (cat) then gets its next input
   once its output was taken, and blocks once per pipeful, not twice (the
   kernel lists its input pipe first: it read, then wrote). Which of two
   descriptors' events is handled first is the kernel's order on asyncio
   too, never one a program can count on. */
static int late_write(PipeObject *self, char mode)
{
    if (!self->late_linked) {
        self->late_next = self->loop->late_writes; /* the reference moves */
        self->loop->late_writes = Py_NewRef((PyObject *)self);
        self->late_linked = 1;
    }
    self->late = mode;
    return 0;
}

static int write_ready_now(PipeObject *self)
{
    int rc = in_ctx(self, self->wctx, write_ready);
    /* drop the writability watch once write_ready drained the buffer */
    if (rc == 0 && (self->tp.events & UV_WRITABLE) && !self->writing && self->tp.box != NULL &&
        self->loop != NULL) {
        rc = poll_update(self);
    }
    return rc;
}

/* After the poll: loop_poll calls this while late_writes is not empty. */
void al__pipe_run_late_writes(LoopObject *loop)
{
    PipeObject *list = NULL;
    PipeObject *p = (PipeObject *)loop->late_writes;
    loop->late_writes = NULL;
    while (p != NULL) { /* linked newest first: back to the poll's order */
        PipeObject *next = (PipeObject *)p->late_next;
        p->late_next = (PyObject *)list;
        list = p;
        p = next;
    }
    while (list != NULL) {
        p = list;
        list = (PipeObject *)p->late_next;
        p->late_next = NULL;
        p->late_linked = 0;
        char mode = p->late;
        p->late = 0;
        if (mode != 0 && p->writing && p->loop == loop && !p->detached) {
            int rc = mode == LATE_QUEUE
                         ? al__loop_defer(loop, (PyObject *)p, p->st->str_write_ready, p->wctx,
                                          &p->write_deferred)
                         : write_ready_now(p);
            if (rc < 0) {
                al__transport_callback_failed(loop, (PyObject *)p);
            }
        }
        Py_DECREF(p); /* the list's reference */
    }
}

void al__pipe_late_writes_clear(LoopObject *loop)
{
    PipeObject *p = (PipeObject *)loop->late_writes;
    loop->late_writes = NULL;
    while (p != NULL) {
        PipeObject *next = (PipeObject *)p->late_next;
        p->late_next = NULL;
        p->late_linked = 0;
        p->late = 0;
        Py_DECREF(p);
        p = next;
    }
}

int al__pipe_late_writes_traverse(LoopObject *loop, visitproc visit, void *arg)
{
    for (PyObject *p = loop->late_writes; p != NULL; p = ((PipeObject *)p)->late_next) {
        Py_VISIT(p);
    }
    return 0;
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    PipeObject *self = handle->data;
    if (self == NULL) {
        return;
    }
    LoopObject *loop = self->loop;
    al__loop_hold_gil(loop);
    Py_INCREF(self);
    int rc = 0;
    if (status < 0) {
        /* libuv stopped the handle (POLLERR: for a pipe's write end, the
           read end closed): what selectors report as readable and writable,
           handled (or queued behind queued handles) as those events. */
        events = self->tp.events;
        self->tp.events = 0;
    }
    char late = LATE_RUN;
    if (loop->ready_at_poll > 0) {
        if ((events & UV_READABLE) && self->reading) {
            rc = al__loop_defer(self->loop, (PyObject *)self, self->st->str_read_ready, self->rctx,
                                &self->read_deferred);
        }
        late = LATE_QUEUE;
        events &= ~UV_READABLE;
    }
    if ((events & UV_READABLE) && self->reading) {
        rc = in_ctx(self, self->rctx, self->is_write ? peer_closed : read_ready);
    }
    if (rc == 0 && (events & UV_WRITABLE) && self->writing && self->loop != NULL) {
        rc = late_write(self, late);
    }
    /* Re-arm after POLLERR stopped the handle, or drop a writability watch
       left without a writer. */
    int rearm =
        status < 0 ? self->tp.events == 0 : (self->tp.events & UV_WRITABLE) && !self->writing;
    if (rc == 0 && rearm && self->tp.box != NULL && self->loop != NULL) {
        rc = poll_update(self);
    }
    if (rc < 0) {
        al__transport_callback_failed(loop, (PyObject *)self);
    }
    Py_DECREF(self);
}

/* --- Python methods: both sides -------------------------------------------------- */

/* The handles al__loop_defer queued (run in the reader's / writer's context):
   nothing once the interest was removed, the transport closed, or the
   event is gone (EAGAIN). */
static PyObject *Pipe_read_ready(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->read_deferred) {
        Py_RETURN_NONE;
    }
    self->read_deferred = 0;
    if (self->loop == NULL || !self->reading) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    int rc = self->is_write ? peer_closed(self) : read_ready(self);
    Py_DECREF(self);
    return none_or_null(rc);
}

static PyObject *Pipe_write_ready(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->write_deferred) {
        Py_RETURN_NONE;
    }
    self->write_deferred = 0;
    if (self->loop == NULL || !self->writing) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    int rc = write_ready(self);
    /* as on_poll: drop the watch once the buffer drained */
    if (rc == 0 && (self->tp.events & UV_WRITABLE) && !self->writing && self->tp.box != NULL &&
        self->loop != NULL) {
        rc = poll_update(self);
    }
    Py_DECREF(self);
    return none_or_null(rc);
}

static PyObject *Pipe_set_protocol(PipeObject *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_RETURN_NONE;
}

static PyObject *Pipe_get_protocol(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *Pipe_is_closing(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *Pipe_repr(PipeObject *self)
{
    PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "__name__");
    if (name == NULL) {
        return NULL;
    }
    const char *state = self->pipe == NULL ? " closed" : (self->closing ? " closing" : "");
    PyObject *r;
    if (self->pipe != NULL && self->loop != NULL && !self->loop->closed) {
        const char *poll = (self->is_write ? self->writing : self->reading) ? "polling" : "idle";
        if (self->is_write) {
            r = PyUnicode_FromFormat("<%U%s fd=%d %s bufsize=%zd>", name, state, self->fd, poll,
                                     self->wq.bytes);
        }
        else {
            r = PyUnicode_FromFormat("<%U%s fd=%d %s>", name, state, self->fd, poll);
        }
    }
    else {
        r = PyUnicode_FromFormat("<%U%s fd=%d %s>", name, state, self->fd,
                                 self->pipe != NULL ? "open" : "closed");
    }
    Py_DECREF(name);
    return r;
}

static PyObject *Pipe_get_loop(PipeObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->loop ? (PyObject *)self->loop : Py_None);
}

static PyObject *Pipe_get_pipe(PipeObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->pipe ? self->pipe : Py_None);
}

/* Tests of asyncio set _pipe = None to drop an unclosed pipe quietly. */
static int Pipe_set_pipe(PipeObject *self, PyObject *value, void *Py_UNUSED(c))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _pipe");
        return -1;
    }
    Py_XSETREF(self->pipe, value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyObject *Pipe_get_fileno(PipeObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *Pipe_get_closing(PipeObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *Pipe_get_paused(PipeObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->is_write ? self->flow.paused : self->paused);
}

/* --- read side methods ------------------------------------------------------------- */

static PyObject *Read_is_reading(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!self->paused && !self->closing);
}

static PyObject *Read_pause_reading(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX >= 0x030B0000
    if (self->paused || self->closing) {
        Py_RETURN_NONE;
    }
#else
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
#endif
    self->paused = 1;
    if (self->last_read > SMALL_READ) {
        /* The protocol's buffer is full after a big read: its limit is
           below what that read gave (asyncio's StreamReader pauses above
           2 * limit, 128 KiB by default, and then shrinks its bytearray
           with a copy of what is left). Reads that fit keep it running
           without the pause, the resume and the copy: halved per pause,
           down to SMALL_READ. */
        Py_ssize_t cap = self->last_read / 2;
        self->read_cap = cap < SMALL_READ ? SMALL_READ : cap;
        if (self->full_size > self->read_cap) {
            self->full_size = 0;
        }
    }
    if (self->loop == NULL) {
        Py_RETURN_NONE;
    }
    if (remove_interest(self, &self->reading) < 0) {
        return NULL;
    }
    if (self->loop->debug && log_msg(self, "debug", "%r pauses reading", NULL, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Read_resume_reading(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 0;
    if (al__ctx_copy(&self->rctx) < 0 || add_interest(self, &self->reading) < 0) {
        return NULL;
    }
    if (self->loop->debug && log_msg(self, "debug", "%r resumes reading", NULL, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Scheduled by the constructor after connection_made: asyncio's
   _add_reader(fd, _read_ready). */
static PyObject *Read_start_reading(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
#if PY_VERSION_HEX >= 0x030B0000
    if (self->paused || self->closing) {
        Py_RETURN_NONE;
    }
#else
    if (self->closing) { /* 3.10 ignores a pause_reading() made before this */
        Py_RETURN_NONE;
    }
#endif
    return none_or_null(add_interest(self, &self->reading));
}

static PyObject *Read_close(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing) {
        Py_RETURN_NONE;
    }
    return none_or_null(pipe_close_exc(self, NULL));
}

/* --- write side methods ------------------------------------------------------------ */

static PyObject *Write_write(PipeObject *self, PyObject *data)
{
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        /* asyncio's assert isinstance(data, (bytes, bytearray, memoryview)) */
        PyObject *r = PyObject_Repr(data);
        if (r != NULL) {
            PyErr_SetObject(PyExc_AssertionError, r);
            Py_DECREF(r);
        }
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int rc = 0;
    if (view.len == 0) {
        goto done;
    }
    if (self->conn_lost || self->closing) {
        if (self->conn_lost >= self->st->log_threshold_connlost) {
            PyObject *r = PyObject_CallMethod(
                self->st->logger, "warning", "s",
                "pipe closed by peer or os.write(pipe, data) raised exception.");
            if (r == NULL) {
                rc = -1;
            }
            Py_XDECREF(r);
        }
        self->conn_lost++;
        goto done;
    }
    Py_ssize_t sent = 0;
    if (self->wq.bytes == 0) {
        ssize_t n = write(self->fd, view.buf, (size_t)view.len);
        al__metrics_bytes_out(self->loop, n);
        if (n < 0) {
            int err = errno;
            if (err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
                self->conn_lost++;
                rc = os_failed(self, err, WRITE_ERROR);
                goto done;
            }
            n = 0;
        }
        sent = n;
        if (sent == view.len) {
            goto done;
        }
        if (al__ctx_copy(&self->wctx) < 0 || add_interest(self, &self->writing) < 0) {
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
    PyBuffer_Release(&view);
    return none_or_null(rc);
}

static PyObject *Write_can_write_eof(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_TRUE;
}

static int write_eof(PipeObject *self)
{
    if (self->closing) {
        return 0;
    }
    self->closing = 1;
    if (self->wq.bytes == 0) {
        if (remove_interest(self, &self->reading) < 0) {
            return -1;
        }
        if (self->loop == NULL) {
            return 0;
        }
        PyObject *meth = PyObject_GetAttr((PyObject *)self, self->st->str_call_connection_lost);
        int rc = meth ? call_soon(self->loop, meth, Py_None) : -1;
        Py_XDECREF(meth);
        return rc;
    }
    return 0;
}

static PyObject *Write_write_eof(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return none_or_null(write_eof(self));
}

static PyObject *Write_close(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->pipe == NULL || self->closing) {
        Py_RETURN_NONE;
    }
    return none_or_null(write_eof(self));
}

static PyObject *Write_abort(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return none_or_null(pipe_close_exc(self, NULL));
}

/* Scheduled after connection_made for a FIFO or socket: watch for the read
   end closing (asyncio's loop._add_reader(fd, self._read_ready)). */
static PyObject *Write_start_watching(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->loop == NULL || self->pipe == NULL) {
        Py_RETURN_NONE;
    }
    return none_or_null(add_interest(self, &self->reading));
}

static PyObject *Write_get_write_buffer_size(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->wq.bytes);
}

static PyObject *Write_get_write_buffer_limits(PipeObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyTuple_Pack(2, self->flow.low_obj, self->flow.high_obj);
}

static PyObject *Write_set_write_buffer_limits(PipeObject *self, PyObject *const *args,
                                               Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2] = {NULL, NULL};
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "set_write_buffer_limits() takes from 1 to 3 positional arguments but %zd "
                     "were given",
                     nargs + 1);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        a[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k); /* borrowed */
        int i = PyUnicode_CompareWithASCIIString(key, "high") == 0  ? 0
                : PyUnicode_CompareWithASCIIString(key, "low") == 0 ? 1
                                                                    : -1;
        if (i < 0) {
            PyErr_Format(PyExc_TypeError,
                         "set_write_buffer_limits() got an unexpected keyword argument '%S'", key);
            return NULL;
        }
        if (a[i] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "set_write_buffer_limits() got multiple values for argument '%s'",
                         i ? "low" : "high");
            return NULL;
        }
        a[i] = args[nargs + k];
    }
    if (al__flow_set_limits(&self->flow, a[0], a[1]) < 0) {
        return NULL;
    }
    if (self->loop == NULL || self->protocol == NULL) {
        Py_RETURN_NONE;
    }
    return none_or_null(al__flow_maybe_pause(&self->flow, self->wq.bytes, self->st, self->loop,
                                             (PyObject *)self, &self->protocol));
}

/* --- object lifetime ---------------------------------------------------------- */

static void Pipe_finalize(PipeObject *self)
{
    if (self->pipe == NULL) {
        return;
    }
    PyObject *exc = al__err_fetch();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed transport %R", self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    self->reading = self->writing = 0;
    poll_stop(self); /* not polling, or we would not be collected */
    al__loop_io_unlink(&self->io);
    PyObject *pipe = self->pipe;
    self->pipe = NULL;
    PyObject *r = PyObject_CallMethod(pipe, "close", NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(r);
    Py_DECREF(pipe);
    al__err_restore(exc);
}

static int Pipe_traverse(PipeObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->loop);
    Py_VISIT(self->pipe);
    Py_VISIT(self->protocol);
    Py_VISIT(self->rctx);
    Py_VISIT(self->wctx);
    Py_VISIT(self->dict);
    return 0;
}

static int Pipe_clear(PipeObject *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->rctx);
    Py_CLEAR(self->wctx);
    Py_CLEAR(self->dict);
    return 0;
}

static void Pipe_dealloc(PipeObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    poll_stop(self);
    al__loop_io_unlink(&self->io);
    Pipe_clear(self);
    al__wqueue_clear(&self->wq);
    PyMem_Free(self->wq.q);
    Py_CLEAR(self->pipe);
    al__flow_clear(&self->flow);
    Py_CLEAR(self->loop);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef Read_methods[] = {
    {"is_reading", (PyCFunction)Read_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)Read_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)Read_resume_reading, METH_NOARGS, NULL},
    {"close", (PyCFunction)Read_close, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)Pipe_is_closing, METH_NOARGS, NULL},
    {"set_protocol", (PyCFunction)Pipe_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Pipe_get_protocol, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)Read_start_reading, METH_NOARGS, NULL},
    {"_call_connection_lost", (PyCFunction)Pipe_call_connection_lost, METH_O, NULL},
    {"_read_ready", (PyCFunction)Pipe_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Pipe_write_ready, METH_NOARGS, NULL},
    {NULL, NULL},
};

static PyMethodDef Write_methods[] = {
    {"write", (PyCFunction)Write_write, METH_O, NULL},
    {"write_eof", (PyCFunction)Write_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)Write_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)Write_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)Write_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)Pipe_is_closing, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)Write_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)Write_get_write_buffer_limits, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))Write_set_write_buffer_limits,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"set_protocol", (PyCFunction)Pipe_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Pipe_get_protocol, METH_NOARGS, NULL},
    {"_start_watching", (PyCFunction)Write_start_watching, METH_NOARGS, NULL},
    {"_call_connection_lost", (PyCFunction)Pipe_call_connection_lost, METH_O, NULL},
    {"_read_ready", (PyCFunction)Pipe_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Pipe_write_ready, METH_NOARGS, NULL},
    {NULL, NULL},
};

static PyGetSetDef Pipe_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"_loop", (getter)Pipe_get_loop, NULL, NULL, NULL},
    {"_pipe", (getter)Pipe_get_pipe, (setter)Pipe_set_pipe, NULL, NULL},
    {"_fileno", (getter)Pipe_get_fileno, NULL, NULL, NULL},
    {"_closing", (getter)Pipe_get_closing, NULL, NULL, NULL},
    {"_paused", (getter)Pipe_get_paused, NULL, NULL, NULL},
    {NULL},
};

static PyGetSetDef WritePipe_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {"_loop", (getter)Pipe_get_loop, NULL, NULL, NULL},
    {"_pipe", (getter)Pipe_get_pipe, (setter)Pipe_set_pipe, NULL, NULL},
    {"_fileno", (getter)Pipe_get_fileno, NULL, NULL, NULL},
    {"_closing", (getter)Pipe_get_closing, NULL, NULL, NULL},
    {"_protocol_paused", (getter)Pipe_get_paused, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Pipe_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PipeObject, weakreflist), READONLY},
    {"__dictoffset__", T_PYSSIZET, offsetof(PipeObject, dict), READONLY},
    {NULL},
};

static PyType_Slot Read_slots[] = {
    {Py_tp_dealloc, Pipe_dealloc},
    {Py_tp_finalize, Pipe_finalize},
    {Py_tp_traverse, Pipe_traverse},
    {Py_tp_clear, Pipe_clear},
    {Py_tp_repr, Pipe_repr},
    {Py_tp_methods, Read_methods},
    {Py_tp_getset, Pipe_getset},
    {Py_tp_members, Pipe_members},
    {Py_tp_doc, "A read pipe transport (asyncio's _UnixReadPipeTransport)."},
    {0, NULL},
};

static PyType_Slot Write_slots[] = {
    {Py_tp_dealloc, Pipe_dealloc},
    {Py_tp_finalize, Pipe_finalize},
    {Py_tp_traverse, Pipe_traverse},
    {Py_tp_clear, Pipe_clear},
    {Py_tp_repr, Pipe_repr},
    {Py_tp_methods, Write_methods},
    {Py_tp_getset, WritePipe_getset},
    {Py_tp_members, Pipe_members},
    {Py_tp_doc, "A write pipe transport (asyncio's _UnixWritePipeTransport)."},
    {0, NULL},
};

/* Not immutable: asyncio's transport classes are mutable Python classes. */
static PyType_Spec Read_spec = {
    .name = "asyncloop._core.ReadPipeTransport",
    .basicsize = sizeof(PipeObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Read_slots,
};

static PyType_Spec Write_spec = {
    .name = "asyncloop._core.WritePipeTransport",
    .basicsize = sizeof(PipeObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Write_slots,
};

/* --- construction ------------------------------------------------------------- */

static int pipe_init(PipeObject *self, LoopObject *loop, PyObject *pipe, PyObject *protocol,
                     PyObject *waiter, PyObject *extra)
{
    al_state *st = loop->state;
    /* BaseTransport.__init__(extra), then _extra['pipe'] = pipe */
    self->extra = extra != Py_None ? Py_NewRef(extra) : PyDict_New();
    if (self->extra == NULL || PyObject_SetItem(self->extra, st->str_pipe, pipe) < 0) {
        return -1;
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    /* the reader handle's context: a copy of the creating task's */
    if (al__ctx_copy(&self->rctx) < 0) {
        return -1;
    }
    if (self->is_write) {
        al__flow_set_default(&self->flow, st);
    }
    PyObject *fdobj = PyObject_CallMethodNoArgs(pipe, st->str_fileno);
    if (fdobj == NULL) {
        return -1;
    }
    long fd = PyLong_AsLong(fdobj);
    Py_DECREF(fdobj);
    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "invalid file descriptor");
        return -1;
    }
    self->fd = (int)fd;
    self->read_cap = MAX_READ;
    struct stat sb;
    if (fstat(self->fd, &sb) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int is_sock = S_ISSOCK(sb.st_mode), is_fifo = S_ISFIFO(sb.st_mode);
#ifdef F_GETPIPE_SZ
    if (is_fifo && !self->is_write) {
        int size = fcntl(self->fd, F_GETPIPE_SZ);
        self->pipe_size = size >= BIG_READ ? size : 0;
    }
#endif
    if (!(is_fifo || is_sock || S_ISCHR(sb.st_mode))) {
        PyErr_SetString(PyExc_ValueError, self->is_write
                                              ? "Pipe transport is only for "
                                                "pipes, sockets and character devices"
                                              : "Pipe transport is for pipes/sockets only.");
        return -1;
    }
    /* os.set_blocking(fd, False) */
    int flags = fcntl(self->fd, F_GETFL);
    if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(self->fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->pipe = Py_NewRef(pipe);
    self->protocol = Py_NewRef(protocol);
    if (call_soon_method(self, protocol, "connection_made", (PyObject *)self) < 0) {
        return -1;
    }
    if (!self->is_write) {
        /* only start reading when connection_made() has been called */
        if (call_soon_method(self, (PyObject *)self, "_start_reading", NULL) < 0) {
            return -1;
        }
    }
    else if ((is_sock || is_fifo) &&
             call_soon_method(self, (PyObject *)self, "_start_watching", NULL) < 0) {
        return -1;
    }
    if (waiter != Py_None && waiter != NULL &&
        call_soon2(loop, st->set_result_unless_cancelled, waiter, Py_None) < 0) {
        return -1;
    }
    return 0;
}

static PyObject *pipe_new(LoopObject *loop, PyObject *pipe, PyObject *protocol, PyObject *waiter,
                          PyObject *extra, int is_write)
{
    al_state *st = loop->state;
    PyTypeObject *tp = is_write ? st->WritePipeTransportType : st->ReadPipeTransportType;
    PipeObject *t = (PipeObject *)tp->tp_alloc(tp, 0);
    if (t == NULL) {
        return NULL;
    }
    t->st = st;
    t->fd = -1;
    t->is_write = (char)is_write;
    t->io.loop_closing = pipe_loop_closing;
    al__loop_io_link(loop, &t->io);
    if (pipe_init(t, loop, pipe, protocol, waiter ? waiter : Py_None, extra ? extra : Py_None) <
        0) {
        Py_DECREF(t); /* warns and closes the pipe if it got that far, as __del__ */
        return NULL;
    }
    return (PyObject *)t;
}

PyObject *al__read_pipe_new(LoopObject *loop, PyObject *pipe, PyObject *protocol, PyObject *waiter,
                            PyObject *extra)
{
    return pipe_new(loop, pipe, protocol, waiter, extra, 0);
}

PyObject *al__write_pipe_new(LoopObject *loop, PyObject *pipe, PyObject *protocol, PyObject *waiter,
                             PyObject *extra)
{
    return pipe_new(loop, pipe, protocol, waiter, extra, 1);
}

/* _make_{read,write}_pipe_transport(pipe, protocol, waiter=None, extra=None) */
static PyObject *make_pipe(LoopObject *self, const char *fname, PyObject *const *args,
                           size_t nargsf, PyObject *kwnames, int is_write)
{
    static const char *const names[] = {"pipe", "protocol", "waiter", "extra"};
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    if (nargs > 4) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from 3 to 5 positional arguments but %zd were given", fname,
                     nargs + 1);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        a[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k); /* borrowed */
        int i = 0;
        while (i < 4 && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == 4) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", fname,
                         key);
            return NULL;
        }
        if (a[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[i]);
            return NULL;
        }
        a[i] = args[nargs + k];
    }
    for (int i = 0; i < 2; i++) {
        if (a[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument: '%s'", fname, names[i]);
            return NULL;
        }
    }
    return pipe_new(self, a[0], a[1], a[2], a[3], is_write);
}

PyObject *al__loop_make_read_pipe_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                            PyObject *kwnames)
{
    return make_pipe(self, "_make_read_pipe_transport", args, nargsf, kwnames, 0);
}

PyObject *al__loop_make_write_pipe_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                             PyObject *kwnames)
{
    return make_pipe(self, "_make_write_pipe_transport", args, nargsf, kwnames, 1);
}

/* --- module state --------------------------------------------------------------- */

int al__pipe_init(PyObject *module, al_state *st)
{
    INTERN(str_pipe, "pipe");
    PyObject *rbase = al__import_attr("asyncio.transports", "ReadTransport");
    if (rbase == NULL) {
        return -1;
    }
    PyObject *wbase = al__import_attr("asyncio.transports", "WriteTransport");
    if (wbase == NULL) {
        Py_DECREF(rbase);
        return -1;
    }
    /* _extra right after the object header, as stream.c checks for Transport */
    Py_ssize_t want = (Py_ssize_t)offsetof(PipeObject, extra) + (Py_ssize_t)sizeof(PyObject *);
    if (!PyType_Check(rbase) || !PyType_Check(wbase) ||
        ((PyTypeObject *)rbase)->tp_basicsize != want ||
        ((PyTypeObject *)wbase)->tp_basicsize != want) {
        PyErr_SetString(PyExc_ImportError,
                        "asyncio's transports have an unexpected layout (__slots__ changed?)");
        Py_DECREF(rbase);
        Py_DECREF(wbase);
        return -1;
    }
    st->ReadPipeTransportType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Read_spec, rbase);
    st->WritePipeTransportType =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &Write_spec, wbase);
    Py_DECREF(rbase);
    Py_DECREF(wbase);
    if (st->ReadPipeTransportType == NULL || st->WritePipeTransportType == NULL) {
        return -1;
    }
    if (PyModule_AddType(module, st->ReadPipeTransportType) < 0 ||
        PyModule_AddType(module, st->WritePipeTransportType) < 0) {
        return -1;
    }
    return 0;
}

int al__pipe_traverse(al_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->ReadPipeTransportType);
    Py_VISIT(st->WritePipeTransportType);
    return 0;
}

void al__pipe_clear(al_state *st)
{
    Py_CLEAR(st->ReadPipeTransportType);
    Py_CLEAR(st->WritePipeTransportType);
    Py_CLEAR(st->str_pipe);
}
