/* add_reader/add_writer and the sock_* methods over one uv_poll_t per fd,
   as asyncio's selector_events.BaseSelectorEventLoop. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* The uv_poll_t lives apart from the watcher (see docs/architecture.md):
   either may go first. */
typedef struct {
    uv_poll_t poll;
    al_state *st;
} poll_box;

/* One per watched fd, kept in loop->fd_watchers while it has a reader or a
   writer (the dict plays the part of asyncio's selector map, and holds the
   watcher while its handle is active). */
typedef struct {
    PyObject_HEAD
    LoopObject *loop;     /* strong */
    poll_box *box;        /* NULL once closed */
    HandleObject *reader; /* strong, or NULL */
    HandleObject *writer; /* strong, or NULL */
    al_io io;
    al_idle idle; /* linked in loop->poll_idle while idle and armed */
    int fd;
    int events; /* what is registered and counted in io_watchers */
    int armed;  /* what libuv polls for: events, or more while idle */
    int lazy;   /* a socket: may stay armed while idle (see al_idle) */
    dev_t dev;  /* the file polled: a watcher left with nothing stays, */
    ino_t ino;  /* stopped, for the next wait on the same file */
    /* A weak reference to the socket whose sock_* wait found the file
       polled, or NULL: while that socket object is open it owns the fd,
       so its next wait needs no fstat. */
    PyObject *sock_ref;
} WatcherObject;

#define IO_TO_WATCHER(p) ((WatcherObject *)((char *)(p)-offsetof(WatcherObject, io)))
#define IDLE_TO_WATCHER(p) ((WatcherObject *)((char *)(p)-offsetof(WatcherObject, idle)))

/* --- fds ------------------------------------------------------------------ */

/* The int fd of an int or an object with fileno(), without the sign check
   (asyncio's _ensure_fd_no_transport). */
static int fileobj_fileno(PyObject *fileobj, long *out)
{
    PyObject *num;
    if (PyLong_Check(fileobj)) {
        num = Py_NewRef(fileobj);
    }
    else {
        PyObject *r = PyObject_CallMethod(fileobj, "fileno", NULL);
        num = r ? PyNumber_Long(r) : NULL;
        Py_XDECREF(r);
        if (num == NULL) {
            if (PyErr_ExceptionMatches(PyExc_AttributeError) ||
                PyErr_ExceptionMatches(PyExc_TypeError) ||
                PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "Invalid file object: %R", fileobj);
            }
            return -1;
        }
    }
    long fd = PyLong_AsLong(num);
    Py_DECREF(num);
    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = fd;
    return 0;
}

/* selectors._fileobj_to_fd. */
static int fileobj_to_fd(PyObject *fileobj, int *out)
{
    long fd;
    if (fileobj_fileno(fileobj, &fd) < 0) {
        return -1;
    }
    if (fd < 0) {
        PyErr_Format(PyExc_ValueError, "Invalid file descriptor: %ld", fd);
        return -1;
    }
    if (fd > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "file descriptor out of range");
        return -1;
    }
    *out = (int)fd;
    return 0;
}

static int ensure_no_transport(LoopObject *loop, PyObject *fileobj)
{
    long fd;
    if (fileobj_fileno(fileobj, &fd) < 0) {
        return -1;
    }
    if (fd < INT_MIN || fd > INT_MAX) {
        return 0;
    }
    return al__loop_ensure_fd_no_transport(loop, (int)fd, fileobj);
}

/* --- the watcher ---------------------------------------------------------- */

static void on_poll_close(uv_handle_t *handle)
{
    poll_box *box = (poll_box *)handle;
    box->st->live_uv_handles--;
    PyMem_RawFree(box);
}

static void watcher_set_active(WatcherObject *w, int events)
{
    if (w->events == 0 && events != 0) {
        w->loop->io_watchers++;
    }
    else if (w->events != 0 && events == 0) {
        w->loop->io_watchers--;
    }
    w->events = events;
}

static void idle_link_in(LoopObject *loop, al_idle *idle)
{
    if (idle->prev == NULL) {
        idle->prev = &loop->poll_idle;
        idle->next = loop->poll_idle.next;
        if (idle->next != NULL) {
            idle->next->prev = idle;
        }
        loop->poll_idle.next = idle;
    }
}

static void idle_unlink_from(al_idle *idle)
{
    if (idle->prev != NULL) {
        idle->prev->next = idle->next;
        if (idle->next != NULL) {
            idle->next->prev = idle->prev;
        }
        idle->prev = idle->next = NULL;
    }
}

static void idle_link(WatcherObject *w)
{
    idle_link_in(w->loop, &w->idle);
}

static void idle_unlink(WatcherObject *w)
{
    idle_unlink_from(&w->idle);
}

#define IDLE_TO_TPOLL(p) ((al_tpoll *)((char *)(p)-offsetof(al_tpoll, idle)))

/* Stops libuv's polling of a released transport poll. */
static void tpoll_disarm(al_tpoll *tp)
{
    idle_unlink_from(&tp->idle);
    if (tp->armed != 0 && tp->box != NULL) {
        uv_poll_stop(&tp->box->poll);
    }
    tp->armed = 0;
}

/* Stops libuv's polling; the registrations stay as they are. */
static void watcher_disarm(WatcherObject *w)
{
    idle_unlink(w);
    if (w->armed != 0 && w->box != NULL) {
        al__poll_forget(w->loop, &w->box->poll);
        uv_poll_stop(&w->box->poll);
    }
    w->armed = 0;
}

void al__poll_idle_flush(LoopObject *loop)
{
    while (loop->poll_idle.next != NULL) {
        al_idle *idle = loop->poll_idle.next;
        if (idle->tpoll) {
            tpoll_disarm(IDLE_TO_TPOLL(idle));
        }
        else {
            watcher_disarm(IDLE_TO_WATCHER(idle));
        }
    }
}

int al__poll_init(LoopObject *loop, uv_poll_t *handle, int fd)
{
    if (loop->poll_idle.next != NULL) {
        al__poll_idle_flush(loop);
    }
    return uv_poll_init(&loop->uv, handle, fd);
}

/* --- a transport's poll (al_tpoll) ----------------------------------------- */

static void tpoll_on_close(uv_handle_t *handle)
{
    al_poll_box *box = (al_poll_box *)handle;
    box->st->live_uv_handles--;
    PyMem_RawFree(box);
}

/* Stops the handle (unless the caller closes it: uv_close stops it with the
   same EPOLL_CTL_DEL, and a second one would only fail with ENOENT) and
   forgets the self-reference; returns whether one was held (the caller
   drops it last, as it may take the owner with it). */
static int tpoll_unhold(al_tpoll *tp, LoopObject *loop, al_io *io, int closing)
{
    if (!tp->held) {
        return 0;
    }
    tp->held = 0;
    al__poll_forget(loop, &tp->box->poll);
    if (!closing) {
        if (tp->armed != 0 && uv_is_active((uv_handle_t *)&tp->box->poll)) {
            /* Polls on, muted, until the loop's next poll (al_idle): the
               usual close that follows (EOF, close(), abort()) then costs
               uv_close's one EPOLL_CTL_DEL instead of two, a restart with
               the same events none. Muting drops what this poll's batch
               still holds for it, as uv_poll_stop would. */
            tp->box->poll.data = NULL;
            tp->idle.tpoll = 1;
            idle_link_in(loop, &tp->idle);
        }
        else {
            tp->armed = 0; /* libuv stopped it (POLLERR) */
        }
    }
    loop->io_watchers--;
    io->held = NULL;
    return 1;
}

void al__tpoll_release(al_tpoll *tp, LoopObject *loop, al_io *io)
{
    tp->events = 0;
    PyObject *owner = io->held;
    if (tpoll_unhold(tp, loop, io, 0)) {
        Py_DECREF(owner);
    }
}

void al__tpoll_close(al_tpoll *tp, LoopObject *loop, al_io *io)
{
    al_poll_box *box = tp->box;
    if (box == NULL || loop == NULL) {
        return; /* a handle implies the loop: connection_lost clears both */
    }
    PyObject *owner = io->held;
    int held = tpoll_unhold(tp, loop, io, 1);
    idle_unlink_from(&tp->idle);
    tp->armed = 0;
    tp->box = NULL;
    tp->events = 0;
    box->poll.data = NULL;
    uv_close((uv_handle_t *)&box->poll, tpoll_on_close);
    if (held) {
        Py_DECREF(owner);
    }
}

