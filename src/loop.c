/* The Loop type: run/stop/close, one iteration, the ready queue, the clock,
   callbacks and timers, tasks and futures, the exception handler and debug
   mode. One iteration follows asyncio's BaseEventLoop._run_once. */
#include "internal.h"

#include <math.h>
#include <errno.h>
#include <fcntl.h>

/* --- the ready queue ---------------------------------------------------- */

/* A full ring doubles (out of line: the push itself is inlined). */
static __attribute__((noinline)) int ring_grow(al_ring *ring)
{
    size_t cap = ring->cap ? ring->cap * 2 : 256;
    HandleObject **items = PyMem_New(HandleObject *, cap);
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < ring->len; i++) {
        items[i] = ring->items[(ring->head + i) & (ring->cap - 1)];
    }
    PyMem_Free(ring->items);
    ring->items = items;
    ring->cap = cap;
    ring->head = 0;
    return 0;
}

/* Steals the reference to h. */
static inline int ring_push_steal(al_ring *ring, HandleObject *h)
{
    if (ring->len == ring->cap && ring_grow(ring) < 0) {
        return -1;
    }
    ring->items[(ring->head + ring->len) & (ring->cap - 1)] = h;
    ring->len++;
    return 0;
}

/* Takes a new reference to h. */
int al__ring_push(al_ring *ring, HandleObject *h)
{
    if (ring_push_steal(ring, h) < 0) {
        return -1;
    }
    Py_INCREF(h);
    return 0;
}

/* type(obj).name, looked up once per (type, name): the transports' own
   _read_ready/_write_ready (a type attribute lookup was ~195 instructions
   per deferred event; asyncio binds its method once, when the reader is
   added, not at each event either). A new reference. */
static PyObject *defer_callback(al_state *st, PyObject *obj, PyObject *name)
{
    PyObject *tp = (PyObject *)Py_TYPE(obj);
    size_t n = sizeof(st->defer_cbs) / sizeof(st->defer_cbs[0]);
    for (size_t i = 0; i < n; i++) {
        if (st->defer_cbs[i].type == tp && st->defer_cbs[i].name == name) {
            return Py_NewRef(st->defer_cbs[i].cb);
        }
        if (st->defer_cbs[i].cb == NULL) {
            PyObject *cb = PyObject_GetAttr(tp, name);
            if (cb != NULL) {
                st->defer_cbs[i].type = Py_NewRef(tp);
                st->defer_cbs[i].name = Py_NewRef(name);
                st->defer_cbs[i].cb = Py_NewRef(cb);
            }
            return cb;
        }
    }
    return PyObject_GetAttr(tp, name); /* full: not kept */
}

int al__loop_defer_traverse(al_state *st, visitproc visit, void *arg)
{
    for (size_t i = 0; i < sizeof(st->defer_cbs) / sizeof(st->defer_cbs[0]); i++) {
        Py_VISIT(st->defer_cbs[i].type);
        Py_VISIT(st->defer_cbs[i].cb);
    }
    return 0;
}

void al__loop_defer_clear(al_state *st)
{
    for (size_t i = 0; i < sizeof(st->defer_cbs) / sizeof(st->defer_cbs[0]); i++) {
        Py_CLEAR(st->defer_cbs[i].type);
        Py_CLEAR(st->defer_cbs[i].name);
        Py_CLEAR(st->defer_cbs[i].cb);
    }
}

/* asyncio's _run_once appends the reader/writer handles of a poll behind
   the handles queued before it: a transport's poll callback with some
   queued (ready_at_poll) queues type(obj).name(obj) there, in ctx, as a
   Handle of the free list, once while *flag is set (the method clears it;
   so does removing the interest, as asyncio cancels its handle). */
int al__loop_defer(LoopObject *loop, PyObject *obj, PyObject *name, PyObject *ctx, char *flag)
{
    if (*flag) {
        return 0;
    }
    al_state *st = loop->state;
    PyObject *cb = defer_callback(st, obj, name);
    if (cb == NULL) {
        return -1;
    }
    HandleObject *h = al__handle_new_queued(st, st->HandleType, loop, cb, &obj, 1, ctx);
    Py_DECREF(cb);
    if (h == NULL) {
        return -1;
    }
    if (ring_push_steal(&loop->ready, h) < 0) {
        Py_DECREF(h);
        return -1;
    }
    *flag = 1;
    return 0;
}

/* The reference passes to the caller. */
static inline HandleObject *ring_pop(al_ring *ring)
{
    HandleObject *h = ring->items[ring->head];
    ring->head = (ring->head + 1) & (ring->cap - 1);
    ring->len--;
    return h;
}

/* Empties the queue. Releasing a handle can run arbitrary code that
   schedules again, so the storage is detached first. */
static void ring_clear(al_ring *ring)
{
    al_ring old = *ring;
    ring->items = NULL;
    ring->cap = ring->head = ring->len = 0;
    for (size_t i = 0; i < old.len; i++) {
        HandleObject *h = old.items[(old.head + i) & (old.cap - 1)];
        al__handle_disown(h);
        Py_DECREF(h);
    }
    PyMem_Free(old.items);
}

/* --- handles queued while the loop is not running ------------------------ */

/* call_soon/call_at on a stopped loop queue untracked handles (handle.c);
   the loop is listed in the state so that the next collection start looks
   at them (al__loop_gc_scan_all), as the end of a run does for the rest. */
static void loop_gc_list(LoopObject *self)
{
    al_state *st = self->state;
    self->gc_listed = 1;
    self->gc_prev = NULL;
    self->gc_next = st->gc_unscanned;
    if (st->gc_unscanned != NULL) {
        st->gc_unscanned->gc_prev = self;
    }
    st->gc_unscanned = self;
}

/* The ready queue's last handle. */
static inline void loop_gc_queued_ready(LoopObject *self)
{
    self->gc_unscanned_ready++;
    if (!self->gc_listed) {
        loop_gc_list(self);
    }
}

/* A timer moves in the heap: kept by reference until looked at. */
static void loop_gc_queued_timer(LoopObject *self, TimerHandleObject *t)
{
    if (self->n_gc_timers == self->cap_gc_timers) {
        Py_ssize_t cap = self->cap_gc_timers ? self->cap_gc_timers * 2 : 64;
        TimerHandleObject **items = self->gc_timers;
        if (cap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(TimerHandleObject *) ||
            PyMem_Resize(items, TimerHandleObject *, (size_t)cap) == NULL) {
            /* No room to list it: an ordinary GC object then. */
            PyObject_GC_Track(t);
            return;
        }
        self->gc_timers = items;
        self->cap_gc_timers = cap;
    }
    self->gc_timers[self->n_gc_timers++] = (TimerHandleObject *)Py_NewRef(t);
    if (!self->gc_listed) {
        loop_gc_list(self);
    }
}

/* Tracks the listed handles that are referenced elsewhere, whose
   references the loop's tp_traverse cannot report as its own, and unlists
   the loop. */
static void loop_gc_scan(LoopObject *self)
{
    if (!self->gc_listed) {
        return;
    }
    al_state *st = self->state;
    if (self->gc_prev != NULL) {
        self->gc_prev->gc_next = self->gc_next;
    }
    else {
        st->gc_unscanned = self->gc_next;
    }
    if (self->gc_next != NULL) {
        self->gc_next->gc_prev = self->gc_prev;
    }
    self->gc_listed = 0;
    self->gc_next = self->gc_prev = NULL;

    al_ring *ready = &self->ready;
    size_t n = self->gc_unscanned_ready < ready->len ? self->gc_unscanned_ready : ready->len;
    self->gc_unscanned_ready = 0;
    for (size_t i = ready->len - n; i < ready->len; i++) {
        al__handle_disown(ready->items[(ready->head + i) & (ready->cap - 1)]);
    }
    TimerHandleObject **timers = self->gc_timers;
    Py_ssize_t nt = self->n_gc_timers;
    self->gc_timers = NULL;
    self->n_gc_timers = self->cap_gc_timers = 0;
    for (Py_ssize_t i = 0; i < nt; i++) {
        HandleObject *h = (HandleObject *)timers[i];
        /* One reference is ours, one the heap's while h is in it. */
        if ((Py_REFCNT(h) > 1 + h->scheduled || h->weakreflist != NULL) &&
            !PyObject_GC_IsTracked((PyObject *)h)) {
            PyObject_GC_Track(h);
        }
    }
    /* Releasing can run code (and free self): after the loop above. */
    for (Py_ssize_t i = 0; i < nt; i++) {
        Py_DECREF(timers[i]);
    }
    PyMem_Free(timers);
}

void al__loop_gc_scan_all(al_state *st)
{
    while (st->gc_unscanned != NULL) {
        loop_gc_scan(st->gc_unscanned);
    }
}

/* --- GIL and libuv callbacks ------------------------------------------ */

/* libuv callbacks run inside uv_run, which a blocking poll enters with the
   GIL released; an I/O callback that needs Python takes it back. uv_stop()
   then makes the rest of this uv_run non-blocking: libuv could otherwise
   poll again (with no timer left, forever) while we hold the GIL. */
void al__loop_hold_gil(LoopObject *loop)
{
    if (loop->released_tstate != NULL) {
        PyThreadState *ts = loop->released_tstate;
        loop->released_tstate = NULL;
        uv_stop(&loop->uv);
        PyEval_RestoreThread(ts);
        loop->polling = 0;
        al__metrics_poll_end(loop); /* metrics: idle until the first I/O callback */
    }
}

static void on_poll_timer(uv_timer_t *timer)
{
    /* Ends the poll without the GIL. libuv runs due timers before it
       polls, so this may run first thing in uv_run: uv_stop() turns the
       poll that follows into a non-blocking one. Due timers are then taken
       from the heap by the iteration, against the precise clock. */
    LoopObject *loop = timer->data;
    uv_stop(&loop->uv);
}

static void on_async(uv_async_t *async)
{
    /* call_soon_threadsafe appended to the ready queue already. */
    al__loop_hold_gil((LoopObject *)async->data);
}

static void on_uv_close(uv_handle_t *handle)
{
    LoopObject *loop = handle->data;
    loop->state->live_uv_handles--;
}

/* --- argument checks shared with asyncio --------------------------------- */

static inline int loop_check_closed(LoopObject *loop)
{
    if (loop->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return -1;
    }
    return 0;
}

static int loop_check_thread(LoopObject *loop)
{
    if (loop->running && PyThread_get_thread_ident() != loop->thread_id) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Non-thread-safe operation invoked on an event loop other "
                        "than the current one");
        return -1;
    }
    return 0;
}

static int loop_check_fork(LoopObject *loop)
{
    if (loop->fork_generation != al__fork_generation) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this event loop was created before fork(); it cannot be "
                        "used in the child process, create a new one there");
        return -1;
    }
    return 0;
}

/* asyncio.iscoroutine(obj) or asyncio.iscoroutinefunction(obj); -1 on error. */
int al__is_coroutine_like(al_state *st, PyObject *obj)
{
    PyObject *res = PyObject_CallOneArg(st->iscoroutine, obj);
    int r = res ? PyObject_IsTrue(res) : -1;
    Py_XDECREF(res);
    if (r == 0) {
        res = PyObject_CallOneArg(st->iscoroutinefunction, obj);
        r = res ? PyObject_IsTrue(res) : -1;
        Py_XDECREF(res);
    }
    return r;
}

static int loop_check_callback(LoopObject *loop, PyObject *callback, const char *method)
{
    int r = al__is_coroutine_like(loop->state, callback);
    if (r < 0) {
        return -1;
    }
    if (r) {
        PyErr_Format(PyExc_TypeError, "coroutines cannot be used with %s()", method);
        return -1;
    }
    if (!PyCallable_Check(callback)) {
        PyErr_Format(PyExc_TypeError, "a callable object was expected by %s(), got %R", method,
                     callback);
        return -1;
    }
    return 0;
}

