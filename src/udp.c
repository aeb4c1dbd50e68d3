/* The datagram transport: asyncio's _SelectorDatagramTransport (with
   _SelectorTransport and _FlowControlMixin) in C, for UDP and Unix datagram
   sockets. loop._make_datagram_transport() builds it; the set-up of
   create_datagram_endpoint is asyncio's own (asyncloop/__init__.py).

   Why a uv_poll_t and direct recvfrom/sendto, not a uv_udp_t: the Python
   socket keeps owning the fd (get_extra_info('socket'), closed in
   _call_connection_lost), as in asyncio and stream.c; sendto() is tried
   at once and queued only on EAGAIN, with asyncio's error_received on the
   spot; and the same code serves AF_UNIX datagram sockets, which uv_udp_t
   does not take. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define MAX_SIZE ((size_t)256 * 1024) /* asyncio's max_size for recvfrom */
/* Datagrams read per readiness event: fewer polls under load; the loop
   still stops at the first EAGAIN or once reading is paused or closed. */
#define READ_BATCH 32
/* IPv4 and IPv6 sockets read up to RECV_BATCH datagrams per recvmmsg(),
   each into a slot that holds any of their datagrams (an IP packet is at
   most 64 KiB), so none is cut shorter than asyncio's recvfrom would. */
#define RECV_BATCH 16
#define RECV_SLOT ((size_t)65536)
/* 3.13 counts 8 bytes of header per queued datagram. */
#if PY_VERSION_HEX >= 0x030D0000
#define HEADER_BYTES 8
#else
#define HEADER_BYTES 0
#endif

/* One queued datagram: an owned bytes object and its address (None when
   the transport is connected and asyncio would pass None). */
typedef struct {
    PyObject *data;
    PyObject *addr;
} dentry;

typedef struct {
    PyObject_HEAD
    PyObject *extra; /* asyncio.BaseTransport's `_extra` slot: must be first */
    PyObject *weakreflist;
    al_state *st;
    LoopObject *loop; /* NULL once connection_lost ran */
    PyObject *sock;   /* owns the fd; NULL once closed */
    PyObject *protocol;
    PyObject *address; /* asyncio's _address (remote_addr), or NULL */
    PyObject *rctx;    /* the reader's context (al__ctx_copy) */
    PyObject *wctx;    /* the writer's: copied when sends start waiting */
    al_io io;
    al_tpoll tp; /* the poll handle (al__tpoll_*) */
    int fd;
    int family;
    Py_ssize_t conn_lost;
    al_flow flow; /* _FlowControlMixin */
    dentry *q;
    Py_ssize_t qhead, qlen, qcap;
    Py_ssize_t qbytes;
    /* The last peer read from: its sockaddr and its Python address, reused
       while datagrams come from it, and sendto(data, that_object) sends to
       it without converting again. */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    PyObject *peer_obj;
    /* Datagrams read by one recvmmsg() and not yet delivered, in order. */
    dentry pend[RECV_BATCH];
    int phead, plen;
    char narrow;       /* the last batch was cut short: read one at a time */
    char kick;         /* UV_WRITABLE armed to deliver pending datagrams at the next poll */
    char address_true; /* bool(_address) */
    char connected;    /* bool(extra['peername']): send(), not sendto() */
    char protocol_connected;
    char closing;
    char paused;
    char reading;
    char writing;
    char detached;
    char registered;
    char read_deferred;  /* a _read_ready call is queued */
    char write_deferred; /* a _write_ready handle is queued (al__loop_defer) */
} UdpObject;

#define UDP_FROM_IO(p) ((UdpObject *)((char *)(p)-offsetof(UdpObject, io)))

static const char READ_ERROR[] = "Fatal read error on datagram transport";
static const char WRITE_ERROR[] = "Fatal write error on datagram transport";

static int write_ready(UdpObject *self);

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

