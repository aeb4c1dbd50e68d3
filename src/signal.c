/* Signals, as asyncio's unix loop has them.

   CPython's C-level handler only records a signal; Python-level handlers
   (KeyboardInterrupt, asyncio.Runner's Ctrl-C handler, ours) run when the
   main thread next checks for signals. A loop blocked in poll would not
   check until its timeout, so while it runs the signal wakeup fd points at
   a pipe the loop watches: a signal ends the poll and the iteration calls
   PyErr_CheckSignals(). add_signal_handler() installs a Python-level
   handler (the loop's _handle_signal) that queues the user's callback. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static void on_wakeup_readable(uv_poll_t *poll, int status, int events)
{
    LoopObject *loop = poll->data;
    al__loop_hold_gil(loop);
    char buf[256];
    /* Drain: the bytes name signals, which PyErr_CheckSignals handles. */
    while (read(loop->wakeup_fds[0], buf, sizeof(buf)) > 0) {
    }
}

static void on_wakeup_close(uv_handle_t *handle)
{
    LoopObject *loop = handle->data;
    loop->state->live_uv_handles--;
}

static int signal_wakeup_open(LoopObject *loop)
{
    if (loop->wakeup_fds[0] >= 0) {
        return 0;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int err = al__poll_init(loop, &loop->wakeup_poll, fds[0]);
    if (err == 0) {
        loop->wakeup_poll.data = loop;
        err = uv_poll_start(&loop->wakeup_poll, UV_READABLE, on_wakeup_readable);
        if (err < 0) {
            uv_close((uv_handle_t *)&loop->wakeup_poll, NULL);
        }
    }
    if (err < 0) {
        close(fds[0]);
        close(fds[1]);
        return al__set_uv_error(err);
    }
    /* Not a reason to keep uv_run alive by itself. */
    uv_unref((uv_handle_t *)&loop->wakeup_poll);
    loop->state->live_uv_handles++;
    loop->wakeup_fds[0] = fds[0];
    loop->wakeup_fds[1] = fds[1];
    return 0;
}

/* The loop running in the main thread with the wakeup fd it replaced, to
   restore at the end of its run (borrowed; set only during that run). A
   process-wide static, as the wakeup fd itself is; only the main
   interpreter's main thread touches it. */
static LoopObject *wakeup_saver = NULL;

void al__signal_wakeup_close(LoopObject *loop)
{
    if (loop->wakeup_fds[0] < 0) {
        return;
    }
    /* The running loop must not restore this pipe once it is closed: the
       fd number may by then belong to an unrelated file. */
    LoopObject *saver = wakeup_saver;
    if (saver != NULL && saver != loop && saver->wakeup_saved != NULL &&
        PyLong_CheckExact(saver->wakeup_saved)) {
        /* Not to lose an exception already set (close() on an error path). */
        PyObject *exc = al__err_fetch();
        if (PyLong_AsLong(saver->wakeup_saved) == loop->wakeup_fds[1]) {
            /* -1 is a cached small int: this cannot fail. */
            Py_SETREF(saver->wakeup_saved, PyLong_FromLong(-1));
        }
        PyErr_Clear();
        al__err_restore(exc);
    }
    uv_close((uv_handle_t *)&loop->wakeup_poll, on_wakeup_close);
    close(loop->wakeup_fds[0]);
    close(loop->wakeup_fds[1]);
    loop->wakeup_fds[0] = loop->wakeup_fds[1] = -1;
}

/* signal.set_wakeup_fd(fd, warn_on_full_buffer=False); returns the old fd. */
static PyObject *set_wakeup_fd(al_state *st, int fd)
{
    PyObject *fdobj = PyLong_FromLong(fd);
    if (fdobj == NULL) {
        return NULL;
    }
    PyObject *argv[3] = {NULL, fdobj, Py_False};
    PyObject *kwnames = PyTuple_Pack(1, st->str_warn_on_full_buffer);
    PyObject *func = PyObject_GetAttr(st->signal_module, st->str_set_wakeup_fd);
    PyObject *res =
        (kwnames && func)
            ? PyObject_Vectorcall(func, argv + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames)
            : NULL;
    Py_XDECREF(kwnames);
    Py_XDECREF(func);
    Py_DECREF(fdobj);
    return res;
}

static int is_main_thread(void)
{
    /* signal.set_wakeup_fd works only in the main thread of the main
       interpreter; ask the threading module, as asyncio's Runner does. */
    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        return -1;
    }
    PyObject *cur = PyObject_CallMethod(threading, "current_thread", NULL);
    PyObject *main = cur ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    Py_DECREF(threading);
    int r = main ? cur == main : -1;
    Py_XDECREF(cur);
    Py_XDECREF(main);
    return r;
}

