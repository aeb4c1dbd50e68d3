/* TLS in C: asyncio's sslproto.SSLProtocol (3.11+ state machine) driving
   the user's ssl.SSLContext through ssl.MemoryBIO / SSLObject.

   SSLProtocol is the protocol of the stream transport below; SSLTransport
   is the app-side asyncio.Transport. The SSLObject and the BIOs are called
   through vectorcall with interned names: no Python frame per record. */
#include "internal.h"

#include <structmember.h>

/* Interned names, st->ssl_str[...] */
enum {
    S_read,
    S_write,
    S_do_handshake,
    S_unwrap,
    S_getpeercert,
    S_cipher,
    S_compression,
    S_pending,
    S_call_later,
    S_cancel,
    S_get_debug,
    S_close,
    S_abort,
    S_force_close,
    S_pause_reading,
    S_resume_reading,
    S_wrap_bio,
    S_server_side,
    S_server_hostname,
    S_sslcontext,
    S_peercert,
    S_ssl_object,
    S_get_extra_info,
    S_set_result,
    S_cancelled,
    S_warning,
    S_check_handshake_timeout,
    S_check_shutdown_timeout,
    S_resume_cb,
    S_write_eof,
    S__sslobj,
    S_shutdown,
    S__flush_cb,
    S_N
};
_Static_assert(S_N <= AL_SSL_NSTR, "AL_SSL_NSTR too small");

#define NAME(st, n) ((st)->ssl_str[S_##n])

enum { UNWRAPPED, DO_HANDSHAKE, WRAPPED, FLUSHING, SHUTDOWN };
enum { STATE_INIT, STATE_CON_MADE, STATE_EOF, STATE_CON_LOST };

static const char *const state_names[] = {"UNWRAPPED", "DO_HANDSHAKE", "WRAPPED", "FLUSHING",
                                          "SHUTDOWN"};

#define MAX_SIZE (256L * 1024L)
#define RECORD_MAX 16384 /* the most plaintext a TLS record holds */
/* TLS 1.3 record: its content type byte and a 16-byte AEAD tag (every
   TLS 1.3 suite OpenSSL enables by default) */
#define TLS13_OVERHEAD 17
/* guess_misses: the guesses stop after this many misses in a row */
#define GUESS_MAX_MISSES 4
#define GUESS_NEVER 255

typedef struct {
    PyObject_HEAD
    al_state *st;
    PyObject *loop;
    PyObject *app_protocol;
    PyObject *app_transport;
    PyObject *transport;
    PyObject *sslcontext;
    PyObject *sslobj;
    /* What the hot path calls: a plain ssl.SSLObject's _ssl object (C
       methods, no ssl.py frame per call), else the SSLObject itself. */
    PyObject *cobj;
    PyObject *unwrap_name; /* borrowed interned "shutdown" or "unwrap" */
    PyObject *incoming;
    PyObject *outgoing;
    PyObject *waiter;
    PyObject *extra;   /* dict */
    PyObject *backlog; /* list of pending app data */
    PyObject *handshake_timeout_handle;
    PyObject *shutdown_timeout_handle;
    PyObject *max_size;
    Py_ssize_t write_buffer_size;
    Py_ssize_t conn_lost;
    Py_ssize_t in_high, in_low, out_high, out_low;
    PyObject *handshake_timeout, *shutdown_timeout; /* as numbers */
    double handshake_start;
    int state, app_state;
    char server_side, is_buffer, ssl_writing_paused, app_reading_paused, ssl_reading_paused,
        eof_received, app_writing_paused, app_transport_created;
    /* Writes batched per loop iteration: app writes outside a read only
       fill the backlog; one call_soon'd _flush_cb encrypts them together.
       Those made during a read (in_read) go through at once, as asyncio's. */
    char flush_scheduled;
    /* cobj is a plain SSLObject's _ssl object: a read that could only raise
       SSLWantReadError is skipped (may_read) */
    char plain;
    int in_read;
    LoopObject *cloop; /* borrowed from loop when it is ours, else NULL */
    /* The record layer of the ciphertext fed (al__ssl_feed), followed from
       its first byte: what the complete records not read yet decrypt to
       if they are TLS 1.3 application data without padding (rec_plain).
       A read of that many bytes goes straight into the bytes object
       data_received gets; a wrong guess costs a copy, as without it. */
    unsigned char rec_hdr[5];
    char rec_hdr_len, tls13;
    unsigned char guess_misses;
    Py_ssize_t rec_left, rec_cur_plain, rec_plain;
} SSLProto;

typedef struct {
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot: must be first */
    PyObject *weakreflist;
    SSLProto *proto; /* NULL after a second close() */
    char closed;
} SSLTransport;

static int do_read(SSLProto *self);
static int do_write(SSLProto *self);
static int do_flush(SSLProto *self);
static int do_shutdown(SSLProto *self);
static int start_shutdown(SSLProto *self);
static int fatal_error(SSLProto *self, PyObject *exc, const char *message);
static int deliver(SSLProto *self, PyObject *data, int eof);

/* --- helpers ------------------------------------------------------------- */