static PyObject *none_or_null(int rc)
{
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

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

static int call_soon_method(UdpObject *self, PyObject *name, PyObject *arg)
{
    PyObject *meth = PyObject_GetAttr((PyObject *)self, name);
    if (meth == NULL) {
        return -1;
    }
    int rc = call_soon(self->loop, meth, arg, NULL);
    Py_DECREF(meth);
    return rc;
}

/* protocol.<name>(args...): the protocol is held during the call. */
static PyObject *call_protocol(UdpObject *self, PyObject *name, PyObject *a1, PyObject *a2)
{
    PyObject *proto = Py_NewRef(self->protocol);
    PyObject *argv[3] = {proto, a1, a2};
    PyObject *r =
        PyObject_VectorcallMethod(name, argv, a1 == NULL ? 1 : (a2 == NULL ? 2 : 3), NULL);
    Py_DECREF(proto);
    return r;
}

/* logger.debug(fmt, self[, message], exc_info=exc), as asyncio logs. */
static int log_debug(UdpObject *self, const char *fmt, const char *message, PyObject *exc)
{
    al_state *st = self->st;
    PyObject *f = PyUnicode_FromString(fmt);
    PyObject *m = message ? PyUnicode_FromString(message) : NULL;
    PyObject *kw = exc ? PyTuple_Pack(1, st->str_exc_info) : NULL;
    PyObject *r = NULL;
    if (f != NULL && (message == NULL || m != NULL) && (exc == NULL || kw != NULL)) {
        PyObject *argv[5] = {st->logger, f, (PyObject *)self, m, exc};
        size_t n = message ? 4 : 3;
        if (exc != NULL) {
            argv[n] = exc;
        }
        r = PyObject_VectorcallMethod(st->str_debug, argv, n, kw);
    }
    Py_XDECREF(f);
    Py_XDECREF(m);
    Py_XDECREF(kw);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* --- the libuv handle ------------------------------------------------------ */

static void poll_release(UdpObject *self)
{
    al__tpoll_release(&self->tp, self->loop, &self->io);
}

static void poll_stop(UdpObject *self)
{
    al__tpoll_close(&self->tp, self->loop, &self->io);
}

static void on_poll(uv_poll_t *handle, int status, int events);

static int poll_update(UdpObject *self)
{
    if (self->detached || self->loop == NULL) {
        poll_stop(self);
        return 0;
    }
    int events =
        (self->reading ? UV_READABLE : 0) | (self->writing || self->kick ? UV_WRITABLE : 0);
    return al__tpoll_update(&self->tp, self->loop, (PyObject *)self, &self->io, self->fd, events,
                            on_poll);
}

static int add_interest(UdpObject *self, char *flag)
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

static int remove_reader(UdpObject *self)
{
    self->reading = 0;
    return poll_update(self);
}

static int remove_writer(UdpObject *self)
{
    self->writing = 0;
    self->write_deferred = 0; /* asyncio cancels the queued handle */
    return poll_update(self);
}

static void udp_loop_closing(al_io *io)
{
    UdpObject *self = UDP_FROM_IO(io);
    self->detached = 1;
    poll_stop(self); /* may free self */
}

/* --- the send queue -------------------------------------------------------- */

static void queue_clear(UdpObject *self)
{
    dentry *q = self->q;
    Py_ssize_t head = self->qhead, len = self->qlen;
    self->qhead = self->qlen = self->qbytes = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_DECREF(q[head + i].data);
        Py_DECREF(q[head + i].addr);
    }
}

/* Steals data and addr. */
/* Datagrams read ahead and not delivered: dropped with the socket, as the
   kernel drops what asyncio never read. */
static void pending_clear(UdpObject *self)
{
    int head = self->phead, len = self->plen;
    self->phead = self->plen = 0;
    self->kick = 0;
    for (int i = head; i < head + len; i++) {
        Py_DECREF(self->pend[i].data);
        Py_DECREF(self->pend[i].addr);
    }
}

static int queue_push(UdpObject *self, PyObject *data, PyObject *addr)
{
    if (self->qhead + self->qlen == self->qcap) {
        if (self->qhead > 0) {
            memmove(self->q, self->q + self->qhead, (size_t)self->qlen * sizeof(dentry));
            self->qhead = 0;
        }
        else {
            Py_ssize_t cap = self->qcap ? self->qcap * 2 : 8;
            dentry *q = PyMem_Realloc(self->q, (size_t)cap * sizeof(dentry));
            if (q == NULL) {
                Py_DECREF(data);
                Py_DECREF(addr);
                PyErr_NoMemory();
                return -1;
            }
            self->q = q;
            self->qcap = cap;
        }
    }
    self->q[self->qhead + self->qlen].data = data;
    self->q[self->qhead + self->qlen].addr = addr;
    self->qlen++;
    self->qbytes += PyBytes_GET_SIZE(data) + HEADER_BYTES;
    return 0;
}

/* --- closing ----------------------------------------------------------------- */

static int force_close(UdpObject *self, PyObject *exc)
{
    if (self->conn_lost) {
        return 0;
    }
    if (self->qlen > 0) {
        Py_ssize_t size = self->qbytes;
        queue_clear(self);
#if PY_VERSION_HEX >= 0x030B0000
        /* asyncio's _force_close clears the deque, not _buffer_size. */
        self->qbytes = size;
#else
        (void)size;
#endif
        if (remove_writer(self) < 0) {
            return -1;
        }
    }
    pending_clear(self);
    if (!self->closing) {
        self->closing = 1;
        if (remove_reader(self) < 0) {
            return -1;
        }
    }
    self->conn_lost++;
    return call_soon_method(self, self->st->str_call_connection_lost, exc ? exc : Py_None);
}

static int fatal_error(UdpObject *self, PyObject *exc, const char *message)
{
    if (self->loop == NULL) {
        return 0;
    }
    if (PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_OSError)) {
        if (self->loop->debug && log_debug(self, "%r: %s", message, exc) < 0) {
            return -1;
        }
    }
    else if (al__transport_report(self->loop, message, exc, (PyObject *)self, self->protocol) < 0) {
        return -1;
    }
    return force_close(self, exc);
}

static int udp_close(UdpObject *self)
{
    if (self->closing) {
        return 0;
    }
    self->closing = 1;
    pending_clear(self);
    if (remove_reader(self) < 0) {
        return -1;
    }
    if (self->qlen == 0) {
        self->conn_lost++;
        if (remove_writer(self) < 0) {
            return -1;
        }
        return call_soon_method(self, self->st->str_call_connection_lost, Py_None);
    }
    return 0;
}

static int connection_lost_cleanup(UdpObject *self)
{
    int rc = 0;
    pending_clear(self);
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
        Py_DECREF(sock);
    }
    Py_CLEAR(self->protocol);
    LoopObject *loop = self->loop;
    self->loop = NULL;
    Py_XDECREF(loop);
    return rc;
}

static PyObject *Udp_call_connection_lost(UdpObject *self, PyObject *exc)
{
    if (self->sock == NULL && self->loop == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *err = NULL;
    if (self->protocol_connected && self->protocol != NULL) {
        PyObject *r = call_protocol(self, self->st->str_connection_lost, exc, NULL);
        if (r == NULL) {
            err = al__err_fetch();
        }
        Py_XDECREF(r);
    }
    if (connection_lost_cleanup(self) < 0) {
        Py_XDECREF(err);
        return NULL;
    }
    if (err != NULL) {
        al__err_restore(err);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- addresses ---------------------------------------------------------------- */

/* The address object socket.recvfrom() would return for sa (the socket
   module's makesockaddr), for the families read here. */
static PyObject *sockaddr_to_obj(const struct sockaddr_storage *sa, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (len == 0) {
        Py_RETURN_NONE;
    }
    switch (sa->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        /* inet_ntop only, as makesockaddr: a scope is in the tuple's last
           item, never a "%eth0" in the host (getaddrinfo("fe80::1%lo", ...)
           gives ('fe80::1', port, 0, 1)) */
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo), (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)sa;
        size_t plen = (size_t)len - offsetof(struct sockaddr_un, sun_path);
        if ((size_t)len <= offsetof(struct sockaddr_un, sun_path)) {
            Py_RETURN_NONE; /* an unbound sender */
        }
        if (a->sun_path[0] == 0) { /* Linux abstract namespace */
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)plen);
        }
        return PyUnicode_DecodeFSDefaultAndSize(a->sun_path,
                                                (Py_ssize_t)strnlen(a->sun_path, plen));
    }
    default:
        PyErr_SetString(PyExc_OSError, "unsupported address family");
        return NULL;
    }
}

