/* Handle and TimerHandle: a callback with its arguments and contextvars
   Context, as asyncio.Handle / asyncio.TimerHandle. Arguments are kept
   inline and the callback runs by vectorcall; freed handles are kept on a
   bounded free list so that call_soon allocates nothing in steady state. */
#include "internal.h"

/* queued: the loop's call_soon/call_at, whose handle goes to the loop's
   queue and is never tracked at birth (see al__handle_new_queued). */
static inline __attribute__((always_inline)) HandleObject *
handle_new(al_state *st, PyTypeObject *tp, LoopObject *loop, PyObject *callback,
           PyObject *const *args, Py_ssize_t nargs, PyObject *context, int queued, int is_timer)
{
    HandleObject **free_list = is_timer ? &st->free_timers : &st->free_handles;
    HandleObject *h = *free_list;
    if (h != NULL) {
        *free_list = (HandleObject *)h->callback;
        if (is_timer) {
            st->n_free_timers--;
        }
        else if (--st->n_free_handles < st->free_handles_low) {
            st->free_handles_low = st->n_free_handles;
        }
        if (Py_REFCNT(h) == 0) {
            /* Parked by its dealloc; still a GC object, untracked: this
               re-initialises its type (taking a reference to the heap type)
               and its reference count. */
            PyObject_Init((PyObject *)h, tp);
        }
        else {
            /* Parked by al__handle_release, its reference count kept at one. */
            Py_INCREF(tp);
        }
    }
    else if (is_timer) {
        h = (HandleObject *)PyObject_GC_New(TimerHandleObject, tp);
    }
    else {
        h = PyObject_GC_New(HandleObject, tp);
    }
    if (h == NULL) {
        return NULL;
    }
    /* Every field valid first, so that a failure below can just DECREF. */
    h->callback = h->context = NULL;
    h->loop = NULL;
    h->source_traceback = h->repr = h->weakreflist = NULL;
    h->scheduled = h->cancelled = h->running = h->when_is_nan = h->own_context = 0;
    h->args_kind = ARGS_NONE;
    h->is_timer = (uint8_t)is_timer;
    h->args[0] = NULL;
    if (is_timer) {
        TimerHandleObject *t = (TimerHandleObject *)h;
        t->arg2 = NULL;
        t->when_obj = NULL;
        t->deadline = 0.0;
        t->seq = 0;
    }
    st->live_handles++;

    if (context == NULL || context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            Py_DECREF(h);
            return NULL;
        }
        /* A fresh copy, h's alone: kept out of the GC's lists too, h
           reports what it references (al__handle_traverse). */
        PyObject_GC_UnTrack(context);
        h->own_context = 1;
    }
    else {
        Py_INCREF(context);
    }
    h->context = context;
    h->callback = Py_NewRef(callback);
    h->loop = (LoopObject *)Py_NewRef(loop);
    if (nargs == 1) {
        h->args[0] = Py_NewRef(args[0]);
        h->args_kind = ARGS_ONE;
    }
    else if (nargs == 2 && is_timer) {
        h->args[0] = Py_NewRef(args[0]);
        ((TimerHandleObject *)h)->arg2 = Py_NewRef(args[1]);
        h->args_kind = ARGS_TWO;
    }
    else if (nargs > 0) {
        PyObject *t = PyTuple_New(nargs);
        if (t == NULL) {
            Py_DECREF(h);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
        }
        h->args[0] = t;
        h->args_kind = ARGS_TUPLE;
    }
    /* While the loop runs, not tracked: the caller queues h, and
       al__handle_disown tracks it if it is referenced elsewhere by the time
       the loop lets go of it or stops running. A queued handle made while
       it is not running is not tracked either: the loop has the GC look at
       it when the next collection starts (al__loop_gc_unscanned). */
    if (!queued && !loop->running) {
        PyObject_GC_Track(h);
    }
    /* The caller checked the loop, but making h can run code (a context
       copy's collection, a `when` with __float__) that closed it since:
       nothing is queued on a closed loop. */
    if (loop->closed) {
        Py_DECREF(h);
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }

    if (loop->debug) {
        /* asyncio records where a handle was made, in debug mode only. */
        PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed */
        if (frame != NULL) {
            PyObject *tb = PyObject_CallOneArg(st->extract_stack, frame);
            if (tb == NULL) {
                Py_DECREF(h);
                return NULL;
            }
            h->source_traceback = tb;
        }
    }
    return h;
}