static PyObject *call0(PyObject *obj, PyObject *name)
{
    PyObject *argv[1] = {obj};
    return PyObject_VectorcallMethod(name, argv, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *call1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *argv[2] = {obj, arg};
    return PyObject_VectorcallMethod(name, argv, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static int call_drop(PyObject *r)
{
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int loop_debug(SSLProto *self)
{
    PyObject *r = call0(self->loop, NAME(self->st, get_debug));
    if (r == NULL) {
        return -1;
    }
    int b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
}

/* loop.call_soon(self.<name>) */
static int call_soon_meth(SSLProto *self, PyObject *target, PyObject *name)
{
    PyObject *meth = PyObject_GetAttr(target, name);
    if (meth == NULL) {
        return -1;
    }
    int rc = call_drop(call1(self->loop, self->st->str_call_soon, meth));
    Py_DECREF(meth);
    return rc;
}

static PyObject *call_later_meth(SSLProto *self, PyObject *delay, PyObject *name)
{
    PyObject *meth = PyObject_GetAttr((PyObject *)self, name);
    if (meth == NULL) {
        return NULL;
    }
    PyObject *argv[3] = {self->loop, delay, meth};
    PyObject *r = PyObject_VectorcallMethod(NAME(self->st, call_later), argv, 3, NULL);
    Py_DECREF(meth);
    return r;
}

static void cancel_handle(SSLProto *self, PyObject **h)
{
    if (*h == NULL) {
        return;
    }
    PyObject *handle = *h;
    *h = NULL;
    PyObject *r = call0(handle, NAME(self->st, cancel));
    if (r == NULL) {
        PyErr_WriteUnraisable(handle);
    }
    Py_XDECREF(r);
    Py_DECREF(handle);
}

static Py_ssize_t bio_pending(SSLProto *self, PyObject *bio)
{
    PyObject *p = PyObject_GetAttr(bio, NAME(self->st, pending));
    if (p == NULL) {
        return -1;
    }
    Py_ssize_t n = PyLong_AsSsize_t(p);
    Py_DECREF(p);
    return n;
}

/* Whether SSLObject.read may give anything (1), or could only raise
   SSLWantReadError (0): asyncio reads until that error, but with the
   incoming BIO empty and no decrypted byte left in the SSL object there is
   nothing to read (OpenSSL reads records whole, without read-ahead), and
   the exception costs more than the rest of a small read. */
static int may_read(SSLProto *self)
{
    if (!self->plain) {
        return 1;
    }
    Py_ssize_t n = bio_pending(self, self->incoming);
    if (n != 0) {
        return n < 0 ? -1 : 1;
    }
    PyObject *r = call0(self->cobj, NAME(self->st, pending));
    if (r == NULL) {
        return -1;
    }
    n = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (n < 0) {
        return PyErr_Occurred() ? -1 : 1;
    }
    return n > 0;
}

/* asyncio's SSLAgainErrors: SSLWantReadError, SSLSyscallError */
static int again_error(al_state *st)
{
    return PyErr_ExceptionMatches(st->ssl_SSLWantReadError) ||
           PyErr_ExceptionMatches(st->ssl_SSLSyscallError);
}

static int set_state(SSLProto *self, int new_state)
{
    int s = self->state;
    /* asyncio's allowed transitions: any -> UNWRAPPED, else one step on */
    int ok = new_state == UNWRAPPED || (s == UNWRAPPED && new_state == DO_HANDSHAKE) ||
             (s == DO_HANDSHAKE && new_state == WRAPPED) ||
             (s == WRAPPED && new_state == FLUSHING) || (s == FLUSHING && new_state == SHUTDOWN);
    if (!ok) {
        PyErr_Format(PyExc_RuntimeError,
                     "cannot switch state from SSLProtocolState.%s to "
                     "SSLProtocolState.%s",
                     state_names[s], state_names[new_state]);
        return -1;
    }
    self->state = new_state;
    return 0;
}

static int wakeup_waiter(SSLProto *self, PyObject *exc)
{
    if (self->waiter == NULL || self->waiter == Py_None) {
        Py_CLEAR(self->waiter);
        return 0;
    }
    PyObject *w = self->waiter;
    self->waiter = NULL;
    PyObject *r = call0(w, self->st->str_cancelled);
    int rc = -1;
    if (r != NULL) {
        int c = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (c == 0) {
            if (exc != NULL) {
                rc = call_drop(call1(w, self->st->str_set_exception, exc));
            }
            else {
                rc = call_drop(call1(w, NAME(self->st, set_result), Py_None));
            }
        }
        else if (c > 0) {
            rc = 0;
        }
    }
    Py_DECREF(w);
    return rc;
}

static int exc_handler(SSLProto *self, const char *message, PyObject *exc, PyObject *transport)
{
    al_state *st = self->st;
    PyObject *ctx = Py_BuildValue("{sssOsOsO}", "message", message, "exception", exc, "transport",
                                  transport ? transport : Py_None, "protocol", (PyObject *)self);
    if (ctx == NULL) {
        return -1;
    }
    int rc = call_drop(call1(self->loop, st->str_call_exception_handler, ctx));
    Py_DECREF(ctx);
    return rc;
}

static int log_debug_exc(SSLProto *self, const char *message, PyObject *exc)
{
    al_state *st = self->st;
    PyObject *fmt = PyUnicode_FromString("%r: %s");
    PyObject *msg = PyUnicode_FromString(message);
    if (fmt == NULL || msg == NULL) {
        Py_XDECREF(fmt);
        Py_XDECREF(msg);
        return -1;
    }
    PyObject *kw = PyTuple_Pack(1, st->str_exc_info);
    if (kw == NULL) {
        Py_DECREF(fmt);
        Py_DECREF(msg);
        return -1;
    }
    PyObject *argv[5] = {st->logger, fmt, (PyObject *)self, msg, exc};
    int rc = call_drop(PyObject_VectorcallMethod(st->str_debug, argv, 4, kw));
    Py_DECREF(kw);
    Py_DECREF(fmt);
    Py_DECREF(msg);
    return rc;
}

/* asyncio's _fatal_error: the exception is reported, never raised. */
static int fatal_error(SSLProto *self, PyObject *exc, const char *message)
{
    al_state *st = self->st;
    if (self->transport != NULL) {
        if (call_drop(call1(self->transport, NAME(st, force_close), exc)) < 0) {
            return -1;
        }
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        int d = loop_debug(self);
        if (d < 0) {
            return -1;
        }
        if (d) {
            return log_debug_exc(self, message, exc);
        }
        return 0;
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)st->ssl_CancelledError)) {
        return 0;
    }
    return exc_handler(self, message, exc, self->transport);
}

/* The current Exception (not BaseException) goes to fatal_error; others
   stay raised. Returns 0 if handled. */
static int fatal_current(SSLProto *self, const char *message)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *exc = al__err_fetch();
    int rc = fatal_error(self, exc, message);
    Py_DECREF(exc);
    return rc;
}

/* --- flow control ------------------------------------------------------- */

static int flow_defaults(PyObject *high, PyObject *low, Py_ssize_t kb, Py_ssize_t *hi,
                         Py_ssize_t *lo)
{
    Py_ssize_t h, l;
    if (high == NULL || high == Py_None) {
        if (low == NULL || low == Py_None) {
            h = kb * 1024;
        }
        else {
            if ((l = PyLong_AsSsize_t(low)) == -1 && PyErr_Occurred()) {
                return -1;
            }
            h = 4 * l;
        }
    }
    else if ((h = PyLong_AsSsize_t(high)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (low == NULL || low == Py_None) {
        l = h / 4;
    }
    else if ((l = PyLong_AsSsize_t(low)) == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (!(h >= l && l >= 0)) {
        PyErr_Format(PyExc_ValueError, "high (%zd) must be >= low (%zd) must be >= 0", h, l);
        return -1;
    }
    *hi = h;
    *lo = l;
    return 0;
}

static Py_ssize_t write_buffer_size(SSLProto *self)
{
    Py_ssize_t p = bio_pending(self, self->outgoing);
    return p < 0 ? -1 : p + self->write_buffer_size;
}

/* asyncio's _control_app_writing, the outgoing BIO holding pending bytes */
static int control_app_writing_at(SSLProto *self, Py_ssize_t pending)
{
    Py_ssize_t size = pending + self->write_buffer_size;
    PyObject *name;
    const char *msg;
    if (size >= self->out_high && !self->app_writing_paused) {
        self->app_writing_paused = 1;
        name = self->st->str_pause_writing;
        msg = "protocol.pause_writing() failed";
    }
    else if (size <= self->out_low && self->app_writing_paused) {
        self->app_writing_paused = 0;
        name = self->st->str_resume_writing;
        msg = "protocol.resume_writing() failed";
    }
    else {
        return 0;
    }
    PyObject *r = call0(self->app_protocol, name);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception) && !PyErr_ExceptionMatches(PyExc_BaseException)) {
        return -1;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return -1;
    }
    PyObject *exc = al__err_fetch();
    int rc = exc_handler(self, msg, exc, self->app_transport);
    Py_DECREF(exc);
    return rc;
}

static int control_ssl_reading(SSLProto *self)
{
    Py_ssize_t size = bio_pending(self, self->incoming);
    if (size < 0) {
        return -1;
    }
    if (size >= self->in_high && !self->ssl_reading_paused) {
        self->ssl_reading_paused = 1;
        return call_drop(call0(self->transport, NAME(self->st, pause_reading)));
    }
    if (size <= self->in_low && self->ssl_reading_paused) {
        self->ssl_reading_paused = 0;
        return call_drop(call0(self->transport, NAME(self->st, resume_reading)));
    }
    return 0;
}

static int control_app_writing(SSLProto *self)
{
    Py_ssize_t p = bio_pending(self, self->outgoing);
    return p < 0 ? -1 : control_app_writing_at(self, p);
}

/* --- outgoing ------------------------------------------------------------ */

/* The ciphertext so far to the socket transport, unless it is paused. */
static int send_outgoing(SSLProto *self)
{
    if (!self->ssl_writing_paused) {
        PyObject *data = call0(self->outgoing, NAME(self->st, read));
        if (data == NULL) {
            return -1;
        }
        if (PyBytes_GET_SIZE(data) > 0 && self->transport != NULL) {
            if (call_drop(call1(self->transport, NAME(self->st, write), data)) < 0) {
                Py_DECREF(data);
                return -1;
            }
        }
        Py_DECREF(data);
    }
    return 0;
}

static int process_outgoing(SSLProto *self)
{
    if (send_outgoing(self) < 0) {
        return -1;
    }
    return control_app_writing(self);
}

/* process_outgoing where the BIO is likely empty (the end of a read whose
   writes went out at once): an empty BIO's read() gives b'' and sends
   nothing, so its size is asked first (cheaper than the read; the flow
   control needs it anyway). */
static int process_outgoing_if_any(SSLProto *self)
{
    Py_ssize_t p = bio_pending(self, self->outgoing);
    if (p < 0) {
        return -1;
    }
    if (p > 0 && !self->ssl_writing_paused) {
        if (send_outgoing(self) < 0) {
            return -1;
        }
        return control_app_writing(self);
    }
    return control_app_writing_at(self, p);
}

/* A batch is handed to the socket transport in pieces of this much
   plaintext, so that its pause_writing stops the sending between them (the
   memory bound of asyncio's write-through: the socket transport's
   high-water mark plus the TLS layer's). */
#define FLUSH_PIECE (64L * 1024L)

static int do_write(SSLProto *self)
{
    PyObject *bl = self->backlog;
    Py_ssize_t i = 0, n = PyList_GET_SIZE(bl), piece = 0;
    for (; i < n; i++) {
        PyObject *data = PyList_GET_ITEM(bl, i); /* borrowed */
        PyObject *r = call1(self->cobj, NAME(self->st, write), data);
        if (r == NULL) {
            if (again_error(self->st)) {
                PyErr_Clear();
                break;
            }
            PyList_SetSlice(bl, 0, i, NULL);
            return -1;
        }
        Py_ssize_t count = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        Py_ssize_t len = PyObject_Length(data);
        if (count < 0 || len < 0) {
            PyList_SetSlice(bl, 0, i, NULL);
            return -1;
        }
        if (count < len) {
            PyObject *rest = PySequence_GetSlice(data, count, len);
            if (rest == NULL || PyList_SetItem(bl, i, rest) < 0) {
                PyList_SetSlice(bl, 0, i, NULL);
                return -1;
            }
            self->write_buffer_size -= count;
            break;
        }
        self->write_buffer_size -= len;
        piece += len;
        if (piece >= FLUSH_PIECE && i + 1 < n) {
            piece = 0;
            if (send_outgoing(self) < 0) {
                PyList_SetSlice(bl, 0, i + 1, NULL);
                return -1;
            }
        }
    }
    if (i > 0 && PyList_SetSlice(bl, 0, i, NULL) < 0) {
        return -1;
    }
    return process_outgoing(self);
}

/* --- incoming ------------------------------------------------------------ */

static int call_eof_received(SSLProto *self)
{
    if (self->app_state != STATE_CON_MADE) {
        return 0;
    }
    self->app_state = STATE_EOF;
    PyObject *r = call0(self->app_protocol, self->st->str_eof_received);
    if (r == NULL) {
        if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
            PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            return -1;
        }
        PyObject *exc = al__err_fetch();
        int rc = fatal_error(self, exc, "Error calling eof_received()");
        Py_DECREF(exc);
        return rc;
    }
    int keep = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (keep < 0) {
        return -1;
    }
    if (keep) {
        PyObject *msg =
            PyUnicode_FromString("returning true from eof_received() has no effect when using ssl");
        if (msg == NULL) {
            return -1;
        }
        int rc = call_drop(call1(self->st->logger, NAME(self->st, warning), msg));
        Py_DECREF(msg);
        return rc;
    }
    return 0;
}

static PyObject *join_chunks(PyObject *list)
{
    Py_ssize_t n = PyList_GET_SIZE(list), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        total += PyBytes_GET_SIZE(PyList_GET_ITEM(list, i));
    }
    PyObject *r = PyBytes_FromStringAndSize(NULL, total);
    if (r == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(r);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = PyList_GET_ITEM(list, i); /* borrowed */
        memcpy(p, PyBytes_AS_STRING(c), (size_t)PyBytes_GET_SIZE(c));
        p += PyBytes_GET_SIZE(c);
    }
    return r;
}