static int port_of(PyObject *o, unsigned long max, unsigned long *out)
{
    if (!PyLong_CheckExact(o)) {
        return 0;
    }
    unsigned long v = PyLong_AsUnsignedLong(o);
    if (v == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (v > max) {
        return 0;
    }
    *out = v;
    return 1;
}

/* getsockaddrarg() for the plain forms of family fam: a numeric IPv4
   (host, port) or IPv6 (host, port[, flowinfo[, scope_id]]): 1 with *ss,
   or 0 for anything else, which goes to the socket's own method (names,
   '', '<broadcast>', Unix paths, errors: its resolution and messages). */
int al__udp_numeric_sockaddr(int fam, PyObject *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!PyTuple_CheckExact(addr)) {
        return 0;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(addr);
    if (n < 2 || (fam == AF_INET && n != 2) || (fam == AF_INET6 && n > 4) ||
        (fam != AF_INET && fam != AF_INET6)) {
        return 0;
    }
    PyObject *host = PyTuple_GET_ITEM(addr, 0); /* borrowed */
    if (!PyUnicode_CheckExact(host)) {
        return 0;
    }
    Py_ssize_t hlen;
    const char *h = PyUnicode_AsUTF8AndSize(host, &hlen);
    if (h == NULL) {
        PyErr_Clear();
        return 0;
    }
    unsigned long port, flow = 0, scope = 0;
    /* a NUL inside: inet_pton would stop there, socket.sendto raises */
    if (hlen >= INET6_ADDRSTRLEN || strlen(h) != (size_t)hlen ||
        !port_of(PyTuple_GET_ITEM(addr, 1), 0xffff, &port)) {
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (fam == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, h, &a->sin_addr) != 1) {
            return 0;
        }
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *len = sizeof(*a);
        return 1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    if ((n > 2 && !port_of(PyTuple_GET_ITEM(addr, 2), 0xfffff, &flow)) ||
        (n > 3 && !port_of(PyTuple_GET_ITEM(addr, 3), 0xffffffffUL, &scope)) ||
        inet_pton(AF_INET6, h, &a->sin6_addr) != 1) {
        return 0;
    }
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    a->sin6_flowinfo = htonl((uint32_t)flow);
    a->sin6_scope_id = (uint32_t)scope;
    *len = sizeof(*a);
    return 1;
}

/* addr as a sockaddr: the last peer's, or al__udp_numeric_sockaddr's. */
static int obj_to_sockaddr(UdpObject *self, PyObject *addr, struct sockaddr_storage *ss,
                           socklen_t *len)
{
    if (addr == self->peer_obj && addr != NULL) {
        memcpy(ss, &self->peer, self->peer_len);
        *len = self->peer_len;
        return 1;
    }
    return al__udp_numeric_sockaddr(self->family, addr, ss, len);
}

/* --- sending ----------------------------------------------------------------- */

enum { SENT = 0, WOULD_BLOCK = 1, OS_ERROR = 2, OTHER_ERROR = 3 };

/* Sends one datagram as asyncio's sock.send(data) (connected) or
   sock.sendto(data, addr). Returns SENT or WOULD_BLOCK; OS_ERROR or
   OTHER_ERROR with the exception in *exc; -1 for SystemExit and
   KeyboardInterrupt, left raised. */
static int send_one(UdpObject *self, PyObject *data, const char *buf, Py_ssize_t len,
                    PyObject *addr, PyObject **exc)
{
    ssize_t n;
    if (self->sock == NULL) {
        /* asyncio's self._sock is None once connection_lost ran: its
           send raises, and so does _fatal_error with self._loop None; the
           fd number may belong to another file by now. */
        PyErr_SetString(PyExc_AttributeError,
                        "'NoneType' object has no attribute 'call_exception_handler'");
        return -1;
    }
    if (self->connected) {
        n = send(self->fd, buf, (size_t)len, 0);
    }
    else {
        struct sockaddr_storage ss;
        socklen_t sslen;
        if (addr == NULL || !obj_to_sockaddr(self, addr, &ss, &sslen)) {
            /* The socket module converts (and resolves) it, with its errors. */
            PyObject *r =
                PyObject_CallMethod(self->sock, "sendto", "OO", data, addr ? addr : Py_None);
            if (r != NULL) {
                Py_DECREF(r);
                return SENT;
            }
            if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
                PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                PyErr_Clear();
                return WOULD_BLOCK;
            }
            if (is_exit_error()) {
                return -1;
            }
            int os = PyErr_ExceptionMatches(PyExc_OSError);
            *exc = al__err_fetch();
            return os ? OS_ERROR : OTHER_ERROR;
        }
        /* socket.sendto's audit event, which a hook may turn into an error */
        if (PySys_Audit("socket.sendto", "OO", self->sock, addr) < 0) {
            if (is_exit_error()) {
                return -1;
            }
            int os = PyErr_ExceptionMatches(PyExc_OSError);
            *exc = al__err_fetch();
            return os ? OS_ERROR : OTHER_ERROR;
        }
        n = sendto(self->fd, buf, (size_t)len, 0, (struct sockaddr *)&ss, sslen);
    }
    al__metrics_bytes_out(self->loop, n);
    if (n >= 0) {
        return SENT;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
        return WOULD_BLOCK;
    }
    *exc = errno_error(err);
    return OS_ERROR;
}