HandleObject *al__handle_new(al_state *st, PyTypeObject *tp, LoopObject *loop, PyObject *callback,
                             PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    return handle_new(st, tp, loop, callback, args, nargs, context, 0, tp == st->TimerHandleType);
}

HandleObject *al__handle_new_queued(al_state *st, PyTypeObject *tp, LoopObject *loop,
                                    PyObject *callback, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *context)
{
    /* call_soon's own copy, without the timer's branches */
    if (tp == st->HandleType) {
        return handle_new(st, tp, loop, callback, args, nargs, context, 1, 0);
    }
    return handle_new(st, tp, loop, callback, args, nargs, context, 1, tp == st->TimerHandleType);
}

static inline PyObject **handle_arg2(HandleObject *h)
{
    return &((TimerHandleObject *)h)->arg2;
}

static inline __attribute__((always_inline)) void handle_clear_call(HandleObject *h)
{
    int kind = h->args_kind;
    h->args_kind = ARGS_NONE;
    Py_CLEAR(h->callback);
    Py_CLEAR(h->args[0]);
    if (kind == ARGS_TWO) {
        Py_CLEAR(*handle_arg2(h));
    }
}

/* Handles and the garbage collector.

   A handle made while its loop runs is not tracked by the GC: it is queued,
   run and recycled without entering a GC list, which keeps call_soon off
   the GC's books (no link and unlink touching cold neighbours, no
   traversal in every young collection).

   The loop's tp_traverse reports the references of a queued, untracked
   handle with a reference count of one and no weak references as its own,
   through this function: only the loop holds such a handle, and nothing
   can hand out a new reference to it. This includes h->loop, so a loop referenced only by its
   own queue is still found to be garbage.

   An untracked handle also referenced elsewhere (call_later's result kept
   by asyncio.sleep) is not reported: its references count as external,
   which can keep objects alive but never frees them early. That is safe
   while the loop runs, since a running loop is not garbage anyway. The
   loop tracks such a handle (al__handle_disown) when it lets go of it and,
   for those still queued, when it stops running.

   call_soon/call_at on a loop that is not running queue untracked handles
   too (200 000 callbacks scheduled before run_forever would otherwise fill
   the GC's lists). The loop lists them and, when a collection starts (a
   gc.callbacks hook, module.c), tracks those referenced elsewhere: by the
   time the collector looks, every untracked queued handle of a stopped
   loop is the loop's alone, as for a loop that stopped running. Handles
   made elsewhere (signal, fd watcher) while the loop is not running are
   tracked from the start.

   The copy of the current context a handle makes is untracked as well and
   reported through the handle, until get_context() hands it out. */
int al__handle_traverse(HandleObject *h, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(h));
    Py_VISIT(h->callback);
    if (h->own_context) {
        /* h's own copy (handle_new): its references are h's. */
        int rc = Py_TYPE(h->context)->tp_traverse(h->context, visit, arg);
        if (rc) {
            return rc;
        }
    }
    else {
        Py_VISIT(h->context);
    }
    Py_VISIT(h->loop);
    Py_VISIT(h->args[0]);
    if (h->args_kind == ARGS_TWO) {
        Py_VISIT(*handle_arg2(h));
    }
    Py_VISIT(h->source_traceback);
    Py_VISIT(h->repr);
    if (h->is_timer) {
        Py_VISIT(((TimerHandleObject *)h)->when_obj);
    }
    return 0;
}

/* h's own untracked copy of the context becomes an ordinary GC object
   before anyone else gets it (and before it is released: Context's dealloc
   expects a tracked object). */
static inline void handle_share_context(HandleObject *h)
{
    if (h->own_context) {
        h->own_context = 0;
        PyObject_GC_Track(h->context);
    }
}

/* Keeps h->loop: every cycle through it passes through the loop, whose own
   tp_clear breaks it, and dealloc needs it to reach the module state. */