int al__tpoll_update(al_tpoll *tp, LoopObject *loop, PyObject *owner, al_io *io, int fd, int events,
                     uv_poll_cb cb)
{
    if (events == 0) {
        al__tpoll_release(tp, loop, io);
        return 0;
    }
    if (events == tp->events) {
        return 0;
    }
    if (tp->box == NULL) {
        al_poll_box *box = PyMem_RawMalloc(sizeof(*box));
        if (box == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        int err = al__poll_init(loop, &box->poll, fd);
        if (err < 0) {
            PyMem_RawFree(box);
            return al__set_uv_error(err);
        }
        box->st = loop->state;
        box->poll.data = owner;
        box->st->live_uv_handles++;
        tp->box = box;
    }
    else if (!tp->held && fcntl(fd, F_GETFD) < 0) {
        /* what registering a closed fd raises (uv_poll_init checks it) */
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    int fresh = 0;
    if (!tp->held) {
        tp->held = 1;
        loop->io_watchers++;
        io->held = Py_NewRef(owner);
        fresh = 1;
    }
    tp->box->poll.data = owner;
    if (tp->idle.prev != NULL && tp->armed == events &&
        uv_is_active((uv_handle_t *)&tp->box->poll)) {
        /* released earlier in this iteration and still polling for these */
        idle_unlink_from(&tp->idle);
        tp->events = events;
        return 0;
    }
    if (al__poll_start(loop, &tp->box->poll, events, cb) < 0) {
        if (fresh) {
            al__tpoll_release(tp, loop, io);
        }
        return -1;
    }
    idle_unlink_from(&tp->idle);
    tp->armed = events;
    tp->events = events;
    return 0;
}

/* Closes the libuv handle; the registrations stay as they are. */
static void watcher_close(WatcherObject *w)
{
    watcher_set_active(w, 0);
    idle_unlink(w);
    w->armed = 0;
    if (w->box != NULL && !w->loop->uv_ready) {
        /* Interpreter shutdown closed the libuv loop without the al_io
           hooks; its uv_walk closed the handle. */
        w->box = NULL;
    }
    if (w->box != NULL) {
        poll_box *box = w->box;
        w->box = NULL;
        al__poll_forget(w->loop, &box->poll);
        box->poll.data = NULL;
        /* no uv_poll_stop: uv_close stops it (one EPOLL_CTL_DEL, not two) */
        uv_close((uv_handle_t *)&box->poll, on_poll_close);
    }
    al__loop_io_unlink(&w->io);
}

static void on_poll(uv_poll_t *handle, int status, int events);

/* Drops the watcher's entry from the loop's dict, if it is its own. */
static int watcher_drop_entry(WatcherObject *w)
{
    LoopObject *loop = w->loop;
    if (loop->fd_watchers == NULL) {
        return 0;
    }
    PyObject *key = PyLong_FromLong(w->fd);
    if (key == NULL) {
        return -1;
    }
    PyObject *cur = PyDict_GetItemWithError(loop->fd_watchers, key); /* borrowed */
    int rc = 0;
    if (cur == (PyObject *)w) {
        rc = PyDict_DelItem(loop->fd_watchers, key);
    }
    else if (cur == NULL && PyErr_Occurred()) {
        rc = -1;
    }
    Py_DECREF(key);
    return rc;
}

/* As selectors' modify() failing: the fd is unregistered (its handles are
   not cancelled) and the error raised. */
static int watcher_fail(WatcherObject *w)
{
    PyObject *exc = al__err_fetch();
    HandleObject *r = w->reader, *wr = w->writer;
    w->reader = w->writer = NULL;
    watcher_close(w);
    if (watcher_drop_entry(w) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(r);
    Py_XDECREF(wr);
    al__err_restore(exc);
    return -1;
}

/* Polls for what is registered. A watcher left with nothing stops
   polling but stays in the loop's dict with its libuv handle (idle), so
   that the next wait on the fd (sock_recv's, each time) makes no new one;
   watch() checks that the fd is still the same file. A closed watcher is
   dropped from the dict. */
static int watcher_update(WatcherObject *w)
{
    int want = (w->reader ? UV_READABLE : 0) | (w->writer ? UV_WRITABLE : 0);
    if (want == 0 && w->box != NULL) {
        if (w->events != 0) {
            watcher_set_active(w, 0);
            if (w->lazy && w->loop->running) {
                idle_link(w);
            }
            else {
                watcher_disarm(w);
            }
        }
        return 0;
    }
    if (want == 0) {
        watcher_close(w);
        return watcher_drop_entry(w);
    }
    if (w->box == NULL) {
        return 0;
    }
    if (want == w->armed) {
        /* Still armed since it went idle: watch() checked the file. */
        idle_unlink(w);
        watcher_set_active(w, want);
        return 0;
    }
    /* epoll_ctl would fail on a closed fd: asyncio's modify raises. */
    if (fcntl(w->fd, F_GETFD) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return watcher_fail(w);
    }
    if (al__poll_start(w->loop, &w->box->poll, want, on_poll) < 0) {
        return watcher_fail(w);
    }
    idle_unlink(w);
    w->armed = want;
    watcher_set_active(w, want);
    return 0;
}

static void loop_closing(al_io *io)
{
    WatcherObject *w = IO_TO_WATCHER(io);
    Py_INCREF(w);
    watcher_close(w);
    /* asyncio's closed selector forgets its map. */
    Py_CLEAR(w->reader);
    Py_CLEAR(w->writer);
    if (watcher_update(w) < 0) {
        PyErr_WriteUnraisable((PyObject *)w);
    }
    Py_DECREF(w);
}

static WatcherObject *watcher_new(LoopObject *loop, int fd)
{
    al_state *st = loop->state;
    /* epoll_ctl would fail with EBADF, as asyncio's register does. */
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    poll_box *box = PyMem_RawMalloc(sizeof(poll_box));
    if (box == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    int err = al__poll_init(loop, &box->poll, fd);
    if (err < 0) {
        PyMem_RawFree(box);
        al__set_uv_error(err);
        return NULL;
    }
    box->st = st;
    st->live_uv_handles++;
    WatcherObject *w = PyObject_GC_New(WatcherObject, st->WatcherType);
    if (w == NULL) {
        box->poll.data = NULL;
        uv_close((uv_handle_t *)&box->poll, on_poll_close);
        return NULL;
    }
    w->loop = (LoopObject *)Py_NewRef(loop);
    w->box = box;
    box->poll.data = w;
    w->reader = w->writer = NULL;
    w->fd = fd;
    w->events = 0;
    w->armed = 0;
    w->lazy = S_ISSOCK(sb.st_mode);
    w->idle.prev = w->idle.next = NULL;
    w->idle.tpoll = 0;
    w->dev = sb.st_dev;
    w->ino = sb.st_ino;
    w->sock_ref = NULL;
    w->io.loop_closing = loop_closing;
    w->io.prev = w->io.next = NULL;
    w->io.held = NULL; /* the loop's fd_watchers dict holds it, and reports it */
    al__loop_io_link(loop, &w->io);
    PyObject_GC_Track(w);
    return w;
}

/* Borrowed; NULL without an error if there is none. */
static WatcherObject *watcher_find(LoopObject *loop, int fd)
{
    if (loop->fd_watchers == NULL) {
        return NULL;
    }
    PyObject *key = PyLong_FromLong(fd);
    if (key == NULL) {
        return NULL;
    }
    PyObject *w = PyDict_GetItemWithError(loop->fd_watchers, key); /* borrowed */
    Py_DECREF(key);
    return (WatcherObject *)w;
}

static int handle_cancel(al_state *st, HandleObject *h)
{
    if (Py_IS_TYPE(h, st->HandleType)) {
        return al__handle_cancel(h); /* the watcher's own Handle */
    }
    PyObject *self = (PyObject *)h;
    PyObject *r =
        PyObject_VectorcallMethod(st->str_cancel, &self, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Drops the registration of one direction, as asyncio's _remove_reader /
   _remove_writer once the key is found: 1 if there was one. */
static int watcher_remove(WatcherObject *w, int write)
{
    al_state *st = w->loop->state; /* w may go with its dict entry */
    HandleObject **slot = write ? &w->writer : &w->reader;
    HandleObject *h = *slot;
    *slot = NULL;
    Py_INCREF(w);
    int rc = watcher_update(w);
    Py_DECREF(w);
    if (h == NULL) {
        return rc < 0 ? -1 : 0;
    }
    if (rc == 0) {
        rc = handle_cancel(st, h);
    }
    Py_DECREF(h);
    return rc < 0 ? -1 : 1;
}

/* A direction found ready: asyncio's _process_events for one key. */
static void watcher_fire(WatcherObject *w, int write)
{
    HandleObject *h = write ? w->writer : w->reader;
    if (h == NULL) {
        return;
    }
    if (h->cancelled) {
        if (watcher_remove(w, write) < 0) {
            PyErr_WriteUnraisable((PyObject *)w);
        }
    }
    else if (al__ring_push(&w->loop->ready, h) < 0) {
        PyErr_WriteUnraisable((PyObject *)w);
    }
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    WatcherObject *w = handle->data;
    if (w == NULL) {
        return;
    }
    al__loop_hold_gil(w->loop);
    Py_INCREF(w);
    if (status < 0) {
        /* libuv stopped the handle. EPOLLERR (a failed connect, a reset)
           is reported by epoll to both directions, as asyncio's selector
           sees it; a closed fd is dropped by epoll and its callbacks never
           run, as on asyncio. */
        watcher_set_active(w, 0);
        idle_unlink(w);
        w->armed = 0;
        if (fcntl(w->fd, F_GETFD) < 0) {
            Py_DECREF(w);
            return;
        }
        events = UV_READABLE | UV_WRITABLE;
    }
    if (events & (UV_READABLE | UV_DISCONNECT)) {
        watcher_fire(w, 0);
    }
    if (events & UV_WRITABLE) {
        watcher_fire(w, 1);
    }
    if (status < 0 && watcher_update(w) < 0) {
        PyErr_WriteUnraisable((PyObject *)w);
    }
    Py_DECREF(w);
}

static int Watcher_traverse(WatcherObject *w, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(w));
    Py_VISIT(w->loop);
    Py_VISIT(w->reader);
    Py_VISIT(w->writer);
    Py_VISIT(w->sock_ref);
    return 0;
}

static int Watcher_clear(WatcherObject *w)
{
    Py_CLEAR(w->reader);
    Py_CLEAR(w->writer);
    Py_CLEAR(w->sock_ref);
    return 0;
}

static void Watcher_dealloc(WatcherObject *w)
{
    PyTypeObject *tp = Py_TYPE(w);
    PyObject_GC_UnTrack(w);
    if (w->loop != NULL) {
        watcher_close(w);
    }
    Watcher_clear(w);
    Py_CLEAR(w->loop);
    PyObject_GC_Del(w);
    Py_DECREF(tp);
}

static PyObject *Watcher_repr(WatcherObject *w)
{
    return PyUnicode_FromFormat("<FdWatcher fd=%d reader=%R writer=%R>", w->fd,
                                w->reader ? (PyObject *)w->reader : Py_None,
                                w->writer ? (PyObject *)w->writer : Py_None);
}

static PyType_Slot Watcher_slots[] = {
    {Py_tp_dealloc, Watcher_dealloc},
    {Py_tp_traverse, Watcher_traverse},
    {Py_tp_clear, Watcher_clear},
    {Py_tp_repr, Watcher_repr},
    {0, NULL},
};

PyType_Spec al__watcher_spec = {
    .name = "asyncloop._core.FdWatcher",
    .basicsize = sizeof(WatcherObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Watcher_slots,
};

/* --- add_reader / add_writer ---------------------------------------------- */

/* Whether ref is a weak reference to obj. */
static int weakref_is(PyObject *ref, PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *target;
    if (PyWeakref_GetRef(ref, &target) <= 0) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(target);
    return target == obj;
#else
    return PyWeakref_GetObject(ref) == obj; /* borrowed */
#endif
}

/* asyncio's _add_reader/_add_writer after _ensure_fd_no_transport: returns
   the new Handle. sock: the socket.socket of a sock_* wait (fileobj is its
   fileno()), or NULL. */
static PyObject *watch(LoopObject *loop, PyObject *fileobj, int write, PyObject *callback,
                       PyObject *const *args, Py_ssize_t nargs, PyObject *sock)
{
    al_state *st = loop->state;
    if (loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    HandleObject *h = al__handle_new(st, st->HandleType, loop, callback, args, nargs, NULL);
    if (h == NULL) {
        return NULL;
    }
    /* Held by the watcher, not only queued: an ordinary GC object. */
    if (!PyObject_GC_IsTracked((PyObject *)h)) {
        PyObject_GC_Track(h);
    }
    int fd;
    if (fileobj_to_fd(fileobj, &fd) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    WatcherObject *w = watcher_find(loop, fd);
    int checked = w == NULL;
    if (w != NULL && w->reader == NULL && w->writer == NULL &&
        !(sock != NULL && w->sock_ref != NULL && weakref_is(w->sock_ref, sock))) {
        /* Idle: its handle is for this fd's file only if the fd was not
           closed and reused since (for a regular file, say, which libuv
           cannot poll). Otherwise it goes and a new one is made. The same
           socket object, still open (fileobj is its fileno()), still has
           its file there: no fstat. */
        struct stat sb;
        checked = 1;
        if (fstat(fd, &sb) < 0 || sb.st_dev != w->dev || sb.st_ino != w->ino) {
            Py_INCREF(w);
            watcher_close(w);
            int rc = watcher_drop_entry(w);
            Py_DECREF(w);
            if (rc < 0) {
                Py_DECREF(h);
                return NULL;
            }
            w = NULL;
        }
    }
    if (w != NULL) {
        Py_INCREF(w);
    }
    else if (PyErr_Occurred()) {
        Py_DECREF(h);
        return NULL;
    }
    else {
        if (loop->fd_watchers == NULL && (loop->fd_watchers = PyDict_New()) == NULL) {
            Py_DECREF(h);
            return NULL;
        }
        w = watcher_new(loop, fd);
        PyObject *key = w ? PyLong_FromLong(fd) : NULL;
        if (key == NULL || PyDict_SetItem(loop->fd_watchers, key, (PyObject *)w) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(w);
            Py_DECREF(h);
            return NULL;
        }
        Py_DECREF(key);
    }
    if (checked && sock != NULL) {
        /* not weakly referenceable: fstat every time */
        Py_XSETREF(w->sock_ref, PyWeakref_NewRef(sock, NULL));
        PyErr_Clear();
    }
    HandleObject **slot = write ? &w->writer : &w->reader;
    HandleObject *old = *slot;
    *slot = (HandleObject *)Py_NewRef(h);
    int rc = watcher_update(w);
    Py_DECREF(w);
    if (rc < 0) {
        /* Unregistered by the failure; asyncio does not cancel old then. */
        Py_XDECREF(old);
        old = NULL;
    }
    if (old != NULL) {
        rc = handle_cancel(st, old);
        Py_DECREF(old);
    }
    if (rc < 0) {
        Py_DECREF(h);
        return NULL;
    }
    return (PyObject *)h;
}

static PyObject *add_watch(LoopObject *self, PyObject *const *args, Py_ssize_t nargs, int write)
{
    const char *name = write ? "add_writer" : "add_reader";
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError, "%s() missing %s required positional argument%s: %s", name,
                     nargs ? "1" : "2", nargs ? "" : "s",
                     nargs ? "'callback'" : "'fd' and 'callback'");
        return NULL;
    }
    if (ensure_no_transport(self, args[0]) < 0) {
        return NULL;
    }
    /* asyncio's add_reader returns None (its _add_reader the handle). */
    PyObject *h = watch(self, args[0], write, args[1], args + 2, nargs - 2, NULL);
    if (h == NULL) {
        return NULL;
    }
    Py_DECREF(h);
    Py_RETURN_NONE;
}

/* asyncio's remove_reader/remove_writer. */
static PyObject *remove_watch(LoopObject *self, PyObject *fileobj, int write)
{
    if (ensure_no_transport(self, fileobj) < 0) {
        return NULL;
    }
    if (self->closed) {
        Py_RETURN_FALSE;
    }
    int fd;
    if (fileobj_to_fd(fileobj, &fd) < 0) {
        return NULL;
    }
    WatcherObject *w = watcher_find(self, fd);
    if (w == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_FALSE;
    }
    int rc = watcher_remove(w, write);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *keywords_bound(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames, al_fastcall_method fn, const char *method,
                                int varargs)
{
    static const char *const names_cb[] = {"fd", "callback"};
    static const char *const names_fd[] = {"fd"};
    return al__call_with_keywords_bound((PyObject *)self, fn, method, varargs ? names_cb : names_fd,
                                        varargs ? 2 : 1, NULL, args, PyVectorcall_NARGS(nargsf),
                                        kwnames);
}

PyObject *al__loop_add_reader(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        return keywords_bound(self, args, nargsf, kwnames, (al_fastcall_method)al__loop_add_reader,
                              "add_reader", 1);
    }
    return add_watch(self, args, PyVectorcall_NARGS(nargsf), 0);
}

PyObject *al__loop_add_writer(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        return keywords_bound(self, args, nargsf, kwnames, (al_fastcall_method)al__loop_add_writer,
                              "add_writer", 1);
    }
    return add_watch(self, args, PyVectorcall_NARGS(nargsf), 1);
}

PyObject *al__loop_remove_reader(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    PyObject *fd; /* borrowed */
    if (al__one_arg("remove_reader", "fd", args, PyVectorcall_NARGS(nargsf), kwnames, &fd) < 0) {
        return NULL;
    }
    return remove_watch(self, fd, 0);
}

PyObject *al__loop_remove_writer(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    PyObject *fd; /* borrowed */
    if (al__one_arg("remove_writer", "fd", args, PyVectorcall_NARGS(nargsf), kwnames, &fd) < 0) {
        return NULL;
    }
    return remove_watch(self, fd, 1);
}

/* --- sock_* ---------------------------------------------------------------- */

/* The syscall would block: BlockingIOError or InterruptedError, cleared. */
static int would_block(void)
{
    if (PyErr_ExceptionMatches(PyExc_BlockingIOError) ||
        PyErr_ExceptionMatches(PyExc_InterruptedError)) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* --- syscalls on a socket.socket ------------------------------------------ */

/* Largest sock_recv(n) made here: the bytes are received into a scratch
   buffer and copied out (no public API shrinks a bytes object). */
#define RECV_SCRATCH ((Py_ssize_t)256 * 1024)
/* From this size a sock_recv reads into a bytes object of the last one's size. */
#define RECV_BIG ((ssize_t)16 * 1024)
/* fds with a recv_hint of their own; beyond, they share one */
#define RECV_HINTS_MAX 65536
/* reads short of the hint in a row (a FIONREAD-sized one between them does
   not count) after which the hint follows the reads */
#define RECV_MISSES 4

/* What sock.recv()/send() would do, made directly on the fd when sock is
   a socket.socket, with MSG_DONTWAIT so that a blocking socket never
   blocks here with the GIL held (whose methods are _socket's: errors are
   PyErr_SetFromErrno's OSError subclasses, EINTR is retried after the
   signal handlers ran). Each returns 1 done, 0 would block (no exception
   made), -1 error. A socket with a timeout (gettimeout() != 0) that would
   block goes through its method, which waits as it does on asyncio. */
static int plain_socket(al_state *st, PyObject *sock)
{
    return (PyObject *)Py_TYPE(sock) == st->socket_type;
}

static int sock_fd(al_state *st, PyObject *sock, int *fd)
{
    PyObject *r =
        PyObject_VectorcallMethod(st->str_fileno, &sock, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (r == NULL) {
        return -1;
    }
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *fd = v < INT_MIN || v > INT_MAX ? -1 : (int)v;
    return 0;
}

/* After EAGAIN: 1 if sock is non-blocking (gettimeout() == 0.0), so the
   caller waits; 0 if it should call the method instead. */
static PyObject *socket_attr(PyObject **descr, const char *name, PyObject *sock);

static int sock_nonblocking(al_state *st, PyObject *sock)
{
    /* a socket.socket's gettimeout() is _socket.socket's timeout getter */
    PyObject *t = plain_socket(st, sock)
                      ? socket_attr(&st->sock_timeout, "timeout", sock)
                      : PyObject_VectorcallMethod(st->str_gettimeout, &sock,
                                                  1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (t == NULL) {
        return -1;
    }
    int nb = PyFloat_Check(t) && PyFloat_AS_DOUBLE(t) == 0.0;
    Py_DECREF(t);
    return nb;
}

/* The result of a failed syscall: 0, -1, or 2 to call the method. */
static int syscall_failed(al_state *st, PyObject *sock)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int nb = sock_nonblocking(st, sock);
        return nb < 0 ? -1 : nb ? 0 : 2;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* A method's result: BlockingIOError/InterruptedError is 0. */
static int method_result(PyObject *r, PyObject **out)
{
    *out = r;
    if (r != NULL) {
        return 1;
    }
    return would_block() ? 0 : -1;
}

/* recv(fd, n) into a new bytes object (*out, NULL on error): -1 with errno
   when the syscall failed. A big read goes straight into a bytes object of
   the last big read's size (recv_hint: echoes of one message size, the usual
   case, copy nothing), the rest into the scratch buffer; a read of another
   size is copied into a bytes object of its own, as a small one always is.
   A read that fell short of the hint (a message that had half arrived) is
   copied, and the next read is sized by FIONREAD (its rest, exactly) while
   the hint stays: a 100 KiB echo split 64 KiB + 36 KiB copies 64 KiB, not
   the three reads (the split, then a full one) of resetting the hint.
   After RECV_MISSES short reads in a row the hint follows the reads. Kept
   per fd (a
   reused fd starts with its predecessor's: only a copy more). */
static al_recv_hint *recv_hint_of(al_state *st, int fd)
{
    if (fd >= st->recv_hints_len && fd < RECV_HINTS_MAX) {
        int len = st->recv_hints_len ? st->recv_hints_len : 64;
        while (len <= fd) {
            len *= 2;
        }
        al_recv_hint *t = PyMem_RawRealloc(st->recv_hints, (size_t)len * sizeof(al_recv_hint));
        if (t != NULL) {
            memset(t + st->recv_hints_len, 0, (size_t)(len - st->recv_hints_len) * sizeof(*t));
            st->recv_hints = t;
            st->recv_hints_len = len;
        }
    }
    /* a closed socket's fd is -1: its recv fails with EBADF */
    return fd >= 0 && fd < st->recv_hints_len ? &st->recv_hints[fd] : &st->recv_hint;
}

static ssize_t recv_big(al_state *st, int fd, Py_ssize_t n, PyObject **out)
{
    *out = NULL;
    al_recv_hint *rh = recv_hint_of(st, fd);
    Py_ssize_t hint = (Py_ssize_t)rh->hint <= n ? (Py_ssize_t)rh->hint : 0;
    int probed = 0;
    if (hint > 0 && rh->probe) {
        int avail = 0;
        probed = 1;
        hint = ioctl(fd, FIONREAD, &avail) == 0 && avail >= RECV_BIG ? (avail < n ? avail : n) : 0;
    }
    PyObject *data = NULL;
    if (hint > 0) {
        /* the bytes object of a try that would have blocked, never shown */
        if (st->recv_spare != NULL && PyBytes_GET_SIZE(st->recv_spare) == hint) {
            data = st->recv_spare;
            st->recv_spare = NULL;
        }
        else {
            Py_CLEAR(st->recv_spare);
            data = PyBytes_FromStringAndSize(NULL, hint);
            if (data == NULL) {
                return 0; /* *out NULL: the error is set */
            }
        }
    }
    ssize_t got;
    if (data != NULL) {
        struct iovec iov[2] = {{PyBytes_AS_STRING(data), (size_t)hint},
                               {st->recv_scratch, (size_t)(n - hint)}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n > hint ? 2 : 1};
        got = recvmsg(fd, &msg, MSG_DONTWAIT);
    }
    else {
        got = recv(fd, st->recv_scratch, (size_t)n, MSG_DONTWAIT);
    }
    if (got < 0) {
        int err = errno;
        if (data != NULL && st->recv_spare == NULL) {
            /* kept for the retry once readable (or another fd's try): the
               first try usually comes before the data, and a 100 KiB echo
               then allocated and freed its block twice per message */
            st->recv_spare = data;
        }
        else {
            Py_XDECREF(data);
        }
        errno = err;
        return -1;
    }
    if (probed) {
        rh->probe = 0;
    }
    else if (hint > 0 && got < hint && got > 0 && ++rh->misses < RECV_MISSES) {
        rh->probe = 1;
    }
    else {
        rh->hint = got >= RECV_BIG ? (uint32_t)got : 0;
        rh->misses = 0;
    }
    if (data != NULL && got == hint) {
        *out = data;
        return got;
    }
    PyObject *r = PyBytes_FromStringAndSize(NULL, got);
    if (r != NULL && data != NULL) {
        /* the start landed in data, the rest in the scratch buffer */
        Py_ssize_t head = got < hint ? got : hint;
        memcpy(PyBytes_AS_STRING(r), PyBytes_AS_STRING(data), (size_t)head);
        memcpy(PyBytes_AS_STRING(r) + head, st->recv_scratch, (size_t)(got - head));
    }
    else if (r != NULL) {
        memcpy(PyBytes_AS_STRING(r), st->recv_scratch, (size_t)got);
    }
    Py_XDECREF(data);
    *out = r;
    return got;
}

/* sock.recv(n) */
static int do_recv(al_state *st, PyObject *sock, PyObject *nobj, PyObject **out)
{
    Py_ssize_t n = plain_socket(st, sock) && PyLong_CheckExact(nobj) ? PyLong_AsSsize_t(nobj) : 0;
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear(); /* the method raises its own error */
        n = 0;
    }
    if (n > 0 && n <= RECV_SCRATCH) {
        int fd;
        if (sock_fd(st, sock, &fd) < 0) {
            return -1;
        }
        if (st->recv_scratch == NULL &&
            (st->recv_scratch = PyMem_RawMalloc((size_t)RECV_SCRATCH)) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (;;) {
            ssize_t got = recv_big(st, fd, n, out);
            if (got >= 0) {
                return *out ? 1 : -1;
            }
            if (errno != EINTR) {
                break;
            }
            if (PyErr_CheckSignals() < 0) {
                return -1;
            }
        }
        int rc = syscall_failed(st, sock);
        if (rc < 2) {
            return rc;
        }
    }
    return method_result(al__call_method(st->str_recv, sock, &nobj, 1), out);
}

/* sock.recv_into(buf) */
static int do_recv_into(al_state *st, PyObject *sock, PyObject *buf, PyObject **out)
{
    Py_buffer view;
    if (plain_socket(st, sock) && PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) == 0) {
        int fd;
        if (sock_fd(st, sock, &fd) < 0) {
            PyBuffer_Release(&view);
            return -1;
        }
        ssize_t got;
        do {
            got = recv(fd, view.buf, (size_t)view.len, MSG_DONTWAIT);
        } while (got < 0 && errno == EINTR && PyErr_CheckSignals() == 0);
        int err = errno;
        PyBuffer_Release(&view);
        if (got >= 0) {
            *out = PyLong_FromSsize_t(got);
            return *out ? 1 : -1;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
        errno = err;
        int rc = syscall_failed(st, sock);
        if (rc < 2) {
            return rc;
        }
    }
    else {
        PyErr_Clear(); /* the method raises its own error */
    }
    return method_result(al__call_method(st->str_recv_into, sock, &buf, 1), out);
}

/* n = sock.send(data) */
static int do_send(al_state *st, PyObject *sock, PyObject *data, Py_ssize_t *sent)
{
    PyObject *r;
    Py_buffer view;
    if (plain_socket(st, sock) && PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) == 0) {
        int fd;
        if (sock_fd(st, sock, &fd) < 0) {
            PyBuffer_Release(&view);
            return -1;
        }
        ssize_t n;
        do {
            n = send(fd, view.buf, (size_t)view.len, MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR && PyErr_CheckSignals() == 0);
        int err = errno;
        PyBuffer_Release(&view);
        if (n >= 0) {
            *sent = n;
            return 1;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
        errno = err;
        int rc = syscall_failed(st, sock);
        if (rc < 2) {
            return rc;
        }
    }
    else {
        PyErr_Clear(); /* the method raises its own error */
    }
    int rc = method_result(al__call_method(st->str_send, sock, &data, 1), &r);
    if (rc == 1) {
        *sent = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (*sent == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return rc;
}

/* base_events._check_ssl_socket and the debug-mode blocking check. */
static int sock_check(LoopObject *self, PyObject *sock)
{
    al_state *st = self->state;
    if (st->SSLSocket != NULL && !plain_socket(st, sock)) {
        int r = PyObject_IsInstance(sock, st->SSLSocket);
        if (r < 0) {
            return -1;
        }
        if (r) {
            PyErr_SetString(PyExc_TypeError, "Socket cannot be of type SSLSocket");
            return -1;
        }
    }
    if (self->debug) {
        PyObject *t = al__call_method(st->str_gettimeout, sock, NULL, 0);
        if (t == NULL) {
            return -1;
        }
        PyObject *zero = PyLong_FromLong(0);
        int ne = zero ? PyObject_RichCompareBool(t, zero, Py_NE) : -1;
        Py_XDECREF(zero);
        Py_DECREF(t);
        if (ne < 0) {
            return -1;
        }
        if (ne) {
            PyErr_SetString(PyExc_ValueError, "the socket must be non-blocking");
            return -1;
        }
    }
    return 0;
}

static PyObject *new_future(LoopObject *self)
{
    /* interned name: no str made and hashed per call */
    PyObject *arg = (PyObject *)self;
    return PyObject_VectorcallMethod(self->state->str_create_future, &arg,
                                     1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *done_future(LoopObject *self, PyObject *result)
{
    PyObject *fut = new_future(self);
    if (fut == NULL) {
        return NULL;
    }
    PyObject *r = al__call_method(self->state->str_set_result, fut, &result, 1);
    if (r == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(r);
    return fut;
}

/* Completes fut from the result of a retried syscall, as asyncio's
   _sock_recv and the others: SystemExit/KeyboardInterrupt propagate, other
   exceptions go to the future. Steals res. */
static PyObject *complete(LoopObject *self, PyObject *fut, PyObject *res)
{
    al_state *st = self->state;
    PyObject *r;
    if (res == NULL) {
        if (would_block()) {
            Py_RETURN_NONE;
        }
        if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
            PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            return NULL;
        }
        PyObject *exc = al__err_fetch();
        r = al__call_method(st->str_set_exception, fut, &exc, 1);
        Py_DECREF(exc);
    }
    else {
        r = al__call_method(st->str_set_result, fut, &res, 1);
        Py_DECREF(res);
    }
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static int fut_done(LoopObject *self, PyObject *fut)
{
    PyObject *r = al__call_method(self->state->str_done, fut, NULL, 0);
    int done = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    return done;
}

/* asyncio's functools.partial(self._sock_read_done, fd, handle=handle) as
   one C callable: fut's done callback. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    LoopObject *loop;
    PyObject *fd;
    HandleObject *handle;
    int write;
} SockDoneObject;

/* _sock_read_done(fd, fut, handle): if not handle.cancelled(): remove_reader(fd) */
static PyObject *SockDone_vectorcall(SockDoneObject *d, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames)
{
    (void)args;
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "expected (fut)");
        return NULL;
    }
    if (d->handle->cancelled) {
        Py_RETURN_NONE;
    }
    PyObject *r = remove_watch(d->loop, d->fd, d->write);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static int SockDone_traverse(SockDoneObject *d, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(d));
    Py_VISIT(d->loop);
    Py_VISIT(d->fd);
    Py_VISIT(d->handle);
    return 0;
}

static int SockDone_clear(SockDoneObject *d)
{
    Py_CLEAR(d->loop);
    Py_CLEAR(d->fd);
    Py_CLEAR(d->handle);
    return 0;
}

static void SockDone_dealloc(SockDoneObject *d)
{
    PyTypeObject *tp = Py_TYPE(d);
    PyObject_GC_UnTrack(d);
    SockDone_clear(d);
    PyObject_GC_Del(d);
    Py_DECREF(tp);
}

static PyObject *SockDone_repr(SockDoneObject *d)
{
    return PyUnicode_FromFormat(
        "functools.partial(<%s>, %R, handle=%R)", d->write ? "_sock_write_done" : "_sock_read_done",
        d->fd ? d->fd : Py_None, d->handle ? (PyObject *)d->handle : Py_None);
}

static PyMemberDef SockDone_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(SockDoneObject, vectorcall), READONLY},
    {NULL},
};

static PyType_Slot SockDone_slots[] = {
    {Py_tp_dealloc, SockDone_dealloc},
    {Py_tp_traverse, SockDone_traverse},
    {Py_tp_clear, SockDone_clear},
    {Py_tp_repr, SockDone_repr},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, SockDone_members},
    {0, NULL},
};

PyType_Spec al__sock_done_spec = {
    .name = "asyncloop._core.SockDone",
    .basicsize = sizeof(SockDoneObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = SockDone_slots,
};

static int add_done(LoopObject *self, PyObject *fut, PyObject *fd, PyObject *handle, int write)
{
    al_state *st = self->state;
    SockDoneObject *d = PyObject_GC_New(SockDoneObject, st->SockDoneType);
    if (d == NULL) {
        return -1;
    }
    d->vectorcall = (vectorcallfunc)SockDone_vectorcall;
    d->loop = (LoopObject *)Py_NewRef(self);
    d->fd = Py_NewRef(fd);
    d->handle = (HandleObject *)Py_NewRef(handle);
    d->write = write;
    PyObject_GC_Track(d);
    PyObject *p = (PyObject *)d;
    PyObject *r = al__call_method(st->str_add_done_callback, fut, &p, 1);
    Py_DECREF(p);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* fd = sock.fileno(); _ensure_fd_no_transport(fd);
   handle = _add_reader/_add_writer(fd, self.<retry>, fut, *args);
   fut.add_done_callback(partial(self._sock_read_done, fd, handle=handle)) */
static int wait_ready(LoopObject *self, PyObject *sock, int write, PyObject *retry,
                      PyObject *const *args, Py_ssize_t nargs)
{
    al_state *st = self->state;
    PyObject *fd = al__call_method(st->str_fileno, sock, NULL, 0);
    if (fd == NULL) {
        return -1;
    }
    if (ensure_no_transport(self, fd) < 0) {
        Py_DECREF(fd);
        return -1;
    }
    PyObject *cb = PyObject_GetAttr((PyObject *)self, retry);
    /* a socket.socket's fd changes only by its close() (to -1) */
    PyObject *h =
        cb ? watch(self, fd, write, cb, args, nargs, plain_socket(st, sock) ? sock : NULL) : NULL;
    Py_XDECREF(cb);
    int rc = h ? add_done(self, args[0], fd, h, write) : -1;
    Py_XDECREF(h);
    Py_DECREF(fd);
    return rc;
}

static int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t want, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", name);
        return -1;
    }
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name, want,
                     nargs);
        return -1;
    }
    return 0;
}

#define NARGS(name, want)                                                                          \
    if (check_nargs(name, PyVectorcall_NARGS(nargsf), want, kwnames) < 0) {                        \
        return NULL;                                                                               \
    }

#define START_AWAIT 2

/* What a sock_* method returns: a Future (done at once if the first try
   succeeded), or with `start` (the _sock_*_start methods behind the
   coroutines of asyncloop.Loop) (None, result) at once and (future, None)
   to wait, so that the common case makes no Future. Steals fut or res. */
static PyObject *sock_result(LoopObject *self, int start, PyObject *fut, PyObject *res)
{
    if (start == START_AWAIT) {
        /* A SockCall's first step: the future (told by *waited) or the result. */
        return fut ? fut : res;
    }
    if (fut == NULL && !start) {
        fut = done_future(self, res);
        Py_DECREF(res);
        return fut;
    }
    if (!start) {
        return fut;
    }
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        Py_XDECREF(fut);
        Py_XDECREF(res);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, fut ? fut : Py_NewRef(Py_None));
    PyTuple_SET_ITEM(t, 1, res ? res : Py_NewRef(Py_None));
    return t;
}

/* sock_recv(sock, n) and sock_recv_into(sock, buf): the first try, then a
   wait for readability. */
static PyObject *sock_read(LoopObject *self, PyObject *const *args, int into, PyObject *retry,
                           int start, int *waited)
{
    PyObject *sock = args[0];
    if (sock_check(self, sock) < 0) {
        return NULL;
    }
    PyObject *res;
    int rc = into ? do_recv_into(self->state, sock, args[1], &res)
                  : do_recv(self->state, sock, args[1], &res);
    if (rc != 0) {
        return rc < 0 ? NULL : sock_result(self, start, NULL, res);
    }
    PyObject *fut = new_future(self);
    if (fut == NULL) {
        return NULL;
    }
    PyObject *cbargs[3] = {fut, sock, args[1]};
    if (wait_ready(self, sock, 0, retry, cbargs, 3) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    if (waited != NULL) {
        *waited = 1;
    }
    return sock_result(self, start, fut, NULL);
}

PyObject *al__loop_sock_recv(LoopObject *self, PyObject *const *args, size_t nargsf,
                             PyObject *kwnames)
{
    NARGS("sock_recv", 2);
    return sock_read(self, args, 0, self->state->str_sock_recv, 0, NULL);
}

PyObject *al__loop_sock_recv_start(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    NARGS("sock_recv", 2);
    return sock_read(self, args, 0, self->state->str_sock_recv, 1, NULL);
}

PyObject *al__loop_sock_recv_into(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    NARGS("sock_recv_into", 2);
    return sock_read(self, args, 1, self->state->str_sock_recv_into, 0, NULL);
}

PyObject *al__loop_sock_recv_into_start(LoopObject *self, PyObject *const *args, size_t nargsf,
                                        PyObject *kwnames)
{
    NARGS("sock_recv_into", 2);
    return sock_read(self, args, 1, self->state->str_sock_recv_into, 1, NULL);
}

/* _sock_recv(fut, sock, n) / _sock_recv_into(fut, sock, buf): a retry. */
static PyObject *sock_read_retry(LoopObject *self, PyObject *const *args, int into)
{
    int done = fut_done(self, args[0]);
    if (done) {
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *res;
    int rc = into ? do_recv_into(self->state, args[1], args[2], &res)
                  : do_recv(self->state, args[1], args[2], &res);
    if (rc == 0) {
        Py_RETURN_NONE;
    }
    return complete(self, args[0], rc < 0 ? NULL : res);
}

PyObject *al__loop_sock_recv_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    NARGS("_sock_recv", 3);
    return sock_read_retry(self, args, 0);
}

PyObject *al__loop_sock_recv_into_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames)
{
    NARGS("_sock_recv_into", 3);
    return sock_read_retry(self, args, 1);
}

static PyObject *sock_sendall(LoopObject *self, PyObject *const *args, int start, int *waited)
{
    al_state *st = self->state;
    PyObject *sock = args[0], *data = args[1];
    if (sock_check(self, sock) < 0) {
        return NULL;
    }
    Py_ssize_t n = 0;
    if (do_send(st, sock, data, &n) < 0) {
        return NULL;
    }
    Py_ssize_t len = PyObject_Size(data);
    if (len < 0) {
        return NULL;
    }
    if (n == len) {
        return sock_result(self, start, NULL, Py_NewRef(Py_None));
    }
    PyObject *fut = new_future(self);
    if (fut == NULL) {
        return NULL;
    }
    PyObject *view = PyMemoryView_FromObject(data);
    PyObject *pos = view ? PyList_New(1) : NULL;
    if (pos == NULL) {
        Py_XDECREF(view);
        Py_DECREF(fut);
        return NULL;
    }
    PyObject *sent = PyLong_FromSsize_t(n);
    if (sent == NULL) {
        Py_DECREF(pos);
        Py_DECREF(view);
        Py_DECREF(fut);
        return NULL;
    }
    PyList_SET_ITEM(pos, 0, sent);
    PyObject *cbargs[4] = {fut, sock, view, pos};
    int rc = wait_ready(self, sock, 1, st->str_sock_sendall, cbargs, 4);
    Py_DECREF(pos);
    Py_DECREF(view);
    if (rc < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    if (waited != NULL) {
        *waited = 1;
    }
    return sock_result(self, start, fut, NULL);
}

PyObject *al__loop_sock_sendall(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    NARGS("sock_sendall", 2);
    return sock_sendall(self, args, 0, NULL);
}

PyObject *al__loop_sock_sendall_start(LoopObject *self, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames)
{
    NARGS("sock_sendall", 2);
    return sock_sendall(self, args, 1, NULL);
}

/* _sock_sendall(fut, sock, view, pos) */
PyObject *al__loop_sock_sendall_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    NARGS("_sock_sendall", 4);
    al_state *st = self->state;
    PyObject *fut = args[0], *sock = args[1], *view = args[2], *pos = args[3];
    int done = fut_done(self, fut);
    if (done) {
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (!PyList_Check(pos) || PyList_GET_SIZE(pos) != 1) {
        PyErr_SetString(PyExc_TypeError, "_sock_sendall: pos must be a list of one int");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(PyList_GET_ITEM(pos, 0));
    if (start == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *rest = PySequence_GetSlice(view, start, PY_SSIZE_T_MAX);
    if (rest == NULL) {
        return NULL;
    }
    Py_ssize_t n = 0;
    int rc = do_send(st, sock, rest, &n);
    Py_DECREF(rest);
    if (rc <= 0) {
        return rc < 0 ? complete(self, fut, NULL) : Py_NewRef(Py_None);
    }
    start += n;
    Py_ssize_t len = PyObject_Size(view);
    if (len < 0) {
        return NULL;
    }
    if (start == len) {
        return complete(self, fut, Py_NewRef(Py_None));
    }
    PyObject *s = PyLong_FromSsize_t(start);
    if (s == NULL) {
        return NULL;
    }
    PyList_SetItem(pos, 0, s);
    Py_RETURN_NONE;
}

/* _sock_connect(sock, address): asyncio's _sock_connect for a resolved
   address; returns the future (sock_connect in __init__.py resolves). */
PyObject *al__loop_sock_connect(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    NARGS("_sock_connect", 2);
    al_state *st = self->state;
    PyObject *sock = args[0], *address = args[1];
    PyObject *fut = new_future(self);
    if (fut == NULL) {
        return NULL;
    }
    PyObject *fd = al__call_method(st->str_fileno, sock, NULL, 0);
    if (fd == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(fd);
    PyObject *r = al__call_method(st->str_connect, sock, &address, 1);
    if (r == NULL && would_block()) {
        PyObject *cbargs[3] = {fut, sock, address};
        if (wait_ready(self, sock, 1, st->str_sock_connect_cb, cbargs, 3) < 0) {
            Py_DECREF(fut);
            return NULL;
        }
        return fut;
    }
    if (r != NULL) {
        Py_DECREF(r);
        r = Py_NewRef(Py_None);
    }
    PyObject *c = complete(self, fut, r);
    if (c == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(c);
    return fut;
}

/* _sock_connect_cb(fut, sock, address) */
PyObject *al__loop_sock_connect_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    NARGS("_sock_connect_cb", 3);
    PyObject *fut = args[0], *sock = args[1], *address = args[2];
    int done = fut_done(self, fut);
    if (done) {
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *r = PyObject_CallMethod(sock, "getsockopt", "ii", SOL_SOCKET, SO_ERROR);
    if (r != NULL) {
        long err = PyLong_AsLong(r);
        Py_DECREF(r);
        if (err == -1 && PyErr_Occurred()) {
            r = NULL;
        }
        else if (err != 0) {
            PyObject *msg = PyUnicode_FromFormat("Connect call failed %S", address);
            PyObject *exc = msg ? PyObject_CallFunction(PyExc_OSError, "lO", err, msg) : NULL;
            Py_XDECREF(msg);
            if (exc != NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
                Py_DECREF(exc);
            }
            r = NULL;
        }
        else {
            r = Py_NewRef(Py_None);
        }
    }
    return complete(self, fut, r);
}

/* _sock_accept(fut, sock): asyncio's, which re-registers itself. */
PyObject *al__loop_sock_accept_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    NARGS("_sock_accept", 2);
    al_state *st = self->state;
    PyObject *fut = args[0], *sock = args[1];
    PyObject *fd = al__call_method(st->str_fileno, sock, NULL, 0);
    if (fd == NULL) {
        return NULL;
    }
    Py_DECREF(fd);
    PyObject *pair = al__call_method(st->str_accept, sock, NULL, 0);
    if (pair != NULL) {
        PyObject *conn = PySequence_GetItem(pair, 0);
        PyObject *r = conn ? PyObject_CallMethod(conn, "setblocking", "O", Py_False) : NULL;
        Py_XDECREF(conn);
        if (r == NULL) {
            Py_CLEAR(pair);
        }
        Py_XDECREF(r);
    }
    if (pair == NULL && would_block()) {
        if (wait_ready(self, sock, 0, st->str_sock_accept_cb, args, 2) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (pair != NULL && !PyTuple_Check(pair)) {
        Py_SETREF(pair, PySequence_Tuple(pair));
    }
    return complete(self, fut, pair);
}

PyObject *al__loop_sock_accept(LoopObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames)
{
    NARGS("sock_accept", 1);
    if (sock_check(self, args[0]) < 0) {
        return NULL;
    }
    PyObject *fut = new_future(self);
    if (fut == NULL) {
        return NULL;
    }
    PyObject *cbargs[2] = {fut, args[0]};
    PyObject *r = al__loop_sock_accept_cb(self, cbargs, 2, NULL);
    if (r == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(r);
    return fut;
}

/* _sock_read_done(fd, fut, handle=None) / _sock_write_done */
static PyObject *sock_op_done(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames, int write)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *handle = Py_None; /* borrowed */
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int handle_by_keyword =
        nkw == 1 && nargs == 2 && PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) &&
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "handle") == 0;
    if (!handle_by_keyword && (nkw != 0 || nargs < 2 || nargs > 3)) {
        PyErr_SetString(PyExc_TypeError, "expected (fd, fut, handle=None)");
        return NULL;
    }
    if (handle_by_keyword || nargs == 3) {
        handle = args[2]; /* the keyword's value follows the positionals */
    }
    if (handle != Py_None) {
        PyObject *c = al__call_method(self->state->str_cancelled, handle, NULL, 0);
        int cancelled = c ? PyObject_IsTrue(c) : -1;
        Py_XDECREF(c);
        if (cancelled) {
            return cancelled < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    PyObject *r = PyObject_CallMethod((PyObject *)self, write ? "remove_writer" : "remove_reader",
                                      "O", args[0]);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

PyObject *al__loop_sock_read_done(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    return sock_op_done(self, args, nargsf, kwnames, 0);
}

PyObject *al__loop_sock_write_done(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    return sock_op_done(self, args, nargsf, kwnames, 1);
}

/* --- SockCall: the sock_* coroutines of asyncloop.Loop -------------------- */

/* What loop.sock_recv(sock, n) (and recv_into, sendall, accept) return: a
   coroutine-like object (registered as a collections.abc.Coroutine, so
   asyncio.iscoroutine() and create_task() take it) that does nothing until
   first stepped, as an `async def` would; its first step makes the first
   try, and only when that would block does it wait on the future, through
   the future's own __await__ iterator. This replaces a Python coroutine per
   call (and the (future, result) tuple). */
enum {
    CALL_RECV,
    CALL_RECV_INTO,
    CALL_SENDALL,
    CALL_ACCEPT,
    CALL_RECVFROM,
    CALL_RECVFROM_INTO,
    CALL_SENDTO
};

static const char *const call_names[] = {"sock_recv",   "sock_recv_into", "sock_sendall",
                                         "sock_accept", "sock_recvfrom",  "sock_recvfrom_into",
                                         "sock_sendto"};

/* The datagram calls, at the end of this file. */
static PyObject *dgram_first_try(LoopObject *loop, int kind, PyObject *sock, PyObject *a,
                                 PyObject *b, int *waited);

typedef struct {
    PyObject_HEAD
    LoopObject *loop;
    PyObject *sock;
    PyObject *arg;     /* n, buf or data; NULL for accept */
    PyObject *arg2;    /* nbytes or address for the datagram calls, else NULL */
    PyObject *waiting; /* the future's __await__ iterator while waiting */
    int kind;
    int state; /* 0 not started, 1 waiting, 2 finished */
} SockCallObject;

static PySendResult SockCall_am_send(SockCallObject *c, PyObject *arg, PyObject **result)
{
    *result = NULL;
    if (c->state == 1) {
        PySendResult r = PyIter_Send(c->waiting, arg, result);
        if (r != PYGEN_NEXT) {
            c->state = 2;
            Py_CLEAR(c->waiting);
        }
        return r;
    }
    if (c->state == 2) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    c->state = 2;
    if (arg != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
    }
    PyObject *args[2] = {c->sock, c->arg};
    int waited = 0;
    PyObject *r;
    switch (c->kind) {
    case CALL_RECV:
        r = sock_read(c->loop, args, 0, c->loop->state->str_sock_recv, START_AWAIT, &waited);
        break;
    case CALL_RECV_INTO:
        r = sock_read(c->loop, args, 1, c->loop->state->str_sock_recv_into, START_AWAIT, &waited);
        break;
    case CALL_SENDALL:
        r = sock_sendall(c->loop, args, START_AWAIT, &waited);
        break;
    case CALL_RECVFROM:
    case CALL_RECVFROM_INTO:
    case CALL_SENDTO:
        r = dgram_first_try(c->loop, c->kind, c->sock, c->arg, c->arg2, &waited);
        break;
    default:
        r = al__loop_sock_accept(c->loop, args, 1, NULL);
        waited = 1;
        break;
    }
    if (r == NULL) {
        return PYGEN_ERROR;
    }
    if (!waited) {
        *result = r;
        return PYGEN_RETURN;
    }
    /* `return await fut` */
    unaryfunc await = Py_TYPE(r)->tp_as_async ? Py_TYPE(r)->tp_as_async->am_await : NULL;
    c->waiting = await ? await(r) : NULL;
    if (await == NULL) {
        PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                     Py_TYPE(r)->tp_name);
    }
    Py_DECREF(r);
    if (c->waiting == NULL) {
        return PYGEN_ERROR;
    }
    c->state = 1;
    return SockCall_am_send(c, Py_None, result);
}

/* A finished send as a generator's __next__/send(): StopIteration(value). */
static PyObject *send_result(PySendResult r, PyObject *result)
{
    if (r != PYGEN_RETURN) {
        return result; /* the value yielded, or NULL with the error */
    }
    if (result == Py_None) {
        Py_DECREF(result);
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

#if PY_VERSION_HEX >= 0x030C0000
/* 3.12+ steps a C awaitable through tp_iternext, so each result of a
   datagram call (a tuple or a count, never None) ends as a StopIteration,
   which the awaiting frame takes the value of and drops at once. The one
   the loop made last is made again in place (StopIteration.__init__) when
   that is all that happened to it: only the loop holds it, and it never
   reached Python code (no traceback, context or cause). */
static PyObject *dgram_send_result(LoopObject *loop, PySendResult r, PyObject *result)
{
    if (r != PYGEN_RETURN || result == Py_None) {
        return send_result(r, result);
    }
    PyObject *exc = loop->stop_cache;
    if (exc != NULL && Py_REFCNT(exc) == 1) {
        PyObject *tb = PyException_GetTraceback(exc);
        PyObject *ctx = PyException_GetContext(exc);
        PyObject *cause = PyException_GetCause(exc);
        int clean = tb == NULL && ctx == NULL && cause == NULL;
        Py_XDECREF(tb);
        Py_XDECREF(ctx);
        Py_XDECREF(cause);
        initproc init =
            clean ? (initproc)PyType_GetSlot((PyTypeObject *)PyExc_StopIteration, Py_tp_init)
                  : NULL;
        PyObject *args = init ? PyTuple_Pack(1, result) : NULL;
        if (args != NULL) {
            int rc = init(exc, args, NULL);
            Py_DECREF(args);
            if (rc == 0) {
                Py_DECREF(result);
                PyErr_SetRaisedException(Py_NewRef(exc));
                return NULL;
            }
        }
        if (PyErr_Occurred()) {
            Py_DECREF(result);
            return NULL;
        }
    }
    exc = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (exc == NULL) {
        return NULL;
    }
    Py_XSETREF(loop->stop_cache, Py_NewRef(exc));
    PyErr_SetRaisedException(exc);
    return NULL;
}
#else
#define dgram_send_result(loop, r, result) send_result(r, result)
#endif

static int is_dgram(int kind)
{
    return kind == CALL_RECVFROM || kind == CALL_RECVFROM_INTO || kind == CALL_SENDTO;
}

static PyObject *SockCall_iternext(SockCallObject *c)
{
    PyObject *result;
    int dgram = is_dgram(c->kind);
    LoopObject *loop = (LoopObject *)Py_NewRef(c->loop);
    PySendResult r = SockCall_am_send(c, Py_None, &result);
    if (r == PYGEN_RETURN && result == Py_None) {
        Py_DECREF(result); /* exhausted without an exception: returns None */
        result = NULL;
    }
    else {
        result = dgram ? dgram_send_result(loop, r, result) : send_result(r, result);
    }
    Py_DECREF(loop);
    return result;
}

static PyObject *SockCall_send(SockCallObject *c, PyObject *arg)
{
    PyObject *result;
    PySendResult r = SockCall_am_send(c, arg, &result);
    return send_result(r, result);
}

/* throw(exc) / throw(type[, value[, tb]]): raised where the coroutine is,
   which is the `await fut` or its start; either way it finishes. */
static PyObject *SockCall_throw(SockCallObject *c, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    if (c->state == 1) {
        PyObject *argv[4] = {c->waiting, args[0], nargs > 1 ? args[1] : NULL,
                             nargs > 2 ? args[2] : NULL};
        PyObject *name = PyUnicode_InternFromString("throw");
        PyObject *r = name ? PyObject_VectorcallMethod(name, argv, (size_t)nargs + 1, NULL) : NULL;
        Py_XDECREF(name);
        if (r == NULL) {
            c->state = 2;
            Py_CLEAR(c->waiting);
        }
        return r;
    }
    c->state = 2;
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : Py_None;
    if (PyExceptionInstance_Check(typ)) {
        if (val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
        return NULL;
    }
    if (!PyExceptionClass_Check(typ)) {
        PyErr_Format(PyExc_TypeError,
                     "exceptions must be classes or instances deriving from BaseException, "
                     "not %s",
                     Py_TYPE(typ)->tp_name);
        return NULL;
    }
    PyErr_SetObject(typ, val);
    return NULL;
}

static PyObject *SockCall_close(SockCallObject *c, PyObject *Py_UNUSED(ignored))
{
    c->state = 2;
    Py_CLEAR(c->waiting);
    Py_RETURN_NONE;
}

static PyObject *SockCall_await(SockCallObject *c)
{
    return Py_NewRef(c);
}

static PyObject *SockCall_get_name(SockCallObject *c, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(call_names[c->kind]);
}

static PyObject *SockCall_get_qualname(SockCallObject *c, void *Py_UNUSED(closure))
{
    return PyUnicode_FromFormat("Loop.%s", call_names[c->kind]);
}

static PyObject *SockCall_get_await(SockCallObject *c, void *Py_UNUSED(closure))
{
    return Py_NewRef(c->waiting ? c->waiting : Py_None);
}

static PyObject *SockCall_repr(SockCallObject *c)
{
    return PyUnicode_FromFormat("<coroutine object Loop.%s at %p>", call_names[c->kind], c);
}

static int SockCall_traverse(SockCallObject *c, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(c));
    Py_VISIT(c->loop);
    Py_VISIT(c->sock);
    Py_VISIT(c->arg);
    Py_VISIT(c->arg2);
    Py_VISIT(c->waiting);
    return 0;
}

static int SockCall_clear(SockCallObject *c)
{
    Py_CLEAR(c->loop);
    Py_CLEAR(c->sock);
    Py_CLEAR(c->arg);
    Py_CLEAR(c->arg2);
    Py_CLEAR(c->waiting);
    return 0;
}

static void SockCall_dealloc(SockCallObject *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    SockCall_clear(c);
    PyObject_GC_Del(c);
    Py_DECREF(tp);
}

static PyMethodDef SockCall_methods[] = {
    {"send", (PyCFunction)SockCall_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))SockCall_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)SockCall_close, METH_NOARGS, NULL},
    {NULL},
};

static PyGetSetDef SockCall_getset[] = {
    {"__name__", (getter)SockCall_get_name, NULL, NULL, NULL},
    {"__qualname__", (getter)SockCall_get_qualname, NULL, NULL, NULL},
    {"cr_await", (getter)SockCall_get_await, NULL, NULL, NULL},
    {NULL},
};

static PyType_Slot SockCall_slots[] = {
    {Py_tp_dealloc, SockCall_dealloc},
    {Py_tp_traverse, SockCall_traverse},
    {Py_tp_clear, SockCall_clear},
    {Py_tp_repr, SockCall_repr},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, SockCall_iternext},
    {Py_am_await, SockCall_await},
    {Py_am_send, SockCall_am_send},
    {Py_tp_methods, SockCall_methods},
    {Py_tp_getset, SockCall_getset},
    {0, NULL},
};

PyType_Spec al__sock_call_spec = {
    .name = "asyncloop._core.SockCall",
    .basicsize = sizeof(SockCallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = SockCall_slots,
};

static PyObject *sock_call_new(LoopObject *self, int kind, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    Py_ssize_t want = kind == CALL_ACCEPT ? 1 : 2;
    if (check_nargs(call_names[kind], nargs, want, kwnames) < 0) {
        return NULL;
    }
    SockCallObject *c = PyObject_GC_New(SockCallObject, self->state->SockCallType);
    if (c == NULL) {
        return NULL;
    }
    c->loop = (LoopObject *)Py_NewRef(self);
    c->sock = Py_NewRef(args[0]);
    c->arg = want > 1 ? Py_NewRef(args[1]) : NULL;
    c->arg2 = NULL;
    c->waiting = NULL;
    c->kind = kind;
    c->state = 0;
    PyObject_GC_Track(c);
    return (PyObject *)c;
}

static PyObject *sock_call(LoopObject *self, int kind, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames, al_fastcall_method fn)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        static const char *const names2[][2] = {
            {"sock", "n"}, {"sock", "buf"}, {"sock", "data"}, {"sock", NULL}};
        return al__call_with_keywords_bound((PyObject *)self, fn, call_names[kind], names2[kind],
                                            kind == CALL_ACCEPT ? 1 : 2, NULL, args,
                                            PyVectorcall_NARGS(nargsf), kwnames);
    }
    return sock_call_new(self, kind, args, PyVectorcall_NARGS(nargsf), NULL);
}

PyObject *al__loop_sock_recv_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    return sock_call(self, CALL_RECV, args, nargsf, kwnames,
                     (al_fastcall_method)al__loop_sock_recv_call);
}

PyObject *al__loop_sock_recv_into_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames)
{
    return sock_call(self, CALL_RECV_INTO, args, nargsf, kwnames,
                     (al_fastcall_method)al__loop_sock_recv_into_call);
}

PyObject *al__loop_sock_sendall_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames)
{
    return sock_call(self, CALL_SENDALL, args, nargsf, kwnames,
                     (al_fastcall_method)al__loop_sock_sendall_call);
}

PyObject *al__loop_sock_accept_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames)
{
    return sock_call(self, CALL_ACCEPT, args, nargsf, kwnames,
                     (al_fastcall_method)al__loop_sock_accept_call);
}

/* --- datagram sock_*: sock_recvfrom, sock_recvfrom_into, sock_sendto ------ */

/* selector_events' sock_recvfrom / sock_recvfrom_into / sock_sendto, which
   asyncio has from 3.11 on; offered on 3.10 too. Each first try is the
   socket's own method (so the addresses and argument errors are the
   socket module's), with MSG_DONTWAIT on a plain socket.socket so that a
   blocking socket is not waited on there; only when the call would block
   does it wait for readiness on the fd watcher, with asyncio's retry
   callbacks (_sock_recvfrom, ...). A blocking socket then goes to the
   method without the flag, which blocks as it does on asyncio. */

/* sock.recvfrom(bufsize[, flags]), sock.recvfrom_into(buf, nbytes[, flags]),
   sock.sendto(data[, flags], address); flags given when dontwait or retry
   (asyncio's retry of sendto passes 0). */
static PyObject *dgram_call(al_state *st, int kind, PyObject *sock, PyObject *a, PyObject *b,
                            int dontwait, int retry)
{
    PyObject *argv[4] = {sock, a, NULL, NULL};
    size_t n = 2;
    PyObject *name;
    PyObject *flags = NULL;
    if (dontwait || (retry && kind == CALL_SENDTO)) {
        flags = PyLong_FromLong(dontwait ? MSG_DONTWAIT : 0);
        if (flags == NULL) {
            return NULL;
        }
    }
    if (kind == CALL_RECVFROM) {
        name = st->str_recvfrom;
        if (flags != NULL) {
            argv[n++] = flags;
        }
    }
    else if (kind == CALL_RECVFROM_INTO) {
        name = st->str_recvfrom_into;
        argv[n++] = b;
        if (flags != NULL) {
            argv[n++] = flags;
        }
    }
    else {
        name = st->str_sendto;
        if (flags != NULL) {
            argv[n++] = flags;
        }
        argv[n++] = b;
    }
    PyObject *r = PyObject_VectorcallMethod(name, argv, n, NULL);
    Py_XDECREF(flags);
    return r;
}

/* The datagram calls on a socket.socket of family AF_INET or AF_INET6 are
   made here on its fd (MSG_DONTWAIT), as its methods make them: the same
   syscall, the same address objects (makesockaddr's), the same OSError
   from errno and "socket.sendto" audit event. Anything else (other
   families, addresses to resolve or to reject, other argument types) goes
   to the method. */

/* The last few peers datagrams came from, and their address objects: an
   echo's sock_sendto to one then needs no parsing, a repeated peer no new
   tuple (immutable: sharing it is safe). */
#define DGRAM_PEERS 4

struct al_dgram_peer {
    struct {
        struct sockaddr_storage ss;
        socklen_t len;
        PyObject *obj;
    } e[DGRAM_PEERS];
    int next; /* the entry replaced next */
};

void al__poll_dgram_peer_free(LoopObject *loop)
{
    if (loop->dgram_peer != NULL) {
        for (int i = 0; i < DGRAM_PEERS; i++) {
            Py_CLEAR(loop->dgram_peer->e[i].obj);
        }
        PyMem_RawFree(loop->dgram_peer);
        loop->dgram_peer = NULL;
    }
}

/* _socket.socket's attribute name of sock (a socket.socket) through its
   descriptor, looked up once into *descr: no method call, no property. */
static PyObject *socket_attr(PyObject **descr, const char *name, PyObject *sock)
{
    if (*descr == NULL) {
        PyObject *type = al__import_attr("_socket", "socket");
        *descr = type ? PyObject_GetAttrString(type, name) : NULL;
        Py_XDECREF(type);
        if (*descr == NULL) {
            return NULL;
        }
    }
    descrgetfunc get = Py_TYPE(*descr)->tp_descr_get;
    if (get == NULL) {
        PyErr_Format(PyExc_TypeError, "_socket.socket.%s is not a descriptor", name);
        return NULL;
    }
    return get(*descr, sock, (PyObject *)Py_TYPE(sock));
}

/* sock.family as _socket.socket stores it (socket.socket's property only
   converts it to an AddressFamily): -1 when unknown, with no error set. */
static int dgram_family(al_state *st, PyObject *sock)
{
    PyObject *v = socket_attr(&st->sock_family, "family", sock);
    long fam = v ? PyLong_AsLong(v) : -1;
    Py_XDECREF(v);
    if (fam == -1 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    return fam == AF_INET || fam == AF_INET6 ? (int)fam : -1;
}

/* makesockaddr() for what recvfrom() gave on an AF_INET/AF_INET6 socket. */
static PyObject *dgram_addr_obj(LoopObject *loop, const struct sockaddr_storage *ss, socklen_t len)
{
    struct al_dgram_peer *p = loop->dgram_peer;
    for (int i = 0; p != NULL && i < DGRAM_PEERS; i++) {
        if (p->e[i].len == len && len > 0 && memcmp(&p->e[i].ss, ss, len) == 0) {
            return Py_NewRef(p->e[i].obj);
        }
    }
    if (len == 0) {
        Py_RETURN_NONE;
    }
    char host[INET6_ADDRSTRLEN];
    PyObject *r;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        /* inet_ntop's "%u.%u.%u.%u", without its sprintf */
        const unsigned char *b = (const unsigned char *)&a->sin_addr;
        char *o = host;
        for (int i = 0; i < 4; i++) {
            unsigned v = b[i];
            if (v >= 100) {
                *o++ = (char)('0' + v / 100);
            }
            if (v >= 10) {
                *o++ = (char)('0' + v / 10 % 10);
            }
            *o++ = (char)('0' + v % 10);
            *o++ = '.';
        }
        r = Py_BuildValue("(s#i)", host, (Py_ssize_t)(o - host - 1), (int)ntohs(a->sin_port));
    }
    else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        r = Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                          (unsigned int)ntohl(a->sin6_flowinfo), (unsigned int)a->sin6_scope_id);
    }
    else {
        PyErr_SetString(PyExc_OSError, "unexpected address family");
        return NULL;
    }
    if (r == NULL) {
        return NULL;
    }
    if (p == NULL && (p = loop->dgram_peer = PyMem_RawCalloc(1, sizeof(*p))) == NULL) {
        return r; /* no cache */
    }
    int i = p->next;
    p->next = (i + 1) % DGRAM_PEERS;
    memcpy(&p->e[i].ss, ss, len);
    p->e[i].len = len;
    Py_XSETREF(p->e[i].obj, Py_NewRef(r));
    return r;
}

/* getsockaddrarg() for a numeric address of family fam: 1 with *ss, or 0
   (the method converts it, resolves names and raises its errors). */
static int dgram_sockaddr(LoopObject *loop, int fam, PyObject *addr, struct sockaddr_storage *ss,
                          socklen_t *len)
{
    struct al_dgram_peer *p = loop->dgram_peer;
    for (int i = 0; p != NULL && i < DGRAM_PEERS; i++) {
        if (addr == p->e[i].obj && p->e[i].ss.ss_family == fam &&
            (fam == AF_INET ||
             ntohl(((struct sockaddr_in6 *)&p->e[i].ss)->sin6_flowinfo) <= 0xfffff)) {
            /* what recvfrom gave for this tuple, which getsockaddrarg
               would make of it again */
            memcpy(ss, &p->e[i].ss, p->e[i].len);
            *len = p->e[i].len;
            return 1;
        }
    }
    return al__udp_numeric_sockaddr(fam, addr, ss, len);
}

/* sock.recvfrom(n), sock.recvfrom_into(buf, nbytes) or sock.sendto(data,
   addr) on the fd: 1 done (*out), 0 would block, -1 error, 2 for the
   method, 3 for the method without MSG_DONTWAIT (a socket with a timeout
   would have blocked: the method waits as it does on asyncio). */
static int dgram_fast(LoopObject *loop, int kind, PyObject *sock, PyObject *a, PyObject *b,
                      PyObject **out)
{
    al_state *st = loop->state;
    *out = NULL;
    if (!plain_socket(st, sock)) {
        return 2;
    }
    int fam = dgram_family(st, sock);
    if (fam < 0) {
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    Py_buffer view = {.buf = NULL};
    ssize_t n = 0;
    if (kind == CALL_RECVFROM) {
        Py_ssize_t size = PyLong_CheckExact(a) ? PyLong_AsSsize_t(a) : 0;
        if (size <= 0 || size > RECV_SCRATCH) {
            PyErr_Clear(); /* the method raises its own error */
            return 2;
        }
        if (st->recv_scratch == NULL &&
            (st->recv_scratch = PyMem_RawMalloc((size_t)RECV_SCRATCH)) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        n = size;
    }
    else if (kind == CALL_RECVFROM_INTO) {
        Py_ssize_t size = PyLong_CheckExact(b) ? PyLong_AsSsize_t(b) : 0;
        if (size <= 0 || PyObject_GetBuffer(a, &view, PyBUF_WRITABLE) < 0) {
            PyErr_Clear();
            return 2;
        }
        if (size > view.len) {
            PyBuffer_Release(&view);
            return 2;
        }
        n = size;
    }
    else {
        /* asyncio waits only on a non-blocking socket; a blocking one goes
           to the method (one audit event, as asyncio's one call). */
        int nb = sock_nonblocking(st, sock);
        if (nb <= 0) {
            return nb < 0 ? -1 : 2;
        }
        if (!dgram_sockaddr(loop, fam, b, &ss, &sslen) ||
            PyObject_GetBuffer(a, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            return 2;
        }
        if (PySys_Audit("socket.sendto", "OO", sock, b) < 0) {
            PyBuffer_Release(&view);
            return -1;
        }
    }
    int fd;
    if (sock_fd(st, sock, &fd) < 0) {
        PyBuffer_Release(&view);
        return -1;
    }
    ssize_t got;
    for (;;) {
        if (kind == CALL_SENDTO) {
            got =
                sendto(fd, view.buf, (size_t)view.len, MSG_DONTWAIT, (struct sockaddr *)&ss, sslen);
        }
        else {
            sslen = sizeof(ss);
            got = recvfrom(fd, kind == CALL_RECVFROM ? st->recv_scratch : view.buf, (size_t)n,
                           MSG_DONTWAIT, (struct sockaddr *)&ss, &sslen);
        }
        if (got >= 0 || errno != EINTR) {
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            PyBuffer_Release(&view);
            return -1;
        }
    }
    int err = errno;
    PyBuffer_Release(&view);
    if (got < 0) {
        errno = err;
        int rc = syscall_failed(st, sock);
        return rc == 2 ? 3 : rc;
    }
    if (kind == CALL_SENDTO) {
        *out = PyLong_FromSsize_t(got);
        return *out ? 1 : -1;
    }
    PyObject *first = kind == CALL_RECVFROM ? PyBytes_FromStringAndSize(st->recv_scratch, got)
                                            : PyLong_FromSsize_t(got);
    PyObject *addr = first ? dgram_addr_obj(loop, &ss, sslen) : NULL;
    if (addr == NULL) {
        Py_XDECREF(first);
        return -1;
    }
    *out = PyTuple_New(2);
    if (*out == NULL) {
        Py_DECREF(first);
        Py_DECREF(addr);
        return -1;
    }
    PyTuple_SET_ITEM(*out, 0, first);
    PyTuple_SET_ITEM(*out, 1, addr);
    return 1;
}

/* A SockCall's first step: the result, or the future to wait on
   (*waited set). a, b: bufsize and NULL, buf and nbytes, or data and
   address. */
static PyObject *dgram_first_try(LoopObject *loop, int kind, PyObject *sock, PyObject *a,
                                 PyObject *b, int *waited)
{
    al_state *st = loop->state;
    if (sock_check(loop, sock) < 0) {
        return NULL;
    }
    PyObject *nbytes = NULL;
    if (kind == CALL_RECVFROM_INTO) {
        /* if not nbytes: nbytes = len(buf) */
        int t = PyObject_IsTrue(b);
        if (t < 0) {
            return NULL;
        }
        if (!t) {
            Py_ssize_t len = PyObject_Size(a);
            if (len < 0 || (nbytes = PyLong_FromSsize_t(len)) == NULL) {
                return NULL;
            }
            b = nbytes;
        }
    }
    PyObject *r;
    int rc = dgram_fast(loop, kind, sock, a, b, &r);
    if (rc == 1) {
        Py_XDECREF(nbytes);
        return r;
    }
    if (rc < 0) {
        goto fail;
    }
    int dontwait = rc == 2 && plain_socket(st, sock);
    r = rc >= 2 ? dgram_call(st, kind, sock, a, b, dontwait, 0) : NULL;
    if (r == NULL && dontwait && would_block()) {
        int nb = sock_nonblocking(st, sock);
        if (nb == 0) {
            r = dgram_call(st, kind, sock, a, b, 0, 0);
        }
        else if (nb < 0) {
            goto fail;
        }
    }
    if (r != NULL) {
        Py_XDECREF(nbytes);
        return r;
    }
    if (PyErr_Occurred() && !would_block()) {
        goto fail;
    }
    PyObject *fut = new_future(loop);
    if (fut == NULL) {
        goto fail;
    }
    PyObject *cbargs[4] = {fut, sock, a, b};
    PyObject *retry = kind == CALL_RECVFROM        ? st->str_sock_recvfrom
                      : kind == CALL_RECVFROM_INTO ? st->str_sock_recvfrom_into
                                                   : st->str_sock_sendto;
    if (wait_ready(loop, sock, kind == CALL_SENDTO, retry, cbargs, kind == CALL_RECVFROM ? 3 : 4) <
        0) {
        Py_DECREF(fut);
        goto fail;
    }
    Py_XDECREF(nbytes);
    *waited = 1;
    return fut;
fail:
    Py_XDECREF(nbytes);
    return NULL;
}

/* _sock_recvfrom(fut, sock, bufsize), _sock_recvfrom_into(fut, sock, buf,
   bufsize), _sock_sendto(fut, sock, data, address): asyncio's retries. */
static PyObject *dgram_retry(LoopObject *self, int kind, PyObject *const *args)
{
    int done = fut_done(self, args[0]);
    if (done) {
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *b = kind == CALL_RECVFROM ? NULL : args[3];
    PyObject *r;
    int rc = dgram_fast(self, kind, args[1], args[2], b, &r);
    if (rc == 0) {
        Py_RETURN_NONE; /* still not ready: wait again */
    }
    if (rc >= 2) {
        r = dgram_call(self->state, kind, args[1], args[2], b, 0, 1);
    }
    return complete(self, args[0], r);
}

PyObject *al__loop_sock_recvfrom_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames)
{
    NARGS("_sock_recvfrom", 3);
    return dgram_retry(self, CALL_RECVFROM, args);
}

PyObject *al__loop_sock_recvfrom_into_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames)
{
    NARGS("_sock_recvfrom_into", 4);
    return dgram_retry(self, CALL_RECVFROM_INTO, args);
}

PyObject *al__loop_sock_sendto_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    NARGS("_sock_sendto", 4);
    return dgram_retry(self, CALL_SENDTO, args);
}

static PyObject *dgram_call_new(LoopObject *self, int kind, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t min = kind == CALL_RECVFROM ? 2 : kind == CALL_RECVFROM_INTO ? 2 : 3;
    Py_ssize_t max = kind == CALL_RECVFROM ? 2 : 3;
    if (nargs < min || nargs > max) {
        PyErr_Format(PyExc_TypeError, "%s() takes %s%zd positional arguments but %zd were given",
                     call_names[kind], min == max ? "" : "from 2 to ", max, nargs);
        return NULL;
    }
    PyObject *arg2 = NULL;
    if (kind != CALL_RECVFROM) {
        arg2 = nargs > 2 ? Py_NewRef(args[2]) : PyLong_FromLong(0);
        if (arg2 == NULL) {
            return NULL;
        }
    }
    SockCallObject *c = PyObject_GC_New(SockCallObject, self->state->SockCallType);
    if (c == NULL) {
        Py_XDECREF(arg2);
        return NULL;
    }
    c->loop = (LoopObject *)Py_NewRef(self);
    c->sock = Py_NewRef(args[0]);
    c->arg = Py_NewRef(args[1]);
    c->arg2 = arg2;
    c->waiting = NULL;
    c->kind = kind;
    c->state = 0;
    PyObject_GC_Track(c);
    return (PyObject *)c;
}

static PyObject *dgram_entry(LoopObject *self, int kind, PyObject *const *args, size_t nargsf,
                             PyObject *kwnames, al_fastcall_method fn)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        static const char *const names[][3] = {
            {"sock", "bufsize", NULL}, {"sock", "buf", "nbytes"}, {"sock", "data", "address"}};
        const char *const *nm = names[kind - CALL_RECVFROM];
        Py_ssize_t npos = kind == CALL_RECVFROM ? 2 : 3;
        if (kind == CALL_RECVFROM_INTO && nargs < 3) {
            /* nbytes is optional: bound only when named */
            npos = 2;
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
                PyObject *k = PyTuple_GET_ITEM(kwnames, i);
                if (PyUnicode_Check(k) && PyUnicode_CompareWithASCIIString(k, "nbytes") == 0) {
                    npos = 3;
                }
            }
        }
        return al__call_with_keywords_bound((PyObject *)self, fn, call_names[kind], nm, npos, NULL,
                                            args, nargs, kwnames);
    }
    return dgram_call_new(self, kind, args, nargs);
}

PyObject *al__loop_sock_recvfrom_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames)
{
    return dgram_entry(self, CALL_RECVFROM, args, nargsf, kwnames,
                       (al_fastcall_method)al__loop_sock_recvfrom_call);
}

PyObject *al__loop_sock_recvfrom_into_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames)
{
    return dgram_entry(self, CALL_RECVFROM_INTO, args, nargsf, kwnames,
                       (al_fastcall_method)al__loop_sock_recvfrom_into_call);
}

PyObject *al__loop_sock_sendto_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames)
{
    return dgram_entry(self, CALL_SENDTO, args, nargsf, kwnames,
                       (al_fastcall_method)al__loop_sock_sendto_call);
}

/* --- metrics --------------------------------------------------------------- */

void al__poll_count(LoopObject *loop, Py_ssize_t *readers, Py_ssize_t *writers)
{
    *readers = *writers = 0;
    if (loop->fd_watchers == NULL) {
        return;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value; /* borrowed */
    while (PyDict_Next(loop->fd_watchers, &pos, &key, &value)) {
        WatcherObject *w = (WatcherObject *)value;
        *readers += w->reader != NULL && !w->reader->cancelled;
        *writers += w->writer != NULL && !w->writer->cancelled;
    }
}
