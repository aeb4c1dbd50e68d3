/* What the socket, pipe and datagram transports share: asyncio's
   _FlowControlMixin (al_flow) and the reports made to the loop's exception
   handler. */
#include "internal.h"

#include <string.h>
#include <sys/uio.h>

/* --- flow control (_FlowControlMixin) -------------------------------------- */

void al__flow_set_default(al_flow *f, al_state *st)
{
    /* every transport's default: no two new ints per transport (an idle
       connection's memory) */
    Py_XSETREF(f->high_obj, Py_NewRef(st->write_high));
    Py_XSETREF(f->low_obj, Py_NewRef(st->write_low));
    f->high = 64.0 * 1024;
    f->low = 16.0 * 1024;
}

int al__flow_set_limits(al_flow *f, PyObject *high, PyObject *low)
{
    PyObject *h = NULL, *l = NULL;
    if (high == NULL || high == Py_None) {
        if (low == NULL || low == Py_None) {
            h = PyLong_FromLong(64L * 1024);
        }
        else {
            PyObject *four = PyLong_FromLong(4);
            h = four ? PyNumber_Multiply(four, low) : NULL;
            Py_XDECREF(four);
        }
    }
    else {
        h = Py_NewRef(high);
    }
    if (h == NULL) {
        return -1;
    }
    if (low == NULL || low == Py_None) {
        PyObject *four = PyLong_FromLong(4);
        l = four ? PyNumber_FloorDivide(h, four) : NULL;
        Py_XDECREF(four);
    }
    else {
        l = Py_NewRef(low);
    }
    if (l == NULL) {
        Py_DECREF(h);
        return -1;
    }
    /* not high >= low >= 0 */
    PyObject *zero = PyLong_FromLong(0);
    int ok = zero ? PyObject_RichCompareBool(h, l, Py_GE) : -1;
    if (ok == 1) {
        ok = PyObject_RichCompareBool(l, zero, Py_GE);
    }
    Py_XDECREF(zero);
    double hd = 0, ld = 0;
    if (ok == 0) {
        PyErr_Format(PyExc_ValueError, "high (%R) must be >= low (%R) must be >= 0", h, l);
    }
    else if (ok == 1) {
        hd = PyFloat_AsDouble(h);
        ld = hd == -1.0 && PyErr_Occurred() ? -1.0 : PyFloat_AsDouble(l);
    }
    if (ok != 1 || PyErr_Occurred()) {
        Py_DECREF(h);
        Py_DECREF(l);
        return -1;
    }
    Py_XSETREF(f->high_obj, h);
    Py_XSETREF(f->low_obj, l);
    f->high = hd;
    f->low = ld;
    return 0;
}

int al__flow_notify(al_state *st, LoopObject *loop, PyObject *transport, PyObject **protocol,
                    int pause)
{
    PyObject *proto = Py_NewRef(*protocol); /* set_protocol may replace it */
    PyObject *r = PyObject_VectorcallMethod(pause ? st->str_pause_writing : st->str_resume_writing,
                                            &proto, 1, NULL);
    Py_DECREF(proto);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return -1;
    }
    PyObject *exc = al__err_fetch();
    int rc = al__transport_report(
        loop, pause ? "protocol.pause_writing() failed" : "protocol.resume_writing() failed", exc,
        transport, *protocol);
    Py_DECREF(exc);
    return rc;
}

/* --- the write queue ----------------------------------------------------------- */

int al__wqueue_append(al_wqueue *w, PyObject *obj, const char *buf, Py_ssize_t len, Py_ssize_t off)
{
    PyObject *data;
    if (PyBytes_CheckExact(obj)) {
        data = Py_NewRef(obj);
    }
    else {
        data = PyBytes_FromStringAndSize(buf + off, len - off);
        off = 0;
        if (data == NULL) {
            return -1;
        }
    }
    if (w->head + w->len == w->cap) {
        if (w->head > 0) {
            memmove(w->q, w->q + w->head, (size_t)w->len * sizeof(al_wentry));
            w->head = 0;
        }
        else {
            Py_ssize_t cap = w->cap ? w->cap * 2 : 8;
            al_wentry *q = PyMem_Realloc(w->q, (size_t)cap * sizeof(al_wentry));
            if (q == NULL) {
                Py_DECREF(data);
                PyErr_NoMemory();
                return -1;
            }
            w->q = q;
            w->cap = cap;
        }
    }
    w->q[w->head + w->len].data = data;
    w->q[w->head + w->len].off = off;
    w->len++;
    w->bytes += PyBytes_GET_SIZE(data) - off;
    return 0;
}

void al__wqueue_clear(al_wqueue *w)
{
    al_wentry *q = w->q;
    Py_ssize_t head = w->head, len = w->len;
    w->head = w->len = w->bytes = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_DECREF(q[head + i].data);
    }
}

void al__wqueue_consume(al_wqueue *w, Py_ssize_t n)
{
    w->bytes -= n;
    while (n > 0 && w->len > 0) {
        al_wentry *e = &w->q[w->head];
        Py_ssize_t left = PyBytes_GET_SIZE(e->data) - e->off;
        if (left <= n) {
            n -= left;
            Py_DECREF(e->data);
            w->head++;
            w->len--;
        }
        else {
            e->off += n;
            n = 0;
        }
    }
    if (w->len == 0) {
        w->head = 0;
    }
}

int al__wqueue_iov(const al_wqueue *w, struct iovec *iov, int max)
{
    int cnt = w->len < max ? (int)w->len : max;
    for (int i = 0; i < cnt; i++) {
        const al_wentry *e = &w->q[w->head + i];
        iov[i].iov_base = PyBytes_AS_STRING(e->data) + e->off;
        iov[i].iov_len = (size_t)(PyBytes_GET_SIZE(e->data) - e->off);
    }
    return cnt;
}

/* --- reports ------------------------------------------------------------------ */

int al__transport_report(LoopObject *loop, const char *message, PyObject *exc, PyObject *transport,
                         PyObject *protocol)
{
    al_state *st = loop->state;
    PyObject *ctx = PyDict_New();
    PyObject *msg = PyUnicode_FromString(message);
    if (ctx == NULL || msg == NULL || PyDict_SetItem(ctx, st->str_message, msg) < 0 ||
        PyDict_SetItem(ctx, st->str_exception, exc) < 0 ||
        PyDict_SetItem(ctx, st->str_transport, transport) < 0 ||
        PyDict_SetItem(ctx, st->str_protocol, protocol ? protocol : Py_None) < 0) {
        Py_XDECREF(ctx);
        Py_XDECREF(msg);
        return -1;
    }
    Py_DECREF(msg);
    PyObject *r = al__loop_call_exception_handler(loop, ctx);
    Py_DECREF(ctx);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

void al__transport_callback_failed(LoopObject *loop, PyObject *transport)
{
    if (al__loop_stash_fatal_error(loop)) {
        return;
    }
    /* What asyncio's Handle._run would report for _read_ready. */
    PyObject *exc = al__err_fetch();
    if (exc == NULL) {
        exc = Py_NewRef(Py_None);
    }
    PyObject *ctx = Py_BuildValue("{sssOsO}", "message", "Exception in transport callback",
                                  "exception", exc, "transport", transport);
    PyObject *r = ctx ? al__loop_call_exception_handler(loop, ctx) : NULL;
    if (r == NULL && !al__loop_stash_fatal_error(loop)) {
        PyErr_WriteUnraisable(transport);
    }
    Py_XDECREF(r);
    Py_XDECREF(ctx);
    Py_DECREF(exc);
}