static inline __attribute__((always_inline)) void handle_clear(HandleObject *h)
{
    handle_clear_call(h);
    handle_share_context(h);
    Py_CLEAR(h->context);
    Py_CLEAR(h->source_traceback);
    Py_CLEAR(h->repr);
    if (h->is_timer) {
        Py_CLEAR(((TimerHandleObject *)h)->when_obj);
    }
}

static int Handle_clear(HandleObject *h)
{
    handle_clear(h);
    return 0;
}

static void handle_dealloc_body(HandleObject *h, PyTypeObject *tp);

static void Handle_dealloc(HandleObject *h)
{
    PyTypeObject *tp = Py_TYPE(h);
    PyObject_GC_UnTrack(h);
    if (h->callback == NULL && h->args_kind == ARGS_NONE) {
        /* Already released (al__handle_release): nothing that could hold
           another handle is left, so no recursion to bound. */
        handle_dealloc_body(h, tp);
        return;
    }
    /* A chain of handles each holding the next as an argument would
       otherwise recurse once per handle, as nested tuples would. */
    Py_TRASHCAN_BEGIN(h, Handle_dealloc)
    handle_dealloc_body(h, tp);
    Py_TRASHCAN_END
}

/* The loop lets go of h after running it. A handle only the loop holds is
   emptied here, one level down from the loop (no trashcan needed), and goes
   to the free list as it is, without a dealloc: its reference count stays
   one, which no one else holds (nothing references it and, untracked, the
   GC cannot hand it out), and its type reference is dropped as a dealloc
   would. handle_new takes it from there. */
void al__handle_release(HandleObject *h)
{
    if (Py_REFCNT(h) != 1 || h->weakreflist != NULL || h->running) {
        al__handle_disown(h);
        Py_DECREF(h);
        return;
    }
    LoopObject *loop = h->loop; /* its reference is dropped last */
    al_state *st = loop->state;
    /* Releasing its references can run code (a __del__)... */
    handle_clear(h);
    PyTypeObject *tp = Py_TYPE(h);
    int is_timer = tp == st->TimerHandleType;
    int *n_free = is_timer ? &st->n_free_timers : &st->n_free_handles;
    /* ...which may have found a tracked h (gc.get_objects) and kept it. */
    if (Py_REFCNT(h) != 1 || h->weakreflist != NULL ||
        *n_free >= (is_timer ? TIMER_FREELIST_MAX : HANDLE_FREELIST_MAX) ||
        (!is_timer && tp != st->HandleType)) {
        al__handle_disown(h);
        Py_DECREF(h);
        return;
    }
    PyObject_GC_UnTrack(h);
    HandleObject **free_list = is_timer ? &st->free_timers : &st->free_handles;
    h->loop = NULL;
    h->callback = (PyObject *)*free_list;
    *free_list = h;
    (*n_free)++;
    st->live_handles--;
    Py_DECREF(tp);
    Py_DECREF(loop);
}

static void handle_dealloc_body(HandleObject *h, PyTypeObject *tp)
{
    if (h->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)h);
    }
    assert(!h->scheduled);
    Handle_clear(h);
    /* The loop keeps the module, so its state, alive; not
       PyType_GetModuleState, which fails once the final GC has cleared the
       type's module. */
    LoopObject *loop = h->loop;
    h->loop = NULL;
    al_state *st = loop ? loop->state : NULL;
    int kept = 0;
    if (st != NULL) {
        st->live_handles--;
        /* Keep the memory for the next handle of the same type. */
        if (tp == st->HandleType && st->n_free_handles < HANDLE_FREELIST_MAX) {
            h->callback = (PyObject *)st->free_handles;
            st->free_handles = h;
            st->n_free_handles++;
            kept = 1;
        }
        else if (tp == st->TimerHandleType && st->n_free_timers < TIMER_FREELIST_MAX) {
            h->callback = (PyObject *)st->free_timers;
            st->free_timers = h;
            st->n_free_timers++;
            kept = 1;
        }
    }
    if (!kept) {
        PyObject_GC_Del(h);
    }
    Py_DECREF(tp);
    Py_XDECREF(loop);
}