/* Decrypt all that is available, then one data_received (an SSLObject
   that is not a plain ssl.SSLObject: its read(max_size), as asyncio). */
static int read_chunks(SSLProto *self)
{
    PyObject *first = NULL, *list = NULL;
    int eof = 0;
    for (;;) {
        PyObject *chunk = call1(self->cobj, NAME(self->st, read), self->max_size);
        if (chunk == NULL) {
            if (again_error(self->st)) {
                PyErr_Clear();
                break;
            }
            Py_XDECREF(first);
            Py_XDECREF(list);
            return -1;
        }
        if (PyBytes_GET_SIZE(chunk) == 0) {
            Py_DECREF(chunk);
            eof = 1;
            break;
        }
        if (first == NULL && list == NULL) {
            first = chunk;
        }
        else {
            if (list == NULL) {
                list = PyList_New(1);
                if (list == NULL) {
                    Py_DECREF(chunk);
                    Py_DECREF(first);
                    return -1;
                }
                PyList_SET_ITEM(list, 0, first);
                first = NULL;
            }
            int rc = PyList_Append(list, chunk);
            Py_DECREF(chunk);
            if (rc < 0) {
                Py_DECREF(list);
                return -1;
            }
        }
    }
    PyObject *data = first;
    if (list != NULL) {
        data = join_chunks(list);
        Py_DECREF(list);
        if (data == NULL) {
            return -1;
        }
    }
    return deliver(self, data, eof);
}

/* Hands the decrypted data to the app, then the EOF if one was read. */
static int deliver(SSLProto *self, PyObject *data, int eof)
{
    if (data != NULL) {
        int rc = call_drop(call1(self->app_protocol, self->st->str_data_received, data));
        Py_DECREF(data);
        if (rc < 0) {
            return -1;
        }
    }
    if (eof) {
        if (call_eof_received(self) < 0 || start_shutdown(self) < 0) {
            return -1;
        }
    }
    return 0;
}

/* One SSLObject.read(len, buffer) into buf: the count (0 at close_notify),
   -2 for asyncio's SSLAgainErrors, -1 on error. */
static Py_ssize_t read_into(SSLProto *self, char *buf, Py_ssize_t len)
{
    PyObject *mv = PyMemoryView_FromMemory(buf, len, PyBUF_WRITE);
    if (mv == NULL) {
        return -1;
    }
    PyObject *n = PyLong_FromSsize_t(len);
    PyObject *r = NULL;
    if (n != NULL) {
        PyObject *argv[3] = {self->cobj, n, mv};
        r = PyObject_VectorcallMethod(NAME(self->st, read), argv, 3, NULL);
        Py_DECREF(n);
    }
    Py_DECREF(mv);
    if (r == NULL) {
        if (again_error(self->st)) {
            PyErr_Clear();
            return -2;
        }
        return -1;
    }
    Py_ssize_t count = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    return count;
}

/* Decrypt all that is available, then one data_received. When the record
   layer says how much the complete records decrypt to (rec_plain), they
   are read straight into a bytes object of that size: the one
   data_received gets, no copy. Otherwise (or past it) the records are
   read one after the other into one buffer (the loop's, lent), and the
   bytes object is made once: no max_size bytes per record, no join. */
static int read_copied(SSLProto *self)
{
    if (!self->plain) {
        return read_chunks(self);
    }
    PyObject *big = NULL; /* the guess: exactly what the records hold */
    Py_ssize_t guess = self->rec_plain, big_len = 0;
    /* the read takes every complete record */
    self->rec_plain = 0;
    if (guess > 0 && self->tls13 && self->guess_misses < GUESS_MAX_MISSES &&
        (big = PyBytes_FromStringAndSize(NULL, guess)) == NULL) {
        return -1;
    }
    LoopObject *lp = self->cloop;
    char *buf = NULL;
    int lent = 0;
    PyObject *list = NULL; /* full buffers so far, when there are more */
    Py_ssize_t off = 0, count = 0;
    int eof = 0, rc = 0;
    for (;;) {
        /* after a whole record, more are likely: read on (at worst that
           read raises SSLWantReadError) */
        int more = count == RECORD_MAX && (big == NULL || big_len < guess) ? 1 : may_read(self);
        if (more <= 0) {
            rc = more;
            break;
        }
        if (big != NULL && big_len < guess) {
            count = read_into(self, PyBytes_AS_STRING(big) + big_len, guess - big_len);
            if (count <= 0) {
                eof = count == 0;
                rc = count == -1 ? -1 : 0;
                break;
            }
            big_len += count;
            continue;
        }
        if (buf == NULL) {
            /* past the guess, or none */
            lent = lp != NULL && !lp->ssl_read_buf_busy;
            if (lent) {
                if (lp->ssl_read_buf == NULL &&
                    (lp->ssl_read_buf = PyMem_RawMalloc(MAX_SIZE)) == NULL) {
                    PyErr_NoMemory();
                    rc = -1;
                    break;
                }
                buf = lp->ssl_read_buf;
                lp->ssl_read_buf_busy = 1;
            }
            else if ((buf = PyMem_RawMalloc(MAX_SIZE)) == NULL) {
                /* a read nested in another (an SSL callback), or not our loop */
                PyErr_NoMemory();
                rc = -1;
                break;
            }
        }
        if (off == MAX_SIZE) {
            PyObject *part = PyBytes_FromStringAndSize(buf, off);
            if (part == NULL || (list == NULL && (list = PyList_New(0)) == NULL) ||
                PyList_Append(list, part) < 0) {
                Py_XDECREF(part);
                rc = -1;
                break;
            }
            Py_DECREF(part);
            off = 0;
        }
        count = read_into(self, buf + off, MAX_SIZE - off);
        if (count <= 0) {
            eof = count == 0;
            rc = count == -1 ? -1 : 0;
            break;
        }
        off += count;
    }
    PyObject *data = NULL;
    if (rc == 0 && off > 0) {
        data = PyBytes_FromStringAndSize(buf, off);
        if (data == NULL) {
            rc = -1;
        }
    }
    if (lent) {
        lp->ssl_read_buf_busy = 0;
    }
    else if (buf != NULL) {
        PyMem_RawFree(buf);
    }
    if (big != NULL) {
        if (big_len == guess) {
            self->guess_misses = 0;
        }
        else {
            if (self->guess_misses < GUESS_MAX_MISSES) {
                self->guess_misses++;
            }
            /* the guess was wrong (padding, records not of data): copied */
            Py_SETREF(big, big_len > 0 && rc == 0
                               ? PyBytes_FromStringAndSize(PyBytes_AS_STRING(big), big_len)
                               : NULL);
            if (big == NULL && PyErr_Occurred()) {
                rc = -1;
            }
        }
    }
    if (rc == 0 && big != NULL) {
        /* it comes first */
        if (list == NULL && data == NULL) {
            data = big;
            big = NULL;
        }
        else if ((list == NULL && (list = PyList_New(0)) == NULL) ||
                 PyList_Insert(list, 0, big) < 0) {
            rc = -1;
        }
    }
    Py_XDECREF(big);
    if (rc == 0 && list != NULL) {
        if (data != NULL && PyList_Append(list, data) < 0) {
            rc = -1;
        }
        Py_CLEAR(data);
        if (rc == 0 && (data = join_chunks(list)) == NULL) {
            rc = -1;
        }
    }
    Py_XDECREF(list);
    if (rc < 0) {
        Py_XDECREF(data);
        return -1;
    }
    return deliver(self, data, eof);
}

