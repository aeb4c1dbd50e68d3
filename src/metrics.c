/* loop.metrics(), the slow-callback hook and the timer lateness histogram.

   The counters are kept by the loop as it runs, at no cost it can measure:
   they add no clock read. Busy time is the running time (one read as
   run_forever starts and ends) minus the time blocked in poll, taken from
   the clock libuv updates as uv_run starts and as epoll_wait returns
   (milliseconds: a sum of many short polls is right on average). Lateness
   is taken against the clock read that pops due timers; callbacks are
   timed one by one only with the hook on or in debug mode, which times
   them already. */
#include "internal.h"

/* --- lateness histogram ---------------------------------------------------- */

/* The upper bound of bucket b, in seconds: the next exponent/mantissa step. */
static double late_upper(int b)
{
    uint64_t bits = ((uint64_t)b + AL_LATE_BASE + 1) << 50;
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t late_count(const al_metrics *m)
{
    uint64_t n = 0;
    for (int b = 0; b < AL_LATE_BUCKETS; b++) {
        n += m->late_hist[b];
    }
    return n;
}

/* The q-quantile: the upper bound of its bucket, at most the maximum. */
static double late_quantile(const al_metrics *m, uint64_t count, double q)
{
    if (count == 0) {
        return 0.0;
    }
    uint64_t rank = (uint64_t)ceil(q * (double)count);
    if (rank == 0) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (int b = 0; b < AL_LATE_BUCKETS; b++) {
        seen += m->late_hist[b];
        if (seen >= rank) {
            double up = late_upper(b);
            return up < m->late_max ? up : m->late_max;
        }
    }
    return m->late_max;
}

/* --- per-loop state -------------------------------------------------------- */

void al__metrics_loop_init(LoopObject *loop)
{
    al_metrics *m = &loop->metrics;
    m->serial = ++loop->state->metrics_loop_serial;
    for (int i = 0; i < AL_SLOWEST; i++) {
        m->slowest_dt[i] = -1.0;
    }
}

/* Runs just before libuv polls, its clock updated as uv_run began. */
static void on_prepare(uv_prepare_t *prepare)
{
    LoopObject *loop = prepare->data;
    loop->metrics.poll_ms = uv_now(&loop->uv);
}

void al__metrics_uv_init(LoopObject *loop)
{
    uv_prepare_t *p = &loop->metrics.prepare;
    uv_prepare_init(&loop->uv, p);
    p->data = loop;
    uv_prepare_start(p, on_prepare);
    uv_unref((uv_handle_t *)p); /* keeps nothing alive */
    loop->state->live_uv_handles++;
}

int al__metrics_traverse(LoopObject *loop, visitproc visit, void *arg)
{
    Py_VISIT(loop->metrics.hook);
    return 0;
}

void al__metrics_clear(LoopObject *loop)
{
    al_metrics *m = &loop->metrics;
    Py_CLEAR(m->hook);
    m->timing = 0;
    for (int i = 0; i < AL_SLOWEST; i++) {
        Py_CLEAR(m->slowest_repr[i]);
    }
}

/* --- the slow-callback hook ------------------------------------------------ */

static PyObject *handle_text(LoopObject *loop, HandleObject *h)
{
    /* asyncio's _format_handle: the task for a task's step, as its slow
       callback warning shows it. */
    PyObject *r = PyObject_CallOneArg(loop->state->format_handle, (PyObject *)h);
    if (r != NULL && !PyUnicode_Check(r)) {
        Py_SETREF(r, PyObject_Str(r));
    }
    return r;
}

/* The hook failed: the exception handler hears of it, as of a callback
   that raised; SystemExit and KeyboardInterrupt end the run. */
static int hook_failed(LoopObject *loop, HandleObject *h, PyObject *hook)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyObject *exc = al__err_fetch();
    PyObject *ctx =
        Py_BuildValue("{s:s,s:O,s:O,s:O}", "message", "Exception in slow callback hook",
                      "exception", exc, "handle", (PyObject *)h, "hook", hook ? hook : Py_None);
    Py_DECREF(exc);
    PyObject *r = ctx ? al__loop_call_exception_handler(loop, ctx) : NULL;
    Py_XDECREF(ctx);
    if (r == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        PyErr_WriteUnraisable((PyObject *)loop);
        return 0;
    }
    Py_DECREF(r);
    return 0;
}