/* Frees the first handle of a free list. */
static void free_list_pop_free(HandleObject **list)
{
    HandleObject *h = *list;
    *list = (HandleObject *)h->callback;
    h->callback = NULL;
    if (Py_REFCNT(h) == 0) {
        PyObject_GC_Del(h); /* parked by its dealloc */
    }
    else {
        /* Parked by al__handle_release: an ordinary dealloc, which drops
           the type reference taken here (no loop: h is not parked again). */
        Py_INCREF(Py_TYPE(h));
        Py_DECREF(h);
    }
}

void al__handle_free_list_clear(al_state *st)
{
    while (st->free_handles != NULL) {
        free_list_pop_free(&st->free_handles);
    }
    while (st->free_timers != NULL) {
        free_list_pop_free(&st->free_timers);
    }
    st->n_free_handles = st->n_free_timers = st->free_handles_low = 0;
}

void al__handle_free_list_trim(al_state *st, uint64_t now_ms)
{
    /* The low-water mark counts the handles no one took since the last
       trim: those above the part always kept go. */
    int excess = st->n_free_handles - HANDLE_FREELIST_KEEP;
    if (st->free_handles_low < excess) {
        excess = st->free_handles_low;
    }
    for (; excess > 0; excess--) {
        free_list_pop_free(&st->free_handles);
        st->n_free_handles--;
    }
    st->free_handles_low = st->n_free_handles;
    st->free_handles_trim = now_ms + 1000;
}

/* The callback's positional arguments as a new tuple. */
static PyObject *handle_args(HandleObject *h)
{
    switch (h->args_kind) {
    case ARGS_TUPLE:
        return Py_NewRef(h->args[0]);
    case ARGS_ONE:
        return PyTuple_Pack(1, h->args[0]);
    case ARGS_TWO:
        return PyTuple_Pack(2, h->args[0], *handle_arg2(h));
    default:
        return PyTuple_New(0);
    }
}

static PyObject *handle_format_source(al_state *st, HandleObject *h)
{
    PyObject *args = handle_args(h);
    if (args == NULL) {
        return NULL;
    }
    PyObject *res;
    if (st->format_source_has_debug) {
        PyObject *stack[3] = {h->callback, args, h->loop->debug ? Py_True : Py_False};
        PyObject *kwnames = PyTuple_Pack(1, st->str_debug);
        res = kwnames ? PyObject_Vectorcall(st->format_callback_source, stack, 2, kwnames) : NULL;
        Py_XDECREF(kwnames);
    }
    else {
        PyObject *stack[2] = {h->callback, args};
        res = PyObject_Vectorcall(st->format_callback_source, stack, 2, NULL);
    }
    Py_DECREF(args);
    return res;
}

/* A callback raised: SystemExit and KeyboardInterrupt leave the loop, any
   other exception goes to the loop's exception handler, as in asyncio's
   Handle._run. Returns -1 only if an exception must propagate. */
static int handle_report_error(HandleObject *h)
{
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return -1;
    }
    al_state *st = h->loop->state;
    PyObject *exc = al__err_fetch();
    PyObject *context = NULL, *msg = NULL, *cb = NULL;
    int rc = -1;

    cb = handle_format_source(st, h);
    if (cb == NULL) {
        goto done;
    }
    msg = PyUnicode_FromFormat("Exception in callback %U", cb);
    if (msg == NULL) {
        goto done;
    }
    context = PyDict_New();
    if (context == NULL || PyDict_SetItem(context, st->str_message, msg) < 0 ||
        PyDict_SetItem(context, st->str_exception, exc) < 0 ||
        PyDict_SetItem(context, st->str_handle, (PyObject *)h) < 0) {
        goto done;
    }
    /* A strong reference: its __bool__ may reset _source_traceback. */
    PyObject *stb = Py_XNewRef(h->source_traceback);
    int add_stb = stb != NULL ? PyObject_IsTrue(stb) : 0;
    if (add_stb < 0 ||
        (add_stb == 1 && PyDict_SetItem(context, st->str_source_traceback, stb) < 0)) {
        Py_XDECREF(stb);
        goto done;
    }
    Py_XDECREF(stb);
    PyObject *res = al__loop_call_exception_handler(h->loop, context);
    if (res != NULL) {
        Py_DECREF(res);
        rc = 0;
    }