static int read_buffered(SSLProto *self)
{
    al_state *st = self->st;
    Py_ssize_t want = bio_pending(self, self->incoming);
    if (want < 0) {
        return -1;
    }
    PyObject *nobj = PyLong_FromSsize_t(want);
    if (nobj == NULL) {
        return -1;
    }
    PyObject *buf = call1(self->app_protocol, st->str_get_buffer, nobj);
    Py_DECREF(nobj);
    if (buf == NULL) {
        return -1;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(buf);
        return -1;
    }
    Py_ssize_t wants = view.len, offset = 0, count = 1;
    int rc = 0;
    while (offset < wants) {
        int more = may_read(self);
        if (more <= 0) {
            rc = more;
            break;
        }
        PyObject *mv =
            PyMemoryView_FromMemory((char *)view.buf + offset, wants - offset, PyBUF_WRITE);
        PyObject *n = mv ? PyLong_FromSsize_t(wants - offset) : NULL;
        PyObject *r = NULL;
        if (n != NULL) {
            PyObject *argv[3] = {self->cobj, n, mv};
            r = PyObject_VectorcallMethod(NAME(st, read), argv, 3, NULL);
        }
        Py_XDECREF(n);
        if (mv != NULL) {
            /* the app's buffer must not outlive this call */
            PyObject *exc = al__err_fetch();
            PyObject *rel = PyObject_CallMethod(mv, "release", NULL);
            if (rel == NULL) {
                PyErr_Clear(); /* still exported: the app may keep it */
            }
            Py_XDECREF(rel);
            al__err_restore(exc);
            Py_DECREF(mv);
        }
        if (r == NULL) {
            if (again_error(st)) {
                PyErr_Clear();
            }
            else {
                rc = -1;
            }
            break;
        }
        count = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (count <= 0) {
            break;
        }
        offset += count;
    }
    PyBuffer_Release(&view);
    Py_DECREF(buf);
    if (rc < 0) {
        return -1;
    }
    if (offset >= wants && count > 0 &&
        call_soon_meth(self, (PyObject *)self, NAME(st, resume_cb)) < 0) {
        return -1;
    }
    if (offset > 0) {
        PyObject *o = PyLong_FromSsize_t(offset);
        if (o == NULL) {
            return -1;
        }
        rc = call_drop(call1(self->app_protocol, st->str_buffer_updated, o));
        Py_DECREF(o);
        if (rc < 0) {
            return -1;
        }
    }
    if (count == 0) {
        if (call_eof_received(self) < 0 || start_shutdown(self) < 0) {
            return -1;
        }
    }
    return 0;
}

static int do_read(SSLProto *self)
{
    if (self->state != WRAPPED && self->state != FLUSHING) {
        return 0;
    }
    int rc = 0;
    if (!self->app_reading_paused) {
        self->in_read++;
        rc = self->is_buffer ? read_buffered(self) : read_copied(self);
        self->in_read--;
        if (rc == 0 && self->transport != NULL) {
            rc = PyList_GET_SIZE(self->backlog) ? do_write(self) : process_outgoing_if_any(self);
        }
    }
    if (rc == 0 && self->transport != NULL) {
        rc = control_ssl_reading(self);
    }
    if (rc < 0) {
        return fatal_current(self, "Fatal error on SSL protocol");
    }
    return 0;
}

/* --- handshake ----------------------------------------------------------- */

static int on_handshake_complete(SSLProto *self, PyObject *handshake_exc)
{
    al_state *st = self->st;
    cancel_handle(self, &self->handshake_timeout_handle);
    PyObject *peercert = NULL, *exc = NULL;
    if (handshake_exc == NULL) {
        if (set_state(self, WRAPPED) == 0) {
            /* cobj: what ssl.SSLObject's methods would call */
            peercert = call0(self->cobj, NAME(st, getpeercert));
        }
        if (peercert == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                return -1;
            }
            exc = al__err_fetch();
            if (exc == NULL) {
                return -1;
            }
        }
    }
    else {
        exc = Py_NewRef(handshake_exc);
    }
    if (exc != NULL) {
        self->state = UNWRAPPED;
        const char *msg = PyObject_TypeCheck(exc, (PyTypeObject *)st->ssl_CertificateError)
                              ? "SSL handshake failed on verifying the certificate"
                              : "SSL handshake failed";
        int rc = fatal_error(self, exc, msg);
        if (rc == 0) {
            rc = wakeup_waiter(self, exc);
        }
        Py_DECREF(exc);
        return rc;
    }
    int d = loop_debug(self);
    if (d > 0) {
        /* logger.debug("%r: SSL handshake took %.1f ms", self, dt * 1e3) */
        PyObject *t = PyObject_CallMethod(self->loop, "time", NULL);
        double now = t ? PyFloat_AsDouble(t) : 0;
        Py_XDECREF(t);
        PyObject *r =
            PyObject_CallMethod(st->logger, "debug", "sOd", "%r: SSL handshake took %.1f ms",
                                (PyObject *)self, (now - self->handshake_start) * 1e3);
        Py_XDECREF(r);
        if (r == NULL) {
            Py_DECREF(peercert);
            return -1;
        }
    }
    PyObject *cipher = call0(self->cobj, NAME(st, cipher));
    PyObject *compression = cipher ? call0(self->cobj, NAME(st, compression)) : NULL;
    if (compression != NULL && self->plain && PyTuple_Check(cipher) &&
        PyTuple_GET_SIZE(cipher) == 3) {
        /* (name, protocol, bits): TLS 1.3 with a 16-byte tag */
        const char *name = PyUnicode_Check(PyTuple_GET_ITEM(cipher, 0))
                               ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(cipher, 0))
                               : NULL;
        const char *proto = PyUnicode_Check(PyTuple_GET_ITEM(cipher, 1))
                                ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(cipher, 1))
                                : NULL;
        if (name == NULL || proto == NULL) {
            PyErr_Clear();
        }
        else {
            self->tls13 = (char)(strcmp(proto, "TLSv1.3") == 0 && strstr(name, "CCM_8") == NULL);
        }
    }
    if (compression != NULL && !self->tls13) {
        self->guess_misses = GUESS_NEVER; /* no guesses: stop following records */
    }
    int rc = -1;
    if (compression != NULL && PyDict_SetItem(self->extra, NAME(st, peercert), peercert) == 0 &&
        PyDict_SetItem(self->extra, NAME(st, cipher), cipher) == 0 &&
        PyDict_SetItem(self->extra, NAME(st, compression), compression) == 0 &&
        PyDict_SetItem(self->extra, NAME(st, ssl_object), self->sslobj) == 0) {
        rc = 0;
    }
    Py_DECREF(peercert);
    Py_XDECREF(cipher);
    Py_XDECREF(compression);
    if (rc < 0) {
        return -1;
    }
    if (self->app_state == STATE_INIT) {
        self->app_state = STATE_CON_MADE;
        if (call_drop(call1(self->app_protocol, st->str_connection_made, self->app_transport)) <
            0) {
            return -1;
        }
    }
    if (wakeup_waiter(self, NULL) < 0) {
        return -1;
    }
    /* What connection_made wrote goes out before the records read with
       the handshake's last one reach the app (asyncio writes through):
       their data_received may abort the socket transport. */
    if (PyList_GET_SIZE(self->backlog) > 0 && self->transport != NULL && do_write(self) < 0) {
        return -1;
    }
    return do_read(self);
}

static int do_handshake(SSLProto *self)
{
    PyObject *r = call0(self->cobj, NAME(self->st, do_handshake));
    if (r != NULL) {
        Py_DECREF(r);
        return on_handshake_complete(self, NULL);
    }
    if (again_error(self->st)) {
        PyErr_Clear();
        return process_outgoing(self);
    }
    if (PyErr_ExceptionMatches(self->st->ssl_SSLError)) {
        PyObject *exc = al__err_fetch();
        int rc = on_handshake_complete(self, exc);
        Py_DECREF(exc);
        return rc;
    }
    return -1;
}

static int start_handshake(SSLProto *self)
{
    int d = loop_debug(self);
    if (d < 0) {
        return -1;
    }
    if (d) {
        PyObject *r = PyObject_CallMethod(self->st->logger, "debug", "sO",
                                          "%r starts SSL handshake", (PyObject *)self);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
        PyObject *t = PyObject_CallMethod(self->loop, "time", NULL);
        if (t == NULL) {
            return -1;
        }
        self->handshake_start = PyFloat_AsDouble(t);
        Py_DECREF(t);
    }
    if (set_state(self, DO_HANDSHAKE) < 0) {
        return -1;
    }
    Py_XSETREF(
        self->handshake_timeout_handle,
        call_later_meth(self, self->handshake_timeout, NAME(self->st, check_handshake_timeout)));
    if (self->handshake_timeout_handle == NULL) {
        return -1;
    }
    if (self->server_side && self->plain) {
        /* a server has nothing to say before the ClientHello: with the
           incoming BIO empty, do_handshake could only raise
           SSLWantReadError */
        Py_ssize_t n = bio_pending(self, self->incoming);
        if (n <= 0) {
            return n < 0 ? -1 : process_outgoing(self);
        }
    }
    return do_handshake(self);
}

/* --- shutdown ------------------------------------------------------------- */

static int abort_conn(SSLProto *self)
{
    self->state = UNWRAPPED;
    if (self->transport != NULL) {
        return call_drop(call0(self->transport, NAME(self->st, abort)));
    }
    return 0;
}

static int on_shutdown_complete(SSLProto *self, PyObject *exc)
{
    cancel_handle(self, &self->shutdown_timeout_handle);
    if (exc != NULL) {
        return fatal_error(self, exc, "Fatal error on transport");
    }
    if (self->transport == NULL) {
        return 0;
    }
    return call_soon_meth(self, self->transport, NAME(self->st, close));
}