PyObject *al__loop_call_exception_handler(LoopObject *loop, PyObject *context)
{
    /* Looked up on the instance so that subclasses can override it. */
    return PyObject_CallMethodOneArg((PyObject *)loop, loop->state->str_call_exception_handler,
                                     context);
}

/* Splits vectorcall keywords: only `context` is accepted here. 1: another
   keyword, for al__call_with_keywords_bound to bind or reject as Python
   would (call_later(0, callback=f), call_soon(f, callback=g)). */
static int parse_context_kw(al_state *st, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames, PyObject **context)
{
    *context = NULL;
    if (kwnames == NULL) {
        return 0;
    }
    Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i); /* borrowed */
        if (key == st->str_context_seen || key == st->str_context) {
            *context = args[nargs + i];
        }
        else if (PyUnicode_Check(key) && PyUnicode_Compare(key, st->str_context) == 0) {
            /* asyncio's C Task passes its own "context" string, not the
               interned one: remember it so the next call is a pointer test. */
            Py_XSETREF(st->str_context_seen, Py_NewRef(key));
            *context = args[nargs + i];
        }
        else {
            return PyErr_Occurred() ? -1 : 1;
        }
    }
    if (nkw == 1) {
        /* asyncio's C Task and Future pass the same tuple each time
           (call_soon(step, context=ctx)): next time a pointer test. */
        Py_XSETREF(st->kwnames_context_seen, Py_NewRef(kwnames));
    }
    return 0;
}

/* --- scheduling --------------------------------------------------------- */

static const char *const kwonly_context[] = {"context", NULL};

static PyObject *Loop_call_soon(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames);
static PyObject *Loop_call_soon_threadsafe(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames);

/* call_soon and call_soon_threadsafe, in asyncio's order of checks. */
/* Forced inline: gcc otherwise keeps one shared copy (+43 instructions per
   call_soon in callgrind). */