int al__signal_run_setup(LoopObject *loop)
{
    int main = is_main_thread();
    if (main <= 0) {
        return main;
    }
    if (signal_wakeup_open(loop) < 0) {
        return -1;
    }
    PyObject *old = set_wakeup_fd(loop->state, loop->wakeup_fds[1]);
    if (old == NULL) {
        /* Not the main interpreter: no signals here, as on asyncio. */
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            return 0;
        }
        return -1;
    }
    Py_XSETREF(loop->wakeup_saved, old);
    wakeup_saver = loop;
    return 0;
}

int al__signal_run_cleanup(LoopObject *loop)
{
    if (loop->wakeup_saved == NULL) {
        return 0;
    }
    PyObject *saved = loop->wakeup_saved;
    loop->wakeup_saved = NULL;
    if (wakeup_saver == loop) {
        wakeup_saver = NULL;
    }
    int rc = 0;
    int has_handlers = loop->signal_handlers && PyDict_GET_SIZE(loop->signal_handlers) > 0;
    if (!has_handlers) {
        long fd = PyLong_AsLong(saved);
        if (fd == loop->wakeup_fds[1]) {
            fd = -1;
        }
        PyObject *res = (fd == -1 && PyErr_Occurred()) ? NULL : set_wakeup_fd(loop->state, (int)fd);
        if (res == NULL) {
            rc = -1;
        }
        Py_XDECREF(res);
    }
    Py_DECREF(saved);
    return rc;
}

/* asyncio's _check_signal */
static int check_signal(al_state *st, PyObject *sig, int *signum)
{
    if (!PyLong_Check(sig)) {
        PyErr_Format(PyExc_TypeError, "sig must be an int, not %R", sig);
        return -1;
    }
    PyObject *valid = PyObject_CallMethodNoArgs(st->signal_module, st->str_valid_signals);
    if (valid == NULL) {
        return -1;
    }
    int ok = PySequence_Contains(valid, sig);
    Py_DECREF(valid);
    if (ok < 0) {
        return -1;
    }
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "invalid signal number %S", sig);
        return -1;
    }
    *signum = (int)PyLong_AsLong(sig);
    return 0;
}

static int oserror_is_einval(void)
{
    if (!PyErr_ExceptionMatches(PyExc_OSError)) {
        return 0;
    }
    PyObject *exc = al__err_fetch();
    PyObject *no = PyObject_GetAttrString(exc, "errno");
    int einval = no && PyLong_Check(no) && PyLong_AsLong(no) == EINVAL;
    Py_XDECREF(no);
    PyErr_Clear();
    al__err_restore(exc);
    return einval;
}

static void log_info(al_state *st, const char *fmt, PyObject *arg)
{
    PyObject *res = PyObject_CallMethod(st->logger, "info", "sO", fmt, arg);
    if (res == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(res);
}

/* The Python-level handler must not keep the loop alive: an unclosed loop
   with signal handlers is collected (and closed, with a ResourceWarning) as
   asyncio's is. So it holds the loop weakly where the loop allows it. */
static PyObject *signal_trampoline(PyObject *weak_loop, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *loop;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyWeakref_GetRef(weak_loop, &loop) < 0) {
        return NULL;
    }
#else
    loop = Py_XNewRef(PyWeakref_GetObject(weak_loop)); /* borrowed, then owned */
    if (loop == Py_None) {
        Py_CLEAR(loop);
    }
#endif
    if (loop == NULL) {
        Py_RETURN_NONE; /* the loop is gone; close() restores the handler */
    }
    PyObject *res = al__loop_handle_signal((LoopObject *)loop, args, nargs);
    Py_DECREF(loop);
    return res;
}