static int do_shutdown(SSLProto *self)
{
    if (!self->eof_received) {
        PyObject *r = call0(self->cobj, self->unwrap_name);
        if (r == NULL) {
            if (again_error(self->st)) {
                PyErr_Clear();
                return process_outgoing(self);
            }
            if (PyErr_ExceptionMatches(self->st->ssl_SSLError)) {
                PyObject *exc = al__err_fetch();
                int rc = on_shutdown_complete(self, exc);
                Py_DECREF(exc);
                return rc;
            }
            return -1;
        }
        Py_DECREF(r);
    }
    if (process_outgoing(self) < 0 || call_eof_received(self) < 0) {
        return -1;
    }
    return on_shutdown_complete(self, NULL);
}

static int do_flush(SSLProto *self)
{
    /* data written before close() goes before close_notify, even when
       reading is paused (do_read then writes nothing) */
    if (PyList_GET_SIZE(self->backlog) && self->transport != NULL && do_write(self) < 0) {
        return fatal_current(self, "Fatal error on SSL protocol");
    }
    if (do_read(self) < 0 || set_state(self, SHUTDOWN) < 0) {
        return -1;
    }
    return do_shutdown(self);
}

static int start_shutdown(SSLProto *self)
{
    if (self->state == FLUSHING || self->state == SHUTDOWN || self->state == UNWRAPPED) {
        return 0;
    }
    if (self->app_transport != NULL) {
        ((SSLTransport *)self->app_transport)->closed = 1;
    }
    if (self->state == DO_HANDSHAKE) {
        return abort_conn(self);
    }
    if (set_state(self, FLUSHING) < 0) {
        return -1;
    }
    Py_XSETREF(
        self->shutdown_timeout_handle,
        call_later_meth(self, self->shutdown_timeout, NAME(self->st, check_shutdown_timeout)));
    if (self->shutdown_timeout_handle == NULL) {
        return -1;
    }
    return do_flush(self);
}