static inline __attribute__((always_inline)) PyObject *
loop_call_soon(LoopObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames,
               int threadsafe)
{
    al_state *st = self->state;
    const char *method = threadsafe ? "call_soon_threadsafe" : "call_soon";
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    int kw = nargs < 1         ? 1
             : kwnames == NULL ? (context = NULL, 0)
             : kwnames == st->kwnames_context_seen
                 ? (context = args[nargs], 0)
                 : parse_context_kw(st, args, nargs, kwnames, &context);
    if (kw != 0) {
        static const char *const names[] = {"callback"};
        return kw < 0 ? NULL
                      : al__call_with_keywords_bound(
                            (PyObject *)self,
                            (al_fastcall_method)(threadsafe ? Loop_call_soon_threadsafe
                                                            : Loop_call_soon),
                            method, names, 1, kwonly_context, args, nargs, kwnames);
    }
    if (loop_check_closed(self) < 0 || (threadsafe && loop_check_fork(self) < 0)) {
        return NULL;
    }
    /* Only call_soon checks the thread: the other is for other threads. */
    if (self->debug && ((!threadsafe && loop_check_thread(self) < 0) ||
                        loop_check_callback(self, args[0], method) < 0)) {
        return NULL;
    }
    HandleObject *h =
        al__handle_new_queued(st, st->HandleType, self, args[0], args + 1, nargs - 1, context);
    if (h == NULL) {
        return NULL;
    }
    /* From another thread too, the GIL serialises this append with the
       loop thread, which touches the queue only while holding it; the loop
       checks the queue before it releases the GIL to poll, so only a loop
       blocked in poll needs a wakeup, and libuv coalesces those. */
    if (ring_push_steal(&self->ready, h) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    Py_INCREF(h); /* the queue's reference; h's own is returned */
    if (!self->running) {
        loop_gc_queued_ready(self);
    }
    if (threadsafe && self->polling && self->uv_ready) {
        /* The loop thread is in the poll and has not taken the GIL back:
           as asyncio appends this handle to _ready before it processes the
           poll's events, the transports queue their I/O behind it. */
        self->ready_at_poll = self->ready.len;
        uv_async_send(&self->async);
    }
    return (PyObject *)h;
}

static PyObject *Loop_call_soon(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    return loop_call_soon(self, args, nargsf, kwnames, 0);
}

static PyObject *Loop_call_soon_threadsafe(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames)
{
    return loop_call_soon(self, args, nargsf, kwnames, 1);
}

/* The heap key of a deadline that is not an exact float. An int too large
   for a double is kept by asyncio as it is, and compares beyond every float:
   keyed as an infinity of its sign. */
static int timer_key(PyObject *when, double *out)
{
    if (!PyNumber_Check(when)) {
        /* heapq would fail comparing it; asyncio fails at `<`. */
        PyErr_Format(PyExc_TypeError, "'<' not supported between instances of '%s' and 'float'",
                     Py_TYPE(when)->tp_name);
        return -1;
    }
    double v = PyFloat_AsDouble(when);
    if (v == -1.0 && PyErr_Occurred()) {
        if (!PyLong_Check(when) || !PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
        PyObject *zero = PyLong_FromLong(0);
        int negative = zero ? PyObject_RichCompareBool(when, zero, Py_LT) : -1;
        Py_XDECREF(zero);
        if (negative < 0) {
            return -1;
        }
        v = negative ? -INFINITY : INFINITY;
    }
    *out = v;
    return 0;
}

static PyObject *loop_schedule_timer(LoopObject *self, double when, PyObject *when_obj,
                                     PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    al_state *st = self->state;
    HandleObject *h =
        al__handle_new_queued(st, st->TimerHandleType, self, args[0], args + 1, nargs - 1, context);
    if (h == NULL) {
        return NULL;
    }
    TimerHandleObject *t = (TimerHandleObject *)h;
    /* asyncio's `when >= end_time` is false for NaN: its heap runs a NaN
       timer as soon as heapq brings it to the top, which the first pop
       does, whatever the other timers. Keyed -inf: due at once. */
    h->when_is_nan = isnan(when) != 0;
    t->deadline = h->when_is_nan ? -INFINITY : when;
    t->when_obj = Py_XNewRef(when_obj);
    t->seq = self->timer_seq++;
    if (al__heap_push(&self->timers, t) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    if (!self->running) {
        loop_gc_queued_timer(self, t);
    }
    return (PyObject *)h;
}

static PyObject *Loop_call_later(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames);
static PyObject *Loop_call_at(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames);

/* call_later (relative) and call_at, in asyncio's order of checks: call_later
   computes time() + delay, then call_at checks the loop, then the deadline
   goes to the heap. */
static PyObject *loop_call_timer(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames, int relative)
{
    const char *method = relative ? "call_later" : "call_at";
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context;
    int kw = nargs < 2 ? 1 : parse_context_kw(self->state, args + 1, nargs - 1, kwnames, &context);
    if (kw != 0) {
        static const char *const later_names[] = {"delay", "callback"};
        static const char *const at_names[] = {"when", "callback"};
        return kw < 0 ? NULL
                      : al__call_with_keywords_bound(
                            (PyObject *)self,
                            (al_fastcall_method)(relative ? Loop_call_later : Loop_call_at), method,
                            relative ? later_names : at_names, 2, kwonly_context, args, nargs,
                            kwnames);
    }
#if PY_VERSION_HEX >= 0x030B0000
    if (args[0] == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        relative ? "delay must not be None" : "when cannot be None");
        return NULL;
    }
#endif
    double when = 0.0;
    PyObject *when_obj = NULL; /* the deadline as an object, if not a float */
    if (!relative) {
        when_obj = PyFloat_CheckExact(args[0]) ? NULL : Py_NewRef(args[0]);
    }
    else if (PyFloat_CheckExact(args[0])) {
        when = al__now() + PyFloat_AS_DOUBLE(args[0]);
    }
    else {
        PyObject *now = PyFloat_FromDouble(al__now());
        if (now == NULL) {
            return NULL;
        }
        when_obj = PyNumber_Add(now, args[0]);
        Py_DECREF(now);
        if (when_obj == NULL) {
            return NULL;
        }
    }
    PyObject *res = NULL;
    if (loop_check_closed(self) < 0) {
        goto done;
    }
    /* Both report "call_at": asyncio's call_later goes through call_at. */
    if (self->debug &&
        (loop_check_thread(self) < 0 || loop_check_callback(self, args[1], "call_at") < 0)) {
        goto done;
    }
    if (!relative && when_obj == NULL) {
        when = PyFloat_AS_DOUBLE(args[0]);
    }
    else if (when_obj != NULL) {
        if (timer_key(when_obj, &when) < 0) {
            goto done;
        }
        if (PyFloat_CheckExact(when_obj)) {
            Py_CLEAR(when_obj); /* time() + an int: a float, kept as the key */
        }
    }
    res = loop_schedule_timer(self, when, when_obj, args + 1, nargs - 1, context);
done:
    Py_XDECREF(when_obj);
    return res;
}

static PyObject *Loop_call_later(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames)
{
    return loop_call_timer(self, args, nargsf, kwnames, 1);
}

static PyObject *Loop_call_at(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames)
{
    return loop_call_timer(self, args, nargsf, kwnames, 0);
}

static PyObject *Loop_time(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(al__now());
}

/* --- one iteration ------------------------------------------------------ */

static PyObject *Loop_get_slow_callback_duration(LoopObject *self, void *Py_UNUSED(c));

static int loop_run_handle_debug(LoopObject *self, HandleObject *h)
{
    al_state *st = self->state;
    Py_XSETREF(self->current_handle, Py_NewRef((PyObject *)h));
    double t0 = al__now();
    int rc = al__handle_run(h);
    double dt = al__now() - t0;
    Py_CLEAR(self->current_handle);
    /* metrics: the slowest callbacks and the hook */
    if (rc == 0 && al__metrics_timed(self, h, dt) < 0) {
        return -1;
    }
    int slow = rc == 0 && dt >= self->slow_callback_duration;
    if (rc == 0 && self->slow_generic) {
        /* asyncio's `dt >= self.slow_callback_duration`, with its errors. */
        PyObject *limit = Loop_get_slow_callback_duration(self, NULL);
        PyObject *took = limit ? PyFloat_FromDouble(dt) : NULL;
        slow = took ? PyObject_RichCompareBool(took, limit, Py_GE) : -1;
        Py_XDECREF(limit);
        Py_XDECREF(took);
        if (slow < 0) {
            return -1;
        }
    }
    if (slow) {
        PyObject *what = PyObject_CallOneArg(st->format_handle, (PyObject *)h);
        PyObject *res = NULL;
        if (what != NULL) {
            res = PyObject_CallMethod(st->logger, "warning", "sOd",
                                      "Executing %s took %.3f seconds", what, dt);
        }
        Py_XDECREF(what);
        if (res == NULL) {
            return -1;
        }
        Py_DECREF(res);
    }
    return rc;
}

/* metrics: a callback timed for the slow-callback hook (outside debug). */
static int loop_run_handle_timed(LoopObject *self, HandleObject *h)
{
    double t0 = al__now();
    int rc = al__handle_run(h);
    if (rc == 0) {
        rc = al__metrics_timed(self, h, al__now() - t0);
    }
    return rc;
}

static void loop_check_poll_started(LoopObject *self);

/* A SystemExit or KeyboardInterrupt raised by an I/O callback during the
   poll (al__loop_stash_fatal_error) ends the run here. */
static inline int loop_raise_pending(LoopObject *self)
{
    if (self->pending_exc == NULL) {
        return 0;
    }
    PyObject *exc = self->pending_exc;
    self->pending_exc = NULL;
    al__err_restore(exc);
    return -1;
}

static int loop_poll(LoopObject *self)
{
    if (self->poll_idle.next != NULL) {
        al__poll_idle_flush(self);
    }
    if (self->n_poll_started > 0) {
        loop_check_poll_started(self);
        if (self->pending_exc != NULL) {
            return loop_raise_pending(self);
        }
    }
    if (self->n_skipped > 0) {
        /* what a cut left of the last poll (stream.c) */
        self->ready_at_poll = self->ready.len;
        int ran = al__stream_run_skipped(self);
        self->ready_at_poll = 0;
        if (ran) {
            return loop_raise_pending(self);
        }
    }
    int64_t timeout_ms = -1;
    if (self->ready.len > 0 || self->stopping) {
        timeout_ms = 0;
    }
    else if (self->timers.len > 0) {
        double dt = self->timers.items[0].when - al__now();
        if (dt <= 0) {
            timeout_ms = 0;
        }
        else if (dt * 1e3 >= (double)MAX_POLL_TIMEOUT_MS) {
            timeout_ms = MAX_POLL_TIMEOUT_MS;
        }
        else {
            /* Round up: libuv counts milliseconds, a timer must not fire
               early, and the heap is checked against the precise clock. */
            timeout_ms = (int64_t)ceil(dt * 1e3);
        }
    }
    if (timeout_ms == 0) {
        /* Nothing to wait for: look at I/O only when there is I/O to see.
           Cross-thread callbacks are in the ready queue already and signal
           handlers run from PyErr_CheckSignals below. */
        if (self->io_watchers > 0) {
            self->ready_at_poll = self->ready.len;
            uv_run(&self->uv, UV_RUN_NOWAIT);
            self->ready_at_poll = 0;
            if (self->late_writes != NULL) {
                al__pipe_run_late_writes(self);
            }
            return loop_raise_pending(self);
        }
        return 0;
    }
    if (timeout_ms > 0) {
        uv_update_time(&self->uv);
        uv_timer_start(&self->poll_timer, on_poll_timer, (uint64_t)timeout_ms, 0);
    }
    self->polling = 1;
    self->ready_at_poll = self->ready.len;
    self->released_tstate = PyEval_SaveThread();
    uv_run(&self->uv, UV_RUN_ONCE);
    if (self->released_tstate != NULL) {
        /* No callback took the GIL back (and none called uv_stop, whose
           flag would otherwise outlive this uv_run). */
        PyThreadState *ts = self->released_tstate;
        self->released_tstate = NULL;
        PyEval_RestoreThread(ts);
    }
    /* with the GIL: call_soon_threadsafe sets it while polling is set */
    self->ready_at_poll = 0;
    self->polling = 0;
    al__metrics_poll_end(self); /* metrics: no I/O callback ended it */
    if (timeout_ms > 0) {
        uv_timer_stop(&self->poll_timer);
    }
    if (self->late_writes != NULL) {
        al__pipe_run_late_writes(self);
    }
    return loop_raise_pending(self);
}

/* Cancelled timers leave the heap here, as in asyncio's _run_once: all of
   them once they are more than half of it, else those at its top, so that
   the poll is not bounded by a timer that will not run. */
static void loop_discard_cancelled(LoopObject *self)
{
    al_heap *heap = &self->timers;
    if (al__heap_wants_compaction(heap)) {
        al__heap_compact(heap);
    }
    while (heap->cancelled > 0 && heap->len > 0 && heap->items[0].h->base.cancelled) {
        HandleObject *h = (HandleObject *)al__heap_pop(heap);
        al__handle_disown(h);
        Py_DECREF(h);
    }
}

static int loop_run_once(LoopObject *self)
{
    self->metrics.iterations++; /* metrics */
    /* libuv's cached clock (from the last poll): no clock read per
       iteration, a stale one only delays the trim. */
    if (self->state->n_free_handles > HANDLE_FREELIST_KEEP &&
        uv_now(&self->uv) >= self->state->free_handles_trim) {
        al__handle_free_list_trim(self->state, uv_now(&self->uv));
    }
    if (self->timers.cancelled > 0) {
        loop_discard_cancelled(self);
    }
    if (loop_poll(self) < 0) {
        return -1;
    }
    /* Python-level signal handlers: Ctrl-C, add_signal_handler. */
    if (PyErr_CheckSignals() < 0) {
        return -1;
    }
    if (self->timers.len > 0) {
        double now = al__now();
        while (self->timers.len > 0 && self->timers.items[0].when <= now) {
            /* The heap's reference moves to the queue; a cancelled one is
               skipped there, as in asyncio. */
            HandleObject *h = (HandleObject *)al__heap_pop(&self->timers);
            /* metrics: lateness, against the clock read above */
            if (!h->cancelled) {
                al__metrics_lateness(&self->metrics, now - ((TimerHandleObject *)h)->deadline);
            }
            if (ring_push_steal(&self->ready, h) < 0) {
                al__handle_disown(h);
                Py_DECREF(h);
                return -1;
            }
        }
    }
    /* Only what is ready now; what these schedule runs next iteration. */
    size_t ntodo = self->ready.len;
    al_ring *ready = &self->ready;
    self->metrics.callbacks += ntodo; /* metrics: cancelled ones included */
    for (size_t i = 0; i < ntodo && ready->len > 0; i++) {
        HandleObject *h = ring_pop(ready);
        /* With many callbacks queued, each handle and what it points to
           are out of cache by their turn: fetch the handle after next, and
           the next one's context, callback and first argument (a future,
           for a timer of asyncio.sleep), while this one runs. Measured:
           a third stage (the object the callback is bound to) was slower. */
        if (ready->len > 0) {
            HandleObject *next = ready->items[ready->head];
            __builtin_prefetch(next->context);
            __builtin_prefetch(next->callback);
            __builtin_prefetch(next->args[0]);
            if (ready->len > 1) {
                __builtin_prefetch(ready->items[(ready->head + 1) & (ready->cap - 1)]);
            }
        }
        int rc = 0;
        if (!h->cancelled) {
            rc = self->debug            ? loop_run_handle_debug(self, h)
                 : self->metrics.timing ? loop_run_handle_timed(self, h) /* metrics */
                                        : al__handle_run(h);
        }
        al__handle_release(h);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* --- run / stop / close ------------------------------------------------- */

static int loop_check_running(LoopObject *self)
{
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "This event loop is already running");
        return -1;
    }
    PyObject *running = PyObject_CallNoArgs(self->state->get_running_loop);
    if (running == NULL) {
        return -1;
    }
    int other = running != Py_None;
    Py_DECREF(running);
    if (other) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Cannot run the event loop while another loop is running");
        return -1;
    }
    return 0;
}

static int loop_set_coro_tracking(LoopObject *self, int enabled)
{
    al_state *st = self->state;
    if (!enabled == !self->coro_tracking) {
        return 0;
    }
    PyObject *res;
    if (enabled) {
        PyObject *depth = PyObject_CallMethodNoArgs(st->sys_module, st->str_get_coro_depth);
        if (depth == NULL) {
            return -1;
        }
        Py_XSETREF(self->coro_saved_depth, depth);
        res = PyObject_CallMethodOneArg(st->sys_module, st->str_set_coro_depth,
                                        st->debug_stack_depth);
    }
    else {
        res = PyObject_CallMethodOneArg(st->sys_module, st->str_set_coro_depth,
                                        self->coro_saved_depth ? self->coro_saved_depth : Py_None);
    }
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    self->coro_tracking = (char)(enabled != 0);
    return 0;
}

static PyObject *Loop_set_coro_tracking_meth(LoopObject *self, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);
    if (on < 0 || loop_set_coro_tracking(self, on) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Untracked queued handles that someone besides the loop references are
   safe only while the loop runs (it cannot be garbage then); from now on
   they are ordinary GC objects, so that a loop dropped unclosed with such a
   handle pending is still collected. New handles are tracked from birth
   while the loop is not running. */
static void loop_track_shared_handles(LoopObject *self)
{
    al_ring *ready = &self->ready;
    for (size_t i = 0; i < ready->len; i++) {
        al__handle_disown(ready->items[(ready->head + i) & (ready->cap - 1)]);
    }
    for (Py_ssize_t i = 0; i < self->timers.len; i++) {
        al__handle_disown((HandleObject *)self->timers.items[i].h);
    }
}

/* Undoes loop_run_setup; keeps a pending exception (the one that ended
   the run) ahead of any raised here. Returns -1 with an exception set. */
static int loop_run_cleanup(LoopObject *self)
{
    al_state *st = self->state;
    PyObject *exc = al__err_fetch();
    int failed = 0;
    self->stopping = 0;
    self->running = 0;
    self->thread_id = 0;
    Py_CLEAR(self->bound_call_soon); /* 3.10: loop.call_soon of the run */
    if (self->poll_idle.next != NULL) {
        al__poll_idle_flush(self);
    }
    /* metrics: running time, of which the rest of idle is busy */
    self->metrics.run_time += al__now() - self->metrics.run_t0;
    self->metrics.run_t0 = 0;
    loop_track_shared_handles(self);
    PyObject *res = PyObject_CallOneArg(st->set_running_loop, Py_None);
    if (res == NULL) {
        failed = 1;
    }
    Py_XDECREF(res);
    if (!failed && loop_set_coro_tracking(self, 0) < 0) {
        failed = 1;
    }
    if (self->old_agen_hooks != NULL) {
        PyObject *hooks = self->old_agen_hooks;
        self->old_agen_hooks = NULL;
        PyObject *set =
            failed ? NULL : PyObject_GetAttr(st->sys_module, st->str_set_asyncgen_hooks);
        res = set ? PyObject_Call(set, hooks, NULL) : NULL;
        if (res == NULL) {
            failed = 1;
        }
        Py_XDECREF(res);
        Py_XDECREF(set);
        Py_DECREF(hooks);
    }
    if (al__signal_run_cleanup(self) < 0) {
        failed = 1;
    }
    if (exc != NULL) {
        if (failed) {
            PyErr_Clear();
        }
        al__err_restore(exc);
        return -1;
    }
    return failed ? -1 : 0;
}

static int loop_run_setup(LoopObject *self)
{
    al_state *st = self->state;
    if (loop_check_closed(self) < 0 || loop_check_fork(self) < 0 || loop_check_running(self) < 0) {
        return -1;
    }
    /* Running, untracked queued handles need no look (see handle.c). */
    loop_gc_scan(self);
    self->running = 1;
    self->thread_id = PyThread_get_thread_ident();
    self->metrics.run_t0 = al__now(); /* metrics */
    if (loop_set_coro_tracking(self, self->debug) < 0) {
        goto fail;
    }
    PyObject *hooks = PyObject_CallMethodNoArgs(st->sys_module, st->str_get_asyncgen_hooks);
    if (hooks == NULL) {
        goto fail;
    }
    Py_XSETREF(self->old_agen_hooks, hooks);
    PyObject *firstiter = PyObject_GetAttr((PyObject *)self, st->str_firstiter_hook);
    PyObject *finalizer =
        firstiter ? PyObject_GetAttr((PyObject *)self, st->str_finalizer_hook) : NULL;
    if (finalizer == NULL) {
        /* A bare _core.Loop has no asyncgen hooks; asyncloop.Loop has. */
        Py_XDECREF(firstiter);
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            goto fail;
        }
        PyErr_Clear();
        Py_CLEAR(self->old_agen_hooks);
    }
    else {
        PyObject *argv[2] = {firstiter, finalizer};
        PyObject *kwnames = PyTuple_Pack(2, st->str_firstiter, st->str_finalizer);
        PyObject *set = PyObject_GetAttr(st->sys_module, st->str_set_asyncgen_hooks);
        PyObject *res = (kwnames && set) ? PyObject_Vectorcall(set, argv, 0, kwnames) : NULL;
        Py_XDECREF(kwnames);
        Py_XDECREF(set);
        Py_DECREF(firstiter);
        Py_DECREF(finalizer);
        if (res == NULL) {
            goto fail;
        }
        Py_DECREF(res);
    }
    PyObject *res = PyObject_CallOneArg(st->set_running_loop, (PyObject *)self);
    if (res == NULL) {
        goto fail;
    }
    Py_DECREF(res);
    if (al__signal_run_setup(self) < 0) {
        goto fail;
    }
    return 0;
fail:
    loop_run_cleanup(self);
    return -1;
}

static PyObject *Loop_run_forever(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_run_setup(self) < 0) {
        return NULL;
    }
    int rc = 0;
    for (;;) {
        if (loop_run_once(self) < 0) {
            rc = -1;
            break;
        }
        if (self->stopping) {
            break;
        }
    }
    if (loop_run_cleanup(self) < 0) {
        rc = -1;
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* One iteration, as a run_forever that stops at once: the same checks
   (closed, running, forked) and the same state while it polls, so that
   close() from another thread is refused as during run_forever. */
static PyObject *Loop_run_once_meth(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_run_setup(self) < 0) {
        return NULL;
    }
    int rc = loop_run_once(self);
    if (loop_run_cleanup(self) < 0) {
        rc = -1;
    }
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int object_is_future(al_state *st, PyObject *obj)
{
    if (PyObject_TypeCheck(obj, (PyTypeObject *)st->Future)) {
        return 1;
    }
    PyObject *res = PyObject_CallOneArg(st->isfuture, obj);
    if (res == NULL) {
        return -1;
    }
    int r = PyObject_IsTrue(res);
    Py_DECREF(res);
    return r;
}

static PyObject *Loop_run_until_complete(LoopObject *self, PyObject *arg)
{
    al_state *st = self->state;
    if (loop_check_closed(self) < 0 || loop_check_fork(self) < 0 || loop_check_running(self) < 0) {
        return NULL;
    }
    int is_future = object_is_future(st, arg);
    if (is_future < 0) {
        return NULL;
    }
    int new_task = !is_future;
    PyObject *argv[2] = {arg, (PyObject *)self};
    PyObject *kwnames = PyTuple_Pack(1, st->str_loop);
    if (kwnames == NULL) {
        return NULL;
    }
    PyObject *fut = PyObject_Vectorcall(st->ensure_future, argv, 1, kwnames);
    Py_DECREF(kwnames);
    if (fut == NULL) {
        return NULL;
    }
    if (new_task && PyObject_SetAttr(fut, st->str_log_destroy_pending, Py_False) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    PyObject *res =
        PyObject_CallMethodOneArg(fut, st->str_add_done_callback, st->run_until_complete_cb);
    if (res == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(res);

    res = PyObject_CallMethod((PyObject *)self, "run_forever", NULL);
    if (res == NULL) {
        PyObject *exc = al__err_fetch();
        if (new_task) {
            /* The coroutine raised a BaseException: consume it so that the
               task, which the caller cannot reach, logs nothing. */
            PyObject *done = PyObject_CallMethodNoArgs(fut, st->str_done);
            PyObject *cancelled =
                done == Py_True ? PyObject_CallMethodNoArgs(fut, st->str_cancelled) : NULL;
            if (cancelled == Py_False) {
                Py_XDECREF(PyObject_CallMethodNoArgs(fut, st->str_exception_meth));
            }
            Py_XDECREF(done);
            Py_XDECREF(cancelled);
            PyErr_Clear();
        }
        Py_XDECREF(PyObject_CallMethodOneArg(fut, st->str_remove_done_callback,
                                             st->run_until_complete_cb));
        PyErr_Clear();
        Py_DECREF(fut);
        al__err_restore(exc);
        return NULL;
    }
    Py_DECREF(res);
    res = PyObject_CallMethodOneArg(fut, st->str_remove_done_callback, st->run_until_complete_cb);
    if (res == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    Py_DECREF(res);
    PyObject *done = PyObject_CallMethodNoArgs(fut, st->str_done);
    if (done == NULL) {
        Py_DECREF(fut);
        return NULL;
    }
    int is_done = PyObject_IsTrue(done);
    Py_DECREF(done);
    if (is_done <= 0) {
        if (is_done == 0) {
            PyErr_SetString(PyExc_RuntimeError, "Event loop stopped before Future completed.");
        }
        Py_DECREF(fut);
        return NULL;
    }
    res = PyObject_CallMethodNoArgs(fut, st->str_result);
    Py_DECREF(fut);
    return res;
}

static PyObject *Loop_stop(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *Loop_is_running(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->running);
}

static PyObject *Loop_is_closed(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->closed);
}

static void loop_walk_close(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle)) {
        uv_close(handle, handle->data == arg ? on_uv_close : NULL);
    }
}

/* --- I/O objects --------------------------------------------------------- */

void al__loop_io_link(LoopObject *loop, al_io *io)
{
    io->next = loop->io_objects.next;
    io->prev = &loop->io_objects;
    loop->io_objects.next->prev = io;
    loop->io_objects.next = io;
}

void al__loop_io_unlink(al_io *io)
{
    if (io->next != NULL) {
        io->prev->next = io->next;
        io->next->prev = io->prev;
        io->next = io->prev = NULL;
    }
}

/* Each hook may release the last reference to its object (and so unlink
   it, or others): take the first one off the list before calling it. */
static void loop_detach_io(LoopObject *self)
{
    while (self->io_objects.next != &self->io_objects) {
        al_io *io = self->io_objects.next;
        al__loop_io_unlink(io);
        io->loop_closing(io);
    }
    self->n_poll_started = 0;
}

int al__loop_register_transport(LoopObject *loop, int fd, PyObject *transport)
{
    if (fd < 0) {
        return 0;
    }
    if (fd >= loop->n_fd_transports) {
        int n = loop->n_fd_transports ? loop->n_fd_transports : 64;
        while (n <= fd) {
            if (n > INT_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            n *= 2;
        }
        PyObject **tab = PyMem_Realloc(loop->fd_transports, (size_t)n * sizeof(PyObject *));
        if (tab == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memset(tab + loop->n_fd_transports, 0,
               (size_t)(n - loop->n_fd_transports) * sizeof(PyObject *));
        loop->fd_transports = tab;
        loop->n_fd_transports = n;
    }
    /* metrics: open transports now, and their peak */
    if (loop->fd_transports[fd] == NULL &&
        ++loop->metrics.transports > loop->metrics.transports_peak) {
        loop->metrics.transports_peak = loop->metrics.transports;
    }
    loop->fd_transports[fd] = transport; /* borrowed */
    return 0;
}

void al__loop_unregister_transport(LoopObject *loop, int fd, PyObject *transport)
{
    /* Only our own entry: the fd may have been reused by another. */
    if (fd >= 0 && fd < loop->n_fd_transports && loop->fd_transports[fd] == transport) {
        loop->fd_transports[fd] = NULL;
        loop->metrics.transports--; /* metrics */
    }
}

int al__loop_ensure_fd_no_transport(LoopObject *loop, int fd, PyObject *fileobj)
{
    if (fd < 0 || fd >= loop->n_fd_transports || loop->fd_transports[fd] == NULL) {
        return 0;
    }
    PyObject *transport = Py_NewRef(loop->fd_transports[fd]);
    PyObject *closing = PyObject_CallMethod(transport, "is_closing", NULL);
    int truth = closing ? PyObject_IsTrue(closing) : -1;
    Py_XDECREF(closing);
    if (truth == 0) {
        PyErr_Format(PyExc_RuntimeError, "File descriptor %R is used by transport %R", fileobj,
                     transport);
    }
    Py_DECREF(transport);
    return truth == 0 ? -1 : (truth < 0 ? -1 : 0);
}

int al__loop_stash_fatal_error(LoopObject *loop)
{
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        return 0;
    }
    PyObject *exc = al__err_fetch();
    if (loop->pending_exc == NULL) {
        loop->pending_exc = exc;
    }
    else {
        Py_DECREF(exc); /* the first one wins, as it would have ended the run */
    }
    uv_stop(&loop->uv);
    return 1;
}

int al__poll_start(LoopObject *loop, uv_poll_t *handle, int events, uv_poll_cb cb)
{
    Py_ssize_t i;
    for (i = 0; i < loop->n_poll_started; i++) {
        if (loop->poll_started[i].handle == handle) {
            break;
        }
    }
    if (i == loop->n_poll_started) {
        if (loop->n_poll_started == loop->cap_poll_started) {
            Py_ssize_t cap = loop->cap_poll_started ? loop->cap_poll_started * 2 : 16;
            void *items =
                PyMem_Realloc(loop->poll_started, (size_t)cap * sizeof(*loop->poll_started));
            if (items == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            loop->poll_started = items;
            loop->cap_poll_started = cap;
        }
        loop->n_poll_started++;
    }
    loop->poll_started[i].handle = handle;
    loop->poll_started[i].cb = cb;
    int err = uv_poll_start(handle, events, cb);
    if (err < 0) {
        loop->poll_started[i] = loop->poll_started[--loop->n_poll_started];
        return al__set_uv_error(err);
    }
    return 0;
}

void al__poll_forget(LoopObject *loop, uv_poll_t *handle)
{
    for (Py_ssize_t i = 0; i < loop->n_poll_started; i++) {
        if (loop->poll_started[i].handle == handle) {
            loop->poll_started[i] = loop->poll_started[--loop->n_poll_started];
            return;
        }
    }
}

/* See al__poll_start. Callbacks may start or forget others: take one
   entry at a time off the end. */
static void loop_check_poll_started(LoopObject *self)
{
    while (self->n_poll_started > 0) {
        uv_poll_t *handle = self->poll_started[self->n_poll_started - 1].handle;
        uv_poll_cb cb = self->poll_started[self->n_poll_started - 1].cb;
        self->n_poll_started--;
        uv_os_fd_t fd;
        if (uv_is_active((uv_handle_t *)handle) && uv_fileno((uv_handle_t *)handle, &fd) == 0 &&
            fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            uv_poll_stop(handle);
            cb(handle, UV_EBADF, 0);
        }
    }
}

/* Closes every libuv handle of the loop, then the libuv loop itself. */
static void loop_close_uv(LoopObject *self)
{
    al__stream_skipped_clear(self);
    al__pipe_late_writes_clear(self);
    if (!self->uv_ready) {
        return;
    }
    self->uv_ready = 0;
    if (self->fork_generation != al__fork_generation) {
        /* In a forked child the epoll instance is shared with the parent:
           unregistering anything would break the parent's loop. Only our
           own descriptors are closed; libuv's few stay open. */
        if (self->wakeup_fds[0] >= 0) {
            close(self->wakeup_fds[0]);
            close(self->wakeup_fds[1]);
            self->wakeup_fds[0] = self->wakeup_fds[1] = -1;
        }
        self->state->live_uv_handles -= 2;
        self->state->live_uv_handles--; /* metrics: the prepare handle */
        return;
    }
    al__signal_wakeup_close(self);
    uv_close((uv_handle_t *)&self->poll_timer, on_uv_close);
    uv_close((uv_handle_t *)&self->async, on_uv_close);
    uv_close((uv_handle_t *)&self->metrics.prepare, on_uv_close); /* metrics */
    uv_run(&self->uv, UV_RUN_NOWAIT);
    al__dns_close_wait(self);
    for (int i = 0; i < 8 && uv_loop_close(&self->uv) == UV_EBUSY; i++) {
        uv_walk(&self->uv, loop_walk_close, self);
        uv_run(&self->uv, UV_RUN_NOWAIT);
    }
}

static PyObject *Loop_close(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    al_state *st = self->state;
    if (self->running) {
        PyErr_SetString(PyExc_RuntimeError, "Cannot close a running event loop");
        return NULL;
    }
    if (self->closed) {
        Py_RETURN_NONE;
    }
    if (self->debug) {
        PyObject *r = PyObject_CallMethod(st->logger, "debug", "sO", "Close %r", self);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    self->closed = 1;
    loop_gc_scan(self);
    ring_clear(&self->ready);
    al__heap_clear(&self->timers);
    self->executor_shutdown_called = 1;
    PyObject *executor = self->default_executor;
    int failed = 0;
    if (executor != NULL && executor != Py_None) {
        self->default_executor = NULL;
        PyObject *argv[2] = {executor, Py_False};
        PyObject *kwnames = PyTuple_Pack(1, st->str_wait);
        PyObject *r = kwnames
                          ? PyObject_VectorcallMethod(st->str_shutdown, argv,
                                                      1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames)
                          : NULL;
        Py_XDECREF(kwnames);
        Py_DECREF(executor);
        if (r == NULL) {
            failed = 1;
        }
        Py_XDECREF(r);
    }
    if (!failed && al__signal_remove_all(self) < 0) {
        failed = 1;
    }
    loop_detach_io(self);
    loop_close_uv(self);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- futures and tasks -------------------------------------------------- */

/* Whether Future() and Task() without loop= would pick this loop: it runs
   in this thread and is the one asyncio sees running. From 3.12 on,
   _asyncio's Future and Task find the running loop faster than they parse
   a loop= keyword (200 ns against 310 on 3.12); before 3.12 it is slower. */
static inline int loop_is_current(LoopObject *self)
{
#if PY_VERSION_HEX >= 0x030C0000
    if (!self->running || self->thread_id != PyThread_get_thread_ident()) {
        return 0;
    }
    PyObject *running = PyObject_CallNoArgs(self->state->get_running_loop);
    if (running == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(running); /* compared by identity only */
    return running == (PyObject *)self;
#else
    (void)self;
    return 0;
#endif
}

static PyObject *Loop_create_future(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    al_state *st = self->state;
    if (loop_is_current(self)) {
        return PyObject_CallNoArgs(st->Future);
    }
    PyObject *argv[2] = {NULL, (PyObject *)self};
    return PyObject_Vectorcall(st->Future, argv + 1, PY_VECTORCALL_ARGUMENTS_OFFSET,
                               st->kwnames_loop);
}

static PyObject *Loop_create_task(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames)
{
    al_state *st = self->state;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *name = Py_None, *context = Py_None;
    if (nargs != 1) {
        if (nargs == 0) {
            static const char *const names[] = {"coro"};
            static const char *const kwonly[] = {"name", "context", NULL};
            static const char *const any[] = {"*", NULL};
            return al__call_with_keywords_bound(
                (PyObject *)self, (al_fastcall_method)Loop_create_task, "create_task", names, 1,
                st->create_task_varkw ? any : kwonly, args, nargs, kwnames);
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "create_task() takes 2 positional arguments but %zd were given",
                         nargs + 1);
        }
        return NULL;
    }
    PyObject *coro = args[0];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    if (st->create_task_varkw) {
        /* create_task(coro, **kwargs): everything goes to the factory or
           to Task, which check the keywords themselves. */
        if (loop_check_closed(self) < 0) {
            return NULL;
        }
        PyObject *stack[3 + 16];
        PyObject **argv = stack;
        if (nkw > 16) {
            argv = PyMem_Malloc((3 + nkw) * sizeof(PyObject *));
            if (argv == NULL) {
                return PyErr_NoMemory();
            }
        }
        PyObject *res;
        if (self->task_factory != NULL && self->task_factory != Py_None) {
            argv[1] = (PyObject *)self;
            argv[2] = coro;
            for (Py_ssize_t i = 0; i < nkw; i++) {
                argv[3 + i] = args[1 + i];
            }
            res = PyObject_Vectorcall(self->task_factory, argv + 1,
                                      2 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames);
        }
        else {
            PyObject *kw = PyTuple_New(nkw + 1);
            if (kw == NULL) {
                res = NULL;
            }
            else {
                for (Py_ssize_t i = 0; i < nkw; i++) {
                    PyTuple_SET_ITEM(kw, i, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
                    argv[2 + i] = args[1 + i];
                }
                PyTuple_SET_ITEM(kw, nkw, Py_NewRef(st->str_loop));
                argv[1] = coro;
                argv[2 + nkw] = (PyObject *)self;
                res =
                    PyObject_Vectorcall(st->Task, argv + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw);
                Py_DECREF(kw);
            }
        }
        if (argv != stack) {
            PyMem_Free(argv);
        }
        return res;
    }

    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i); /* borrowed */
        if (key == st->str_name || PyUnicode_Compare(key, st->str_name) == 0) {
            name = args[1 + i];
        }
        else if (st->create_task_has_context &&
                 (key == st->str_context || PyUnicode_Compare(key, st->str_context) == 0)) {
            context = args[1 + i];
        }
        else {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_TypeError,
                             "create_task() got an unexpected keyword argument '%S'", key);
            }
            return NULL;
        }
    }
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    PyObject *task;
    if (self->task_factory == NULL || self->task_factory == Py_None) {
        PyObject *argv[5] = {NULL, coro, (PyObject *)self, NULL, NULL};
        PyObject *kw = st->kwnames_loop;
        if (name != Py_None && context != Py_None) {
            argv[3] = name;
            argv[4] = context;
            kw = st->kwnames_loop_name_context;
        }
        else if (name != Py_None) {
            argv[3] = name;
            kw = st->kwnames_loop_name;
        }
        else if (context != Py_None) {
            argv[3] = context;
            kw = st->kwnames_loop_context;
        }
        /* Task is created from C, so in debug mode its creation traceback
           already ends at the caller: nothing to drop, unlike asyncio. */
        if (loop_is_current(self)) {
            /* The same call without loop=, which Task finds faster. */
            argv[2] = coro;
            kw = kw == st->kwnames_loop           ? NULL
                 : kw == st->kwnames_loop_name    ? st->kwnames_name
                 : kw == st->kwnames_loop_context ? st->kwnames_context
                                                  : st->kwnames_name_context;
            return PyObject_Vectorcall(st->Task, argv + 2, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw);
        }
        return PyObject_Vectorcall(st->Task, argv + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw);
    }
    if (context == Py_None) {
        PyObject *argv[3] = {NULL, (PyObject *)self, coro};
        task = PyObject_Vectorcall(self->task_factory, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   NULL);
    }
    else {
        PyObject *argv[4] = {NULL, (PyObject *)self, coro, context};
        task = PyObject_Vectorcall(self->task_factory, argv + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   st->kwnames_context);
    }
    if (task == NULL) {
        return NULL;
    }
    PyObject *res;
    if (st->set_task_name != NULL) {
        PyObject *argv[2] = {task, name};
        res = PyObject_Vectorcall(st->set_task_name, argv, 2, NULL);
    }
    else {
        res = PyObject_CallMethodOneArg(task, st->str_set_name, name);
    }
    if (res == NULL) {
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(res);
    return task;
}

static PyObject *Loop_set_task_factory(LoopObject *self, PyObject *factory)
{
    if (factory != Py_None && !PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "task factory must be a callable or None");
        return NULL;
    }
    Py_XSETREF(self->task_factory, factory == Py_None ? NULL : Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyObject *Loop_get_task_factory(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}

/* --- errors, debug ------------------------------------------------------ */

static PyObject *Loop_set_exception_handler(LoopObject *self, PyObject *handler)
{
    if (handler != Py_None && !PyCallable_Check(handler)) {
        PyErr_Format(PyExc_TypeError, "A callable object or None is expected, got %R", handler);
        return NULL;
    }
    Py_XSETREF(self->exception_handler, handler == Py_None ? NULL : Py_NewRef(handler));
    Py_RETURN_NONE;
}

static PyObject *Loop_get_exception_handler(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self->exception_handler ? self->exception_handler : Py_None);
}

static PyObject *Loop_get_debug(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    return self->debug_obj ? Py_NewRef(self->debug_obj) : PyBool_FromLong(self->debug);
}

static PyObject *Loop_set_debug(LoopObject *self, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);
    if (on < 0) {
        return NULL;
    }
    self->debug = (char)on;
    Py_XSETREF(self->debug_obj, Py_NewRef(enabled));
    if (self->running) {
        /* Tracking is per thread: switch it from the loop's thread. */
        PyObject *meth = PyObject_GetAttrString((PyObject *)self, "_set_coroutine_origin_tracking");
        if (meth == NULL) {
            return NULL;
        }
        PyObject *argv[2] = {meth, enabled};
        PyObject *h = Loop_call_soon_threadsafe(self, argv, 2, NULL);
        Py_DECREF(meth);
        if (h == NULL) {
            return NULL;
        }
        Py_DECREF(h);
    }
    Py_RETURN_NONE;
}

static PyObject *Loop_check_closed_meth(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Loop_check_thread_meth(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_thread(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Loop_check_callback_meth(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_check_callback(callback, method)");
        return NULL;
    }
    const char *method = PyUnicode_AsUTF8(args[1]);
    if (method == NULL || loop_check_callback(self, args[0], method) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int loop_check_default_executor(LoopObject *self)
{
    if (self->executor_shutdown_called) {
        PyErr_SetString(PyExc_RuntimeError, "Executor shutdown has been called");
        return -1;
    }
    return 0;
}

static PyObject *Loop_check_default_executor_meth(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    if (loop_check_default_executor(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* --- executors ---------------------------------------------------------- */

static PyObject *Loop_run_in_executor(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    al_state *st = self->state;
    if (nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "run_in_executor() missing %zd required positional argument%s: %s", 2 - nargs,
                     nargs == 0 ? "s" : "", nargs == 0 ? "'executor' and 'func'" : "'func'");
        return NULL;
    }
    if (loop_check_closed(self) < 0) {
        return NULL;
    }
    if (self->debug && loop_check_callback(self, args[1], "run_in_executor") < 0) {
        return NULL;
    }
    PyObject *executor = args[0];
    if (executor == Py_None) {
        executor = self->default_executor;
        if (loop_check_default_executor(self) < 0) {
            return NULL;
        }
        if (executor == NULL || executor == Py_None) {
            /* Imported on first use: concurrent.futures loads its thread
               module lazily, and most programs never need it. */
            if (st->ThreadPoolExecutor == NULL) {
                PyObject *mod = PyImport_ImportModule("concurrent.futures");
                st->ThreadPoolExecutor =
                    mod ? PyObject_GetAttrString(mod, "ThreadPoolExecutor") : NULL;
                Py_XDECREF(mod);
                if (st->ThreadPoolExecutor == NULL) {
                    return NULL;
                }
            }
            PyObject *kw = Py_BuildValue("{s:s}", "thread_name_prefix", "asyncio");
            if (kw == NULL) {
                return NULL;
            }
            executor = PyObject_Call(st->ThreadPoolExecutor, st->empty_tuple, kw);
            Py_DECREF(kw);
            if (executor == NULL) {
                return NULL;
            }
            Py_XSETREF(self->default_executor, executor);
        }
    }
    Py_INCREF(executor);
    /* executor.submit(func, *args) */
    PyObject *stack_small[8];
    PyObject **argv = stack_small;
    if (nargs + 1 > 8) {
        argv = PyMem_Malloc((nargs + 1) * sizeof(PyObject *));
        if (argv == NULL) {
            Py_DECREF(executor);
            return PyErr_NoMemory();
        }
    }
    argv[0] = executor;
    for (Py_ssize_t i = 1; i < nargs; i++) {
        argv[i] = args[i];
    }
    PyObject *cfut = PyObject_VectorcallMethod(st->str_submit, argv, nargs, NULL);
    if (argv != stack_small) {
        PyMem_Free(argv);
    }
    Py_DECREF(executor);
    if (cfut == NULL) {
        return NULL;
    }
    PyObject *wargv[2] = {cfut, (PyObject *)self};
    PyObject *fut = PyObject_Vectorcall(st->wrap_future, wargv, 1, st->kwnames_loop);
    Py_DECREF(cfut);
    return fut;
}

/* --- the type ----------------------------------------------------------- */

static PyObject *Loop_repr(LoopObject *self)
{
    const char *name = Py_TYPE(self)->tp_name;
    const char *dot = strrchr(name, '.');
    if (dot != NULL) {
        name = dot + 1;
    }
    return PyUnicode_FromFormat("<%s running=%s closed=%s debug=%s>", name,
                                self->running ? "True" : "False", self->closed ? "True" : "False",
                                self->debug ? "True" : "False");
}

static al_state *find_state(PyTypeObject *type, PyObject **module)
{
    /* The state of the module that defines _core.Loop, from a subclass. */
    PyObject *mro = type->tp_mro; /* borrowed */
    Py_ssize_t n = mro ? PyTuple_GET_SIZE(mro) : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
            continue;
        }
        PyObject *m = PyType_GetModule(t); /* borrowed */
        if (m == NULL) {
            PyErr_Clear();
            continue;
        }
        al_state *st = PyModule_GetState(m);
        if (st != NULL && st->LoopType == t) {
            *module = m;
            return st;
        }
    }
    PyErr_SetString(PyExc_TypeError, "not a subclass of asyncloop._core.Loop");
    return NULL;
}

static PyObject *Loop_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *module; /* borrowed */
    al_state *st = find_state(type, &module);
    if (st == NULL) {
        return NULL;
    }
    /* Made by object.__new__, as a Python class's instance is: on 3.11 and
       3.12 that prepares the inline attribute values of a subclass's
       instance, without which the interpreter cannot specialise
       `loop.call_soon` (and every other method lookup) from Python. */
    newfunc object_new = (newfunc)PyType_GetSlot(&PyBaseObject_Type, Py_tp_new);
    PyObject *noargs = PyTuple_New(0);
    LoopObject *self = noargs ? (LoopObject *)object_new(type, noargs, NULL) : NULL;
    Py_XDECREF(noargs);
    if (self == NULL) {
        return NULL;
    }
    self->module = Py_NewRef(module);
    self->state = st;
    self->wakeup_fds[0] = self->wakeup_fds[1] = -1;
    self->io_objects.prev = self->io_objects.next = &self->io_objects;
    self->slow_callback_duration = 0.1;
    /* process.c: force the reaping without pidfd (tests, see there). */
    const char *no_pidfd = getenv("ASYNCLOOP_NO_PIDFD");
    self->no_pidfd = (char)(no_pidfd != NULL && no_pidfd[0] != '\0' && strcmp(no_pidfd, "0") != 0);
    self->fork_generation = al__fork_generation;
    st->live_loops++;
    al__metrics_loop_init(self); /* metrics */

    /* Looked up each time, as asyncio does (tests patch it). */
    PyObject *dbg = PyObject_CallMethod(st->coroutines_module, "_is_debug_mode", NULL);
    if (dbg == NULL) {
        self->closed = 1;
        Py_DECREF(self);
        return NULL;
    }
    self->debug = (char)PyObject_IsTrue(dbg);
    Py_DECREF(dbg);

    int err = uv_loop_init(&self->uv);
    if (err < 0) {
        self->closed = 1;
        Py_DECREF(self);
        al__set_uv_error(err);
        return NULL;
    }
    self->uv.data = self;
    uv_timer_init(&self->uv, &self->poll_timer);
    self->poll_timer.data = self;
    err = uv_async_init(&self->uv, &self->async, on_async);
    if (err < 0) {
        uv_close((uv_handle_t *)&self->poll_timer, NULL);
        uv_run(&self->uv, UV_RUN_NOWAIT);
        uv_loop_close(&self->uv);
        self->closed = 1;
        Py_DECREF(self);
        al__set_uv_error(err);
        return NULL;
    }
    self->async.data = self;
    st->live_uv_handles += 2;
    al__metrics_uv_init(self); /* metrics */
    self->uv_ready = 1;
    return (PyObject *)self;
}

/* A queued handle that only the loop references is untracked, and what it
   references is reported here as the loop's (see handle.c). */
static inline int loop_visit_handle(HandleObject *h, visitproc visit, void *arg)
{
    if (Py_REFCNT(h) == 1 && h->weakreflist == NULL && !PyObject_GC_IsTracked((PyObject *)h)) {
        return al__handle_traverse(h, visit, arg);
    }
    Py_VISIT(h);
    return 0;
}

static int Loop_traverse(LoopObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->module);
    Py_VISIT(self->task_factory);
    Py_VISIT(self->exception_handler);
    Py_VISIT(self->debug_obj);
    int vr = al__stream_skipped_traverse(self, visit, arg);
    if (vr != 0) {
        return vr;
    }
    vr = al__pipe_late_writes_traverse(self, visit, arg);
    if (vr != 0) {
        return vr;
    }
    Py_VISIT(self->slow_obj);
    Py_VISIT(self->default_executor);
    Py_VISIT(self->current_handle);
    Py_VISIT(self->signal_handlers);
    Py_VISIT(self->old_agen_hooks);
    Py_VISIT(self->coro_saved_depth);
    Py_VISIT(self->asyncgens);
    Py_VISIT(self->bound_call_soon);
    Py_VISIT(self->unix_server_sockets);
    Py_VISIT(self->wakeup_saved);
    Py_VISIT(self->fd_watchers);
    Py_VISIT(self->pending_exc);
    if (al__metrics_traverse(self, visit, arg)) { /* metrics */
        return -1;
    }
    for (al_io *io = self->io_objects.next; io != &self->io_objects; io = io->next) {
        Py_VISIT(io->held);
    }
    if (self->running) {
        /* A running loop is reachable (the running-loop slot of its
           thread holds it), so is what its queues reference: reporting
           it would only cost each collection a walk over the queues. */
        return 0;
    }
    for (size_t i = 0; i < self->ready.len; i++) {
        HandleObject *h = self->ready.items[(self->ready.head + i) & (self->ready.cap - 1)];
        int rc = loop_visit_handle(h, visit, arg);
        if (rc) {
            return rc;
        }
    }
    for (Py_ssize_t i = 0; i < self->timers.len; i++) {
        int rc = loop_visit_handle((HandleObject *)self->timers.items[i].h, visit, arg);
        if (rc) {
            return rc;
        }
    }
    for (Py_ssize_t i = 0; i < self->n_gc_timers; i++) {
        Py_VISIT(self->gc_timers[i]);
    }
    return 0;
}

static int Loop_clear(LoopObject *self)
{
    al__stream_skipped_clear(self);
    al__pipe_late_writes_clear(self);
    Py_CLEAR(self->task_factory);
    Py_CLEAR(self->exception_handler);
    Py_CLEAR(self->debug_obj);
    Py_CLEAR(self->slow_obj);
    Py_CLEAR(self->default_executor);
    Py_CLEAR(self->current_handle);
    Py_CLEAR(self->signal_handlers);
    Py_CLEAR(self->old_agen_hooks);
    Py_CLEAR(self->coro_saved_depth);
    Py_CLEAR(self->asyncgens);
    Py_CLEAR(self->bound_call_soon);
    Py_CLEAR(self->unix_server_sockets);
    Py_CLEAR(self->wakeup_saved);
    Py_CLEAR(self->fd_watchers);
    Py_CLEAR(self->pending_exc);
    al__metrics_clear(self); /* metrics */
    loop_gc_scan(self);
    ring_clear(&self->ready);
    al__heap_clear(&self->timers);
    return 0;
}

static void Loop_finalize(LoopObject *self)
{
    if (self->closed || self->state == NULL) {
        return;
    }
    if (self->state->LoopType == NULL) {
        /* Interpreter shutdown cleared the module: only libuv is left. */
        self->closed = 1;
        loop_gc_scan(self);
        ring_clear(&self->ready);
        al__heap_clear(&self->timers);
        loop_close_uv(self);
        return;
    }
    PyObject *exc = al__err_fetch();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "unclosed event loop %R", self) < 0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    if (!self->running) {
        PyObject *res = Loop_close(self, NULL);
        if (res == NULL) {
            PyErr_WriteUnraisable((PyObject *)self);
        }
        Py_XDECREF(res);
    }
    al__err_restore(exc);
}

static void Loop_dealloc(LoopObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    Loop_clear(self);
    if (self->state != NULL) {
        loop_close_uv(self);
        self->state->live_loops--;
    }
    PyObject *module = self->module;
    PyMem_Free(self->poll_started);
    PyMem_RawFree(self->stream_read_buf); /* stream.c */
    Py_CLEAR(self->stream_held_read);     /* stream.c */
    PyMem_RawFree(self->ssl_read_buf);    /* ssl.c */
    PyMem_RawFree(self->dgram_buf);       /* udp.c */
    Py_CLEAR(self->stop_cache);           /* poll.c */
    al__poll_dgram_peer_free(self);       /* poll.c */
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
    Py_XDECREF(module);
}

static PyObject *Loop_get_debug_attr(LoopObject *self, void *Py_UNUSED(c))
{
    return Loop_get_debug(self, NULL);
}

static int Loop_set_debug_attr(LoopObject *self, PyObject *v, void *Py_UNUSED(c))
{
    int on = v ? PyObject_IsTrue(v) : 0;
    if (on < 0) {
        return -1;
    }
    self->debug = (char)on;
    Py_XSETREF(self->debug_obj, Py_XNewRef(v));
    return 0;
}

/* slow_callback_duration: any object, as on asyncio, which compares it
   with each callback's duration in debug mode. */
static PyObject *Loop_get_slow_callback_duration(LoopObject *self, void *Py_UNUSED(c))
{
    if (self->slow_generic && self->slow_obj == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%s' object has no attribute 'slow_callback_duration'",
                     Py_TYPE(self)->tp_name);
        return NULL;
    }
    return self->slow_obj ? Py_NewRef(self->slow_obj)
                          : PyFloat_FromDouble(self->slow_callback_duration);
}

static int Loop_set_slow_callback_duration(LoopObject *self, PyObject *v, void *Py_UNUSED(c))
{
    double d = 0.0;
    int generic = 1; /* deleted, or not a real number */
    if (v != NULL && PyFloat_CheckExact(v)) {
        d = PyFloat_AS_DOUBLE(v);
        generic = 0;
    }
    else if (v != NULL && (PyLong_Check(v) || PyFloat_Check(v))) {
        d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* too large: compared as it is */
        }
        else {
            generic = 0;
        }
    }
    self->slow_callback_duration = d;
    self->slow_generic = (char)generic;
    Py_XSETREF(self->slow_obj, Py_XNewRef(v));
    return 0;
}

static PyObject *Loop_get_closed(LoopObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closed);
}

static PyObject *Loop_get_stopping(LoopObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->stopping);
}