/* protocol.error_received(exc) */
static int error_received(UdpObject *self, PyObject *exc)
{
    PyObject *r = call_protocol(self, self->st->str_error_received, exc, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* What send_one's failure calls for in asyncio's except clauses. */
static int send_failed(UdpObject *self, int how, PyObject *exc)
{
    int rc;
    if (how == OS_ERROR) {
        rc = error_received(self, exc);
    }
    else {
        rc = fatal_error(self, exc, WRITE_ERROR);
    }
    Py_DECREF(exc);
    return rc;
}

/* asyncio's _sendto_ready */
static int write_ready(UdpObject *self)
{
    while (self->qlen > 0) {
        dentry e = self->q[self->qhead];
        self->qhead++;
        self->qlen--;
        self->qbytes -= PyBytes_GET_SIZE(e.data) + HEADER_BYTES;
        PyObject *exc = NULL;
        PyObject *addr = e.addr == Py_None ? NULL : e.addr;
        int how =
            send_one(self, e.data, PyBytes_AS_STRING(e.data), PyBytes_GET_SIZE(e.data), addr, &exc);
        if (how == WOULD_BLOCK) {
            /* Back in front, to try again later. */
            self->qhead--;
            self->qlen++;
            self->qbytes += PyBytes_GET_SIZE(e.data) + HEADER_BYTES;
            break;
        }
        Py_DECREF(e.data);
        Py_DECREF(e.addr);
        if (self->qlen == 0) {
            self->qhead = 0;
        }
        if (how == -1) {
            return -1;
        }
        if (how != SENT) {
            return send_failed(self, how, exc);
        }
    }
    if (al__flow_maybe_resume(&self->flow, self->qbytes, self->st, self->loop, (PyObject *)self,
                              &self->protocol) < 0) {
        return -1;
    }
    if (self->qlen == 0) {
        if (remove_writer(self) < 0) {
            return -1;
        }
        if (self->closing) {
            PyObject *r = Udp_call_connection_lost(self, Py_None);
            Py_XDECREF(r);
            return r ? 0 : -1;
        }
    }
    return 0;
}

static PyObject *Udp_sendto(UdpObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    PyObject *data = NULL, *addr = NULL;
    if (kwnames == NULL && nargs >= 1 && nargs <= 2) {
        data = args[0];
        addr = nargs == 2 ? args[1] : NULL;
    }
    else {
        Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
        if (nargs > 2) {
            PyErr_Format(PyExc_TypeError,
                         "sendto() takes from 2 to 3 positional arguments but %zd were given",
                         nargs + 1);
            return NULL;
        }
        data = nargs > 0 ? args[0] : NULL;
        addr = nargs > 1 ? args[1] : NULL;
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k); /* borrowed */
            PyObject **slot;
            if (PyUnicode_CompareWithASCIIString(key, "data") == 0) {
                slot = &data;
            }
            else if (PyUnicode_CompareWithASCIIString(key, "addr") == 0) {
                slot = &addr;
            }
            else {
                PyErr_Format(PyExc_TypeError, "sendto() got an unexpected keyword argument '%S'",
                             key);
                return NULL;
            }
            if (*slot != NULL) {
                PyErr_Format(PyExc_TypeError, "sendto() got multiple values for argument '%S'",
                             key);
                return NULL;
            }
            *slot = args[nargs + k];
        }
        if (data == NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "sendto() missing 1 required positional argument: 'data'");
            return NULL;
        }
    }
    if (addr == Py_None) {
        addr = NULL;
    }
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(data), "__name__");
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not %R",
                         name);
            Py_DECREF(name);
        }
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int rc = 0;
#if PY_VERSION_HEX < 0x030D0000
    if (view.len == 0) {
        goto done;
    }
#endif
    if (self->address_true) {
        if (addr != NULL) {
            int eq = PyObject_RichCompareBool(addr, self->address, Py_EQ);
            if (eq <= 0) {
                if (eq == 0) {
                    PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %S",
                                 self->address);
                }
                rc = -1;
                goto done;
            }
        }
        addr = self->address;
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
    }
    if (self->qlen == 0) {
        PyObject *exc = NULL;
        int how = send_one(self, data, view.buf, view.len, addr, &exc);
        if (how == SENT) {
            goto done;
        }
        if (how == -1) {
            rc = -1;
            goto done;
        }
        if (how != WOULD_BLOCK) {
            rc = send_failed(self, how, exc);
            goto done;
        }
        if (al__ctx_copy(&self->wctx) < 0 || add_interest(self, &self->writing) < 0) {
            rc = -1;
            goto done;
        }
    }
    /* Queued as immutable bytes, as asyncio's bytes(data). */
    PyObject *copy =
        PyBytes_CheckExact(data) ? Py_NewRef(data) : PyBytes_FromStringAndSize(view.buf, view.len);
    if (copy == NULL) {
        rc = -1;
        goto done;
    }
    rc = queue_push(self, copy, Py_NewRef(addr ? addr : Py_None));
    if (rc == 0) {
        rc = al__flow_maybe_pause(&self->flow, self->qbytes, self->st, self->loop, (PyObject *)self,
                                  &self->protocol);
    }
done:
    PyBuffer_Release(&view);
    return none_or_null(rc);
}

/* --- the read path ------------------------------------------------------------ */

/* socket.recvfrom(max_size) through the socket, for families not read
   here in C. */
static int read_one_generic(UdpObject *self, PyObject **data, PyObject **addr)
{
    PyObject *r = PyObject_CallMethod(self->sock, "recvfrom", "n", (Py_ssize_t)MAX_SIZE);
    if (r == NULL) {
        return -1;
    }
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "recvfrom() did not return (data, address)");
        return -1;
    }
    *data = Py_NewRef(PyTuple_GET_ITEM(r, 0));
    *addr = Py_NewRef(PyTuple_GET_ITEM(r, 1));
    Py_DECREF(r);
    return 0;
}

/* The address object of a datagram just read: the last peer's, reused
   while datagrams come from it. */
static PyObject *peer_addr(UdpObject *self, const struct sockaddr_storage *ss, socklen_t sslen)
{
    if (self->peer_obj != NULL && sslen == self->peer_len && memcmp(ss, &self->peer, sslen) == 0) {
        return Py_NewRef(self->peer_obj);
    }
    PyObject *addr = sockaddr_to_obj(ss, sslen);
    if (addr != NULL && sslen <= (socklen_t)sizeof(self->peer)) {
        memcpy(&self->peer, ss, sslen);
        self->peer_len = sslen;
        Py_XSETREF(self->peer_obj, Py_NewRef(addr));
    }
    return addr;
}

/* A failed read: asyncio's except clauses around recvfrom. */
static int read_failed(UdpObject *self, int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) {
        return 0;
    }
    PyObject *exc = errno_error(err);
    int rc = error_received(self, exc);
    Py_DECREF(exc);
    return rc < 0 ? -1 : 0;
}

/* One recvmmsg() into the loop's slots; what it read becomes pending, as
   bytes and addresses (the slots are the loop's, shared). 1 if some
   datagram was read, 0 if none (nothing to read, or an error handled as
   asyncio does), -1 on a raised error. The kernel keeps an error met
   after the first datagram for the next call, so datagrams and errors
   come in the order successive recvfrom() calls would give them. */
