/* A listening socket's accept loop: asyncio's
   selector_events.BaseSelectorEventLoop._accept_connection in C.

   asyncio's own _start_serving (asyncloop/__init__.py) registers
   loop._accept_connection as the listening socket's reader; this is it.
   Each readiness event accepts up to `backlog` connections, until EAGAIN,
   with accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) (no FIONBIO, no exception for
   the last, empty accept). A plain TCP or Unix connection gets its
   protocol and transport right here, in a copy of the current context as
   asyncio's _accept_connection2 task would have; with ssl= (or a loop
   subclass that overrides the transport factories, or a socket that is not
   a plain socket.socket) the rest is asyncio's own _accept_connection2
   task, as before. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The listening socket as _accept_connection's arguments give it. */
typedef struct {
    PyObject *const *args; /* protocol_factory, sock, sslcontext, server, backlog, timeouts */
    Py_ssize_t nargs;      /* 7 (3.11+) or 6 (3.10): as _start_serving passes them */
    int fd;
    int family, type, proto;
    PyObject *family_obj, *type_obj, *proto_obj; /* the socket's own ints */
    int nodelay;                                 /* asyncio's _set_nodelay would set it */
    PyObject *made;                              /* loop._accept_made, on first use */
} listener;

#if PY_VERSION_HEX >= 0x030B0000
#define NPARAMS 7
#else
#define NPARAMS 6 /* no ssl_shutdown_timeout */
#endif

static const char *const param_names[] = {
    "protocol_factory",     "sock", "sslcontext", "server", "backlog", "ssl_handshake_timeout",
    "ssl_shutdown_timeout",
};

/* --- helpers ------------------------------------------------------------- */

static int call_method_void(PyObject *name, PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *r = al__call_method(name, self, args, nargs);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The int behind one of _socket.socket's getsets (socket.socket's own
   properties make an enum of it). */
static PyObject *sock_field(al_state *st, PyObject *descr, PyObject *sock)
{
    return st->sock_descr_get(descr, sock, (PyObject *)Py_TYPE(sock));
}

static int as_int(PyObject *v, int *out)
{
    long x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* "a.b.c.d" as inet_ntop writes it (glibc's costs ~1.7k instructions). */
static PyObject *ipv4_text(const struct in_addr *in)
{
    const unsigned char *b = (const unsigned char *)&in->s_addr;
    char buf[INET_ADDRSTRLEN];
    char *p = buf;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100) {
            *p++ = (char)('0' + v / 100);
        }
        if (v >= 10) {
            *p++ = (char)('0' + v / 10 % 10);
        }
        *p++ = (char)('0' + v % 10);
        *p++ = '.';
    }
    return PyUnicode_FromStringAndSize(buf, p - buf - 1);
}

PyObject *al__sockaddr_to_py(const struct sockaddr_storage *ss, socklen_t len)
{
    switch (ss->ss_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        PyObject *host = ipv4_text(&a->sin_addr);
        PyObject *port = host ? PyLong_FromLong(ntohs(a->sin_port)) : NULL;
        PyObject *r = port ? PyTuple_Pack(2, host, port) : NULL;
        Py_XDECREF(host);
        Py_XDECREF(port);
        return r;
    }
    case AF_INET6: {
        char buf[INET6_ADDRSTRLEN];
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(siII)", buf, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo), (unsigned int)a->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? (size_t)len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n > 0 && a->sun_path[0] == 0) { /* Linux's abstract namespace */
            return PyBytes_FromStringAndSize(a->sun_path, (Py_ssize_t)n);
        }
        /* NUL-terminated (the buffer was zeroed; an unnamed socket is '') */
        return PyUnicode_DecodeFSDefault(a->sun_path);
    }
    default:
        return NULL;
    }
}

/* --- one accepted connection -------------------------------------------- */

/* asyncio's _accept_connection2 reporting the error of a connection (in
   debug mode): protocol and transport are left out where NULL (None). */