static int write_appdata(SSLProto *self, PyObject *list_of_data)
{
    if (self->state == FLUSHING || self->state == SHUTDOWN || self->state == UNWRAPPED) {
        if (self->conn_lost >= self->st->log_threshold_connlost) {
            PyObject *r =
                PyObject_CallMethod(self->st->logger, "warning", "s", "SSL connection is closed");
            if (r == NULL) {
                return -1;
            }
            Py_DECREF(r);
        }
        self->conn_lost++;
        return 0;
    }
    PyObject *it = PyObject_GetIter(list_of_data);
    if (it == NULL) {
        return -1;
    }
    PyObject *data;
    while ((data = PyIter_Next(it)) != NULL) {
        if (!PyBytes_CheckExact(data)) {
            /* encrypted later: a mutable buffer may be reused by then (the
               sendfile fallback refills its block after each write) */
            Py_SETREF(data, PyBytes_FromObject(data));
            if (data == NULL) {
                Py_DECREF(it);
                return -1;
            }
        }
        Py_ssize_t len = PyBytes_GET_SIZE(data);
        if (len < 0 || PyList_Append(self->backlog, data) < 0) {
            Py_DECREF(data);
            Py_DECREF(it);
            return -1;
        }
        Py_DECREF(data);
        self->write_buffer_size += len;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (self->state != WRAPPED) {
        return 0; /* the handshake's end flushes */
    }
    if (self->in_read) {
        /* asyncio's _write_appdata: encrypted and sent at once, so that
           what data_received wrote is out before the rest of the read (an
           eof_received that aborts) runs */
        return do_write(self) < 0 ? fatal_current(self, "Fatal error on SSL protocol") : 0;
    }
    if (!self->flush_scheduled) {
        if (call_soon_meth(self, (PyObject *)self, NAME(self->st, _flush_cb)) < 0) {
            return -1;
        }
        self->flush_scheduled = 1;
    }
    /* pause_writing as soon as the pending plaintext reaches the limit */
    if (control_app_writing(self) < 0) {
        return fatal_current(self, "Fatal error on SSL protocol");
    }
    return 0;
}

/* The writes of one loop iteration, encrypted and sent together. */
static PyObject *Proto_flush_cb(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    self->flush_scheduled = 0;
    if (self->state != WRAPPED || self->transport == NULL || !PyList_GET_SIZE(self->backlog)) {
        Py_RETURN_NONE; /* aborted (the backlog is dropped), or already flushed */
    }
    if (do_write(self) < 0 && fatal_current(self, "Fatal error on SSL protocol") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- SSLProtocol: the stream transport's protocol ------------------------ */

static PyObject *none_or_null(int rc)
{
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *Proto_connection_made(SSLProto *self, PyObject *transport)
{
    Py_XSETREF(self->transport, Py_NewRef(transport));
    return none_or_null(start_handshake(self));
}

static PyObject *Proto_connection_lost(SSLProto *self, PyObject *exc)
{
    al_state *st = self->st;
    if (PyList_SetSlice(self->backlog, 0, PyList_GET_SIZE(self->backlog), NULL) < 0) {
        return NULL;
    }
    self->write_buffer_size = 0;
    PyObject *r = call0(self->outgoing, NAME(st, read));
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    self->conn_lost++;
    if (self->app_transport != NULL) {
        ((SSLTransport *)self->app_transport)->closed = 1;
    }
    if (self->state != DO_HANDSHAKE &&
        (self->app_state == STATE_CON_MADE || self->app_state == STATE_EOF)) {
        self->app_state = STATE_CON_LOST;
        PyObject *meth = PyObject_GetAttr(self->app_protocol, st->str_connection_lost);
        if (meth == NULL) {
            return NULL;
        }
        PyObject *argv[3] = {self->loop, meth, exc};
        r = PyObject_VectorcallMethod(st->str_call_soon, argv, 3, NULL);
        Py_DECREF(meth);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    self->state = UNWRAPPED;
    Py_CLEAR(self->transport);
    Py_CLEAR(self->app_transport);
    /* app_protocol is kept for the app transport's get_protocol() */
    if (wakeup_waiter(self, exc == Py_None ? NULL : exc) < 0) {
        return NULL;
    }
    cancel_handle(self, &self->shutdown_timeout_handle);
    cancel_handle(self, &self->handshake_timeout_handle);
    Py_RETURN_NONE;
}

/* What data_received does once the ciphertext is in the incoming BIO. */
static int on_ciphertext(SSLProto *self)
{
    int rc = 0;
    switch (self->state) {
    case DO_HANDSHAKE:
        rc = do_handshake(self);
        break;
    case WRAPPED:
        rc = do_read(self);
        break;
    case FLUSHING:
        rc = do_flush(self);
        break;
    case SHUTDOWN:
        rc = do_shutdown(self);
        break;
    }
    return rc;
}

static void scan_records(SSLProto *self, const unsigned char *p, Py_ssize_t len)
{
    if (self->guess_misses >= GUESS_MAX_MISSES) {
        return; /* the guesses stopped for good: nothing to follow */
    }
    while (len > 0) {
        if (self->rec_left > 0) {
            Py_ssize_t k = len < self->rec_left ? len : self->rec_left;
            p += k;
            len -= k;
            if ((self->rec_left -= k) == 0) {
                self->rec_plain += self->rec_cur_plain;
            }
            continue;
        }
        self->rec_hdr[(int)self->rec_hdr_len++] = *p++;
        len--;
        if (self->rec_hdr_len == 5) {
            Py_ssize_t body = ((Py_ssize_t)self->rec_hdr[3] << 8) | self->rec_hdr[4];
            self->rec_hdr_len = 0;
            self->rec_left = body;
            /* 23: application_data, the outer type of every encrypted
               TLS 1.3 record */
            self->rec_cur_plain =
                self->rec_hdr[0] == 23 && body > TLS13_OVERHEAD ? body - TLS13_OVERHEAD : 0;
        }
    }
}

static PyObject *Proto_data_received(SSLProto *self, PyObject *data)
{
    if (PyBytes_Check(data)) {
        scan_records(self, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    }
    else {
        self->guess_misses = GUESS_NEVER; /* the framing is not followed */
    }
    PyObject *r = call1(self->incoming, NAME(self->st, write), data);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    return none_or_null(on_ciphertext(self));
}

int al__ssl_feed(PyObject *proto, const char *data, Py_ssize_t len)
{
    SSLProto *self = (SSLProto *)proto;
    scan_records(self, (const unsigned char *)data, len);
    /* the BIO copies it at once: the view does not outlive the call */
    PyObject *mv = PyMemoryView_FromMemory((char *)data, len, PyBUF_READ);
    if (mv == NULL) {
        return -1;
    }
    PyObject *r = call1(self->incoming, NAME(self->st, write), mv);
    Py_DECREF(mv);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return on_ciphertext(self);
}

static PyObject *Proto_eof_received(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    self->eof_received = 1;
    int rc = 0;
    int d = loop_debug(self);
    if (d < 0) {
        return NULL;
    }
    if (d) {
        PyObject *r = PyObject_CallMethod(self->st->logger, "debug", "sO", "%r received EOF",
                                          (PyObject *)self);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    switch (self->state) {
    case DO_HANDSHAKE: {
        PyObject *exc = PyObject_CallNoArgs(PyExc_ConnectionResetError);
        if (exc == NULL) {
            rc = -1;
        }
        else {
            rc = on_handshake_complete(self, exc);
            Py_DECREF(exc);
        }
        break;
    }
    case WRAPPED:
        rc = set_state(self, FLUSHING);
        if (rc == 0) {
            if (self->app_reading_paused) {
                Py_RETURN_TRUE;
            }
            rc = do_flush(self);
        }
        break;
    case FLUSHING:
        rc = do_write(self);
        if (rc == 0) {
            rc = set_state(self, SHUTDOWN);
        }
        if (rc == 0) {
            rc = do_shutdown(self);
        }
        break;
    case SHUTDOWN:
        rc = do_shutdown(self);
        break;
    }
    if (rc < 0) {
        if (self->transport != NULL) {
            PyObject *exc = al__err_fetch();
            PyObject *r = call0(self->transport, NAME(self->st, close));
            Py_XDECREF(r);
            if (r == NULL) {
                Py_DECREF(exc);
                return NULL;
            }
            al__err_restore(exc);
        }
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Proto_pause_writing(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    self->ssl_writing_paused = 1;
    Py_RETURN_NONE;
}

static PyObject *Proto_resume_writing(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    self->ssl_writing_paused = 0;
    return none_or_null(process_outgoing(self));
}

static PyObject *Proto_check_handshake_timeout(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state != DO_HANDSHAKE) {
        Py_RETURN_NONE;
    }
    PyObject *msg = PyUnicode_FromFormat("SSL handshake is taking longer than %S seconds: "
                                         "aborting the connection",
                                         self->handshake_timeout);
    if (msg == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_CallOneArg(PyExc_ConnectionAbortedError, msg);
    Py_DECREF(msg);
    if (exc == NULL) {
        return NULL;
    }
    int rc = fatal_error(self, exc, "Fatal error on transport");
    Py_DECREF(exc);
    return none_or_null(rc);
}

static PyObject *Proto_check_shutdown_timeout(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    if ((self->state != FLUSHING && self->state != SHUTDOWN) || self->transport == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *exc =
        PyObject_CallFunction(self->st->ssl_TimeoutError, "s", "SSL shutdown timed out");
    if (exc == NULL) {
        return NULL;
    }
    int rc = call_drop(call1(self->transport, NAME(self->st, force_close), exc));
    Py_DECREF(exc);
    return none_or_null(rc);
}

/* asyncio's _resume_reading's inner resume(), also the rest of a full
   BufferedProtocol read. */
static PyObject *Proto_resume_cb(SSLProto *self, PyObject *Py_UNUSED(ignored))
{
    int rc = 0;
    if (self->state == WRAPPED) {
        rc = do_read(self);
    }
    else if (self->state == FLUSHING) {
        rc = do_flush(self);
    }
    else if (self->state == SHUTDOWN) {
        rc = do_shutdown(self);
    }
    return none_or_null(rc);
}

static PyObject *Proto_get_app_transport(SSLProto *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->app_transport ? self->app_transport : Py_None);
}

static PyObject *Proto_get_app_protocol(SSLProto *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->app_protocol ? self->app_protocol : Py_None);
}

static PyObject *Proto_get_transport(SSLProto *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->transport ? self->transport : Py_None);
}

static PyObject *Proto_get_state(SSLProto *self, void *Py_UNUSED(c))
{
    return PyUnicode_FromString(state_names[self->state]);
}

static int set_app_protocol(SSLProto *self, PyObject *app_protocol)
{
    int b = 0;
    if (PyObject_HasAttr(app_protocol, self->st->str_get_buffer)) {
        b = PyObject_IsInstance(app_protocol, self->st->BufferedProtocol);
        if (b < 0) {
            return -1;
        }
    }
    Py_XSETREF(self->app_protocol, Py_NewRef(app_protocol));
    self->is_buffer = (char)b;
    return 0;
}

static PyObject *Proto_repr(SSLProto *self)
{
    return PyUnicode_FromFormat("<asyncloop._core.SSLProtocol object at %p>", self);
}

static int check_timeout(PyObject *v, const char *name, PyObject *dflt, PyObject **out)
{
    if (v == NULL || v == Py_None) {
        *out = Py_NewRef(dflt);
        return 0;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        return -1;
    }
    int le = PyObject_RichCompareBool(v, zero, Py_LE);
    Py_DECREF(zero);
    if (le < 0) {
        return -1;
    }
    if (le) {
        PyErr_Format(PyExc_ValueError, "%s should be a positive number, got %S", name, v);
        return -1;
    }
    *out = Py_NewRef(v);
    return 0;
}

static SSLTransport *transport_new(al_state *st, SSLProto *proto);

static PyObject *Proto_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"loop",
                             "app_protocol",
                             "sslcontext",
                             "waiter",
                             "server_side",
                             "server_hostname",
                             "call_connection_made",
                             "ssl_handshake_timeout",
                             "ssl_shutdown_timeout",
                             NULL};
    PyObject *loop, *app_protocol, *sslcontext, *waiter, *server_hostname = Py_None;
    PyObject *hs = Py_None, *sd = Py_None;
    int server_side = 0, call_connection_made = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|pOpOO:SSLProtocol", kwlist, &loop,
                                     &app_protocol, &sslcontext, &waiter, &server_side,
                                     &server_hostname, &call_connection_made, &hs, &sd)) {
        return NULL;
    }
    al_state *st = PyType_GetModuleState(tp);
    if (st == NULL) {
        return NULL;
    }
    SSLProto *self = (SSLProto *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    self->st = st;
    if (check_timeout(hs, "ssl_handshake_timeout", st->ssl_handshake_timeout_default,
                      &self->handshake_timeout) < 0 ||
        check_timeout(sd, "ssl_shutdown_timeout", st->ssl_shutdown_timeout_default,
                      &self->shutdown_timeout) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    int truth = PyObject_IsTrue(sslcontext);
    if (truth < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (!truth) {
        self->sslcontext = PyObject_CallFunction(st->ssl_create_transport_context, "OO",
                                                 server_side ? Py_True : Py_False, server_hostname);
    }
    else {
        self->sslcontext = Py_NewRef(sslcontext);
    }
    if (self->sslcontext == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->server_side = (char)server_side;
    int has_host = PyObject_IsTrue(server_hostname);
    if (has_host < 0) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject *host = (has_host && !server_side) ? server_hostname : Py_None; /* borrowed */
    self->loop = Py_NewRef(loop);
    if (PyObject_TypeCheck(loop, st->LoopType)) {
        self->cloop = (LoopObject *)loop;
    }
    self->waiter = Py_NewRef(waiter);
    self->max_size = PyLong_FromLong(MAX_SIZE);
    self->extra = PyDict_New();
    self->backlog = PyList_New(0);
    if (self->max_size == NULL || self->extra == NULL || self->backlog == NULL ||
        PyDict_SetItem(self->extra, NAME(st, sslcontext), self->sslcontext) < 0 ||
        set_app_protocol(self, app_protocol) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->state = UNWRAPPED;
    self->app_state = call_connection_made ? STATE_INIT : STATE_CON_MADE;
    self->incoming = PyObject_CallNoArgs(st->ssl_MemoryBIO);
    self->outgoing = self->incoming ? PyObject_CallNoArgs(st->ssl_MemoryBIO) : NULL;
    if (self->outgoing == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject *kw = PyTuple_Pack(2, NAME(st, server_side), NAME(st, server_hostname));
    if (kw == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject *argv[5] = {self->sslcontext, self->incoming, self->outgoing,
                         server_side ? Py_True : Py_False, host};
    self->sslobj = PyObject_VectorcallMethod(NAME(st, wrap_bio), argv, 3, kw);
    Py_DECREF(kw);
    if (self->sslobj != NULL) {
        if (Py_IS_TYPE(self->sslobj, (PyTypeObject *)st->ssl_SSLObject)) {
            self->cobj = PyObject_GetAttr(self->sslobj, NAME(st, _sslobj));
            self->unwrap_name = NAME(st, shutdown);
            self->plain = 1;
        }
        else {
            self->cobj = Py_NewRef(self->sslobj);
            self->unwrap_name = NAME(st, unwrap);
        }
    }
    if (self->sslobj == NULL || self->cobj == NULL ||
        flow_defaults(NULL, NULL, st->ssl_read_high_kb, &self->in_high, &self->in_low) < 0 ||
        flow_defaults(NULL, NULL, st->ssl_write_high_kb, &self->out_high, &self->out_low) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    self->app_transport = (PyObject *)transport_new(st, self);
    if (self->app_transport == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->app_transport_created = 1;
    return (PyObject *)self;
}

static int Proto_traverse(SSLProto *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->loop);
    Py_VISIT(self->app_protocol);
    Py_VISIT(self->app_transport);
    Py_VISIT(self->transport);
    Py_VISIT(self->sslcontext);
    Py_VISIT(self->sslobj);
    Py_VISIT(self->cobj);
    Py_VISIT(self->waiter);
    Py_VISIT(self->extra);
    Py_VISIT(self->backlog);
    Py_VISIT(self->handshake_timeout_handle);
    Py_VISIT(self->shutdown_timeout_handle);
    return 0;
}

static int Proto_clear(SSLProto *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->app_protocol);
    Py_CLEAR(self->app_transport);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->sslcontext);
    Py_CLEAR(self->sslobj);
    Py_CLEAR(self->cobj);
    Py_CLEAR(self->incoming);
    Py_CLEAR(self->outgoing);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->backlog);
    Py_CLEAR(self->handshake_timeout_handle);
    Py_CLEAR(self->shutdown_timeout_handle);
    Py_CLEAR(self->max_size);
    Py_CLEAR(self->handshake_timeout);
    Py_CLEAR(self->shutdown_timeout);
    return 0;
}

static void Proto_dealloc(SSLProto *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Proto_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef Proto_methods[] = {
    {"connection_made", (PyCFunction)Proto_connection_made, METH_O, NULL},
    {"connection_lost", (PyCFunction)Proto_connection_lost, METH_O, NULL},
    {"data_received", (PyCFunction)Proto_data_received, METH_O, NULL},
    {"eof_received", (PyCFunction)Proto_eof_received, METH_NOARGS, NULL},
    {"pause_writing", (PyCFunction)Proto_pause_writing, METH_NOARGS, NULL},
    {"resume_writing", (PyCFunction)Proto_resume_writing, METH_NOARGS, NULL},
    {"_check_handshake_timeout", (PyCFunction)Proto_check_handshake_timeout, METH_NOARGS, NULL},
    {"_check_shutdown_timeout", (PyCFunction)Proto_check_shutdown_timeout, METH_NOARGS, NULL},
    {"_resume_cb", (PyCFunction)Proto_resume_cb, METH_NOARGS, NULL},
    {"_flush_cb", (PyCFunction)Proto_flush_cb, METH_NOARGS, NULL},
    {NULL, NULL},
};

static PyGetSetDef Proto_getset[] = {
    {"_app_transport", (getter)Proto_get_app_transport, NULL, NULL, NULL},
    {"_app_protocol", (getter)Proto_get_app_protocol, NULL, NULL, NULL},
    {"_transport", (getter)Proto_get_transport, NULL, NULL, NULL},
    {"_state", (getter)Proto_get_state, NULL, NULL, NULL},
    {NULL},
};

static PyType_Slot Proto_slots[] = {
    {Py_tp_new, Proto_new},
    {Py_tp_dealloc, Proto_dealloc},
    {Py_tp_traverse, Proto_traverse},
    {Py_tp_clear, Proto_clear},
    {Py_tp_repr, Proto_repr},
    {Py_tp_methods, Proto_methods},
    {Py_tp_getset, Proto_getset},
    {Py_tp_doc, "TLS between a stream transport and an app protocol (asyncio's SSLProtocol)."},
    {0, NULL},
};

static PyType_Spec Proto_spec = {
    .name = "asyncloop._core.SSLProtocol",
    .basicsize = sizeof(SSLProto),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Proto_slots,
};

/* --- SSLTransport: the app's transport ----------------------------------- */

static SSLTransport *transport_new(al_state *st, SSLProto *proto)
{
    PyTypeObject *tp = st->SSLTransportType;
    SSLTransport *t = (SSLTransport *)tp->tp_alloc(tp, 0);
    if (t == NULL) {
        return NULL;
    }
    t->proto = (SSLProto *)Py_NewRef(proto);
    return t;
}

static int check_proto(SSLTransport *self)
{
    if (self->proto == NULL) {
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute");
        return -1;
    }
    return 0;
}

static PyObject *Tr_write(SSLTransport *self, PyObject *data)
{
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyErr_Format(PyExc_TypeError, "data: expecting a bytes-like instance, got %s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PyObject_Length(data);
    if (n < 0) {
        return NULL;
    }
    if (n == 0) {
        Py_RETURN_NONE;
    }
    if (check_proto(self) < 0) {
        return NULL;
    }
    PyObject *t = PyTuple_Pack(1, data);
    if (t == NULL) {
        return NULL;
    }
    int rc = write_appdata(self->proto, t);
    Py_DECREF(t);
    return none_or_null(rc);
}

static PyObject *Tr_writelines(SSLTransport *self, PyObject *list)
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return none_or_null(write_appdata(self->proto, list));
}

static PyObject *Tr_write_eof(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    PyErr_SetString(PyExc_NotImplementedError, "SSL doesn't support half-closes");
    return NULL;
}

static PyObject *Tr_can_write_eof(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    Py_RETURN_FALSE;
}

static PyObject *Tr_close(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->closed) {
        self->closed = 1;
        if (self->proto != NULL) {
            return none_or_null(start_shutdown(self->proto));
        }
    }
    else {
        Py_CLEAR(self->proto);
    }
    Py_RETURN_NONE;
}

static PyObject *Tr_abort(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    self->closed = 1;
    if (self->proto != NULL) {
        return none_or_null(abort_conn(self->proto));
    }
    Py_RETURN_NONE;
}

static PyObject *Tr_is_closing(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *Tr_is_reading(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(!self->proto->app_reading_paused);
}

static PyObject *Tr_pause_reading(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    self->proto->app_reading_paused = 1;
    Py_RETURN_NONE;
}

static PyObject *Tr_resume_reading(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    SSLProto *p = self->proto;
    if (p->app_reading_paused) {
        p->app_reading_paused = 0;
        if (call_soon_meth(p, (PyObject *)p, NAME(p->st, resume_cb)) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *Tr_get_write_buffer_size(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    Py_ssize_t n = write_buffer_size(self->proto);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *Tr_get_write_buffer_limits(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return Py_BuildValue("(nn)", self->proto->out_low, self->proto->out_high);
}

static PyObject *Tr_get_read_buffer_size(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    Py_ssize_t n = bio_pending(self->proto, self->proto->incoming);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *Tr_get_read_buffer_limits(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return Py_BuildValue("(nn)", self->proto->in_low, self->proto->in_high);
}

static PyObject *Tr_set_write_buffer_limits(SSLTransport *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_write_buffer_limits", kwlist, &high,
                                     &low) ||
        check_proto(self) < 0) {
        return NULL;
    }
    SSLProto *p = self->proto;
    if (flow_defaults(high, low, p->st->ssl_write_high_kb, &p->out_high, &p->out_low) < 0) {
        return NULL;
    }
    return none_or_null(control_app_writing(p));
}

static PyObject *Tr_set_read_buffer_limits(SSLTransport *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"high", "low", NULL};
    PyObject *high = Py_None, *low = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:set_read_buffer_limits", kwlist, &high,
                                     &low) ||
        check_proto(self) < 0) {
        return NULL;
    }
    SSLProto *p = self->proto;
    if (flow_defaults(high, low, p->st->ssl_read_high_kb, &p->in_high, &p->in_low) < 0) {
        return NULL;
    }
    if (p->transport != NULL) {
        return none_or_null(control_ssl_reading(p));
    }
    Py_RETURN_NONE;
}

static PyObject *Tr_get_extra_info(SSLTransport *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "default", NULL};
    PyObject *name, *dflt = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:get_extra_info", kwlist, &name, &dflt) ||
        check_proto(self) < 0) {
        return NULL;
    }
    SSLProto *p = self->proto;
    PyObject *v = PyDict_GetItemWithError(p->extra, name); /* borrowed */
    if (v != NULL) {
        return Py_NewRef(v);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (p->transport != NULL) {
        PyObject *argv[3] = {p->transport, name, dflt};
        return PyObject_VectorcallMethod(NAME(p->st, get_extra_info), argv, 3, NULL);
    }
    return Py_NewRef(dflt);
}

static PyObject *Tr_set_protocol(SSLTransport *self, PyObject *protocol)
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return none_or_null(set_app_protocol(self->proto, protocol));
}

static PyObject *Tr_get_protocol(SSLTransport *self, PyObject *Py_UNUSED(ignored))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self->proto->app_protocol ? self->proto->app_protocol : Py_None);
}

/* asyncio's test hook: queue without writing */
static PyObject *Tr_test_append_write_backlog(SSLTransport *self, PyObject *data)
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyObject_Length(data);
    if (n < 0 || PyList_Append(self->proto->backlog, data) < 0) {
        return NULL;
    }
    self->proto->write_buffer_size += n;
    Py_RETURN_NONE;
}

static PyObject *Tr_get_true(SSLTransport *Py_UNUSED(self), void *Py_UNUSED(c))
{
    Py_RETURN_TRUE;
}

static PyObject *Tr_get_protocol_paused(SSLTransport *self, void *Py_UNUSED(c))
{
    if (check_proto(self) < 0) {
        return NULL;
    }
    return PyBool_FromLong(self->proto->app_writing_paused);
}

static PyObject *Tr_get_closed(SSLTransport *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *Tr_get_ssl_protocol(SSLTransport *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->proto ? (PyObject *)self->proto : Py_None);
}

static void Tr_finalize(SSLTransport *self)
{
    if (self->closed) {
        return;
    }
    self->closed = 1;
    PyObject *exc = al__err_fetch();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed transport %R", self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    al__err_restore(exc);
}

static int Tr_traverse(SSLTransport *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->proto);
    return 0;
}

static int Tr_clear(SSLTransport *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->proto);
    return 0;
}

static void Tr_dealloc(SSLTransport *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return;
    }
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Tr_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define KW (METH_VARARGS | METH_KEYWORDS)

static PyMethodDef Tr_methods[] = {
    {"write", (PyCFunction)Tr_write, METH_O, NULL},
    {"writelines", (PyCFunction)Tr_writelines, METH_O, NULL},
    {"write_eof", (PyCFunction)Tr_write_eof, METH_NOARGS, NULL},
    {"can_write_eof", (PyCFunction)Tr_can_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)Tr_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)Tr_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)Tr_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)Tr_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)Tr_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)Tr_resume_reading, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)Tr_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)Tr_get_write_buffer_limits, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))Tr_set_write_buffer_limits, KW, NULL},
    {"get_read_buffer_size", (PyCFunction)Tr_get_read_buffer_size, METH_NOARGS, NULL},
    {"get_read_buffer_limits", (PyCFunction)Tr_get_read_buffer_limits, METH_NOARGS, NULL},
    {"set_read_buffer_limits", (PyCFunction)(void (*)(void))Tr_set_read_buffer_limits, KW, NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))Tr_get_extra_info, KW, NULL},
    {"set_protocol", (PyCFunction)Tr_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Tr_get_protocol, METH_NOARGS, NULL},
    {"_test__append_write_backlog", (PyCFunction)Tr_test_append_write_backlog, METH_O, NULL},
    {NULL, NULL},
};