static PyObject *Loop_get_thread_id(LoopObject *self, void *Py_UNUSED(c))
{
    if (!self->running) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(self->thread_id);
}

static PyObject *Loop_get_current_handle(LoopObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->current_handle ? self->current_handle : Py_None);
}

static PyObject *Loop_get_task_factory_attr(LoopObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(self->task_factory ? self->task_factory : Py_None);
}

/* asyncio's loop._transports: fd -> transport, the live ones. */
static PyObject *Loop_get_transports(LoopObject *self, void *Py_UNUSED(c))
{
    PyObject *result = PyDict_New();
    for (int fd = 0; result != NULL && fd < self->n_fd_transports; fd++) {
        if (self->fd_transports[fd] == NULL) {
            continue;
        }
        PyObject *key = PyLong_FromLong(fd);
        if (key == NULL || PyDict_SetItem(result, key, self->fd_transports[fd]) < 0) {
            Py_CLEAR(result);
        }
        Py_XDECREF(key);
    }
    return result;
}

static PyObject *Loop_get_signal_handlers(LoopObject *self, void *Py_UNUSED(c))
{
    if (self->signal_handlers == NULL) {
        return PyDict_New();
    }
    return PyDict_Copy(self->signal_handlers);
}

static PyObject *Loop_get_coro_tracking(LoopObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->coro_tracking);
}

