/* loop.getaddrinfo / loop.getnameinfo: the system resolver on libuv's
   thread pool, with socket.getaddrinfo/getnameinfo's argument conversion,
   results and errors. Numeric hosts are answered at once. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

enum { REQ_GAI = 0, REQ_GNI = 1 };

/* What getnameinfo found wrong before calling getnameinfo(3). */
enum { GNI_OK = 0, GNI_MULTIPLE = 1, GNI_IPV4_TUPLE = 2 };

/* One lookup. Allocated apart from any Python object: the worker thread
   reads the inputs and writes the outputs, never touching Python. */
typedef struct {
    uv_work_t work;
    al_io io;          /* linked while attached to the loop */
    LoopObject *loop;  /* strong until after_work: the uv_loop_t stays valid */
    PyObject *future;  /* strong; NULL once detached (loop closed) */
    PyObject *on_done; /* the future's done callback (cancel -> uv_cancel) */
    PyObject *capsule; /* on_done's self; its context is this request */
    int kind;
    char cancel_tried; /* uv_cancel twice on one request corrupts libuv's queue */
    char finished;     /* in after_work: too late to cancel */
    /* inputs */
    char *host; /* NULL: none */
    char *port; /* NULL: none */
    struct addrinfo hints;
    int ni_flags;
    unsigned int flowinfo;
    unsigned int scope_id;
    Py_ssize_t sa_len; /* getnameinfo: size of the sockaddr tuple */
    /* outputs */
    struct addrinfo *res;
    int err;
    int sys_errno;
    int gni_status;
    char hbuf[NI_MAXHOST];
    char sbuf[NI_MAXSERV];
} dns_req;

/* --- the worker thread (no Python here) --------------------------------- */

static void gai_work(uv_work_t *work)
{
    dns_req *req = work->data;
    errno = 0;
    req->err = getaddrinfo(req->host, req->port, &req->hints, &req->res);
    req->sys_errno = errno;
}

static void gni_work(uv_work_t *work)
{
    dns_req *req = work->data;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM; /* socketmodule.c: makes a numeric port valid */
    hints.ai_flags = AI_NUMERICHOST;
    errno = 0;
    req->err = getaddrinfo(req->host, req->port, &hints, &res);
    req->sys_errno = errno;
    if (req->err != 0) {
        return;
    }
    if (res->ai_next != NULL) {
        req->gni_status = GNI_MULTIPLE;
    }
    else if (res->ai_family == AF_INET && req->sa_len != 2) {
        req->gni_status = GNI_IPV4_TUPLE;
    }
    else {
        if (res->ai_family == AF_INET6) {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)res->ai_addr;
            sin6->sin6_flowinfo = htonl(req->flowinfo);
            sin6->sin6_scope_id = req->scope_id;
        }
        errno = 0;
        req->err = getnameinfo(res->ai_addr, (socklen_t)res->ai_addrlen, req->hbuf,
                               sizeof(req->hbuf), req->sbuf, sizeof(req->sbuf), req->ni_flags);
        req->sys_errno = errno;
    }
    freeaddrinfo(res);
}

/* --- results and errors, as socketmodule.c builds them ------------------ */

/* socket.gaierror(code, gai_strerror(code)); EAI_SYSTEM is OSError(errno). */
static PyObject *make_gaierror(al_state *st, int err, int sys_errno)
{
#ifdef EAI_SYSTEM
    if (err == EAI_SYSTEM) {
        return PyObject_CallFunction(PyExc_OSError, "is", sys_errno, strerror(sys_errno));
    }
#endif
    (void)sys_errno;
    return PyObject_CallFunction(st->socket_gaierror, "is", err, gai_strerror(err));
}

/* socket._intenum_converter: the enum member, or the int if unknown. */
static PyObject *intenum(PyObject *klass, int value)
{
    PyObject *v = PyLong_FromLong(value);
    if (v == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallOneArg(klass, v);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        return v;
    }
    Py_DECREF(v);
    return r;
}

/* socketmodule.c's makesockaddr for what getaddrinfo(3) returns. */
static PyObject *make_sockaddr(const struct sockaddr *sa)
{
    char buf[INET6_ADDRSTRLEN];
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("si", buf, ntohs(a->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("siII", buf, ntohs(a->sin6_port), ntohl(a->sin6_flowinfo),
                             a->sin6_scope_id);
    }
    default:
        return Py_BuildValue("iy#", sa->sa_family, sa->sa_data, (Py_ssize_t)sizeof(sa->sa_data));
    }
}