done:
    Py_XDECREF(exc);
    Py_XDECREF(cb);
    Py_XDECREF(msg);
    Py_XDECREF(context);
    return rc;
}

/* asyncio.sleep()'s timer callback, futures._set_result_unless_cancelled:
   the same two method calls, made without entering a Python frame. */
static PyObject *run_set_result_unless_cancelled(al_state *st, PyObject *fut, PyObject *result)
{
    PyObject *res = PyObject_CallMethodNoArgs(fut, st->str_cancelled);
    if (res == NULL) {
        return NULL;
    }
    int cancelled = PyObject_IsTrue(res);
    Py_DECREF(res);
    if (cancelled != 0) {
        return cancelled < 0 ? NULL : Py_NewRef(Py_None);
    }
    return PyObject_CallMethodOneArg(fut, st->str_set_result, result);
}

/* The callback with its arguments, in whatever context is current. */
static PyObject *handle_call(HandleObject *h)
{
    if (h->args_kind == ARGS_TWO && h->loop != NULL &&
        h->callback == h->loop->state->set_result_unless_cancelled) {
        return run_set_result_unless_cancelled(h->loop->state, h->args[0],
                                               ((TimerHandleObject *)h)->arg2);
    }
    if (h->args_kind != ARGS_TUPLE) {
        /* ARGS_ONE/ARGS_TWO: args[0] and arg2 lie next to each other. */
        return PyObject_Vectorcall(h->callback, h->args, h->args_kind, NULL);
    }
    return PyObject_Vectorcall(h->callback, &PyTuple_GET_ITEM(h->args[0], 0),
                               PyTuple_GET_SIZE(h->args[0]), NULL);
}

/* context= given something other than a contextvars.Context: asyncio calls
   its run(callback, *args), so an object with such a method works there and
   one without fails with AttributeError. The same here. */
static PyObject *handle_call_via_run(HandleObject *h, PyObject *ctx)
{
    PyObject *run = PyObject_GetAttrString(ctx, "run"); /* a cold path */
    if (run == NULL) {
        return NULL;
    }
    Py_ssize_t n = h->args_kind == ARGS_TUPLE ? PyTuple_GET_SIZE(h->args[0]) : h->args_kind;
    PyObject *const *args = h->args_kind == ARGS_TUPLE ? &PyTuple_GET_ITEM(h->args[0], 0) : h->args;
    PyObject *argv = PyTuple_New(n + 1);
    PyObject *res = NULL;
    if (argv != NULL) {
        PyTuple_SET_ITEM(argv, 0, Py_NewRef(h->callback));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyTuple_SET_ITEM(argv, i + 1, Py_NewRef(args[i]));
        }
        res = PyObject_Call(run, argv, NULL);
        Py_DECREF(argv);
    }
    Py_DECREF(run);
    return res;
}

/* Runs the callback in its Context. 0: done (errors went to the exception
   handler); -1: an exception must leave the loop. */
int al__handle_run(HandleObject *h)
{
    PyObject *ctx = h->context; /* borrowed: h is kept alive by the caller */
    PyObject *res = NULL;
    if (h->callback == NULL) {
        return 0; /* cleared by the GC or cancelled */
    }
    /* A depth, not a flag: h._run() from inside its own callback nests, and
       cancel() must not clear the arguments the outer call still uses. */
    h->running++;
    if (!PyContext_CheckExact(ctx)) {
        res = handle_call_via_run(h, ctx);
    }
    else if (PyContext_Enter(ctx) == 0) {
        res = handle_call(h);
        if (PyContext_Exit(ctx) < 0) {
            Py_CLEAR(res);
        }
    }
    int rc = 0;
    if (res != NULL) {
        Py_DECREF(res);
    }
    else {
        rc = handle_report_error(h);
    }
    if (--h->running == 0 && h->cancelled) {
        handle_clear_call(h); /* cancel() from inside its own callback */
    }
    return rc;
}