static int refill(UdpObject *self)
{
    LoopObject *loop = self->loop;
    if (loop->dgram_buf == NULL) {
        loop->dgram_buf = PyMem_RawMalloc(RECV_BATCH * RECV_SLOT);
        if (loop->dgram_buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    unsigned int vlen = self->narrow ? 1 : RECV_BATCH;
    struct mmsghdr mm[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_storage ss[RECV_BATCH];
    for (unsigned int i = 0; i < vlen; i++) {
        iov[i].iov_base = loop->dgram_buf + i * RECV_SLOT;
        iov[i].iov_len = RECV_SLOT;
        ss[i].ss_family = AF_UNSPEC;
        memset(&mm[i].msg_hdr, 0, sizeof(mm[i].msg_hdr));
        mm[i].msg_hdr.msg_name = &ss[i];
        mm[i].msg_hdr.msg_namelen = sizeof(ss[i]);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(self->fd, mm, vlen, 0, NULL);
    if (n <= 0) {
        return n == 0 ? 0 : read_failed(self, errno);
    }
    for (int i = 0; i < n; i++) {
        al__metrics_bytes_in(loop, (ssize_t)mm[i].msg_len);
        PyObject *data = PyBytes_FromStringAndSize(iov[i].iov_base, (Py_ssize_t)mm[i].msg_len);
        PyObject *addr = data ? peer_addr(self, &ss[i], mm[i].msg_hdr.msg_namelen) : NULL;
        if (addr == NULL) {
            Py_XDECREF(data);
            return -1;
        }
        self->pend[self->plen++] = (dentry){data, addr};
    }
    return 1;
}

/* One _read_ready: 1 if a datagram (or an error) was handled and another
   may follow, 0 when there is nothing to read, -1 on a raised error. */
static int read_one(UdpObject *self)
{
    LoopObject *loop = self->loop;
    PyObject *data, *addr;
    if (self->plen > 0 || self->family == AF_INET || self->family == AF_INET6) {
        if (self->plen == 0) {
            int rc = refill(self);
            if (rc <= 0) {
                return rc;
            }
        }
        dentry e = self->pend[self->phead];
        self->phead = --self->plen == 0 ? 0 : self->phead + 1;
        data = e.data;
        addr = e.addr;
    }
    else if (self->family == AF_UNIX) {
        /* Unix datagrams may be larger than a slot: one at a time. */
        if (loop->stream_read_buf == NULL) {
            loop->stream_read_buf = PyMem_RawMalloc(MAX_SIZE);
            if (loop->stream_read_buf == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        ss.ss_family = AF_UNSPEC;
        ssize_t n =
            recvfrom(self->fd, loop->stream_read_buf, MAX_SIZE, 0, (struct sockaddr *)&ss, &sslen);
        al__metrics_bytes_in(loop, n);
        if (n < 0) {
            return read_failed(self, errno);
        }
        data = PyBytes_FromStringAndSize(loop->stream_read_buf, n);
        if (data == NULL) {
            return -1;
        }
        addr = peer_addr(self, &ss, sslen);
        if (addr == NULL) {
            Py_DECREF(data);
            return -1;
        }
    }
    else if (read_one_generic(self, &data, &addr) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError)) {
            PyErr_Clear();
            return 0;
        }
        if (is_exit_error()) {
            return -1;
        }
        int os = PyErr_ExceptionMatches(PyExc_OSError);
        PyObject *exc = al__err_fetch();
        int rc = os ? error_received(self, exc) : fatal_error(self, exc, READ_ERROR);
        Py_DECREF(exc);
        return rc < 0 ? -1 : 0;
    }
    PyObject *r = call_protocol(self, self->st->str_datagram_received, data, addr);
    Py_DECREF(data);
    Py_DECREF(addr);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 1;
}

/* asyncio reads one datagram per _read_ready, and what datagram_received
   schedules runs before the next one is read: so the batch ends as soon
   as a callback is queued (never, in a plain echo server). Datagrams read
   ahead by recvmmsg() wait in pend[] and are handed out when asyncio would
   have read them: from the poll phase (on_poll, from_poll), behind what is
   queued now; from a callback, at the next poll phase (the kick), as
   asyncio's selector would report the socket readable again. A transport
   whose batches are cut short reads one datagram at a time, until a batch
   is not. */
static int read_ready(UdpObject *self, int from_poll)
{
    int rc = 0;
    for (int i = 0;; i++) {
        if (self->conn_lost || !self->reading || (i > 0 && self->loop->ready.len > 0)) {
            break;
        }
        if (i >= READ_BATCH && self->plen == 0) {
            self->narrow = 0;
            break;
        }
        rc = read_one(self);
        if (rc <= 0) {
            if (rc == 0) {
                self->narrow = 0;
            }
            break;
        }
    }
    if (self->plen == 0 || self->conn_lost || !self->reading) {
        return rc < 0 ? -1 : 0;
    }
    self->narrow = 1;
    PyObject *exc = rc < 0 ? al__err_fetch() : NULL;
    int rc2;
    if (from_poll) {
        rc2 = 0;
        if (!self->read_deferred) {
            self->read_deferred = 1;
            rc2 = call_soon_method(self, self->st->str_read_ready, NULL);
        }
    }
    else {
        rc2 = self->kick ? 0 : add_interest(self, &self->kick);
    }
    if (exc != NULL) {
        if (rc2 < 0) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        al__err_restore(exc);
    }
    return rc < 0 || rc2 < 0 ? -1 : 0;
}

/* f(self) in ctx, as asyncio's reader or writer Handle runs it. */
static inline int in_ctx(UdpObject *self, PyObject *ctx, int (*f)(UdpObject *))
{
    int rc = 0;
    PyObject *entered = al__ctx_enter(ctx, &rc);
    return al__ctx_leave(entered, rc == 0 ? f(self) : rc);
}

/* read_ready from the poll phase, or from the handle that deferred it */
static int read_polled(UdpObject *self)
{
    return read_ready(self, 1);
}

static int read_queued(UdpObject *self)
{
    return read_ready(self, 0);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    UdpObject *self = handle->data;
    if (self == NULL) {
        return;
    }
    LoopObject *loop = self->loop;
    al__loop_hold_gil(loop);
    Py_INCREF(self);
    int rc = 0;
    if (status < 0) {
        /* libuv stopped the handle on POLLERR; started again below if still
           wanted. Selectors report the fd readable and writable: asyncio
           runs the reader's handle, whose recvfrom() raises the socket's
           pending error (an ICMP error on a connected socket:
           ECONNREFUSED) into error_received, then the writer's. */
        self->tp.events = 0;
        int closed = fcntl(self->fd, F_GETFD) < 0 && errno == EBADF;
        if (closed) {
            /* The fd was closed under the transport: epoll would drop it
               and never report it again; so do we. */
            poll_release(self);
        }
        else if (loop->ready_at_poll > 0 && (self->reading || self->writing)) {
            /* behind the handles queued before the poll, which see the
               error still pending, as asyncio's do */
            if (self->reading && !self->read_deferred) {
                self->read_deferred = 1;
                rc = call_soon_method(self, self->st->str_read_ready, NULL);
            }
            if (rc == 0 && self->writing) {
                rc = al__loop_defer(loop, (PyObject *)self, self->st->str_write_ready, self->wctx,
                                    &self->write_deferred);
            }
        }
        else {
            /* The pending error: what the reader's recvfrom() raises, or
               the writer's send() when not reading (write_ready takes it). */
            int err = 0;
            if (self->reading || !self->writing) {
                socklen_t len = sizeof(err);
                if (getsockopt(self->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
                    err = errno;
                }
            }
            if (self->reading) {
                PyObject *ctx = al__ctx_enter(self->rctx, &rc);
                if (rc == 0 && err != 0) {
                    PyObject *exc = errno_error(err);
                    rc = error_received(self, exc);
                    Py_DECREF(exc);
                }
                else if (rc == 0) {
                    rc = read_ready(self, 1);
                }
                al__ctx_exit(ctx, &rc);
            }
            if (rc == 0 && self->writing && !self->conn_lost) {
                rc = in_ctx(self, self->wctx, write_ready);
            }
        }
        if (rc == 0 && !closed && self->tp.box != NULL && self->tp.events == 0) {
            rc = poll_update(self);
        }
    }
    else {
        int kicked = self->kick != 0;
        self->kick = 0;
        if (((events & UV_READABLE) || (kicked && self->plen > 0)) && self->reading) {
            if (loop->ready_at_poll > 0) {
                /* Callbacks queued before the poll run first in asyncio,
                   which queues _read_ready behind them: so do we (only
                   then; with nothing queued, the datagram is read now).
                   What an earlier event of this poll queued runs after. */
                if (!self->read_deferred) {
                    self->read_deferred = 1;
                    rc = call_soon_method(self, self->st->str_read_ready, NULL);
                }
            }
            else {
                rc = in_ctx(self, self->rctx, read_polled);
            }
        }
        if (rc == 0 && (events & UV_WRITABLE) && self->writing && !self->conn_lost &&
            loop->ready_at_poll > 0) {
            /* asyncio's _sendto_ready handle, behind the queued ones */
            rc = al__loop_defer(loop, (PyObject *)self, self->st->str_write_ready, self->wctx,
                                &self->write_deferred);
        }
        else if (rc == 0 && (events & UV_WRITABLE) && self->writing && !self->conn_lost) {
            rc = in_ctx(self, self->wctx, write_ready);
        }
        if (rc == 0 && kicked && !self->kick) {
            rc = poll_update(self);
        }
    }
    if (rc < 0) {
        al__transport_callback_failed(loop, (PyObject *)self);
    }
    Py_DECREF(self);
}

/* --- Python methods ------------------------------------------------------------ */

/* The read on_poll deferred behind callbacks already queued. */
static PyObject *Udp_read_ready(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    self->read_deferred = 0;
    if (self->loop == NULL || !self->reading) {
        Py_RETURN_NONE;
    }
    /* the reader's own context, not this handle's copy of it */
    return none_or_null(in_ctx(self, self->rctx, read_queued));
}

/* The write on_poll deferred (al__loop_defer: run in the writer's context):
   nothing once the writer was removed. */
static PyObject *Udp_write_ready(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->write_deferred) {
        Py_RETURN_NONE;
    }
    self->write_deferred = 0;
    if (self->loop == NULL || !self->writing || self->conn_lost) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self);
    int rc = write_ready(self);
    Py_DECREF(self);
    return none_or_null(rc);
}

static PyObject *Udp_close(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return none_or_null(udp_close(self));
}

static PyObject *Udp_abort(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return none_or_null(self->loop ? force_close(self, NULL) : 0);
}

static PyObject *Udp_force_close_meth(UdpObject *self, PyObject *exc)
{
    return none_or_null(self->loop ? force_close(self, exc == Py_None ? NULL : exc) : 0);
}

static PyObject *Udp_is_closing(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closing);
}

#if PY_VERSION_HEX >= 0x030B0000
static PyObject *Udp_is_reading(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(!self->closing && !self->paused);
}

static PyObject *Udp_pause_reading(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 1;
    if (self->loop == NULL) {
        Py_RETURN_NONE;
    }
    if (remove_reader(self) < 0 ||
        (self->loop->debug && log_debug(self, "%r pauses reading", NULL, NULL) < 0)) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Udp_resume_reading(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->paused) {
        Py_RETURN_NONE;
    }
    self->paused = 0;
    /* Datagrams read ahead come at the next poll, as the socket's would. */
    self->kick = (char)(self->plen > 0);
    if (al__ctx_copy(&self->rctx) < 0 || add_interest(self, &self->reading) < 0 ||
        (self->loop->debug && log_debug(self, "%r resumes reading", NULL, NULL) < 0)) {
        return NULL;
    }
    Py_RETURN_NONE;
}
#endif

/* Scheduled by the constructor after connection_made: asyncio's
   _add_reader(fd, _read_ready), which does nothing unless is_reading(). */
static PyObject *Udp_start_reading(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->paused) {
        Py_RETURN_NONE;
    }
    return none_or_null(add_interest(self, &self->reading));
}

static PyObject *Udp_get_write_buffer_size(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromSsize_t(self->qbytes);
}

static PyObject *Udp_get_write_buffer_limits(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyTuple_Pack(2, self->flow.low_obj, self->flow.high_obj);
}

/* f(a=None, b=None)-style arguments: positional, then keywords. */
static int bind2(const char *fname, const char *n0, const char *n1, int required,
                 PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    const char *names[2] = {n0, n1};
    out[0] = out[1] = NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from %d to 3 positional arguments but %zd were given", fname,
                     required + 1, nargs + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k); /* borrowed */
        int i = PyUnicode_CompareWithASCIIString(key, n0) == 0
                    ? 0
                    : (PyUnicode_CompareWithASCIIString(key, n1) == 0 ? 1 : -1);
        if (i < 0) {
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
    if (required && out[0] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%s'", fname,
                     n0);
        return -1;
    }
    return 0;
}