static PyObject *entry(al_state *st, int family, int socktype, int proto, const char *canon,
                       PyObject *sockaddr /* stolen */)
{
    PyObject *af = NULL, *kind = NULL, *r = NULL;
    if (sockaddr == NULL || (af = intenum(st->AddressFamily, family)) == NULL ||
        (kind = intenum(st->SocketKind, socktype)) == NULL) {
        goto done;
    }
    r = Py_BuildValue("OOisO", af, kind, proto, canon ? canon : "", sockaddr);
done:
    Py_XDECREF(af);
    Py_XDECREF(kind);
    Py_XDECREF(sockaddr);
    return r;
}

static PyObject *gai_result(al_state *st, const struct addrinfo *res)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (; res != NULL; res = res->ai_next) {
        PyObject *e = entry(st, res->ai_family, res->ai_socktype, res->ai_protocol,
                            res->ai_canonname, make_sockaddr(res->ai_addr));
        if (e == NULL || PyList_Append(list, e) < 0) {
            Py_XDECREF(e);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(e);
    }
    return list;
}

static PyObject *gni_result(al_state *st, dns_req *req)
{
    if (req->err != 0) {
        return NULL;
    }
    switch (req->gni_status) {
    case GNI_MULTIPLE:
        PyErr_SetString(PyExc_OSError, "sockaddr resolved to multiple addresses");
        return NULL;
    case GNI_IPV4_TUPLE:
        PyErr_SetString(PyExc_OSError, "IPv4 sockaddr must be 2 tuple");
        return NULL;
    }
    (void)st;
    PyObject *name = PyUnicode_DecodeFSDefault(req->hbuf);
    return name ? Py_BuildValue("Ns", name, req->sbuf) : NULL;
}

/* --- request life -------------------------------------------------------- */

static void req_free(dns_req *req)
{
    if (req->res != NULL) {
        freeaddrinfo(req->res);
    }
    PyMem_RawFree(req->host);
    PyMem_RawFree(req->port);
    PyMem_RawFree(req);
}

static void req_cancel(dns_req *req)
{
    if (!req->cancel_tried && !req->finished) {
        req->cancel_tried = 1;
        uv_cancel((uv_req_t *)&req->work);
    }
}

/* Drops the request's hold on Python objects; the work itself goes on
   until its after_work callback, which then only frees memory. */
static void req_detach(dns_req *req)
{
    al__loop_io_unlink(&req->io);
    if (req->capsule != NULL) {
        PyCapsule_SetContext(req->capsule, NULL);
        Py_CLEAR(req->capsule);
    }
    if (req->future != NULL) {
        req->loop->io_watchers--;
        req_cancel(req);
    }
    Py_CLEAR(req->on_done);
    Py_CLEAR(req->future);
}

/* al_io hook: Loop.close() leaves the future pending, as asyncio's does
   (its executor is shut down without waiting). */
static void req_loop_closing(al_io *io)
{
    dns_req *req = (dns_req *)((char *)io - offsetof(dns_req, io));
    req_detach(req);
}