/* --- Python-visible methods ------------------------------------------- */

static PyObject *Handle_cancel(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->cancelled) {
        Py_RETURN_NONE;
    }
    h->cancelled = 1;
    if (h->scheduled && h->loop != NULL) {
        /* Stays in the heap until the loop discards it (lazily, as asyncio);
           its callback and arguments are released below. */
        h->loop->timers.cancelled++;
    }
    if (h->loop != NULL && h->loop->debug && h->repr == NULL) {
        /* Keep a representation with the callback, as asyncio does. */
        PyObject *r = PyObject_Repr((PyObject *)h);
        if (r == NULL) {
            return NULL;
        }
        h->repr = r;
    }
    if (!h->running) {
        handle_clear_call(h);
    }
    /* Read again: releasing the callback may have run code (a __del__) that
       closed the loop and emptied its heap. */
    if (h->scheduled && h->loop != NULL && al__heap_wants_compaction(&h->loop->timers)) {
        /* The heap's reference to h goes too; the caller's keeps it. */
        Py_INCREF(h);
        al__heap_compact(&h->loop->timers);
        Py_DECREF(h);
    }
    Py_RETURN_NONE;
}

/* h.cancel() for a handle of our own types, without the method call. */
int al__handle_cancel(HandleObject *h)
{
    PyObject *r = Handle_cancel(h, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static PyObject *Handle_cancelled(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *Handle_get_context(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    handle_share_context(h);
    return Py_NewRef(h->context ? h->context : Py_None);
}

static PyObject *Handle_run_method(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->cancelled || h->callback == NULL) {
        Py_RETURN_NONE;
    }
    /* Handles whose callbacks are other handles' _run recurse in C only:
       bound the depth as Python calls are. */
    if (h->running == UINT16_MAX) {
        PyErr_SetString(PyExc_RecursionError, "maximum recursion depth exceeded");
        return NULL;
    }
    if (Py_EnterRecursiveCall(" while running a handle")) {
        return NULL;
    }
    Py_INCREF(h);
    int rc = al__handle_run(h);
    Py_DECREF(h);
    Py_LeaveRecursiveCall();
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static double timer_when(HandleObject *h)
{
    return h->when_is_nan ? Py_NAN : ((TimerHandleObject *)h)->deadline;
}

/* when() as asyncio returns it: the object given, if not a float. */
static PyObject *Handle_when(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    PyObject *when = ((TimerHandleObject *)h)->when_obj;
    return when != NULL ? Py_NewRef(when) : PyFloat_FromDouble(timer_when(h));
}

static PyObject *Handle_repr(HandleObject *h)
{
    if (h->repr != NULL && h->cancelled) {
        return Py_NewRef(h->repr);
    }
    if (h->loop == NULL) {
        return PyUnicode_FromString("<Handle>");
    }
    al_state *st = h->loop->state;
    PyObject *parts = PyList_New(0), *item = NULL, *sep = NULL, *joined = NULL, *res = NULL;
    if (parts == NULL) {
        return NULL;
    }
    if ((item = PyUnicode_FromString(Py_TYPE(h) == st->TimerHandleType ? "TimerHandle"
                                                                       : "Handle")) == NULL ||
        PyList_Append(parts, item) < 0) {
        goto done;
    }
    Py_CLEAR(item);
    if (h->cancelled) {
        if ((item = PyUnicode_FromString("cancelled")) == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    if (Py_TYPE(h) == st->TimerHandleType) {
        PyObject *when = Handle_when(h, NULL);
        if (when == NULL) {
            goto done;
        }
        item = PyUnicode_FromFormat("when=%S", when);
        Py_DECREF(when);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    if (h->callback != NULL && h->callback != Py_None && h->loop != NULL) {
        if ((item = handle_format_source(st, h)) == NULL || PyList_Append(parts, item) < 0) {
            goto done;
        }
        Py_CLEAR(item);
    }
    /* Strong references throughout: the list and its items can change
       under us (a __getitem__ that resets _source_traceback). */
    PyObject *stb = Py_XNewRef(h->source_traceback);
    if (stb != NULL && PyList_Check(stb) && PyList_GET_SIZE(stb) > 0) {
        PyObject *frame = Py_NewRef(PyList_GET_ITEM(stb, PyList_GET_SIZE(stb) - 1));
        PyObject *file = PySequence_GetItem(frame, 0);
        PyObject *line = file ? PySequence_GetItem(frame, 1) : NULL;
        if (line != NULL) {
            item = PyUnicode_FromFormat("created at %S:%S", file, line);
        }
        Py_DECREF(frame);
        Py_XDECREF(file);
        Py_XDECREF(line);
        if (item == NULL || PyList_Append(parts, item) < 0) {
            Py_DECREF(stb);
            goto done;
        }
        Py_CLEAR(item);
    }
    Py_XDECREF(stb);
    if ((sep = PyUnicode_FromString(" ")) == NULL ||
        (joined = PyUnicode_Join(sep, parts)) == NULL) {
        goto done;
    }
    res = PyUnicode_FromFormat("<%U>", joined);
done:
    Py_XDECREF(item);
    Py_XDECREF(sep);
    Py_XDECREF(joined);
    Py_DECREF(parts);
    return res;
}

static PyObject *Handle_get_args(HandleObject *h, void *Py_UNUSED(closure))
{
    if (h->callback == NULL) {
        Py_RETURN_NONE;
    }
    return handle_args(h);
}

static PyObject *Handle_get_callback(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->callback ? h->callback : Py_None);
}

static PyObject *Handle_get_cancelled(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *Handle_get_loop(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->loop ? (PyObject *)h->loop : Py_None);
}

static PyObject *Handle_get_source_traceback(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->source_traceback ? h->source_traceback : Py_None);
}

static int Handle_set_source_traceback(HandleObject *h, PyObject *value, void *Py_UNUSED(closure))
{
    Py_XSETREF(h->source_traceback, Py_XNewRef(value == Py_None ? NULL : value));
    return 0;
}

static PyObject *Timer_get_scheduled(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(h->scheduled);
}

static PyObject *Timer_get_when(HandleObject *h, void *Py_UNUSED(closure))
{
    return Handle_when(h, NULL);
}

/* asyncio's TimerHandle orders and hashes by `when` as it was given; equality
   also compares the callback, arguments and cancelled state. Comparing
   handles is no hot path (the heap compares its own keys): the whens are
   compared as Python objects, so an int or NaN deadline behaves as on
   asyncio. */
static int timer_when_compare(HandleObject *a, HandleObject *b, int op)
{
    PyObject *x = Handle_when(a, NULL), *y = x ? Handle_when(b, NULL) : NULL;
    int r = y ? PyObject_RichCompareBool(x, y, op) : -1;
    Py_XDECREF(x);
    Py_XDECREF(y);
    return r;
}

/* asyncio's TimerHandle.__eq__, in its order: when, callback, args, state. */
static int timer_eq(HandleObject *a, HandleObject *b)
{
    if (a == b) {
        return 1;
    }
    int eq = timer_when_compare(a, b, Py_EQ);
    if (eq > 0) {
        PyObject *x = Handle_get_callback(a, NULL), *y = Handle_get_callback(b, NULL);
        eq = PyObject_RichCompareBool(x, y, Py_EQ);
        Py_DECREF(x);
        Py_DECREF(y);
    }
    if (eq > 0) {
        PyObject *x = Handle_get_args(a, NULL), *y = x ? Handle_get_args(b, NULL) : NULL;
        eq = y ? PyObject_RichCompareBool(x, y, Py_EQ) : -1;
        Py_XDECREF(x);
        Py_XDECREF(y);
    }
    return eq > 0 ? a->cancelled == b->cancelled : eq;
}

static PyObject *Timer_richcompare(HandleObject *a, PyObject *other, int op)
{
    if (Py_TYPE(other) != Py_TYPE(a)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    HandleObject *b = (HandleObject *)other;
    if (op == Py_EQ || op == Py_NE) {
        int eq = timer_eq(a, b);
        if (eq < 0) {
            return NULL;
        }
        return PyBool_FromLong(op == Py_EQ ? eq : !eq);
    }
    /* <, >: the whens compared; <=, >=: that, or __eq__. */
    int strict = op == Py_LT || op == Py_LE ? Py_LT : Py_GT;
    int r = timer_when_compare(a, b, strict);
    if (r == 0 && op != strict) {
        r = timer_eq(a, b);
    }
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static Py_hash_t Timer_hash(HandleObject *h)
{
    PyObject *w = Handle_when(h, NULL);
    if (w == NULL) {
        return -1;
    }
    Py_hash_t r = PyObject_Hash(w);
    Py_DECREF(w);
    return r;
}

static PyMethodDef Handle_methods[] = {
    {"cancel", (PyCFunction)Handle_cancel, METH_NOARGS, "Cancel the callback."},
    {"cancelled", (PyCFunction)Handle_cancelled, METH_NOARGS,
     "Return True if the callback was cancelled."},
    {"get_context", (PyCFunction)Handle_get_context, METH_NOARGS,
     "Return the contextvars.Context the callback runs in."},
    {"_run", (PyCFunction)Handle_run_method, METH_NOARGS, NULL},
    {NULL, NULL},
};

static PyMethodDef Timer_methods[] = {
    {"when", (PyCFunction)Handle_when, METH_NOARGS,
     "Return the scheduled time, in loop.time() seconds."},
    {NULL, NULL},
};

/* asyncio's Handle._repr: the representation kept by cancel() in debug mode. */
static PyObject *Handle_get_repr_attr(HandleObject *h, void *Py_UNUSED(closure))
{
    return Py_NewRef(h->repr ? h->repr : Py_None);
}

static PyGetSetDef Handle_getset[] = {
    {"_callback", (getter)Handle_get_callback, NULL, NULL, NULL},
    {"_args", (getter)Handle_get_args, NULL, NULL, NULL},
    {"_cancelled", (getter)Handle_get_cancelled, NULL, NULL, NULL},
    {"_loop", (getter)Handle_get_loop, NULL, NULL, NULL},
    {"_context", (getter)Handle_get_context, NULL, NULL, NULL},
    {"_repr", (getter)Handle_get_repr_attr, NULL, NULL, NULL},
    {"_source_traceback", (getter)Handle_get_source_traceback, (setter)Handle_set_source_traceback,
     NULL, NULL},
    {NULL},
};

static PyGetSetDef Timer_getset[] = {
    {"_scheduled", (getter)Timer_get_scheduled, NULL, NULL, NULL},
    {"_when", (getter)Timer_get_when, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef Handle_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(HandleObject, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot Handle_slots[] = {
    {Py_tp_dealloc, Handle_dealloc},
    {Py_tp_traverse, al__handle_traverse},
    {Py_tp_clear, Handle_clear},
    {Py_tp_repr, Handle_repr},
    {Py_tp_methods, Handle_methods},
    {Py_tp_getset, Handle_getset},
    {Py_tp_members, Handle_members},
    {Py_tp_doc, "Object returned by callback registration methods."},
    {0, NULL},
};

PyType_Spec al__handle_spec = {
    .name = "asyncloop._core.Handle",
    .basicsize = sizeof(HandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Handle_slots,
};

static PyType_Slot Timer_slots[] = {
    {Py_tp_dealloc, Handle_dealloc},
    {Py_tp_traverse, al__handle_traverse},
    {Py_tp_clear, Handle_clear},
    {Py_tp_methods, Timer_methods},
    {Py_tp_getset, Timer_getset},
    {Py_tp_richcompare, Timer_richcompare},
    {Py_tp_hash, Timer_hash},
    {Py_tp_doc, "Object returned by timed callback registration methods."},
    {0, NULL},
};

PyType_Spec al__timer_handle_spec = {
    .name = "asyncloop._core.TimerHandle",
    .basicsize = sizeof(TimerHandleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Timer_slots,
};

/* TimerHandle's second inline argument must follow the first in memory. */
_Static_assert(offsetof(TimerHandleObject, arg2) ==
                   offsetof(HandleObject, args) + sizeof(PyObject *),
               "arg2 must be contiguous with args[0]");