static PyObject *Udp_set_write_buffer_limits(UdpObject *self, PyObject *const *args,
                                             Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *a[2];
    if (bind2("set_write_buffer_limits", "high", "low", 0, args, nargs, kwnames, a) < 0 ||
        al__flow_set_limits(&self->flow, a[0], a[1]) < 0) {
        return NULL;
    }
    if (self->loop == NULL || self->protocol == NULL) {
        Py_RETURN_NONE;
    }
    return none_or_null(al__flow_maybe_pause(&self->flow, self->qbytes, self->st, self->loop,
                                             (PyObject *)self, &self->protocol));
}

static PyObject *Udp_get_extra_info(UdpObject *self, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    PyObject *a[2];
    if (bind2("get_extra_info", "name", "default", 1, args, nargs, kwnames, a) < 0) {
        return NULL;
    }
    PyObject *dflt = a[1] ? a[1] : Py_None;
    if (self->extra == NULL) {
        return Py_NewRef(dflt);
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

static PyObject *Udp_set_protocol(UdpObject *self, PyObject *protocol)
{
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->protocol_connected = 1;
    Py_RETURN_NONE;
}

static PyObject *Udp_get_protocol(UdpObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->protocol ? self->protocol : Py_None);
}

static PyObject *Udp_repr(UdpObject *self)
{
    const char *state = self->sock == NULL ? " closed" : (self->closing ? " closing" : "");
    PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "__name__");
    if (name == NULL) {
        return NULL;
    }
    PyObject *res;
    if (self->loop != NULL && !self->loop->closed) {
        res = PyUnicode_FromFormat("<%U%s fd=%d read=%s write=<%s, bufsize=%zd>>", name, state,
                                   self->fd, self->reading ? "polling" : "idle",
                                   self->writing ? "polling" : "idle", self->qbytes);
    }
    else {
        res = PyUnicode_FromFormat("<%U%s fd=%d>", name, state, self->fd);
    }
    Py_DECREF(name);
    return res;
}