static PyObject *Loop_pending_counts(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Debug aid for the tests: (ready callbacks, scheduled timers). */
    return Py_BuildValue("(nn)", (Py_ssize_t)self->ready.len, self->timers.len);
}

static PyGetSetDef Loop_getset[] = {
    {"_debug", (getter)Loop_get_debug_attr, (setter)Loop_set_debug_attr, NULL, NULL},
    {"slow_callback_duration", (getter)Loop_get_slow_callback_duration,
     (setter)Loop_set_slow_callback_duration,
     "In debug mode, callbacks slower than this many seconds are logged.", NULL},
    {"_closed", (getter)Loop_get_closed, NULL, NULL, NULL},
    {"_stopping", (getter)Loop_get_stopping, NULL, NULL, NULL},
    {"_thread_id", (getter)Loop_get_thread_id, NULL, NULL, NULL},
    {"_current_handle", (getter)Loop_get_current_handle, NULL, NULL, NULL},
    {"_task_factory", (getter)Loop_get_task_factory_attr, NULL, NULL, NULL},
    {"_signal_handlers", (getter)Loop_get_signal_handlers, NULL, NULL, NULL},
    {"_transports", (getter)Loop_get_transports, NULL, NULL, NULL},
    {"_coroutine_origin_tracking_enabled", (getter)Loop_get_coro_tracking, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Loop_members[] = {
    {"_default_executor", T_OBJECT, offsetof(LoopObject, default_executor), 0, NULL},
    {"_exception_handler", T_OBJECT, offsetof(LoopObject, exception_handler), 0, NULL},
    {"_executor_shutdown_called", T_BOOL, offsetof(LoopObject, executor_shutdown_called), 0, NULL},
    {"_asyncgens", T_OBJECT_EX, offsetof(LoopObject, asyncgens), 0, NULL},
    {"_asyncgens_shutdown_called", T_BOOL, offsetof(LoopObject, asyncgens_shutdown_called), 0,
     NULL},
    {"_unix_server_sockets", T_OBJECT_EX, offsetof(LoopObject, unix_server_sockets), 0, NULL},
    {NULL},
};

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)

/* Methods of one argument, which asyncio's signatures let come by keyword
   too: run_until_complete(future=f). */
#define ONE_ARG_METHOD(wrapper, impl, method, name)                                                \
    static PyObject *wrapper(LoopObject *self, PyObject *const *args, size_t nargsf,               \
                             PyObject *kwnames)                                                    \
    {                                                                                              \
        PyObject *arg; /* borrowed */                                                              \
        if (al__one_arg(method, name, args, PyVectorcall_NARGS(nargsf), kwnames, &arg) < 0) {      \
            return NULL;                                                                           \
        }                                                                                          \
        return impl(self, arg);                                                                    \
    }

ONE_ARG_METHOD(Loop_run_until_complete_kw, Loop_run_until_complete, "run_until_complete", "future")
ONE_ARG_METHOD(Loop_set_task_factory_kw, Loop_set_task_factory, "set_task_factory", "factory")
ONE_ARG_METHOD(Loop_set_exception_handler_kw, Loop_set_exception_handler, "set_exception_handler",
               "handler")
ONE_ARG_METHOD(Loop_set_debug_kw, Loop_set_debug, "set_debug", "enabled")
ONE_ARG_METHOD(Loop_remove_signal_handler_kw, al__loop_remove_signal_handler,
               "remove_signal_handler", "sig")

static PyObject *Loop_run_in_executor_kw(LoopObject *self, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        static const char *const names[] = {"executor", "func"};
        return al__call_with_keywords_bound(
            (PyObject *)self, (al_fastcall_method)Loop_run_in_executor_kw, "run_in_executor", names,
            2, NULL, args, PyVectorcall_NARGS(nargsf), kwnames);
    }
    return Loop_run_in_executor(self, args, PyVectorcall_NARGS(nargsf));
}