static int report_creation_error(LoopObject *loop, PyObject *exc, PyObject *protocol,
                                 PyObject *transport)
{
    al_state *st = loop->state;
    PyObject *ctx = PyDict_New();
    PyObject *msg = PyUnicode_FromString("Error on transport creation for incoming connection");
    int rc = -1;
    if (ctx != NULL && msg != NULL && PyDict_SetItem(ctx, st->str_message, msg) == 0 &&
        PyDict_SetItem(ctx, st->str_exception, exc) == 0 &&
        (protocol == NULL || PyDict_SetItem(ctx, st->str_protocol, protocol) == 0) &&
        (transport == NULL || PyDict_SetItem(ctx, st->str_transport, transport) == 0)) {
        PyObject *r = al__loop_call_exception_handler(loop, ctx);
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_XDECREF(ctx);
    Py_XDECREF(msg);
    return rc;
}

/* asyncio's _accept_connection2 failing before the waiter: logged in debug
   mode only. The connection is closed (asyncio leaves it to the GC). */
static int creation_failed(LoopObject *loop, PyObject *conn, PyObject *protocol)
{
    al_state *st = loop->state;
    PyObject *exc = al__err_fetch();
    int rc = loop->debug ? report_creation_error(loop, exc, protocol, NULL) : 0;
    Py_DECREF(exc);
    if (rc == 0) {
        PyObject *r = PyObject_CallMethodNoArgs(conn, st->str_close);
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    return rc;
}

/* asyncio's _accept_connection2 awaiting the TLS handshake's waiter: when
   it fails, the app transport is closed and, in debug mode, the error
   reported. self is (loop, protocol, transport). */
static PyObject *ssl_waiter_done(PyObject *self, PyObject *fut)
{
    LoopObject *loop = (LoopObject *)PyTuple_GET_ITEM(self, 0); /* borrowed */
    PyObject *protocol = PyTuple_GET_ITEM(self, 1);             /* borrowed */
    PyObject *transport = PyTuple_GET_ITEM(self, 2);            /* borrowed */
    al_state *st = loop->state;
    PyObject *r = PyObject_CallMethodNoArgs(fut, st->str_cancelled);
    int cancelled = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    if (cancelled < 0) {
        return NULL;
    }
    PyObject *exc;
    if (cancelled) {
        /* what `await waiter` raises */
        exc = PyObject_CallNoArgs(st->ssl_CancelledError);
    }
    else {
        exc = PyObject_CallMethodNoArgs(fut, st->str_exception_meth);
    }
    if (exc == NULL) {
        return NULL;
    }
    if (exc == Py_None) {
        Py_DECREF(exc);
        Py_RETURN_NONE;
    }
    r = PyObject_CallMethodNoArgs(transport, st->str_close);
    if (r == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            Py_DECREF(exc);
            return NULL; /* SystemExit, KeyboardInterrupt: out of the loop */
        }
        Py_SETREF(exc, al__err_fetch()); /* what the task would have caught */
    }
    Py_XDECREF(r);
    int rc = loop->debug ? report_creation_error(loop, exc, protocol, transport) : 0;
    Py_DECREF(exc);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

static PyMethodDef ssl_waiter_done_def = {"_accept_ssl_waiter_done", ssl_waiter_done, METH_O, NULL};

/* asyncio's _make_ssl_transport for an accepted connection (the loop's
   _c_tls: the C SSLProtocol): the app transport, and the waiter watched
   as _accept_connection2 awaits it. */
static PyObject *ssl_transport(LoopObject *loop, PyObject *const *args, PyObject *protocol,
                               PyObject *ctx)
{
    al_state *st = loop->state;
    PyObject *conn = args[1]; /* borrowed */
    int fd = PyObject_AsFileDescriptor(conn);
    if (fd < 0 || al__loop_ensure_fd_no_transport(loop, fd, conn) < 0) {
        return NULL;
    }
    PyObject *waiter = PyObject_CallMethodNoArgs((PyObject *)loop, st->str_create_future);
    if (waiter == NULL) {
        return NULL;
    }
    /* SSLProtocol(loop, app_protocol, sslcontext, waiter, server_side=True,
       server_hostname=None, call_connection_made=True, handshake, shutdown) */
    PyObject *argv[9] = {(PyObject *)loop, protocol, args[5], waiter, Py_True,
                         Py_None,          Py_True,  args[6], args[7]};
    PyObject *ssl_proto = PyObject_Vectorcall((PyObject *)st->SSLProtocolType, argv, 9, NULL);
    PyObject *app = NULL;
    if (ssl_proto != NULL) {
        int nodelay = PyObject_IsTrue(args[4]);
        PyObject *raw = nodelay < 0 ? NULL
                                    : al__stream_accepted(loop, conn, ssl_proto, args[2], args[3],
                                                          nodelay, ctx);
        if (raw != NULL) {
            Py_DECREF(raw);
            app = PyObject_GetAttrString(ssl_proto, "_app_transport");
        }
    }
    if (app != NULL) {
        PyObject *self = PyTuple_Pack(3, (PyObject *)loop, protocol, app);
        PyObject *cb = self ? PyCFunction_New(&ssl_waiter_done_def, self) : NULL;
        PyObject *r = cb ? PyObject_CallMethodOneArg(waiter, st->str_add_done_callback, cb) : NULL;
        Py_XDECREF(self);
        Py_XDECREF(cb);
        if (r == NULL) {
            Py_CLEAR(app);
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(ssl_proto);
    Py_DECREF(waiter);
    return app;
}

/* loop._accept_made(protocol_factory, conn, extra, server, nodelay,
   sslcontext, ssl_handshake_timeout, ssl_shutdown_timeout[, context]),
   called in `context` if given: what asyncio's
   _accept_connection2 task does, without the task: protocol_factory() and
   the transport (with sslcontext None, a plain one). */
PyObject *al__loop_accept_made(LoopObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if ((nargs != 8 && nargs != 9) || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "_accept_made() takes 8 or 9 positional arguments");
        return NULL;
    }
    PyObject *conn = args[1]; /* borrowed */
    /* the context this call runs in (connection_made_soon's), for the reader */
    PyObject *ctx = nargs == 9 && PyContext_CheckExact(args[8]) ? args[8] : NULL;
    PyObject *protocol = PyObject_CallNoArgs(args[0]);
    PyObject *transport = NULL;
    if (protocol != NULL) {
        if (args[5] != Py_None) {
            transport = ssl_transport(self, args, protocol, ctx);
        }
        else {
            int nodelay = PyObject_IsTrue(args[4]);
            transport = nodelay < 0 ? NULL
                                    : al__stream_accepted(self, conn, protocol, args[2], args[3],
                                                          nodelay, ctx);
        }
    }
    int rc = 0;
    if (transport == NULL) {
        /* SystemExit and KeyboardInterrupt leave the loop, as from the task */
        if (!PyErr_ExceptionMatches(PyExc_Exception) &&
            (PyErr_ExceptionMatches(PyExc_SystemExit) ||
             PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))) {
            PyObject *exc = al__err_fetch();
            PyObject *r = PyObject_CallMethodNoArgs(conn, self->state->str_close);
            Py_XDECREF(r);
            PyErr_Clear();
            al__err_restore(exc);
            rc = -1;
        }
        else {
            rc = creation_failed(self, conn, protocol);
        }
    }
    Py_XDECREF(transport);
    Py_XDECREF(protocol);
    return rc < 0 ? NULL : Py_NewRef(Py_None);
}

/* Schedules _accept_made as asyncio's task would run its first step: with
   call_soon, in a copy of the current context (so that the connection's
   callbacks run in a context of their own, and one iteration after the
   accept, as on asyncio). */
static int connection_made_soon(LoopObject *loop, const listener *l, PyObject *conn,
                                PyObject *extra, int ssl)
{
    al_state *st = loop->state;
    PyObject *ctx = PyContext_CopyCurrent();
    if (ctx == NULL) {
        return -1;
    }
    /* ctx twice: the Handle's context, and _accept_made's last argument
       (the connection's reader takes it: nothing else enters it later) */
    PyObject *argv[12] = {
        (PyObject *)loop,
        l->made,
        l->args[0],
        conn,
        extra,
        l->args[3],
        l->nodelay ? Py_True : Py_False,
        ssl ? l->args[2] : Py_None,
        ssl ? l->args[5] : Py_None,
#if NPARAMS > 6
        ssl ? l->args[6] : Py_None,
#else
        Py_None,
#endif
        ctx,
        ctx
    };
    PyObject *r = PyObject_VectorcallMethod(st->str_call_soon, argv, 11, st->kw_context);
    Py_DECREF(ctx);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* asyncio's path: self.create_task(self._accept_connection2(...)). */
static int connection_task(LoopObject *loop, const listener *l, PyObject *conn, PyObject *extra)
{
    al_state *st = loop->state;
    /* protocol_factory, conn, extra, sslcontext, server, timeouts */
    PyObject *a[NPARAMS];
    a[0] = l->args[0];
    a[1] = conn;
    a[2] = extra;
    for (Py_ssize_t i = 2; i < l->nargs; i++) {
        if (i != 4) { /* no backlog */
            a[i < 4 ? i + 1 : i] = l->args[i];
        }
    }
    PyObject *coro = al__call_method(st->str_accept_connection2, (PyObject *)loop, a, l->nargs);
    if (coro == NULL) {
        return -1;
    }
    PyObject *task = PyObject_CallMethodOneArg((PyObject *)loop, st->str_create_task, coro);
    Py_DECREF(coro);
    Py_XDECREF(task);
    return task ? 0 : -1;
}

static int log_connection(LoopObject *loop, const listener *l, PyObject *addr, PyObject *conn)
{
    al_state *st = loop->state;
    PyObject *argv[5] = {st->logger, st->accept_log_format, l->args[3], addr, conn};
    PyObject *r = PyObject_VectorcallMethod(st->str_debug, argv, 5, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int connection_accepted(LoopObject *loop, listener *l, PyObject *conn, PyObject *addr,
                               int fast, int ssl)
{
    al_state *st = loop->state;
    PyObject *extra;
    if (PyBytes_CheckExact(addr)) { /* accept_plain's raw address: the transport keeps it */
        extra = Py_NewRef(addr);
    }
    else {
        extra = PyDict_New();
        if (extra == NULL || PyDict_SetItem(extra, st->str_peername, addr) < 0) {
            Py_XDECREF(extra);
            return -1;
        }
    }
    int rc;
    if (ssl < 0) {
        rc = -1;
    }
    else if (fast == 2 || (fast && !ssl)) {
        if (l->made == NULL) {
            l->made = PyObject_GetAttr((PyObject *)loop, st->str_accept_made);
        }
        rc = l->made ? connection_made_soon(loop, l, conn, extra, ssl) : -1;
    }
    else {
        rc = connection_task(loop, l, conn, extra);
    }
    Py_DECREF(extra);
    return rc;
}

/* --- out of resources -------------------------------------------------------- */

/* asyncio's EMFILE/ENFILE/ENOBUFS/ENOMEM branch: the error to the handler,
   the reader removed; `retry` says whether to schedule its return (once per
   readiness event: asyncio schedules one per failed accept, each of which
   would register the same reader again). */
static int out_of_resources(LoopObject *loop, const listener *l, int retry)
{
    al_state *st = loop->state;
    PyObject *exc = al__err_fetch();
    PyObject *ctx = PyDict_New();
    PyObject *msg = PyUnicode_FromString("socket.accept() out of system resource");
    PyObject *tsock = PyObject_CallOneArg(st->TransportSocket, l->args[1]);
    int rc = -1;
    if (ctx == NULL || msg == NULL || tsock == NULL ||
        PyDict_SetItem(ctx, st->str_message, msg) < 0 ||
        PyDict_SetItem(ctx, st->str_exception, exc) < 0 ||
        PyDict_SetItem(ctx, st->str_socket, tsock) < 0) {
        goto done;
    }
    PyObject *r = al__loop_call_exception_handler(loop, ctx);
    if (r == NULL) {
        goto done;
    }
    Py_DECREF(r);
    PyObject *fd = PyLong_FromLong(l->fd);
    if (fd == NULL) {
        goto done;
    }
    rc = call_method_void(st->str_remove_reader_, (PyObject *)loop, &fd, 1);
    Py_DECREF(fd);
    if (rc == 0 && retry) {
        PyObject *a[NPARAMS + 2];
        a[0] = st->accept_retry_delay;
        PyObject *resume = PyObject_GetAttr((PyObject *)loop, st->str_accept_resume);
        if (resume == NULL) {
            rc = -1;
            goto done;
        }
        a[1] = resume;
        for (Py_ssize_t i = 0; i < l->nargs; i++) {
            a[i + 2] = l->args[i];
        }
        rc = call_method_void(st->str_call_later, (PyObject *)loop, a, l->nargs + 2);
        Py_DECREF(resume);
    }
done:
    Py_XDECREF(ctx);
    Py_XDECREF(msg);
    Py_XDECREF(tsock);
    Py_DECREF(exc);
    return rc;
}

/* The errors that end asyncio's loop quietly: the backlog is empty, or a
   connection went before it was accepted. */
static int accept_done(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED;
}

static int out_of_resources_errno(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* --- the accept loop -------------------------------------------------------- */

/* socket.accept() of the plain socket.socket, with the connection made
   non-blocking by accept4 itself (raw: *addr is the sockaddr's bytes, for
   al__stream_accepted to keep): 1 and *conn, *addr on success; 0 when
   the loop ends (EAGAIN & co); -1 with errno set; -2 with an exception. */
static int accept_plain(al_state *st, const listener *l, int raw, PyObject **conn, PyObject **addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        return accept_done(errno) ? 0 : -1;
    }
    if (len > sizeof(ss)) {
        len = sizeof(ss);
    }
    PyObject *a = raw ? PyBytes_FromStringAndSize((const char *)&ss, (Py_ssize_t)len)
                      : al__sockaddr_to_py(&ss, len);
    if (a == NULL) {
        if (!PyErr_Occurred()) { /* not reached: the families checked before the loop */
            PyErr_Format(PyExc_SystemError, "accept4() gave an address of family %d",
                         (int)ss.ss_family);
        }
        close(fd);
        return -2;
    }
    /* socket(family, type | SOCK_NONBLOCK, proto, fileno=fd): the object
       then has timeout 0 without a FIONBIO of its own. As socket.accept(),
       the fd is not closed if this fails. */
    PyObject *type = PyLong_FromLong(l->type | SOCK_NONBLOCK);
    PyObject *argv[4] = {l->family_obj, type, l->proto_obj, NULL};
    PyObject *c = NULL;
    if (type != NULL && (argv[3] = PyLong_FromLong(fd)) != NULL) {
        c = PyObject_Vectorcall(st->socket_type, argv, 4, NULL);
    }
    Py_XDECREF(type);
    Py_XDECREF(argv[3]);
    if (c == NULL) {
        Py_DECREF(a);
        return -2;
    }
    *conn = c;
    *addr = a;
    return 1;
}

/* socket.accept() and conn.setblocking(False) through the socket's own
   methods, as asyncio calls them: 1, 0 (the loop ends) or -1 (an
   exception, OSError included). */
static int accept_generic(al_state *st, const listener *l, PyObject **conn, PyObject **addr)
{
    PyObject *pair = PyObject_CallMethodNoArgs(l->args[1], st->str_accept);
    if (pair == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
            PyErr_ExceptionMatches(PyExc_InterruptedError) ||
            PyErr_ExceptionMatches(PyExc_ConnectionAbortedError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    PyObject *c = NULL, *a = NULL;
    if (!PyArg_ParseTuple(pair, "OO", &c, &a)) { /* borrowed */
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "cannot unpack accept()'s result");
        Py_DECREF(pair);
        return -1;
    }
    Py_INCREF(c);
    Py_INCREF(a);
    Py_DECREF(pair);
    *conn = c;
    *addr = a;
    return 1;
}

static int listener_init(LoopObject *loop, listener *l, PyObject *const *args, Py_ssize_t nargs,
                         int *plain)
{
    al_state *st = loop->state;
    PyObject *sock = args[1]; /* borrowed, as l->args */
    l->args = args;
    l->nargs = nargs;
    l->fd = -1;
    l->family_obj = l->type_obj = l->proto_obj = NULL;
    l->made = NULL;
    l->nodelay = 0;
    *plain = 0;
    if ((PyObject *)Py_TYPE(sock) != st->socket_type) {
        return 0;
    }
    PyObject *timeout = PyObject_CallMethodNoArgs(sock, st->str_gettimeout);
    if (timeout == NULL) {
        return -1;
    }
    /* A blocking listening socket (not asyncio's making) blocks in its own
       accept(), as on asyncio. */
    int nonblocking = PyFloat_Check(timeout) && PyFloat_AsDouble(timeout) == 0.0;
    Py_DECREF(timeout);
    if (!nonblocking) {
        return 0;
    }
    if ((l->fd = PyObject_AsFileDescriptor(sock)) < 0 ||
        (l->family_obj = sock_field(st, st->sock_family_descr, sock)) == NULL ||
        (l->type_obj = sock_field(st, st->sock_type_descr, sock)) == NULL ||
        (l->proto_obj = sock_field(st, st->sock_proto_descr, sock)) == NULL ||
        as_int(l->family_obj, &l->family) < 0 || as_int(l->type_obj, &l->type) < 0 ||
        as_int(l->proto_obj, &l->proto) < 0) {
        return -1;
    }
    if (l->family != AF_INET && l->family != AF_INET6 && l->family != AF_UNIX) {
        return 0;
    }
    /* base_events._set_nodelay's test, on the socket accept() makes (the
       listening socket's family, type and proto) */
    l->nodelay = (l->family == AF_INET || l->family == AF_INET6) && l->type == SOCK_STREAM &&
                 l->proto == IPPROTO_TCP;
    *plain = 1;
    return 0;
}

static void listener_clear(listener *l)
{
    Py_CLEAR(l->family_obj);
    Py_CLEAR(l->type_obj);
    Py_CLEAR(l->proto_obj);
    Py_CLEAR(l->made);
}

/* Whether the loop's class keeps the transport factories _accept_connection2
   would call (asyncloop.Loop.__init_subclass__ sets _accept_inline): 0 no,
   1 for plain connections, 2 for TLS ones too (the C TLS layer, _c_tls). */
static int inline_allowed(LoopObject *loop)
{
    PyObject *v = PyObject_GetAttr((PyObject *)loop, loop->state->str_accept_inline);
    if (v == NULL) {
        PyErr_Clear();
        return 0;
    }
    int r = v == Py_True;
    Py_DECREF(v);
    if (r) {
        v = PyObject_GetAttr((PyObject *)loop, loop->state->str_c_tls);
        if (v == NULL) {
            PyErr_Clear();
            return r;
        }
        r += v == Py_True;
        Py_DECREF(v);
    }
    return r;
}

/* The errno of a raised OSError, or 0. */
static int raised_errno(void)
{
    if (!PyErr_ExceptionMatches(PyExc_OSError)) {
        return 0;
    }
    PyObject *exc = al__err_fetch();
    int err = 0;
    PyObject *e = PyObject_GetAttrString(exc, "errno");
    if (e != NULL && PyLong_Check(e)) {
        err = (int)PyLong_AsLong(e);
    }
    Py_XDECREF(e);
    PyErr_Clear();
    al__err_restore(exc);
    return err;
}

static PyObject *accept_connection(LoopObject *self, PyObject *const *full)
{
    al_state *st = self->state;
    Py_ssize_t backlog = PyNumber_AsSsize_t(full[4], PyExc_OverflowError);
    if (backlog == -1 && PyErr_Occurred()) {
        return NULL;
    }
    listener l;
    int plain;
    if (listener_init(self, &l, full, NPARAMS, &plain) < 0) {
        listener_clear(&l);
        return NULL;
    }
    int fast = plain ? inline_allowed(self) : 0;
    int ssl = PyObject_IsTrue(full[2]); /* asyncio's `if sslcontext:` */
    if (ssl < 0) {
        listener_clear(&l);
        return NULL;
    }
    /* the connection's own transport, made by al__stream_accepted: it keeps
       the peer's address raw (debug mode logs it first) */
    int raw = plain && !self->debug && (fast == 2 || (fast && !ssl));
    int retried = 0;
    for (Py_ssize_t i = 0; i < backlog; i++) {
        PyObject *conn = NULL, *addr = NULL;
        int rc =
            plain ? accept_plain(st, &l, raw, &conn, &addr) : accept_generic(st, &l, &conn, &addr);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            int err;
            if (rc == -1 && plain) {
                err = errno;
                PyErr_SetFromErrno(PyExc_OSError);
            }
            else {
                err = raised_errno();
            }
            /* There's nowhere to send the others: the loop reports them. */
            if (!out_of_resources_errno(err)) {
                goto fail;
            }
            if (l.fd < 0) {
                /* sock.fileno() must not run with the error raised */
                PyObject *exc = al__err_fetch();
                if ((l.fd = PyObject_AsFileDescriptor(full[1])) < 0) {
                    Py_DECREF(exc);
                    goto fail;
                }
                al__err_restore(exc);
            }
            if (out_of_resources(self, &l, !retried) < 0) {
                goto fail;
            }
            retried = 1;
            continue;
        }
        if (self->debug && log_connection(self, &l, addr, conn) < 0) {
            rc = -1;
        }
        if (rc >= 0 && !plain) {
            PyObject *r = PyObject_CallMethodOneArg(conn, st->str_setblocking, Py_False);
            rc = r ? 0 : -1;
            Py_XDECREF(r);
        }
        if (rc >= 0) {
            rc = connection_accepted(self, &l, conn, addr, fast, ssl);
        }
        Py_DECREF(conn);
        Py_DECREF(addr);
        if (rc < 0) {
            goto fail;
        }
    }
    listener_clear(&l);
    Py_RETURN_NONE;
fail:
    listener_clear(&l);
    return NULL;
}

/* Binds _accept_connection's or _accept_resume's arguments (asyncio's
   signature: protocol_factory, sock, sslcontext=None, server=None,
   backlog=100, ssl_handshake_timeout=..., ssl_shutdown_timeout=... on 3.11+)
   into full[NPARAMS]. */
static int bind_params(LoopObject *self, const char *name, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames, PyObject **full)
{
    al_state *st = self->state;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *defaults[NPARAMS] = {
        NULL,
        NULL,
        Py_None,
        Py_None,
        st->default_backlog,
        st->ssl_handshake_timeout_default,
#if NPARAMS > 6
        st->ssl_shutdown_timeout_default
#endif
    };
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > NPARAMS) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes from 3 to %d positional arguments but %zd were given", name,
                     NPARAMS + 1, nargs + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i < NPARAMS; i++) {
        full[i] = i < nargs ? args[i] : NULL;
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k); /* borrowed */
        Py_ssize_t j = 0;
        while (j < NPARAMS && !(PyUnicode_Check(key) &&
                                PyUnicode_CompareWithASCIIString(key, param_names[j]) == 0)) {
            j++;
        }
        if (j == NPARAMS) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", name,
                         key);
            return -1;
        }
        if (full[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", name,
                         param_names[j]);
            return -1;
        }
        full[j] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < NPARAMS; i++) {
        if (full[i] == NULL) {
            if (defaults[i] == NULL) {
                PyErr_Format(PyExc_TypeError, "%s() missing required argument: '%s'", name,
                             param_names[i]);
                return -1;
            }
            full[i] = defaults[i];
        }
    }
    return 0;
}