static PyObject *Udp_get_sock(UdpObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->sock ? self->sock : Py_None);
}

static PyObject *Udp_get_sock_fd(UdpObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->fd);
}

static PyObject *Udp_get_loop(UdpObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->loop ? (PyObject *)self->loop : Py_None);
}

static PyObject *Udp_get_address(UdpObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->address ? self->address : Py_None);
}

static PyObject *Udp_get_protocol_paused(UdpObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->flow.paused);
}

static PyObject *Udp_get_closing(UdpObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closing);
}

static PyObject *Udp_get_conn_lost(UdpObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(self->conn_lost);
}

/* --- object lifetime ------------------------------------------------------------ */

/* asyncio's _SelectorTransport.__del__ */
static void Udp_finalize(UdpObject *self)
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
        poll_stop(self);
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
    Py_DECREF(sock);
    al__err_restore(exc);
}

static int Udp_traverse(UdpObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->extra);
    Py_VISIT(self->loop);
    Py_VISIT(self->sock);
    Py_VISIT(self->protocol);
    Py_VISIT(self->address);
    Py_VISIT(self->rctx);
    Py_VISIT(self->wctx);
    for (Py_ssize_t i = 0; i < self->qlen; i++) {
        Py_VISIT(self->q[self->qhead + i].addr);
    }
    return 0;
}

static int Udp_clear(UdpObject *self)
{
    Py_CLEAR(self->extra);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->address);
    Py_CLEAR(self->peer_obj);
    Py_CLEAR(self->rctx);
    Py_CLEAR(self->wctx);
    return 0;
}

static void Udp_dealloc(UdpObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return;
    }
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    if (self->loop != NULL && self->registered) {
        al__loop_unregister_transport(self->loop, self->fd, (PyObject *)self);
    }
    poll_stop(self);
    al__loop_io_unlink(&self->io);
    Udp_clear(self);
    queue_clear(self);
    pending_clear(self);
    PyMem_Free(self->q);
    Py_CLEAR(self->sock);
    al__flow_clear(&self->flow);
    Py_CLEAR(self->loop);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef Udp_methods[] = {
    {"sendto", (PyCFunction)(void (*)(void))Udp_sendto, FASTKW, NULL},
    {"close", (PyCFunction)Udp_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)Udp_abort, METH_NOARGS, NULL},
    {"_force_close", (PyCFunction)Udp_force_close_meth, METH_O, NULL},
    {"is_closing", (PyCFunction)Udp_is_closing, METH_NOARGS, NULL},
#if PY_VERSION_HEX >= 0x030B0000
    /* 3.10's datagram transport inherits ReadTransport's, which raise
       NotImplementedError: so does ours there. */
    {"is_reading", (PyCFunction)Udp_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)Udp_pause_reading, METH_NOARGS, NULL},
    {"resume_reading", (PyCFunction)Udp_resume_reading, METH_NOARGS, NULL},
#endif
    {"get_write_buffer_size", (PyCFunction)Udp_get_write_buffer_size, METH_NOARGS, NULL},
    {"get_write_buffer_limits", (PyCFunction)Udp_get_write_buffer_limits, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)(void (*)(void))Udp_set_write_buffer_limits, FASTKW,
     NULL},
    {"get_extra_info", (PyCFunction)(void (*)(void))Udp_get_extra_info, FASTKW, NULL},
    {"set_protocol", (PyCFunction)Udp_set_protocol, METH_O, NULL},
    {"get_protocol", (PyCFunction)Udp_get_protocol, METH_NOARGS, NULL},
    {"_start_reading", (PyCFunction)Udp_start_reading, METH_NOARGS, NULL},
    {"_read_ready", (PyCFunction)Udp_read_ready, METH_NOARGS, NULL},
    {"_write_ready", (PyCFunction)Udp_write_ready, METH_NOARGS, NULL},
    {"_call_connection_lost", (PyCFunction)Udp_call_connection_lost, METH_O, NULL},
    {NULL, NULL},
};