static PyObject *Loop_add_signal_handler_kw(LoopObject *self, PyObject *const *args, size_t nargsf,
                                            PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        static const char *const names[] = {"sig", "callback"};
        return al__call_with_keywords_bound(
            (PyObject *)self, (al_fastcall_method)Loop_add_signal_handler_kw, "add_signal_handler",
            names, 2, NULL, args, PyVectorcall_NARGS(nargsf), kwnames);
    }
    return al__loop_add_signal_handler(self, args, PyVectorcall_NARGS(nargsf));
}

static PyMethodDef Loop_methods[] = {
    {"run_forever", (PyCFunction)Loop_run_forever, METH_NOARGS, "Run until stop() is called."},
    {"run_until_complete", (PyCFunction)(void (*)(void))Loop_run_until_complete_kw, FASTKW,
     "Run until the future (or coroutine, or awaitable) is done; return its result."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS,
     "Stop running the loop after the current iteration."},
    {"close", (PyCFunction)Loop_close, METH_NOARGS, "Close the event loop."},
    {"is_running", (PyCFunction)Loop_is_running, METH_NOARGS, NULL},
    {"is_closed", (PyCFunction)Loop_is_closed, METH_NOARGS, NULL},
    {"time", (PyCFunction)Loop_time, METH_NOARGS, "The loop's monotonic clock, in float seconds."},
    {"call_soon", (PyCFunction)(void (*)(void))Loop_call_soon, FASTKW,
     "call_soon(callback, *args, context=None)"},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))Loop_call_soon_threadsafe, FASTKW,
     "call_soon_threadsafe(callback, *args, context=None)"},
    {"call_later", (PyCFunction)(void (*)(void))Loop_call_later, FASTKW,
     "call_later(delay, callback, *args, context=None)"},
    {"call_at", (PyCFunction)(void (*)(void))Loop_call_at, FASTKW,
     "call_at(when, callback, *args, context=None)"},
    {"create_future", (PyCFunction)Loop_create_future, METH_NOARGS, NULL},
    {"create_task", (PyCFunction)(void (*)(void))Loop_create_task, FASTKW,
     "create_task(coro, *, name=None, context=None)"},
    {"set_task_factory", (PyCFunction)(void (*)(void))Loop_set_task_factory_kw, FASTKW, NULL},
    {"get_task_factory", (PyCFunction)Loop_get_task_factory, METH_NOARGS, NULL},
    {"set_exception_handler", (PyCFunction)(void (*)(void))Loop_set_exception_handler_kw, FASTKW,
     NULL},
    {"get_exception_handler", (PyCFunction)Loop_get_exception_handler, METH_NOARGS, NULL},
    {"get_debug", (PyCFunction)Loop_get_debug, METH_NOARGS, NULL},
    {"set_debug", (PyCFunction)(void (*)(void))Loop_set_debug_kw, FASTKW, NULL},
    {"run_in_executor", (PyCFunction)(void (*)(void))Loop_run_in_executor_kw, FASTKW,
     "run_in_executor(executor, func, *args)"},
    {"add_signal_handler", (PyCFunction)(void (*)(void))Loop_add_signal_handler_kw, FASTKW,
     "add_signal_handler(sig, callback, *args)"},
    {"remove_signal_handler", (PyCFunction)(void (*)(void))Loop_remove_signal_handler_kw, FASTKW,
     NULL},
    {"_handle_signal", (PyCFunction)(void (*)(void))al__loop_handle_signal, METH_FASTCALL, NULL},
    {"_check_closed", (PyCFunction)Loop_check_closed_meth, METH_NOARGS, NULL},
    {"_check_thread", (PyCFunction)Loop_check_thread_meth, METH_NOARGS, NULL},
    {"_check_callback", (PyCFunction)(void (*)(void))Loop_check_callback_meth, METH_FASTCALL, NULL},
    {"_check_default_executor", (PyCFunction)Loop_check_default_executor_meth, METH_NOARGS, NULL},
    {"_set_coroutine_origin_tracking", (PyCFunction)Loop_set_coro_tracking_meth, METH_O, NULL},
    {"_run_once", (PyCFunction)Loop_run_once_meth, METH_NOARGS, NULL},
    {"_pending_counts", (PyCFunction)Loop_pending_counts, METH_NOARGS, NULL},

    /* poll.c: add_reader/add_writer, sock_* */
    {"add_reader", (PyCFunction)(void (*)(void))al__loop_add_reader, FASTKW,
     "add_reader(fd, callback, *args)"},
    {"add_writer", (PyCFunction)(void (*)(void))al__loop_add_writer, FASTKW,
     "add_writer(fd, callback, *args)"},
    {"remove_reader", (PyCFunction)(void (*)(void))al__loop_remove_reader, FASTKW, NULL},
    {"remove_writer", (PyCFunction)(void (*)(void))al__loop_remove_writer, FASTKW, NULL},
    {"sock_recv", (PyCFunction)(void (*)(void))al__loop_sock_recv, FASTKW,
     "sock_recv(sock, n) -> Future[bytes]"},
    {"sock_recv_into", (PyCFunction)(void (*)(void))al__loop_sock_recv_into, FASTKW,
     "sock_recv_into(sock, buf) -> Future[int]"},
    {"sock_sendall", (PyCFunction)(void (*)(void))al__loop_sock_sendall, FASTKW,
     "sock_sendall(sock, data) -> Future[None]"},
    {"_sock_connect", (PyCFunction)(void (*)(void))al__loop_sock_connect, FASTKW,
     "_sock_connect(sock, address) -> Future[None], address already resolved"},
    {"sock_accept", (PyCFunction)(void (*)(void))al__loop_sock_accept, FASTKW,
     "sock_accept(sock) -> Future[(socket, address)]"},
    {"_sock_recv_start", (PyCFunction)(void (*)(void))al__loop_sock_recv_start, FASTKW, NULL},
    {"_sock_recv_into_start", (PyCFunction)(void (*)(void))al__loop_sock_recv_into_start, FASTKW,
     NULL},
    {"_sock_sendall_start", (PyCFunction)(void (*)(void))al__loop_sock_sendall_start, FASTKW, NULL},
    {"_sock_recv_coro", (PyCFunction)(void (*)(void))al__loop_sock_recv_call, FASTKW, NULL},
    {"_sock_recv_into_coro", (PyCFunction)(void (*)(void))al__loop_sock_recv_into_call, FASTKW,
     NULL},
    {"_sock_sendall_coro", (PyCFunction)(void (*)(void))al__loop_sock_sendall_call, FASTKW, NULL},
    {"_sock_accept_coro", (PyCFunction)(void (*)(void))al__loop_sock_accept_call, FASTKW, NULL},
    {"_sock_recv", (PyCFunction)(void (*)(void))al__loop_sock_recv_cb, FASTKW, NULL},
    {"_sock_recv_into", (PyCFunction)(void (*)(void))al__loop_sock_recv_into_cb, FASTKW, NULL},
    {"_sock_sendall", (PyCFunction)(void (*)(void))al__loop_sock_sendall_cb, FASTKW, NULL},
    {"_sock_connect_cb", (PyCFunction)(void (*)(void))al__loop_sock_connect_cb, FASTKW, NULL},
    {"_sock_accept", (PyCFunction)(void (*)(void))al__loop_sock_accept_cb, FASTKW, NULL},
    {"_sock_read_done", (PyCFunction)(void (*)(void))al__loop_sock_read_done, FASTKW, NULL},
    {"_sock_write_done", (PyCFunction)(void (*)(void))al__loop_sock_write_done, FASTKW, NULL},
    /* poll.c: datagram sock_* */
    {"_sock_recvfrom_coro", (PyCFunction)(void (*)(void))al__loop_sock_recvfrom_call, FASTKW, NULL},
    {"_sock_recvfrom_into_coro", (PyCFunction)(void (*)(void))al__loop_sock_recvfrom_into_call,
     FASTKW, NULL},
    {"_sock_sendto_coro", (PyCFunction)(void (*)(void))al__loop_sock_sendto_call, FASTKW, NULL},
    {"_sock_recvfrom", (PyCFunction)(void (*)(void))al__loop_sock_recvfrom_cb, FASTKW, NULL},
    {"_sock_recvfrom_into", (PyCFunction)(void (*)(void))al__loop_sock_recvfrom_into_cb, FASTKW,
     NULL},
    {"_sock_sendto", (PyCFunction)(void (*)(void))al__loop_sock_sendto_cb, FASTKW, NULL},
    /* sendfile.c */
    {"_sock_sendfile_native", (PyCFunction)(void (*)(void))al__loop_sock_sendfile_native, FASTKW,
     "_sock_sendfile_native(sock, file, offset, count) -> Future[int]"},
    {"_sock_sendfile_native_impl", (PyCFunction)(void (*)(void))al__loop_sock_sendfile_impl, FASTKW,
     NULL},
    {"_sock_sendfile_cancel_cb", (PyCFunction)(void (*)(void))al__loop_sock_sendfile_cancel_cb,
     FASTKW, NULL},

    /* stream.c, tcp/unix: transports */
    {"_accept_connection", (PyCFunction)(void (*)(void))al__loop_accept_connection, FASTKW, NULL},
    {"_accept_resume", (PyCFunction)(void (*)(void))al__loop_accept_resume, FASTKW, NULL},
    {"_accept_made", (PyCFunction)(void (*)(void))al__loop_accept_made, FASTKW, NULL},
    {"_make_socket_transport", (PyCFunction)(void (*)(void))al__loop_make_socket_transport, FASTKW,
     "_make_socket_transport(sock, protocol, waiter=None, *, extra=None, server=None)"},

    /* process.c */
    {"_spawn_child_async", (PyCFunction)(void (*)(void))al__loop_spawn_child_async, METH_FASTCALL,
     "_spawn_child_async(argv, executable, exec_path, cwd, env, stdin, stdout, stderr, "
     "close_fds, start_new_session, process_group, restore_signals, callback, close_after) "
     "-> Future of a Child"},
    {"_watch_child", (PyCFunction)(void (*)(void))al__loop_watch_child, METH_FASTCALL,
     "_watch_child(pid, callback) -> Child"},
    /* pipe.c */
    {"_make_read_pipe_transport", (PyCFunction)(void (*)(void))al__loop_make_read_pipe_transport,
     FASTKW, "_make_read_pipe_transport(pipe, protocol, waiter=None, extra=None)"},
    {"_make_write_pipe_transport", (PyCFunction)(void (*)(void))al__loop_make_write_pipe_transport,
     FASTKW, "_make_write_pipe_transport(pipe, protocol, waiter=None, extra=None)"},
    /* metrics.c */
    {"metrics", (PyCFunction)al__loop_metrics, METH_NOARGS,
     "metrics() -> LoopMetrics: a snapshot of the loop's counters since its creation."},
    {"set_slow_callback_hook", (PyCFunction)(void (*)(void))al__loop_set_slow_callback_hook, FASTKW,
     "set_slow_callback_hook(threshold, hook=None): time each callback; call "
     "hook(handle_repr, duration) for those that take threshold seconds or more. "
     "set_slow_callback_hook(None) turns it off."},
    {"_count_server", (PyCFunction)al__loop_count_server, METH_O, NULL},
    /* udp.c */
    {"_make_datagram_transport", (PyCFunction)(void (*)(void))al__loop_make_datagram_transport,
     FASTKW, "_make_datagram_transport(sock, protocol, address=None, waiter=None, extra=None)"},

    /* dns.c */
    {"_getaddrinfo", (PyCFunction)(void (*)(void))al__loop_getaddrinfo, METH_FASTCALL,
     "_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0) -> Future"},
    {"_getnameinfo", (PyCFunction)(void (*)(void))al__loop_getnameinfo, METH_FASTCALL,
     "_getnameinfo(sockaddr, flags=0) -> Future"},

    {NULL, NULL},
};