PyObject *al__loop_accept_connection(LoopObject *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames)
{
    PyObject *full[NPARAMS];
    if (bind_params(self, "_accept_connection", args, nargsf, kwnames, full) < 0) {
        return NULL;
    }
    return accept_connection(self, full);
}

/* The end of the pause after an out-of-resources error: asyncio calls
   _start_serving again; this registers the same reader, as that does, but
   only while the server still serves its socket (asyncio's would raise, or
   poll a closed socket's fd number, once the server was closed meanwhile),
   and is not a second server for the loop's metrics. */
PyObject *al__loop_accept_resume(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    al_state *st = self->state;
    PyObject *full[NPARAMS];
    if (bind_params(self, "_accept_resume", args, nargsf, kwnames, full) < 0) {
        return NULL;
    }
    if (full[3] != Py_None) {
        PyObject *r = PyObject_CallMethodNoArgs(full[3], st->str_is_serving);
        int serving = r ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
        if (serving <= 0) {
            return serving < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    int fd = PyObject_AsFileDescriptor(full[1]);
    if (fd < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) { /* closed: -1 */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return NULL;
    }
    PyObject *a[NPARAMS + 2];
    a[0] = PyLong_FromLong(fd);
    if (a[0] == NULL) {
        return NULL;
    }
    a[1] = PyObject_GetAttr((PyObject *)self, st->str_accept_connection);
    if (a[1] == NULL) {
        Py_DECREF(a[0]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < NPARAMS; i++) {
        a[i + 2] = full[i];
    }
    PyObject *r = al__call_method(st->str_add_reader_, (PyObject *)self, a, NPARAMS + 2);
    Py_DECREF(a[0]);
    Py_DECREF(a[1]);
    return r;
}

/* --- module state ------------------------------------------------------------ */

int al__server_init(al_state *st)
{
    INTERN(str_accept_connection, "_accept_connection");
    INTERN(str_accept_connection2, "_accept_connection2");
    INTERN(str_accept_resume, "_accept_resume");
    INTERN(str_accept_inline, "_accept_inline");
    INTERN(str_accept_made, "_accept_made");
    INTERN(str_c_tls, "_c_tls");
    if ((st->kw_context = PyTuple_Pack(1, st->str_context)) == NULL) {
        return -1;
    }
    INTERN(str_add_reader_, "_add_reader");
    INTERN(str_remove_reader_, "_remove_reader");
    INTERN(str_call_later, "call_later");
    INTERN(str_create_task, "create_task");
    INTERN(str_is_serving, "is_serving");
    INTERN(str_setblocking, "setblocking");
    INTERN(str_close, "close");
    INTERN(accept_log_format, "%r got a new connection from %r: %r");
    if ((st->default_backlog = PyLong_FromLong(100)) == NULL ||
        (st->accept_retry_delay = al__import_attr("asyncio.constants", "ACCEPT_RETRY_DELAY")) ==
            NULL) {
        return -1;
    }
    PyObject *base = al__import_attr("_socket", "socket");
    if (base == NULL) {
        return -1;
    }
    st->sock_family_descr = PyObject_GetAttrString(base, "family");
    st->sock_type_descr = st->sock_family_descr ? PyObject_GetAttrString(base, "type") : NULL;
    st->sock_proto_descr = st->sock_type_descr ? PyObject_GetAttrString(base, "proto") : NULL;
    Py_DECREF(base);
    if (st->sock_proto_descr == NULL) {
        return -1;
    }
    st->sock_descr_get =
        (descrgetfunc)PyType_GetSlot(Py_TYPE(st->sock_family_descr), Py_tp_descr_get);
    if (st->sock_descr_get == NULL ||
        Py_TYPE(st->sock_type_descr) != Py_TYPE(st->sock_family_descr) ||
        Py_TYPE(st->sock_proto_descr) != Py_TYPE(st->sock_family_descr)) {
        PyErr_SetString(PyExc_ImportError, "_socket.socket's family/type/proto are not getsets");
        return -1;
    }
    return 0;
}

int al__server_traverse(al_state *st, visitproc visit, void *arg)
{
    Py_VISIT(st->accept_retry_delay);
    Py_VISIT(st->sock_family_descr);
    Py_VISIT(st->sock_type_descr);
    Py_VISIT(st->sock_proto_descr);
    return 0;
}

void al__server_clear(al_state *st)
{
    PyObject **fields[] = {
        &st->str_accept_connection,
        &st->str_accept_connection2,
        &st->str_accept_resume,
        &st->str_accept_inline,
        &st->str_add_reader_,
        &st->str_remove_reader_,
        &st->str_call_later,
        &st->str_create_task,
        &st->str_is_serving,
        &st->str_setblocking,
        &st->str_close,
        &st->accept_log_format,
        &st->default_backlog,
        &st->accept_retry_delay,
        &st->sock_family_descr,
        &st->sock_type_descr,
        &st->sock_proto_descr,
        &st->str_accept_made,
        &st->kw_context,
        &st->str_c_tls,
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        Py_CLEAR(*fields[i]);
    }
}