static void req_resolve(dns_req *req, int status)
{
    LoopObject *loop = req->loop;
    al_state *st = loop->state;
    PyObject *fut = req->future; /* borrowed: req keeps it until req_detach */
    PyObject *r = PyObject_CallMethodNoArgs(fut, st->str_done);
    int done = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    if (done != 0) {
        goto out; /* cancelled (or failed asking): nobody waits for it */
    }
    {
        PyObject *argv[2] = {fut, req->on_done};
        r = PyObject_VectorcallMethod(st->str_remove_done_callback, argv,
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (r == NULL) {
            goto out;
        }
        Py_DECREF(r);
    }
    PyObject *result = NULL;
    if (status == UV_ECANCELED) {
        /* uv_cancel'd without the future being done: only at close. */
        goto out;
    }
    if (req->kind == REQ_GAI) {
        result = req->err ? NULL : gai_result(st, req->res);
    }
    else {
        result = gni_result(st, req);
    }
    PyObject *meth, *arg;
    if (result != NULL) {
        meth = st->str_set_result;
        arg = result;
    }
    else if (req->err != 0) {
        meth = st->str_set_exception;
        arg = make_gaierror(st, req->err, req->sys_errno);
        if (arg == NULL) {
            goto out;
        }
    }
    else {
        meth = st->str_set_exception;
        arg = al__err_fetch();
        if (!PyObject_IsInstance(arg, PyExc_Exception)) {
            /* KeyboardInterrupt while building the result: the loop's. */
            al__err_restore(arg);
            goto out;
        }
    }
    PyObject *argv[2] = {fut, arg};
    r = PyObject_VectorcallMethod(meth, argv, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(arg);
    Py_XDECREF(r);
out:
    if (PyErr_Occurred() && !al__loop_stash_fatal_error(loop)) {
        PyErr_WriteUnraisable(fut);
    }
}

static void req_after_work(uv_work_t *work, int status)
{
    dns_req *req = work->data;
    LoopObject *loop = req->loop;
    al__loop_hold_gil(loop);
    req->finished = 1;
    loop->dns_pending--;
    if (req->future != NULL) {
        req_resolve(req, status);
        req_detach(req);
    }
    req_free(req);
    Py_DECREF(loop);
}

/* The future's done callback: a cancelled lookup not yet started never
   runs. Its context is NULL once the request has finished. */
static PyObject *req_on_done(PyObject *capsule, PyObject *Py_UNUSED(fut))
{
    dns_req *req = PyCapsule_GetContext(capsule);
    if (req != NULL) {
        req_cancel(req);
    }
    Py_RETURN_NONE;
}

static PyMethodDef on_done_def = {"_dns_on_done", (PyCFunction)req_on_done, METH_O, NULL};

static dns_req *req_new(void)
{
    dns_req *req = PyMem_RawCalloc(1, sizeof(dns_req));
    if (req == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    req->work.data = req;
    return req;
}

/* Queues the request; returns its future (new reference), consuming req. */
static PyObject *req_submit(LoopObject *loop, dns_req *req, uv_work_cb work_cb)
{
    al_state *st = loop->state;
    PyObject *fut = PyObject_CallMethodNoArgs((PyObject *)loop, st->str_create_future);
    if (fut == NULL) {
        req_free(req);
        return NULL;
    }
    req->capsule = PyCapsule_New(req, NULL, NULL);
    if (req->capsule == NULL || PyCapsule_SetContext(req->capsule, req) < 0 ||
        (req->on_done = PyCFunction_New(&on_done_def, req->capsule)) == NULL) {
        goto fail;
    }
    PyObject *argv[2] = {fut, req->on_done};
    PyObject *r = PyObject_VectorcallMethod(st->str_add_done_callback, argv,
                                            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        goto fail;
    }
    Py_DECREF(r);
    int err = uv_queue_work(&loop->uv, &req->work, work_cb, req_after_work);
    if (err < 0) {
        al__set_uv_error(err);
        goto fail;
    }
    req->loop = (LoopObject *)Py_NewRef(loop);
    req->future = Py_NewRef(fut);
    req->io.loop_closing = req_loop_closing;
    al__loop_io_link(loop, &req->io);
    loop->io_watchers++;
    loop->dns_pending++;
    return fut;
fail:
    if (req->capsule != NULL) {
        PyCapsule_SetContext(req->capsule, NULL);
    }
    Py_CLEAR(req->capsule);
    Py_CLEAR(req->on_done);
    req_free(req);
    Py_DECREF(fut);
    return NULL;
}

/* Called by loop_close_uv once the loop's handles are closed: the worker
   threads still hold requests of this uv loop, which uv_loop_close needs
   gone. Cancelled ones end at the next uv_run; running ones end when the
   system resolver returns. Waits with the GIL released. */
void al__dns_close_wait(LoopObject *loop)
{
    while (loop->dns_pending > 0) {
        loop->released_tstate = PyEval_SaveThread();
        uv_run(&loop->uv, UV_RUN_ONCE);
        if (loop->released_tstate != NULL) {
            PyThreadState *ts = loop->released_tstate;
            loop->released_tstate = NULL;
            PyEval_RestoreThread(ts);
        }
        loop->polling = 0;
    }
}

static int check_closed(LoopObject *loop)
{
    if (loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

static char *raw_strdup(const char *s, Py_ssize_t n)
{
    char *d = PyMem_RawMalloc((size_t)n + 1);
    if (d == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(d, s, (size_t)n);
    d[n] = '\0';
    return d;
}

/* --- getaddrinfo ---------------------------------------------------------- */

/* The port as socketmodule.c passes it to getaddrinfo(3): a new bytes
   object, or Py_None for none. */
static PyObject *convert_port(PyObject *pobj)
{
    if (PyLong_CheckExact(pobj)) {
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *s = PyObject_Str(pobj);
        PyObject *b = s ? PyUnicode_AsUTF8String(s) : NULL;
        Py_XDECREF(s);
        return b;
#else
        long value = PyLong_AsLong(pobj);
        if (value == -1 && PyErr_Occurred()) {
            return NULL;
        }
        return PyBytes_FromFormat("%ld", value);
#endif
    }
    if (PyUnicode_Check(pobj)) {
        return PyUnicode_AsUTF8String(pobj);
    }
    if (PyBytes_Check(pobj)) {
        return Py_NewRef(pobj);
    }
    if (pobj == Py_None) {
        return Py_NewRef(Py_None);
    }
    PyErr_SetString(PyExc_OSError, "Int or String expected");
    return NULL;
}

/* A numeric port getaddrinfo(3) reads as the number it is, or -1. */
static long numeric_port(PyObject *pobj, const char *pptr)
{
    if (pobj == Py_None) {
        return 0;
    }
    if (PyLong_CheckExact(pobj)) {
        int overflow;
        long v = PyLong_AsLongAndOverflow(pobj, &overflow);
        return (overflow || v < 0 || v > 65535) ? -1 : v;
    }
    if (pptr == NULL) {
        return -1;
    }
    size_t n = strlen(pptr);
    if (n == 0 || n > 5) {
        return -1;
    }
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (pptr[i] < '0' || pptr[i] > '9') {
            return -1;
        }
        v = v * 10 + (pptr[i] - '0');
    }
    return v > 65535 ? -1 : v;
}

/* asyncio's _ipaddr_info shortcut, narrowed to where getaddrinfo(3) would
   give exactly this one entry: a literal address, a stream or datagram
   type, a number for the port, no flag that changes the answer. Returns
   the list, NULL with an error, or NULL without one to use the resolver. */
static PyObject *numeric_lookup(al_state *st, const char *host, PyObject *pobj, const char *pptr,
                                int family, int type, int proto, int flags)
{
    int want_proto;
    if (type == SOCK_STREAM) {
        want_proto = IPPROTO_TCP;
    }
    else if (type == SOCK_DGRAM) {
        want_proto = IPPROTO_UDP;
    }
    else {
        return NULL;
    }
    if ((proto != 0 && proto != want_proto) ||
        (flags & ~(AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV)) != 0 ||
        (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) ||
        strchr(host, '%') != NULL) {
        return NULL;
    }
    long port = numeric_port(pobj, pptr);
    if (port < 0) {
        return NULL;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    char buf[INET6_ADDRSTRLEN];
    int af;
    if (family != AF_INET6 && inet_pton(AF_INET, host, addr) == 1) {
        af = AF_INET;
    }
    else if (family != AF_INET && inet_pton(AF_INET6, host, addr) == 1) {
        af = AF_INET6;
    }
    else {
        return NULL;
    }
    if (inet_ntop(af, addr, buf, sizeof(buf)) == NULL) {
        return NULL;
    }
    PyObject *sa =
        af == AF_INET ? Py_BuildValue("sl", buf, port) : Py_BuildValue("slii", buf, port, 0, 0);
    PyObject *e = entry(st, af, type, want_proto, "", sa);
    if (e == NULL) {
        return NULL;
    }
    PyObject *list = PyList_New(1);
    if (list == NULL) {
        Py_DECREF(e);
        return NULL;
    }
    PyList_SET_ITEM(list, 0, e);
    return list;
}

static PyObject *done_future(LoopObject *loop, PyObject *result /* stolen */)
{
    al_state *st = loop->state;
    PyObject *fut = PyObject_CallMethodNoArgs((PyObject *)loop, st->str_create_future);
    if (fut == NULL) {
        Py_DECREF(result);
        return NULL;
    }
    PyObject *argv[2] = {fut, result};
    PyObject *r = PyObject_VectorcallMethod(st->str_set_result, argv,
                                            2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(result);
    if (r == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(r);
    return fut;
}

/* Packs fastcall arguments so PyArg_ParseTuple can check them with the
   socket module's own format, hence its exact messages. */
static PyObject *args_tuple(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *t = PyTuple_New(nargs);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
    }
    return t;
}

/* _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0) -> Future */
PyObject *al__loop_getaddrinfo(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    al_state *st = self->state;
    PyObject *hobj, *pobj;
    int family = AF_UNSPEC, type = 0, proto = 0, flags = 0;
    if (check_closed(self) < 0) {
        return NULL;
    }
    PyObject *t = args_tuple(args, nargs);
    if (t == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTuple(t, "OO|iiii:getaddrinfo", &hobj, &pobj, &family, &type, &proto, &flags)) {
        Py_DECREF(t);
        return NULL;
    }
    PyObject *hbytes = NULL, *pbytes = NULL, *result = NULL;
    if (hobj == Py_None) {
        hbytes = Py_NewRef(Py_None);
    }
    else if (PyUnicode_Check(hobj)) {
        hbytes = PyUnicode_AsEncodedString(hobj, "idna", NULL);
    }
    else if (PyBytes_Check(hobj)) {
        hbytes = Py_NewRef(hobj);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "getaddrinfo() argument 1 must be string or None");
    }
    if (hbytes == NULL || (pbytes = convert_port(pobj)) == NULL) {
        goto done;
    }
    if (PySys_Audit("socket.getaddrinfo", "OOiii", hobj, pobj, family, type, proto) < 0) {
        goto done;
    }
    /* C strings stop at a NUL, as socketmodule.c passes them. */
    const char *hptr = hbytes == Py_None ? NULL : PyBytes_AS_STRING(hbytes);
    const char *pptr = pbytes == Py_None ? NULL : PyBytes_AS_STRING(pbytes);
    if (hptr != NULL) {
        PyObject *list = numeric_lookup(st, hptr, pobj, pptr, family, type, proto, flags);
        if (list != NULL) {
            result = done_future(self, list);
            goto done;
        }
        if (PyErr_Occurred()) {
            goto done;
        }
    }
    dns_req *req = req_new();
    if (req == NULL) {
        goto done;
    }
    req->kind = REQ_GAI;
    if ((hptr != NULL && (req->host = raw_strdup(hptr, (Py_ssize_t)strlen(hptr))) == NULL) ||
        (pptr != NULL && (req->port = raw_strdup(pptr, (Py_ssize_t)strlen(pptr))) == NULL)) {
        req_free(req);
        goto done;
    }
    req->hints.ai_family = family;
    req->hints.ai_socktype = type;
    req->hints.ai_protocol = proto;
    req->hints.ai_flags = flags;
    result = req_submit(self, req, gai_work);
done:
    Py_XDECREF(hbytes);
    Py_XDECREF(pbytes);
    Py_DECREF(t);
    return result;
}

/* _getnameinfo(sockaddr, flags) -> Future */
PyObject *al__loop_getnameinfo(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *sa;
    const char *hostp;
    int flags = 0, port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (check_closed(self) < 0) {
        return NULL;
    }
    PyObject *t = args_tuple(args, nargs);
    if (t == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTuple(t, "Oi:getnameinfo", &sa, &flags)) {
        Py_DECREF(t);
        return NULL;
    }
    PyObject *result = NULL;
    if (!PyTuple_Check(sa)) {
        PyErr_SetString(PyExc_TypeError, "getnameinfo() argument 1 must be a tuple");
        goto done;
    }
    if (!PyArg_ParseTuple(sa, "si|II;getnameinfo(): illegal sockaddr argument", &hostp, &port,
                          &flowinfo, &scope_id)) {
        goto done;
    }
    if (flowinfo > 0xfffff) {
        PyErr_SetString(PyExc_OverflowError, "getnameinfo(): flowinfo must be 0-1048575.");
        goto done;
    }
    if (PySys_Audit("socket.getnameinfo", "(O)", sa) < 0) {
        goto done;
    }
    dns_req *req = req_new();
    if (req == NULL) {
        goto done;
    }
    char pbuf[32];
    PyOS_snprintf(pbuf, sizeof(pbuf), "%d", port);
    req->kind = REQ_GNI;
    if ((req->host = raw_strdup(hostp, (Py_ssize_t)strlen(hostp))) == NULL ||
        (req->port = raw_strdup(pbuf, (Py_ssize_t)strlen(pbuf))) == NULL) {
        req_free(req);
        goto done;
    }
    req->ni_flags = flags;
    req->flowinfo = flowinfo;
    req->scope_id = scope_id;
    req->sa_len = PyTuple_GET_SIZE(sa);
    result = req_submit(self, req, gni_work);
done:
    Py_DECREF(t);
    return result;
}