static PyGetSetDef Udp_getset[] = {
    {"_sock", (getter)Udp_get_sock, NULL, NULL, NULL},
    {"_sock_fd", (getter)Udp_get_sock_fd, NULL, NULL, NULL},
    {"_loop", (getter)Udp_get_loop, NULL, NULL, NULL},
    {"_address", (getter)Udp_get_address, NULL, NULL, NULL},
    {"_protocol_paused", (getter)Udp_get_protocol_paused, NULL, NULL, NULL},
    {"_closing", (getter)Udp_get_closing, NULL, NULL, NULL},
    {"_conn_lost", (getter)Udp_get_conn_lost, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Udp_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(UdpObject, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot Udp_slots[] = {
    {Py_tp_dealloc, Udp_dealloc},
    {Py_tp_finalize, Udp_finalize},
    {Py_tp_traverse, Udp_traverse},
    {Py_tp_clear, Udp_clear},
    {Py_tp_repr, Udp_repr},
    {Py_tp_methods, Udp_methods},
    {Py_tp_getset, Udp_getset},
    {Py_tp_members, Udp_members},
    {Py_tp_doc, "A datagram transport (asyncio's _SelectorDatagramTransport)."},
    {0, NULL},
};

/* Not immutable: asyncio.DatagramTransport is a Python class (see stream.c). */
static PyType_Spec Udp_spec = {
    .name = "asyncloop._core.DatagramTransport",
    .basicsize = sizeof(UdpObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Udp_slots,
};

/* --- loop._make_datagram_transport --------------------------------------------- */

static PyObject *sock_call_or_none(PyObject *sock, const char *name)
{
    PyObject *r = PyObject_CallMethod(sock, name, NULL);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        r = Py_NewRef(Py_None);
    }
    return r;
}

static int udp_init(UdpObject *self, LoopObject *loop, PyObject *sock, PyObject *protocol,
                    PyObject *address, PyObject *waiter, PyObject *extra)
{
    al_state *st = loop->state;
    self->extra = extra != Py_None ? Py_NewRef(extra) : PyDict_New();
    if (self->extra == NULL) {
        return -1;
    }
    self->loop = (LoopObject *)Py_NewRef(loop);
    al__flow_set_default(&self->flow, st);
    PyObject *v = PyObject_CallOneArg(st->TransportSocket, sock);
    int rc = v ? PyObject_SetItem(self->extra, st->str_socket, v) : -1;
    Py_XDECREF(v);
    if (rc < 0) {
        return -1;
    }
    v = sock_call_or_none(sock, "getsockname");
    rc = v ? PyObject_SetItem(self->extra, st->str_sockname, v) : -1;
    Py_XDECREF(v);
    if (rc < 0) {
        return -1;
    }
    rc = PySequence_Contains(self->extra, st->str_peername);
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
    v = PyObject_GetItem(self->extra, st->str_peername);
    rc = v ? PyObject_IsTrue(v) : -1;
    Py_XDECREF(v);
    if (rc < 0) {
        return -1;
    }
    self->connected = (char)rc;
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0) {
        return -1;
    }
    v = PyObject_GetAttrString(sock, "family");
    long fam = v ? PyLong_AsLong(v) : -1;
    Py_XDECREF(v);
    if (fam == -1 && PyErr_Occurred()) {
        return -1;
    }
    self->family = (int)fam;
    self->sock = Py_NewRef(sock);
    self->fd = fd;
    self->protocol = Py_NewRef(protocol);
    self->protocol_connected = 1;
    /* the reader handle's context: a copy of the creating task's */
    if (al__ctx_copy(&self->rctx) < 0) {
        return -1;
    }
    if (address != Py_None) {
        self->address = Py_NewRef(address);
        rc = PyObject_IsTrue(address);
        if (rc < 0) {
            return -1;
        }
        self->address_true = (char)rc;
    }
    if (al__loop_register_transport(loop, fd, (PyObject *)self) < 0) {
        return -1;
    }
    self->registered = 1;
    PyObject *made = PyObject_GetAttr(protocol, st->str_connection_made);
    rc = made ? call_soon(loop, made, (PyObject *)self, NULL) : -1;
    Py_XDECREF(made);
    if (rc < 0 || call_soon_method(self, st->str_start_reading, NULL) < 0) {
        return -1;
    }
    if (waiter != Py_None &&
        call_soon(loop, st->set_result_unless_cancelled, waiter, Py_None) < 0) {
        return -1;
    }
    return 0;
}

PyObject *al__loop_make_datagram_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames)
{
    static const char *const names[] = {"sock", "protocol", "address", "waiter", "extra"};
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[5] = {NULL, NULL, NULL, NULL, NULL};
    if (nargs > 5) {
        PyErr_Format(PyExc_TypeError,
                     "_make_datagram_transport() takes from 3 to 6 positional arguments but %zd "
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
        int i = 0;
        while (i < 5 && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == 5 || a[i] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         i == 5 ? "_make_datagram_transport() got an unexpected keyword argument "
                                  "'%S'"
                                : "_make_datagram_transport() got multiple values for argument "
                                  "'%S'",
                         key);
            return NULL;
        }
        a[i] = args[nargs + k];
    }
    if (a[0] == NULL || a[1] == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "_make_datagram_transport() missing required argument: 'sock' or "
                        "'protocol'");
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(a[0]);
    if (fd < 0 || al__loop_ensure_fd_no_transport(self, fd, a[0]) < 0) {
        return NULL;
    }
    al_state *st = self->state;
    PyTypeObject *tp = st->DatagramTransportType;
    UdpObject *t = (UdpObject *)tp->tp_alloc(tp, 0);
    if (t == NULL) {
        return NULL;
    }
    t->st = st;
    t->fd = -1;
    t->io.loop_closing = udp_loop_closing;
    al__loop_io_link(self, &t->io);
    if (udp_init(t, self, a[0], a[1], a[2] ? a[2] : Py_None, a[3] ? a[3] : Py_None,
                 a[4] ? a[4] : Py_None) < 0) {
        Py_DECREF(t); /* warns and closes the socket, as asyncio's __del__ */
        return NULL;
    }
    return (PyObject *)t;
}

/* --- module state ------------------------------------------------------------------ */

int al__udp_init(PyObject *module, al_state *st)
{
    INTERN(str_datagram_received, "datagram_received");
    INTERN(str_error_received, "error_received");
    INTERN(str_read_ready, "_read_ready");
    /* Bases (Transport, DatagramTransport), as asyncio's
       _SelectorDatagramTransport: isinstance() holds for both. */
    PyObject *tr = al__import_attr("asyncio.transports", "Transport");
    PyObject *dg = tr ? al__import_attr("asyncio.transports", "DatagramTransport") : NULL;
    PyObject *bases = dg ? PyTuple_Pack(2, tr, dg) : NULL;
    Py_XDECREF(tr);
    Py_XDECREF(dg);
    if (bases == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < 2; i++) {
        PyTypeObject *bt = (PyTypeObject *)PyTuple_GET_ITEM(bases, i); /* borrowed */
        if (!PyType_Check((PyObject *)bt) ||
            bt->tp_basicsize !=
                (Py_ssize_t)offsetof(UdpObject, extra) + (Py_ssize_t)sizeof(PyObject *) ||
            bt->tp_itemsize != 0) {
            PyErr_SetString(PyExc_ImportError,
                            "asyncio's transports have an unexpected layout (__slots__ changed?)");
            Py_DECREF(bases);
            return -1;
        }
    }
    st->DatagramTransportType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Udp_spec, bases);
    Py_DECREF(bases);
    if (st->DatagramTransportType == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->DatagramTransportType);
}

int al__udp_traverse(al_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->DatagramTransportType);
    return 0;
}

void al__udp_clear(al_state *st)
{
    Py_CLEAR(st->DatagramTransportType);
    Py_CLEAR(st->str_datagram_received);
    Py_CLEAR(st->str_error_received);
    Py_CLEAR(st->str_read_ready);
}