static PyGetSetDef Tr_getset[] = {
    {"_protocol_paused", (getter)Tr_get_protocol_paused, NULL, NULL, NULL},
    {"_closed", (getter)Tr_get_closed, NULL, NULL, NULL},
    {"_ssl_protocol", (getter)Tr_get_ssl_protocol, NULL, NULL, NULL},
    {"_start_tls_compatible", (getter)Tr_get_true, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Tr_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SSLTransport, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot Tr_slots[] = {
    {Py_tp_dealloc, Tr_dealloc},
    {Py_tp_finalize, Tr_finalize},
    {Py_tp_traverse, Tr_traverse},
    {Py_tp_clear, Tr_clear},
    {Py_tp_methods, Tr_methods},
    {Py_tp_getset, Tr_getset},
    {Py_tp_members, Tr_members},
    {Py_tp_doc, "The app-side transport of a TLS connection (asyncio's _SSLProtocolTransport)."},
    {0, NULL},
};

static PyType_Spec Tr_spec = {
    .name = "asyncloop._core.SSLTransport",
    .basicsize = sizeof(SSLTransport),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Tr_slots,
};

/* --- module state ------------------------------------------------------------ */

static const char *const str_texts[S_N] = {
    [S_read] = "read",
    [S_write] = "write",
    [S_do_handshake] = "do_handshake",
    [S_unwrap] = "unwrap",
    [S_getpeercert] = "getpeercert",
    [S_cipher] = "cipher",
    [S_compression] = "compression",
    [S_pending] = "pending",
    [S_call_later] = "call_later",
    [S_cancel] = "cancel",
    [S_get_debug] = "get_debug",
    [S_close] = "close",
    [S_abort] = "abort",
    [S_force_close] = "_force_close",
    [S_pause_reading] = "pause_reading",
    [S_resume_reading] = "resume_reading",
    [S_wrap_bio] = "wrap_bio",
    [S_server_side] = "server_side",
    [S_server_hostname] = "server_hostname",
    [S_sslcontext] = "sslcontext",
    [S_peercert] = "peercert",
    [S_ssl_object] = "ssl_object",
    [S_get_extra_info] = "get_extra_info",
    [S_set_result] = "set_result",
    [S_cancelled] = "cancelled",
    [S_warning] = "warning",
    [S_check_handshake_timeout] = "_check_handshake_timeout",
    [S_check_shutdown_timeout] = "_check_shutdown_timeout",
    [S_resume_cb] = "_resume_cb",
    [S_write_eof] = "write_eof",
    [S__sslobj] = "_sslobj",
    [S_shutdown] = "shutdown",
    [S__flush_cb] = "_flush_cb",
};

static PyObject *import_or(const char *module, const char *name, PyObject *dflt)
{
    PyObject *v = al__import_attr(module, name);
    if (v == NULL && dflt != NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        v = Py_NewRef(dflt);
    }
    return v;
}

static int import_kb(const char *name, long dflt, Py_ssize_t *out)
{
    PyObject *d = PyLong_FromLong(dflt);
    if (d == NULL) {
        return -1;
    }
    PyObject *v = import_or("asyncio.constants", name, d);
    Py_DECREF(d);
    if (v == NULL) {
        return -1;
    }
    *out = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

int al__ssl_init(PyObject *module, al_state *st)
{
    for (int i = 0; i < S_N; i++) {
        if ((st->ssl_str[i] = PyUnicode_InternFromString(str_texts[i])) == NULL) {
            return -1;
        }
    }
    PyObject *thirty = PyFloat_FromDouble(30.0);
    PyObject *sixty = PyFloat_FromDouble(60.0);
    if (thirty == NULL || sixty == NULL) {
        Py_XDECREF(thirty);
        Py_XDECREF(sixty);
        return -1;
    }
    st->ssl_handshake_timeout_default =
        import_or("asyncio.constants", "SSL_HANDSHAKE_TIMEOUT", sixty);
    st->ssl_shutdown_timeout_default =
        st->ssl_handshake_timeout_default
            ? import_or("asyncio.constants", "SSL_SHUTDOWN_TIMEOUT", thirty)
            : NULL;
    Py_DECREF(thirty);
    Py_DECREF(sixty);
    if (st->ssl_shutdown_timeout_default == NULL ||
        import_kb("FLOW_CONTROL_HIGH_WATER_SSL_READ", 256, &st->ssl_read_high_kb) < 0 ||
        import_kb("FLOW_CONTROL_HIGH_WATER_SSL_WRITE", 512, &st->ssl_write_high_kb) < 0 ||
        (st->ssl_MemoryBIO = al__import_attr("ssl", "MemoryBIO")) == NULL ||
        (st->ssl_SSLObject = al__import_attr("ssl", "SSLObject")) == NULL ||
        (st->ssl_SSLError = al__import_attr("ssl", "SSLError")) == NULL ||
        (st->ssl_SSLWantReadError = al__import_attr("ssl", "SSLWantReadError")) == NULL ||
        (st->ssl_SSLSyscallError = al__import_attr("ssl", "SSLSyscallError")) == NULL ||
        (st->ssl_CertificateError = al__import_attr("ssl", "CertificateError")) == NULL ||
        (st->ssl_CancelledError = al__import_attr("asyncio.exceptions", "CancelledError")) ==
            NULL ||
        (st->ssl_TimeoutError = al__import_attr("asyncio.exceptions", "TimeoutError")) == NULL ||
        (st->ssl_create_transport_context =
             al__import_attr("asyncio.sslproto", "_create_transport_context")) == NULL) {
        return -1;
    }
    st->SSLProtocolType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Proto_spec, NULL);
    if (st->SSLProtocolType == NULL || PyModule_AddType(module, st->SSLProtocolType) < 0) {
        return -1;
    }
    PyObject *base = al__import_attr("asyncio.transports", "Transport");
    if (base == NULL) {
        return -1;
    }
    st->SSLTransportType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Tr_spec, base);
    Py_DECREF(base);
    if (st->SSLTransportType == NULL) {
        return -1;
    }
    /* asyncio's _SSLProtocolTransport._sendfile_compatible */
    PyObject *modes = al__import_attr("asyncio.constants", "_SendfileMode");
    PyObject *fallback = modes ? PyObject_GetAttrString(modes, "FALLBACK") : NULL;
    Py_XDECREF(modes);
    if (fallback == NULL) {
        return -1;
    }
    int rc =
        PyObject_SetAttrString((PyObject *)st->SSLTransportType, "_sendfile_compatible", fallback);
    Py_DECREF(fallback);
    if (rc < 0) {
        return -1;
    }
    return PyModule_AddType(module, st->SSLTransportType);
}

int al__ssl_traverse(al_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->SSLProtocolType);
    Py_VISIT(st->SSLTransportType);
    Py_VISIT(st->ssl_MemoryBIO);
    Py_VISIT(st->ssl_SSLObject);
    Py_VISIT(st->ssl_SSLError);
    Py_VISIT(st->ssl_SSLWantReadError);
    Py_VISIT(st->ssl_SSLSyscallError);
    Py_VISIT(st->ssl_CertificateError);
    Py_VISIT(st->ssl_CancelledError);
    Py_VISIT(st->ssl_TimeoutError);
    Py_VISIT(st->ssl_create_transport_context);
    Py_VISIT(st->ssl_handshake_timeout_default);
    Py_VISIT(st->ssl_shutdown_timeout_default);
    return 0;
}

void al__ssl_clear(al_state *st)
{
    Py_CLEAR(st->SSLProtocolType);
    Py_CLEAR(st->SSLTransportType);
    Py_CLEAR(st->ssl_MemoryBIO);
    Py_CLEAR(st->ssl_SSLObject);
    Py_CLEAR(st->ssl_SSLError);
    Py_CLEAR(st->ssl_SSLWantReadError);
    Py_CLEAR(st->ssl_SSLSyscallError);
    Py_CLEAR(st->ssl_CertificateError);
    Py_CLEAR(st->ssl_CancelledError);
    Py_CLEAR(st->ssl_TimeoutError);
    Py_CLEAR(st->ssl_create_transport_context);
    Py_CLEAR(st->ssl_handshake_timeout_default);
    Py_CLEAR(st->ssl_shutdown_timeout_default);
    for (int i = 0; i < AL_SSL_NSTR; i++) {
        Py_CLEAR(st->ssl_str[i]);
    }
}