int al__metrics_timed(LoopObject *loop, HandleObject *h, double dt)
{
    al_metrics *m = &loop->metrics;
    int slow = m->hook != NULL && dt >= m->hook_threshold;
    int top = dt > m->slowest_dt[AL_SLOWEST - 1];
    if (!slow && !top) {
        return 0;
    }
    /* The repr only now: a new slowest, or a call of the hook. */
    PyObject *text = handle_text(loop, h);
    if (text == NULL) {
        return hook_failed(loop, h, m->hook);
    }
    if (top) {
        int i = AL_SLOWEST - 1;
        Py_XDECREF(m->slowest_repr[i]);
        for (; i > 0 && m->slowest_dt[i - 1] < dt; i--) {
            m->slowest_dt[i] = m->slowest_dt[i - 1];
            m->slowest_repr[i] = m->slowest_repr[i - 1];
        }
        m->slowest_dt[i] = dt;
        m->slowest_repr[i] = Py_NewRef(text);
    }
    int rc = 0;
    if (slow) {
        PyObject *hook = Py_NewRef(m->hook); /* it may replace itself */
        PyObject *took = PyFloat_FromDouble(dt);
        PyObject *argv[2] = {text, took};
        PyObject *r = took ? PyObject_Vectorcall(hook, argv, 2, NULL) : NULL;
        Py_XDECREF(took);
        if (r == NULL) {
            rc = hook_failed(loop, h, hook);
        }
        Py_DECREF(hook);
        Py_XDECREF(r);
    }
    Py_DECREF(text);
    return rc;
}

PyObject *al__loop_set_slow_callback_hook(LoopObject *self, PyObject *const *args, size_t nargsf,
                                          PyObject *kwnames)
{
    static const char *const names[] = {"threshold", "hook"};
    PyObject *given[2] = {NULL, NULL}; /* borrowed */
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "set_slow_callback_hook() takes from 1 to 2 positional arguments but %zd "
                     "were given",
                     nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        given[i] = args[i];
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int j = 0;
        while (j < 2 && PyUnicode_CompareWithASCIIString(key, names[j]) != 0) {
            j++;
        }
        if (j == 2) {
            PyErr_Format(PyExc_TypeError,
                         "set_slow_callback_hook() got an unexpected keyword argument '%U'", key);
            return NULL;
        }
        if (given[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "set_slow_callback_hook() got multiple values for argument '%s'",
                         names[j]);
            return NULL;
        }
        given[j] = args[nargs + k];
    }
    if (given[0] == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "set_slow_callback_hook() missing required argument 'threshold'");
        return NULL;
    }
    PyObject *threshold = given[0];
    PyObject *hook = given[1] == Py_None ? NULL : given[1];
    if (hook != NULL && !PyCallable_Check(hook)) {
        PyErr_Format(PyExc_TypeError, "A callable object or None is expected, got %R", hook);
        return NULL;
    }
    al_metrics *m = &self->metrics;
    if (threshold == Py_None) {
        if (hook != NULL) {
            PyErr_SetString(PyExc_TypeError, "a hook needs a threshold, not None");
            return NULL;
        }
        m->timing = 0;
        Py_CLEAR(m->hook);
        Py_RETURN_NONE;
    }
    if (PyBool_Check(threshold) || !(PyLong_Check(threshold) || PyFloat_Check(threshold))) {
        PyErr_Format(PyExc_TypeError, "threshold must be a number of seconds or None, not %s",
                     Py_TYPE(threshold)->tp_name);
        return NULL;
    }
    double t = PyFloat_AsDouble(threshold);
    if (t == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!(t >= 0)) {
        PyErr_Format(PyExc_ValueError, "threshold must be a non-negative number of seconds, got %R",
                     threshold);
        return NULL;
    }
    m->hook_threshold = t;
    Py_XSETREF(m->hook, Py_XNewRef(hook));
    m->timing = 1;
    Py_RETURN_NONE;
}

PyObject *al__loop_count_server(LoopObject *self, PyObject *arg)
{
    Py_ssize_t delta = PyLong_AsSsize_t(arg);
    if (delta == -1 && PyErr_Occurred()) {
        return NULL;
    }
    self->metrics.servers += delta;
    if (self->metrics.servers < 0) {
        self->metrics.servers = 0;
    }
    Py_RETURN_NONE;
}

/* --- the snapshot ---------------------------------------------------------- */

static PyStructSequence_Field metrics_fields[] = {
    {"time", "the loop's clock (loop.time()) as the snapshot was taken"},
    {"loop_id", "tells loops apart: utilization() checks previous= with it"},
    {"iterations", "loop iterations"},
    {"callbacks", "callbacks taken from the ready queue (timers included)"},
    {"idle", "seconds blocked in poll, waiting for I/O or a timer"},
    {"busy", "seconds running, not blocked in poll"},
    {"longest_callback", "what the slowest timed callback was (str), or None"},
    {"longest_callback_duration", "its duration in seconds (0.0: none timed)"},
    {"slowest_callbacks", "((duration, repr), ...): the 5 slowest timed callbacks, slowest first"},
    {"ready", "callbacks in the ready queue now"},
    {"timers", "pending (not cancelled) timers now"},
    {"transports", "open transports now"},
    {"transports_peak", "the most transports open at once"},
    {"servers", "sockets being served now (create_server)"},
    {"readers", "fds watched for reading now (add_reader, sock_*, servers)"},
    {"writers", "fds watched for writing now"},
    {"bytes_received", "bytes received by the loop's transports"},
    {"bytes_sent", "bytes sent by the loop's transports"},
    {"connections_accepted", "transports made for connections a server accepted"},
    {"connections_made", "transports made for other connections (create_connection, ...)"},
    {"timers_run", "timers run, whose lateness the histogram holds"},
    {"lateness_p50", "median timer lateness in seconds (bucket upper bound)"},
    {"lateness_p90", "90th percentile of timer lateness"},
    {"lateness_p99", "99th percentile of timer lateness"},
    {"lateness_max", "the largest timer lateness"},
    {"lateness_histogram",
     "((upper_bound_seconds, count), ...): the non-empty log-scale buckets, 4 per octave "
     "from 2**-20 s"},
    {NULL, NULL},
};