static PyMethodDef signal_trampoline_def = {
    "_handle_signal", (PyCFunction)(void (*)(void))signal_trampoline, METH_FASTCALL, NULL};

static PyObject *signal_handler_for(LoopObject *self)
{
    PyObject *weak = PyWeakref_NewRef((PyObject *)self, NULL);
    if (weak == NULL) {
        /* A loop type without weak references: the bound method. */
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return NULL;
        }
        PyErr_Clear();
        return PyObject_GetAttr((PyObject *)self, self->state->str_handle_signal);
    }
    PyObject *fn = PyCFunction_New(&signal_trampoline_def, weak);
    Py_DECREF(weak);
    return fn;
}

/* signal.set_wakeup_fd(-1) once no handler is left, unless a run holds it. */
static void release_wakeup_fd(LoopObject *loop)
{
    if (loop->wakeup_saved != NULL) {
        return; /* the run restores it when it ends */
    }
    PyObject *res = set_wakeup_fd(loop->state, -1);
    if (res == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_OSError)) {
            PyObject *exc = al__err_fetch();
            log_info(loop->state, "set_wakeup_fd(-1) failed: %s", exc);
            Py_XDECREF(exc);
        }
        PyErr_Clear();
    }
    Py_XDECREF(res);
}

PyObject *al__loop_add_signal_handler(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    al_state *st = self->state;
    int signum;
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "add_signal_handler() missing %zd required positional argument%s", 2 - nargs,
                     nargs == 0 ? "s: 'sig' and 'callback'" : ": 'callback'");
        return NULL;
    }
    PyObject *sig = args[0], *callback = args[1];
    int is_coro = al__is_coroutine_like(st, callback);
    if (is_coro < 0) {
        return NULL;
    }
    if (is_coro) {
        PyErr_SetString(PyExc_TypeError, "coroutines cannot be used with add_signal_handler()");
        return NULL;
    }
    if (check_signal(st, sig, &signum) < 0) {
        return NULL;
    }
    if (self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    /* Fails outside the main thread, so that a loop running in another
       thread cannot add a signal handler (asyncio's check). */
    if (signal_wakeup_open(self) < 0) {
        return NULL;
    }
    PyObject *old = set_wakeup_fd(st, self->wakeup_fds[1]);
    if (old == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_OSError)) {
            PyObject *exc = al__err_fetch();
            PyObject *msg = PyObject_Str(exc);
            Py_DECREF(exc);
            if (msg != NULL) {
                PyErr_SetObject(PyExc_RuntimeError, msg);
                Py_DECREF(msg);
            }
        }
        return NULL;
    }
    Py_DECREF(old);
    if (self->signal_handlers == NULL && (self->signal_handlers = PyDict_New()) == NULL) {
        return NULL;
    }
    HandleObject *h = al__handle_new(st, st->HandleType, self, callback, args + 2, nargs - 2, NULL);
    if (h == NULL) {
        return NULL;
    }
    /* Kept in signal_handlers, not only queued: an ordinary GC object. */
    if (!PyObject_GC_IsTracked((PyObject *)h)) {
        PyObject_GC_Track(h);
    }
    int rc = PyDict_SetItem(self->signal_handlers, sig, (PyObject *)h);
    Py_DECREF(h);
    if (rc < 0) {
        return NULL;
    }
    PyObject *handler = signal_handler_for(self);
    PyObject *res =
        handler ? PyObject_CallMethodObjArgs(st->signal_module, st->str_signal, sig, handler, NULL)
                : NULL;
    Py_XDECREF(handler);
    if (res != NULL) {
        Py_DECREF(res);
        /* Restart interrupted system calls, as asyncio does. */
        res = PyObject_CallMethodObjArgs(st->signal_module, st->str_siginterrupt, sig, Py_False,
                                         NULL);
    }
    if (res == NULL) {
        PyObject *exc = al__err_fetch();
        al__err_restore(Py_NewRef(exc));
        int einval = oserror_is_einval();
        PyErr_Clear();
        if (PyDict_DelItem(self->signal_handlers, sig) < 0) {
            PyErr_Clear();
        }
        if (PyDict_GET_SIZE(self->signal_handlers) == 0) {
            release_wakeup_fd(self);
        }
        if (einval) {
            Py_DECREF(exc);
            PyErr_Format(PyExc_RuntimeError, "sig %d cannot be caught", signum);
        }
        else {
            al__err_restore(exc);
        }
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

PyObject *al__loop_remove_signal_handler(LoopObject *self, PyObject *sig)
{
    al_state *st = self->state;
    int signum;
    if (check_signal(st, sig, &signum) < 0) {
        return NULL;
    }
    if (self->signal_handlers == NULL) {
        Py_RETURN_FALSE;
    }
    PyObject *h = PyDict_GetItemWithError(self->signal_handlers, sig); /* borrowed */
    if (h == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    if (PyDict_DelItem(self->signal_handlers, sig) < 0) {
        return NULL;
    }
    PyObject *handler;
    if (signum == SIGINT) {
        handler = PyObject_GetAttr(st->signal_module, st->str_default_int_handler);
    }
    else {
        handler = PyObject_GetAttrString(st->signal_module, "SIG_DFL");
    }
    PyObject *res =
        handler ? PyObject_CallMethodObjArgs(st->signal_module, st->str_signal, sig, handler, NULL)
                : NULL;
    Py_XDECREF(handler);
    if (res == NULL) {
        if (oserror_is_einval()) {
            PyErr_Clear();
            PyErr_Format(PyExc_RuntimeError, "sig %d cannot be caught", signum);
        }
        return NULL;
    }
    Py_DECREF(res);
    if (PyDict_GET_SIZE(self->signal_handlers) == 0) {
        release_wakeup_fd(self);
    }
    Py_RETURN_TRUE;
}

/* The Python-level handler: runs from PyErr_CheckSignals in the main
   thread, and queues the user's callback as asyncio's _handle_signal. */
PyObject *al__loop_handle_signal(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || self->signal_handlers == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *h = PyDict_GetItemWithError(self->signal_handlers, args[0]); /* borrowed */
    if (h == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (((HandleObject *)h)->cancelled) {
        return al__loop_remove_signal_handler(self, args[0]);
    }
    if (self->closed) {
        Py_RETURN_NONE;
    }
    if (al__ring_push(&self->ready, (HandleObject *)h) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

int al__signal_remove_all(LoopObject *loop)
{
    al_state *st = loop->state;
    if (loop->signal_handlers == NULL || PyDict_GET_SIZE(loop->signal_handlers) == 0) {
        return 0;
    }
    PyObject *fin = PyObject_CallMethodNoArgs(st->sys_module, st->str_is_finalizing);
    if (fin == NULL) {
        return -1;
    }
    int finalizing = PyObject_IsTrue(fin);
    Py_DECREF(fin);
    if (finalizing) {
        if (PyErr_ResourceWarning((PyObject *)loop, 1,
                                  "Closing the loop %R on interpreter shutdown stage, "
                                  "skipping signal handlers removal",
                                  loop) < 0) {
            return -1;
        }
        PyDict_Clear(loop->signal_handlers);
        return 0;
    }
    PyObject *keys = PyDict_Keys(loop->signal_handlers);
    if (keys == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *res = al__loop_remove_signal_handler(loop, PyList_GET_ITEM(keys, i));
        if (res == NULL) {
            Py_DECREF(keys);
            return -1;
        }
        Py_DECREF(res);
    }
    Py_DECREF(keys);
    return 0;
}
