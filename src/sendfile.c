/* Zero-copy sendfile(2): loop.sock_sendfile's native part, asyncio's unix
   loop _sock_sendfile_native / _sock_sendfile_native_impl in C, and the
   helpers the socket transport's loop.sendfile path (end of stream.c)
   shares with it. The checks and the fallback to reads and writes are
   asyncio's own (base_events.sock_sendfile, borrowed in __init__.py). */
#include "internal.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes after which a callback makes no further call when the reader keeps
   up: then other callbacks get their turn (the fd is writable again at
   once). The first call asks for as much as asyncio's one call does. */
#define SENDFILE_BUDGET ((long long)16 * 1024 * 1024)

/* PyLong_AsInt, which the C API has only from 3.13 on. */
static int as_int(PyObject *obj)
{
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
        return -1;
    }
    return (int)v;
}

/* Raises cls(msg) with the exception being handled as its __context__,
   as `raise` inside an `except` block does. */
static void raise_with_context(PyObject *cls, const char *msg)
{
    PyObject *ctx = al__err_fetch();
    PyErr_SetString(cls, msg);
    if (ctx != NULL) {
        PyObject *exc = al__err_fetch();
        PyException_SetContext(exc, ctx); /* steals ctx */
        al__err_restore(exc);
    }
}