#define N_METRICS_FIELDS ((int)(sizeof(metrics_fields) / sizeof(metrics_fields[0])) - 1)

static PyStructSequence_Desc metrics_desc = {
    "asyncloop._core.LoopMetrics",
    "A snapshot of an event loop's counters since its creation (loop.metrics()).",
    metrics_fields,
    N_METRICS_FIELDS,
};

int al__metrics_init(PyObject *module, al_state *st)
{
    st->MetricsType = PyStructSequence_NewType(&metrics_desc);
    if (st->MetricsType == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, "LoopMetrics", (PyObject *)st->MetricsType);
}

static PyObject *slowest_tuple(const al_metrics *m)
{
    int n = 0;
    while (n < AL_SLOWEST && m->slowest_repr[n] != NULL) {
        n++;
    }
    PyObject *t = PyTuple_New(n);
    for (int i = 0; t != NULL && i < n; i++) {
        PyObject *item = Py_BuildValue("(dO)", m->slowest_dt[i], m->slowest_repr[i]);
        if (item == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, item);
    }
    return t;
}

static PyObject *histogram_tuple(const al_metrics *m)
{
    PyObject *list = PyList_New(0);
    for (int b = 0; list != NULL && b < AL_LATE_BUCKETS; b++) {
        if (m->late_hist[b] == 0) {
            continue;
        }
        PyObject *item = Py_BuildValue("(dK)", late_upper(b), (unsigned long long)m->late_hist[b]);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(list);
            break;
        }
        Py_DECREF(item);
    }
    if (list == NULL) {
        return NULL;
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

PyObject *al__loop_metrics(LoopObject *self, PyObject *Py_UNUSED(ignored))
{
    const al_metrics *m = &self->metrics;
    double now = al__now();
    /* A snapshot from another thread may come while the loop runs, or
       while it is blocked in poll. */
    double running = m->run_time + (m->run_t0 > 0 ? now - m->run_t0 : 0.0);
    double idle = (double)m->idle_ms / 1e3;
    if (self->polling && m->poll_ms != 0) {
        /* Blocked now (a snapshot from another thread). */
        double since = now - (double)m->poll_ms / 1e3;
        idle += since > 0 ? since : 0.0;
    }
    double busy = running > idle ? running - idle : 0.0;
    Py_ssize_t readers, writers;
    al__poll_count(self, &readers, &writers);
    PyObject *longest = m->slowest_repr[0] ? m->slowest_repr[0] : Py_None;
    uint64_t timers_run = late_count(m);
    PyObject *v[N_METRICS_FIELDS] = {
        PyFloat_FromDouble(now),
        PyLong_FromUnsignedLongLong(m->serial),
        PyLong_FromUnsignedLongLong(m->iterations),
        PyLong_FromUnsignedLongLong(m->callbacks),
        PyFloat_FromDouble(idle),
        PyFloat_FromDouble(busy),
        Py_NewRef(longest),
        PyFloat_FromDouble(m->slowest_repr[0] ? m->slowest_dt[0] : 0.0),
        slowest_tuple(m),
        PyLong_FromSize_t(self->ready.len),
        PyLong_FromSsize_t(self->timers.len - self->timers.cancelled),
        PyLong_FromSsize_t(m->transports),
        PyLong_FromSsize_t(m->transports_peak),
        PyLong_FromSsize_t(m->servers),
        PyLong_FromSsize_t(readers),
        PyLong_FromSsize_t(writers),
        PyLong_FromUnsignedLongLong(m->bytes_in),
        PyLong_FromUnsignedLongLong(m->bytes_out),
        PyLong_FromUnsignedLongLong(m->accepted),
        PyLong_FromUnsignedLongLong(m->connected),
        PyLong_FromUnsignedLongLong(timers_run),
        PyFloat_FromDouble(late_quantile(m, timers_run, 0.50)),
        PyFloat_FromDouble(late_quantile(m, timers_run, 0.90)),
        PyFloat_FromDouble(late_quantile(m, timers_run, 0.99)),
        PyFloat_FromDouble(m->late_max),
        histogram_tuple(m),
    };
    PyObject *snap = PyStructSequence_New(self->state->MetricsType);
    for (int i = 0; i < N_METRICS_FIELDS; i++) {
        if (v[i] == NULL || snap == NULL) {
            for (int j = 0; j < N_METRICS_FIELDS; j++) {
                Py_XDECREF(v[j]);
            }
            Py_XDECREF(snap);
            return NULL;
        }
    }
    for (int i = 0; i < N_METRICS_FIELDS; i++) {
        PyStructSequence_SetItem(snap, i, v[i]);
    }
    return snap;
}