#if PY_VERSION_HEX < 0x030B0000
/* 3.10: asyncio's C Task and Future look loop.call_soon up as an attribute
   for each task step and future callback, which allocates a bound method
   and frees it after the call (3.12 calls it as a method: no object). So
   asyncloop.Loop's call_soon is this wrapper of its method descriptor: on
   a running loop the lookup returns one bound method, made at the first
   lookup of the run and dropped when the run ends (a cycle with the loop
   only while the loop runs, when it is reachable anyway). A call through
   the class (`loop.call_soon(...)` in Python code) makes the descriptor's
   type check and calls the C function; everything else is the
   descriptor's: `Loop.call_soon` is the method descriptor itself, the
   attributes are its own. */
typedef struct {
    PyObject_HEAD
    PyObject *descr;         /* the method descriptor */
    PyObject *cls;           /* its class */
    al_fastcall_method meth; /* its C function */
    vectorcallfunc call;     /* its vectorcall */
    descrgetfunc get;        /* its __get__ */
    vectorcallfunc vectorcall;
} LoopMethodObject;

/* After tp_clear (a collected class): no descriptor left to use. */
static int loop_method_cleared(LoopMethodObject *self)
{
    if (self->descr == NULL) {
        PyErr_SetString(PyExc_TypeError, "the method's class was cleared");
        return 1;
    }
    return 0;
}