int al__sendfile_file_fd(al_state *st, PyObject *file, PyObject *count, int *fileno,
                         long long *blocksize)
{
    PyObject *fd = PyObject_CallMethodNoArgs(file, st->str_fileno);
    if (fd == NULL) {
        /* except (AttributeError, io.UnsupportedOperation) */
        int match = PyErr_ExceptionMatches(PyExc_AttributeError);
        if (!match) {
            PyObject *exc = al__err_fetch();
            PyObject *unsupported = al__import_attr("io", "UnsupportedOperation");
            if (unsupported == NULL) {
                Py_XDECREF(exc);
                return -1;
            }
            match = PyObject_IsInstance(exc, unsupported);
            Py_DECREF(unsupported);
            al__err_restore(exc);
            if (match < 0) {
                return -1;
            }
        }
        if (match) {
            raise_with_context(st->SendfileNotAvailableError, "not a regular file");
        }
        return -1;
    }
    int v = as_int(fd);
    Py_DECREF(fd);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    /* fsize = os.fstat(fileno).st_size; OSError: not a regular file */
    struct stat sb;
    if (fstat(v, &sb) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        raise_with_context(st->SendfileNotAvailableError, "not a regular file");
        return -1;
    }
    *fileno = v;
    /* blocksize = count if count else fsize */
    int truth = count == Py_None ? 0 : PyObject_IsTrue(count);
    if (truth < 0) {
        return -1;
    }
    if (truth) {
        *blocksize = PyLong_AsLongLong(count);
        if (*blocksize == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    else {
        *blocksize = (long long)sb.st_size;
    }
    return 0;
}

int al__sendfile_round(int out_fd, int in_fd, long long *offset, long long count,
                       long long blocksize, long long *total, int *err)
{
    long long budget = SENDFILE_BUDGET;
    for (;;) {
        /* asyncio's blocksize: what is left of count, else the file's size */
        long long want = blocksize;
        if (count > 0) {
            want = count - *total;
            if (want <= 0) {
                return 1;
            }
        }
        if (budget <= 0) {
            return 0; /* budget spent: writable again at once */
        }
        off_t off = (off_t)*offset;
        ssize_t n;
        int e;
        /* The GIL is released as os.sendfile releases it: a blocking
           socket (allowed outside debug mode) blocks here. */
        Py_BEGIN_ALLOW_THREADS n = sendfile(out_fd, in_fd, &off, (size_t)want);
        e = errno;
        Py_END_ALLOW_THREADS if (n < 0)
        {
            if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) {
                return 0; /* as asyncio: wait for writability */
            }
            *err = e;
            return -1;
        }
        if (n == 0) {
            return 1; /* EOF: the file ends (or was truncated) */
        }
        *offset += n;
        *total += n;
        budget -= n;
        if (n < want && (count <= 0 || *total < count)) {
            /* Short: the socket is full (or the file ends, which the next
               call tells): wait instead of a call that would fail. */
            return 0;
        }
    }
}

PyObject *al__sendfile_error(al_state *st, int err, long long total, int midway)
{
    if (total == 0) {
        /* asyncio: the file is not mmap-like (or the first send failed):
           the caller falls back to plain sends. */
        return PyObject_CallFunction(st->SendfileNotAvailableError, "s", "os.sendfile call failed");
    }
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    PyObject *exc = al__err_fetch();
    if (midway && err == ENOTCONN && !Py_IS_TYPE(exc, (PyTypeObject *)PyExc_ConnectionError)) {
        /* asyncio normalises a connection closed midway to ConnectionError */
        PyObject *new_exc =
            PyObject_CallFunction(PyExc_ConnectionError, "si", "socket is not connected", ENOTCONN);
        if (new_exc == NULL) {
            Py_DECREF(exc);
            return NULL;
        }
        PyException_SetCause(new_exc, exc); /* steals exc */
        exc = new_exc;
    }
    return exc;
}

int al__sendfile_update_filepos(int fileno, long long offset, long long total)
{
    if (total > 0 && lseek(fileno, (off_t)offset, SEEK_SET) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* --- loop._sock_sendfile_native ------------------------------------------ */

static int call_void(PyObject *obj, const char *name, PyObject *arg)
{
    PyObject *r =
        arg ? PyObject_CallMethod(obj, name, "O", arg) : PyObject_CallMethod(obj, name, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int sock_fileno(al_state *st, PyObject *sock, int *fd)
{
    PyObject *r = al__call_method(st->str_fileno, sock, NULL, 0);
    if (r == NULL) {
        return -1;
    }
    *fd = as_int(r);
    Py_DECREF(r);
    return *fd == -1 && PyErr_Occurred() ? -1 : 0;
}

/* Sets fut's result (exc NULL) or exception; steals value. */
static int fut_complete(al_state *st, PyObject *fut, PyObject *value, int is_exc)
{
    if (value == NULL) {
        return -1;
    }
    PyObject *r =
        al__call_method(is_exc ? st->str_set_exception : st->str_set_result, fut, &value, 1);
    Py_DECREF(value);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* _sock_sendfile_native_impl(fut, registered_fd, sock, fileno, offset,
   count, blocksize, total_sent): asyncio's, except that it sends until the
   socket would block (up to SENDFILE_BUDGET) before it waits, and keeps
   its writer registered between rounds. */
PyObject *al__loop_sock_sendfile_impl(LoopObject *self, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames)
{
    al_state *st = self->state;
    if (PyVectorcall_NARGS(nargsf) != 8 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "_sock_sendfile_native_impl() takes 8 arguments");
        return NULL;
    }
    PyObject *fut = args[0], *registered = args[1], *sock = args[2];
    int fileno = as_int(args[3]);
    long long offset = PyLong_AsLongLong(args[4]);
    long long count = -1;
    if (args[5] != Py_None) {
        count = PyLong_AsLongLong(args[5]);
        if (count == 0) {
            count = -1; /* `if count:` */
        }
    }
    long long blocksize = PyLong_AsLongLong(args[6]);
    long long total = PyLong_AsLongLong(args[7]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    int fd;
    if (sock_fileno(st, sock, &fd) < 0) {
        return NULL;
    }
    PyObject *c = al__call_method(st->str_cancelled, fut, NULL, 0);
    int cancelled = c ? PyObject_IsTrue(c) : -1;
    Py_XDECREF(c);
    if (cancelled < 0) {
        return NULL;
    }
    int rc = 0, err = 0;
    if (!cancelled) {
        rc = al__sendfile_round(fd, fileno, &offset, count, blocksize, &total, &err);
    }
    if (!cancelled && rc == 0) {
        /* Wait for writability (the writer stays registered between rounds). */
        if (registered == Py_None) {
            PyObject *cb = PyObject_GetAttrString((PyObject *)self, "_sock_sendfile_cancel_cb");
            PyObject *p = cb ? PyObject_CallFunctionObjArgs(st->partial, cb, sock, NULL) : NULL;
            Py_XDECREF(cb);
            int r = p ? call_void(fut, "add_done_callback", p) : -1;
            Py_XDECREF(p);
            if (r < 0) {
                return NULL;
            }
        }
        PyObject *impl = PyObject_GetAttr((PyObject *)self, st->str_sock_sendfile_impl);
        PyObject *fdobj = PyLong_FromLong(fd);
        PyObject *off = PyLong_FromLongLong(offset);
        PyObject *tot = PyLong_FromLongLong(total);
        PyObject *r = NULL;
        if (impl && fdobj && off && tot) {
            PyObject *argv[11] = {(PyObject *)self, fdobj, impl,    fut,     fdobj, sock,
                                  args[3],          off,   args[5], args[6], tot};
            PyObject *name = PyUnicode_FromString("add_writer");
            r = name ? PyObject_VectorcallMethod(name, argv + 0, 11, NULL) : NULL;
            Py_XDECREF(name);
        }
        Py_XDECREF(impl);
        Py_XDECREF(fdobj);
        Py_XDECREF(off);
        Py_XDECREF(tot);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    /* Finished: the writer goes, the file position is asyncio's. */
    if (registered != Py_None) {
        PyObject *fdobj = PyLong_FromLong(fd);
        int r = fdobj ? call_void((PyObject *)self, "remove_writer", fdobj) : -1;
        Py_XDECREF(fdobj);
        if (r < 0) {
            return NULL;
        }
    }
    if (al__sendfile_update_filepos(fileno, offset, total) < 0) {
        PyObject *exc = al__err_fetch();
        if (!cancelled && fut_complete(st, fut, exc, 1) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (cancelled) {
        Py_RETURN_NONE;
    }
    int r = rc == 1
                ? fut_complete(st, fut, PyLong_FromLongLong(total), 0)
                : fut_complete(
                      st, fut,
                      al__sendfile_error(st, err, total, registered != Py_None || total > 0), 1);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* asyncio's _sock_add_cancellation_callback's cb, as partial(cb, sock). */
PyObject *al__loop_sock_sendfile_cancel_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "_sock_sendfile_cancel_cb(sock, fut)");
        return NULL;
    }
    al_state *st = self->state;
    PyObject *c = al__call_method(st->str_cancelled, args[1], NULL, 0);
    int cancelled = c ? PyObject_IsTrue(c) : -1;
    Py_XDECREF(c);
    if (cancelled <= 0) {
        return cancelled < 0 ? NULL : Py_NewRef(Py_None);
    }
    int fd;
    if (sock_fileno(st, args[0], &fd) < 0) {
        return NULL;
    }
    if (fd != -1) {
        PyObject *fdobj = PyLong_FromLong(fd);
        int r = fdobj ? call_void((PyObject *)self, "remove_writer", fdobj) : -1;
        Py_XDECREF(fdobj);
        if (r < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* _sock_sendfile_native(sock, file, offset, count) -> Future: called by
   asyncio's sock_sendfile after its checks. SendfileNotAvailableError
   (raised, or in the future when the first sendfile fails) makes it fall
   back to sock_sendall. */
PyObject *al__loop_sock_sendfile_native(LoopObject *self, PyObject *const *args, size_t nargsf,
                                        PyObject *kwnames)
{
    al_state *st = self->state;
    if (PyVectorcall_NARGS(nargsf) != 4 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "_sock_sendfile_native(sock, file, offset, count)");
        return NULL;
    }
    int fileno;
    long long blocksize;
    if (al__sendfile_file_fd(st, args[1], args[3], &fileno, &blocksize) < 0) {
        return NULL;
    }
    PyObject *fut = PyObject_CallMethod((PyObject *)self, "create_future", NULL);
    if (fut == NULL) {
        return NULL;
    }
    if (blocksize == 0) { /* empty file */
        PyObject *zero = PyLong_FromLong(0);
        if (fut_complete(st, fut, zero, 0) < 0) {
            Py_DECREF(fut);
            return NULL;
        }
        return fut;
    }
    PyObject *filenoobj = PyLong_FromLong(fileno);
    PyObject *bs = PyLong_FromLongLong(blocksize);
    PyObject *zero = PyLong_FromLong(0);
    PyObject *r = NULL;
    if (filenoobj && bs && zero) {
        PyObject *argv[8] = {fut, Py_None, args[0], filenoobj, args[2], args[3], bs, zero};
        r = al__loop_sock_sendfile_impl(self, argv, 8, NULL);
    }
    Py_XDECREF(filenoobj);
    Py_XDECREF(bs);
    Py_XDECREF(zero);
    if (r == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(r);
    return fut;
}