static PyObject *LoopMethod_get(LoopMethodObject *self, PyObject *obj, PyObject *type)
{
    if (loop_method_cleared(self)) {
        return NULL;
    }
    if (obj == NULL) {
        return Py_NewRef(self->descr);
    }
    if (!PyObject_TypeCheck(obj, (PyTypeObject *)self->cls) || !((LoopObject *)obj)->running) {
        return self->get(self->descr, obj, type); /* a new bound method, or its TypeError */
    }
    LoopObject *loop = (LoopObject *)obj;
    if (loop->bound_call_soon == NULL) {
        loop->bound_call_soon = self->get(self->descr, obj, type);
        if (loop->bound_call_soon == NULL) {
            return NULL;
        }
    }
    return Py_NewRef(loop->bound_call_soon);
}

static PyObject *LoopMethod_vectorcall(LoopMethodObject *self, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs > 0 && self->descr != NULL &&
        PyObject_TypeCheck(args[0], (PyTypeObject *)self->cls)) {
        return self->meth(args[0], args + 1, (size_t)(nargs - 1), kwnames);
    }
    if (loop_method_cleared(self)) {
        return NULL;
    }
    return self->call(self->descr, args, nargsf, kwnames); /* its TypeError */
}

static PyObject *LoopMethod_getattro(LoopMethodObject *self, PyObject *name)
{
    return loop_method_cleared(self) ? NULL : PyObject_GetAttr(self->descr, name);
}

static PyObject *LoopMethod_repr(LoopMethodObject *self)
{
    return loop_method_cleared(self) ? NULL : PyObject_Repr(self->descr);
}

static int LoopMethod_traverse(LoopMethodObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->descr);
    Py_VISIT(self->cls);
    return 0;
}

static int LoopMethod_clear(LoopMethodObject *self)
{
    Py_CLEAR(self->descr);
    Py_CLEAR(self->cls);
    return 0;
}

static void LoopMethod_dealloc(LoopMethodObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    LoopMethod_clear(self);
    PyObject_GC_Del(self);
    Py_DECREF(tp);
}

static PyMemberDef LoopMethod_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(LoopMethodObject, vectorcall), READONLY},
    {NULL},
};

static PyType_Slot LoopMethod_slots[] = {
    {Py_tp_descr_get, LoopMethod_get},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_getattro, LoopMethod_getattro},
    {Py_tp_repr, LoopMethod_repr},
    {Py_tp_traverse, LoopMethod_traverse},
    {Py_tp_clear, LoopMethod_clear},
    {Py_tp_dealloc, LoopMethod_dealloc},
    {Py_tp_members, LoopMethod_members},
    {0, NULL},
};

static PyType_Spec LoopMethod_spec = {
    .name = "asyncloop._core.LoopMethod",
    .basicsize = sizeof(LoopMethodObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR |
             Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = LoopMethod_slots,
};

/* descr wrapped (a new reference); the type is kept by its instances. */
static PyObject *loop_method_wrap(PyObject *module, PyObject *cls, PyObject *descr,
                                  al_fastcall_method meth)
{
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(module, &LoopMethod_spec, NULL);
    if (tp == NULL) {
        return NULL;
    }
    LoopMethodObject *self = PyObject_GC_New(LoopMethodObject, tp);
    Py_DECREF(tp);
    if (self == NULL) {
        return NULL;
    }
    self->descr = Py_NewRef(descr);
    self->cls = Py_NewRef(cls);
    self->meth = meth;
    self->call = PyVectorcall_Function(descr);
    self->get = (descrgetfunc)PyType_GetSlot(Py_TYPE(descr), Py_tp_descr_get);
    self->vectorcall = (vectorcallfunc)LoopMethod_vectorcall;
    PyObject_GC_Track(self);
    if (self->call == NULL || self->get == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_SystemError, "not a method descriptor");
        return NULL;
    }
    return (PyObject *)self;
}
#endif

/* {name: Loop's method as a descriptor of cls}, for asyncloop.Loop to own.
   The interpreter's specialised calls of a C method (3.11+:
   CALL_METHOD_DESCRIPTOR_*) require the descriptor's class to be the
   instance's exact type; with _core.Loop's own descriptors every
   `loop.call_soon(...)` on an asyncloop.Loop fell back to a generic call. */
PyObject *al__loop_method_descriptors(PyObject *module, PyObject *cls)
{
    al_state *st = PyModule_GetState(module);
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, st->LoopType)) {
        PyErr_SetString(PyExc_TypeError, "a subclass of asyncloop._core.Loop is required");
        return NULL;
    }
    PyObject *res = PyDict_New();
    for (PyMethodDef *m = Loop_methods; res != NULL && m->ml_name != NULL; m++) {
        PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, m);
#if PY_VERSION_HEX < 0x030B0000
        if (descr != NULL && m->ml_meth == (PyCFunction)(void (*)(void))Loop_call_soon) {
            Py_SETREF(descr,
                      loop_method_wrap(module, cls, descr, (al_fastcall_method)Loop_call_soon));
        }
#endif
        if (descr == NULL || PyDict_SetItemString(res, m->ml_name, descr) < 0) {
            Py_CLEAR(res);
        }
        Py_XDECREF(descr);
    }
    return res;
}

static PyType_Slot Loop_slots[] = {
    {Py_tp_new, Loop_new},
    {Py_tp_dealloc, Loop_dealloc},
    {Py_tp_finalize, Loop_finalize},
    {Py_tp_traverse, Loop_traverse},
    {Py_tp_clear, Loop_clear},
    {Py_tp_repr, Loop_repr},
    {Py_tp_methods, Loop_methods},
    {Py_tp_members, Loop_members},
    {Py_tp_getset, Loop_getset},
    {Py_tp_doc, "The asyncloop event loop core (libuv)."},
    {0, NULL},
};

PyType_Spec al__loop_spec = {
    .name = "asyncloop._core.Loop",
    .basicsize = sizeof(LoopObject),
    .flags =
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Loop_slots,
};
