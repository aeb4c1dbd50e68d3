/* Declarations shared between the C files of asyncloop._core. */
#ifndef ASYNCLOOP_INTERNAL_H
#define ASYNCLOOP_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <uv.h>

#if PY_VERSION_HEX < 0x030A0000
#error "asyncloop needs CPython 3.10 or newer"
#endif

/* A handle keeps this many positional arguments inline; more go to a tuple. */
#define HANDLE_INLINE_ARGS 3
/* Freed handles kept for reuse. Handles: sized for the burst of
   call_soon_threadsafe posts another thread makes in one GIL switch
   interval (5 ms: up to ~70 000 posts), whose handles the loop then frees
   at once; past the cap each one costs a pymalloc free and alloc, and the
   emptied arenas an munmap and page faults (measured: 16384 -> 65536, 2834
   -> 2618 instructions per callback, ~500 -> ~1 page faults per 60 000).
   At most 6 MB; what stays unused for a second is trimmed back to
   HANDLE_FREELIST_KEEP (1.5 MB, al__handle_free_list_trim). TimerHandles:
   2 MB. */
#define HANDLE_FREELIST_MAX 65536
#define HANDLE_FREELIST_KEEP 16384
#define TIMER_FREELIST_MAX 16384
/* asyncio's MAXIMUM_SELECT_TIMEOUT: never block longer than a day at once. */
#define MAX_POLL_TIMEOUT_MS (24LL * 3600 * 1000)

typedef struct al_loop LoopObject;
typedef struct al_handle HandleObject;
typedef struct al_io al_io;
typedef struct al_idle al_idle;

/* poll.c: a socket watcher left with nothing to wait for keeps polling
   until the loop's next poll, so that the next wait on it (the usual
   sock_recv loop) costs no epoll_ctl; linked in loop->poll_idle. A released
   transport poll (al_tpoll) does too, muted, so that the close that usually
   follows costs uv_close's one EPOLL_CTL_DEL instead of two. */
struct al_idle {
    al_idle *prev;
    al_idle *next;
    char tpoll; /* an al_tpoll's (released by its transport), else a watcher's */
};

/* Every object that owns a libuv I/O handle of a loop (transports, servers,
   fd watchers) links one of these into its loop, so that closing the loop
   can detach them: the object stays usable as a Python object (closed, or
   warning when collected), but its libuv handle is closed with the loop.
   The libuv handle itself is allocated apart from the Python object, so
   that either can go first (see docs/architecture.md). */
struct al_io {
    al_io *prev;
    al_io *next;
    /* Called once by Loop.close(): close the libuv handle, drop whatever
       reference the loop's activity held on the object. */
    void (*loop_closing)(al_io *io);
    /* The object, while its libuv activity holds a reference to it (as
       asyncio's selector holds a reading transport's bound methods); NULL
       otherwise. The loop's traverse reports that reference, so that an
       unclosed loop and its transports are collected together. */
    PyObject *held;
};

/* How sock_recv sizes a big read of one fd (poll.c, recv_big). */
typedef struct {
    uint32_t hint; /* the last big read's size, or 0 */
    char probe;    /* the last read fell short of hint: size the next by FIONREAD */
    char misses;   /* reads short of hint in a row */
} al_recv_hint;

/* Module state (PEP 489/573): types, cached asyncio objects, interned names. */
typedef struct {
    PyTypeObject *LoopType;
    PyTypeObject *HandleType;
    PyTypeObject *TimerHandleType;

    PyObject *Future;                      /* asyncio.Future */
    PyObject *Task;                        /* asyncio.Task */
    PyObject *ensure_future;               /* asyncio.ensure_future */
    PyObject *isfuture;                    /* asyncio.isfuture */
    PyObject *iscoroutine;                 /* asyncio.iscoroutine */
    PyObject *iscoroutinefunction;         /* asyncio.iscoroutinefunction */
    PyObject *get_running_loop;            /* asyncio.events._get_running_loop */
    PyObject *set_running_loop;            /* asyncio.events._set_running_loop */
    PyObject *run_until_complete_cb;       /* asyncio.base_events._run_until_complete_cb */
    PyObject *format_handle;               /* asyncio.base_events._format_handle */
    PyObject *format_callback_source;      /* asyncio.format_helpers */
    PyObject *extract_stack;               /* asyncio.format_helpers.extract_stack */
    PyObject *set_task_name;               /* asyncio.tasks._set_task_name, or NULL */
    PyObject *logger;                      /* asyncio.log.logger */
    PyObject *ThreadPoolExecutor;          /* concurrent.futures.ThreadPoolExecutor, on first use */
    PyObject *wrap_future;                 /* asyncio.wrap_future */
    PyObject *set_result_unless_cancelled; /* asyncio.futures._set_result_unless_cancelled */
    PyObject *sys_module;
    PyObject *signal_module;
    PyObject *debug_stack_depth; /* asyncio.constants.DEBUG_STACK_DEPTH */
    PyObject *coroutines_module; /* asyncio.coroutines (_is_debug_mode) */
    PyObject *empty_tuple;
    PyObject *kwnames_loop;         /* ("loop",) */
    PyObject *kwnames_loop_name;    /* ("loop", "name") */
    PyObject *kwnames_loop_context; /* ("loop", "context") */
    PyObject *kwnames_loop_name_context;
    PyObject *kwnames_context; /* ("context",) */
    PyObject *kwnames_name;    /* ("name",) */
    PyObject *kwnames_name_context;

    /* What the running CPython's BaseEventLoop.create_task accepts. */
    int create_task_has_context;
    int create_task_varkw;
    int format_source_has_debug; /* _format_callback_source(debug=) */

    PyObject *str_context;
    PyObject *str_context_seen;     /* the "context" object callers pass, learned */
    PyObject *kwnames_context_seen; /* the ("context",) tuple of asyncio's C Task */
    /* al__loop_defer's callables: type.name per (type, name), strong refs */
    struct {
        PyObject *type, *name, *cb;
    } defer_cbs[8];
    PyObject *str_loop;
    PyObject *str_name;
    PyObject *str_call_exception_handler;
    PyObject *str_message;
    PyObject *str_exception;
    PyObject *str_handle;
    PyObject *str_source_traceback;
    PyObject *str_log_destroy_pending;
    PyObject *str_add_done_callback;
    PyObject *str_remove_done_callback;
    PyObject *str_result;
    PyObject *str_exception_meth;
    PyObject *str_done;
    PyObject *str_cancelled;
    PyObject *str_set_name;
    PyObject *str_set_result;
    PyObject *str_submit;
    PyObject *str_shutdown;
    PyObject *str_wait;
    PyObject *str_debug;
    PyObject *str_firstiter;
    PyObject *str_finalizer;
    PyObject *str_firstiter_hook;
    PyObject *str_finalizer_hook;
    PyObject *str_set_wakeup_fd;
    PyObject *str_warn_on_full_buffer;
    PyObject *str_signal;
    PyObject *str_siginterrupt;
    PyObject *str_valid_signals;
    PyObject *str_default_int_handler;
    PyObject *str_handle_signal;
    PyObject *str_set_coro_depth;
    PyObject *str_get_coro_depth;
    PyObject *str_get_asyncgen_hooks;
    PyObject *str_set_asyncgen_hooks;
    PyObject *str_is_finalizing;

    /* poll.c */
    PyTypeObject *WatcherType;  /* FdWatcher: one uv_poll_t per watched fd */
    PyTypeObject *SockDoneType; /* a sock_* future's done callback */
    PyTypeObject *SockCallType; /* asyncloop.Loop.sock_*()'s coroutine */
    PyObject *partial;          /* functools.partial */
    PyObject *SSLSocket;        /* ssl.SSLSocket, or NULL without ssl */
    PyObject *socket_type;      /* socket.socket: its recv/send are made here */
    char *recv_scratch;         /* RawMalloc'd, for sock_recv's syscalls */
    PyObject *recv_spare;       /* sock_recv's bytes object of a read that would block */
    PyObject *sock_family;      /* _socket.socket's family member, on first use (poll.c) */
    PyObject *sock_timeout;     /* _socket.socket's timeout getset, on first use (poll.c) */
    al_recv_hint *recv_hints;   /* RawMalloc'd, by fd: sock_recv's sizing (poll.c) */
    int recv_hints_len;
    al_recv_hint recv_hint; /* for an fd beyond the table */
    PyObject *str_gettimeout;
    PyObject *str_cancel;
    PyObject *str_fileno;
    PyObject *str_recv;
    PyObject *str_recv_into;
    PyObject *str_send;
    PyObject *str_connect;
    PyObject *str_accept;
    PyObject *str_set_exception;
    PyObject *str_sock_recv;       /* "_sock_recv" */
    PyObject *str_sock_recv_into;  /* "_sock_recv_into" */
    PyObject *str_sock_sendall;    /* "_sock_sendall" */
    PyObject *str_sock_connect_cb; /* "_sock_connect_cb" */
    PyObject *str_sock_accept_cb;  /* "_sock_accept" */
    PyObject *str_sock_read_done;  /* "_sock_read_done" */
    PyObject *str_sock_write_done; /* "_sock_write_done" */
    /* poll.c: datagram sock_* */
    PyObject *str_recvfrom;
    PyObject *str_recvfrom_into;
    PyObject *str_sendto;
    PyObject *str_sock_recvfrom;      /* "_sock_recvfrom" */
    PyObject *str_sock_recvfrom_into; /* "_sock_recvfrom_into" */
    PyObject *str_sock_sendto;        /* "_sock_sendto" */
    /* sendfile.c */
    PyObject *SendfileNotAvailableError; /* asyncio.exceptions */
    PyObject *str_sock_sendfile_impl;    /* "_sock_sendfile_native_impl" */

    /* ssl.c */
#define AL_SSL_NSTR 40
    PyTypeObject *SSLProtocolType;
    PyTypeObject *SSLTransportType;
    PyObject *ssl_MemoryBIO, *ssl_SSLObject, *ssl_SSLError, *ssl_SSLWantReadError,
        *ssl_SSLSyscallError;
    PyObject *ssl_CertificateError, *ssl_CancelledError, *ssl_TimeoutError;
    PyObject *ssl_create_transport_context; /* asyncio.sslproto._create_transport_context */
    PyObject *ssl_handshake_timeout_default, *ssl_shutdown_timeout_default;
    Py_ssize_t ssl_read_high_kb, ssl_write_high_kb;
    PyObject *ssl_str[AL_SSL_NSTR]; /* interned names, indexed by ssl.c's enum */

    /* stream.c */
    PyTypeObject *SocketTransportType;
    PyObject *BufferedProtocol;        /* asyncio.BufferedProtocol */
    PyObject *TransportSocket;         /* asyncio.trsock.TransportSocket */
    PyObject *set_nodelay;             /* asyncio.base_events._set_nodelay */
    PyObject *minus_one;               /* get_buffer(-1) */
    PyObject *write_high, *write_low;  /* the default write limits, shared */
    Py_ssize_t log_threshold_connlost; /* constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */
    PyObject *str_call_soon;
    PyObject *str_connection_made;
    PyObject *str_connection_lost;
    PyObject *str_data_received;
    PyObject *str_get_buffer;
    PyObject *str_buffer_updated;
    PyObject *str_eof_received;
    PyObject *str_pause_writing;
    PyObject *str_resume_writing;
    PyObject *str_transport;
    PyObject *str_protocol;
    PyObject *str_socket;
    PyObject *str_sockname;
    PyObject *str_peername;
    PyObject *str_exc_info;
    PyObject *str_start_reading;
    PyObject *str_call_connection_lost;

    /* server.c */
    PyObject *accept_retry_delay; /* asyncio.constants.ACCEPT_RETRY_DELAY */
    PyObject *default_backlog;    /* 100 */
    PyObject *accept_log_format;  /* asyncio's debug message for a new connection */
    PyObject *sock_family_descr, *sock_type_descr, *sock_proto_descr; /* _socket.socket's */
    descrgetfunc sock_descr_get;
    PyObject *str_accept_connection;
    PyObject *str_accept_connection2;
    PyObject *str_accept_resume;
    PyObject *str_accept_inline;
    PyObject *str_accept_made;
    PyObject *str_c_tls;
    PyObject *kw_context;         /* ("context",) */
    PyObject *str_add_reader_;    /* "_add_reader" */
    PyObject *str_remove_reader_; /* "_remove_reader" */
    PyObject *str_call_later;
    PyObject *str_create_task;
    PyObject *str_is_serving;
    PyObject *str_setblocking;
    PyObject *str_close;

    /* pipe.c */
    PyTypeObject *ReadPipeTransportType;
    PyTypeObject *WritePipeTransportType;
    PyObject *str_pipe;
    /* udp.c */
    PyTypeObject *DatagramTransportType;
    PyObject *str_datagram_received;
    PyObject *str_error_received;
    PyObject *str_read_ready;  /* "_read_ready" */
    PyObject *str_write_ready; /* "_write_ready" */

    /* dns.c */
    PyObject *socket_gaierror; /* socket.gaierror */
    PyObject *AddressFamily;   /* socket.AddressFamily */
    PyObject *SocketKind;      /* socket.SocketKind */
    PyObject *str_create_future;

    /* process.c */
    PyTypeObject *ChildType;
    /* metrics.c */
    PyTypeObject *MetricsType; /* loop.metrics()'s struct sequence */
    uint64_t metrics_loop_serial;
    /* Loops with handles queued while not running that no collection has
       looked at yet (loop.c's al__loop_gc_scan_all, called from gc_hook,
       the function module.c puts in gc.callbacks). */
    LoopObject *gc_unscanned;
    PyObject *gc_hook;

    /* Freed handles of each type, linked through their callback field. */
    HandleObject *free_handles;
    int n_free_handles;
    int free_handles_low;       /* lowest n_free_handles since the last trim */
    uint64_t free_handles_trim; /* uv_now() of the next trim */
    HandleObject *free_timers;
    int n_free_timers;

    /* Live object counts, asserted to return to zero by the tests. */
    Py_ssize_t live_handles;
    Py_ssize_t live_loops;
    Py_ssize_t live_uv_handles;
} al_state;

/* A Handle is 80 bytes (asyncio's is 88) and keeps one callback argument
   inline; a TimerHandle adds a second inline argument, contiguous with the
   first so both can be passed to vectorcall as they lie, and its heap key.
   More arguments go to a tuple. */
enum { ARGS_NONE = 0, ARGS_ONE = 1, ARGS_TWO = 2, ARGS_TUPLE = 3 };

struct al_handle {
    PyObject_HEAD
    PyObject *callback; /* NULL once cancelled; next free on the free list */
    PyObject *context;  /* contextvars.Context the callback runs in */
    LoopObject *loop;
    PyObject *source_traceback; /* debug mode: where it was created */
    PyObject *repr;             /* debug mode: repr kept at cancel() */
    PyObject *weakreflist;
    uint8_t scheduled; /* TimerHandle: in the timer heap (asyncio's _scheduled) */
    uint8_t cancelled;
    uint16_t running;    /* cancel() defers clearing while set */
    uint8_t args_kind;   /* ARGS_* */
    uint8_t when_is_nan; /* TimerHandle: when() is NaN, keyed as -inf */
    uint8_t is_timer;    /* a TimerHandleObject */
    uint8_t own_context; /* context is h's untracked copy (handle.c) */
    PyObject *args[1];   /* last: TimerHandle.arg2 follows it */
};

typedef struct {
    HandleObject base;
    PyObject *arg2; /* args[1], contiguous with base.args[0] */
    /* The `when` given to call_at (or time() + delay) if it is not an exact
       float, as asyncio's when() returns it; NULL otherwise. */
    PyObject *when_obj;
    double deadline;
    uint64_t seq; /* ties in scheduling order */
} TimerHandleObject;

/* FIFO of owned HandleObject references (a power-of-two ring). */
typedef struct {
    HandleObject **items;
    size_t cap;
    size_t head;
    size_t len;
} al_ring;

/* Binary min-heap of owned TimerHandle references on (deadline, seq), the
   key copied into the entry. */
typedef struct {
    double when;
    uint64_t seq;
    TimerHandleObject *h;
} al_heap_entry;

typedef struct {
    al_heap_entry *items;
    Py_ssize_t len;
    Py_ssize_t cap;
    Py_ssize_t cancelled; /* cancelled handles still in items */
} al_heap;

/* metrics.c: what loop.metrics() reports, kept by the loop as it runs. No
   clock read is added where the iteration does not block: busy time is the
   running time minus the time blocked in poll. */
/* Timer lateness buckets: 4 per octave from 2**-20 s (about 1 us) up to
   2**20 s, indexed by a double's exponent and top two mantissa bits. */
#define AL_LATE_BUCKETS 160
#define AL_LATE_BASE ((uint64_t)(1023 - 20) << 2)
#define AL_SLOWEST 5
typedef struct {
    uint64_t serial; /* tells loops apart in utilization(previous=) */
    uint64_t iterations;
    uint64_t callbacks;
    double run_time; /* seconds in finished run_forever calls */
    double run_t0;   /* al__now() as the current run began */
    /* Idle time from libuv's own clock (milliseconds, updated as uv_run
       starts and as epoll_wait returns): read by a prepare handle just
       before the poll, and where the first I/O callback takes the GIL back
       or uv_run returns. No clock read of ours. */
    uv_prepare_t prepare;
    uint64_t poll_ms; /* uv_now() as the current blocking poll began, or 0 */
    uint64_t idle_ms;
    uint64_t bytes_in; /* by the loop's transports (stream.c) */
    uint64_t bytes_out;
    uint64_t accepted;
    uint64_t connected;
    Py_ssize_t transports; /* registered now (al__loop_register_transport) */
    Py_ssize_t transports_peak;
    Py_ssize_t servers;
    double late_max;
    uint64_t late_hist[AL_LATE_BUCKETS];
    /* Each callback timed: with the slow-callback hook (or debug mode). */
    char timing;
    double hook_threshold;
    PyObject *hook; /* or NULL: time only */
    double slowest_dt[AL_SLOWEST];
    PyObject *slowest_repr[AL_SLOWEST]; /* str, or NULL */
} al_metrics;

struct al_loop {
    PyObject_HEAD
    PyObject *module; /* strong: keeps the state valid until dealloc ends */
    al_state *state;  /* the module's state; its fields are NULL once cleared */
    uv_loop_t uv;
    uv_timer_t poll_timer;  /* bounds a blocking poll by the next deadline */
    uv_async_t async;       /* wakes a blocked poll from another thread */
    uv_poll_t wakeup_poll;  /* read end of the signal wakeup pipe */
    int wakeup_fds[2];      /* -1 until first needed */
    PyObject *wakeup_saved; /* previous signal.set_wakeup_fd, while running */

    al_ring ready;
    al_heap timers;
    uint64_t timer_seq;
    /* ready.len when the poll started, or when another thread queued a
       handle during a blocking poll (call_soon_threadsafe): transports queue
       their I/O behind those handles, as asyncio's _run_once appends its
       events to _ready. */
    size_t ready_at_poll;
    /* Untracked handles queued while not running that no collection start
       has looked at yet (handle.c): the last gc_unscanned_ready of the
       ready queue and the timers in gc_timers (owned references); listed
       in state->gc_unscanned through gc_next/gc_prev meanwhile. */
    size_t gc_unscanned_ready;
    TimerHandleObject **gc_timers;
    Py_ssize_t n_gc_timers;
    Py_ssize_t cap_gc_timers;
    LoopObject *gc_next;
    LoopObject *gc_prev;

    PyThreadState *released_tstate; /* set while the GIL is released */
    int polling;                    /* blocked in uv_run, GIL released */
    int io_watchers;                /* user I/O watchers (later issues) */
    unsigned long thread_id;        /* valid while running */
    unsigned long fork_generation;

    char uv_ready; /* uv loop and handles initialised */
    char no_pidfd; /* ASYNCLOOP_NO_PIDFD set at creation: children reaped by threads */
    char closed;
    char stopping;
    char running;
    char debug;
    char executor_shutdown_called;
    char coro_tracking;
    /* Flags of the parts below, kept together so that the struct has no
       padding holes (clang-tidy's optin.performance.Padding). */
    char gc_listed;                 /* in state->gc_unscanned (gc_next/gc_prev) */
    char slow_generic;              /* slow_obj compared as it is */
    char asyncgens_shutdown_called; /* asyncio's _asyncgens_shutdown_called */
    char ssl_read_buf_busy;         /* ssl.c: ssl_read_buf is lent */
    double slow_callback_duration;
    /* What set_debug() and slow_callback_duration were given, returned as
       given as asyncio does (NULL: False / the float); slow_generic: the
       object is compared as it is, not as slow_callback_duration. */
    PyObject *debug_obj;
    PyObject *slow_obj;

    PyObject *task_factory;
    PyObject *exception_handler;
    PyObject *default_executor;
    PyObject *current_handle;
    PyObject *signal_handlers; /* dict: signum -> Handle, or NULL */
    PyObject *old_agen_hooks;
    PyObject *coro_saved_depth;
    /* asyncio's _asyncgens, _asyncgens_shutdown_called and (3.13)
       _unix_server_sockets, used by the methods asyncloop/__init__.py
       borrows: slots, so that the instance dict stays empty. */
    PyObject *asyncgens;
    PyObject *bound_call_soon; /* 3.10: loop.call_soon while running (loop.c) */
    PyObject *unix_server_sockets;

    /* Networking (stream.c, poll.c, server.c, dns.c). */
    al_io io_objects; /* list head of the al_io of live I/O objects */
    /* fd -> the transport using it (borrowed: a transport unregisters
       before it goes), as asyncio's loop._transports; NULL-filled. */
    PyObject **fd_transports;
    int n_fd_transports;
    PyObject *fd_watchers; /* dict: fd -> poll.c watcher (add_reader, sock_*) */
    PyObject *pending_exc; /* SystemExit/KeyboardInterrupt from an I/O callback */
    struct {
        uv_poll_t *handle;
        uv_poll_cb cb;
    } * poll_started; /* al__poll_start since the last poll */
    Py_ssize_t n_poll_started;
    Py_ssize_t cap_poll_started;
    al_idle poll_idle;      /* poll.c: list head (next only), see al_idle */
    Py_ssize_t dns_pending; /* dns.c: lookups whose after_work has not run */
    /* stream.c: the one read buffer of the loop's transports, on first use */
    char *stream_read_buf;
    PyObject *stream_held_read; /* stream.c: the last direct read (read_direct) */
    /* stream.c: the iteration (metrics.iterations) in which a big read cut
       the poll's stream events short, and the last one that skipped some */
    uint64_t cut_iter, skip_iter;
    /* stream.c: the events a cut skipped, run next iteration without a poll */
    struct al_skipped *skipped;
    Py_ssize_t n_skipped, cap_skipped;
    /* pipe.c: write pipes whose writable event waits until the poll's
       other events ran (al__pipe_run_late_writes); owned, a chain */
    PyObject *late_writes;
    /* ssl.c: what decrypted data is read into before its bytes object is
       made, on first use; ssl_read_buf_busy while lent (a nested read
       allocates) */
    char *ssl_read_buf;
    char *dgram_buf;      /* udp.c: recvmmsg slots, allocated on first use */
    PyObject *stop_cache; /* poll.c: a StopIteration reused for sock_* results (3.12+) */
    struct al_dgram_peer *dgram_peer; /* poll.c: the last sock_recvfrom peer */

    al_metrics metrics; /* metrics.c */
};

/* module.c */
extern unsigned long al__fork_generation;
/* module.attr, imported (a new reference). */
PyObject *al__import_attr(const char *module, const char *name);
/* Module init (module_exec, al__stream_init): st->field = the interned text,
   or return -1. */
#define INTERN(field, text)                                                                        \
    do {                                                                                           \
        if ((st->field = PyUnicode_InternFromString(text)) == NULL) {                              \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* handle.c */
extern PyType_Spec al__handle_spec;
extern PyType_Spec al__timer_handle_spec;
HandleObject *al__handle_new(al_state *st, PyTypeObject *tp, LoopObject *loop, PyObject *callback,
                             PyObject *const *args, Py_ssize_t nargs, PyObject *context);
HandleObject *al__handle_new_queued(al_state *st, PyTypeObject *tp, LoopObject *loop,
                                    PyObject *callback, PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *context);
int al__handle_run(HandleObject *h);
void al__handle_release(HandleObject *h);
int al__handle_cancel(HandleObject *h);
int al__handle_traverse(HandleObject *h, visitproc visit, void *arg);
void al__handle_free_list_clear(al_state *st);
/* Frees the Handles of the free list above HANDLE_FREELIST_KEEP that no one
   took since the last trim, and sets the next one a second after now_ms
   (uv_now); called by the loop at the start of an iteration. */
void al__handle_free_list_trim(al_state *st, uint64_t now_ms);

/* Handles are not tracked by the GC while only the loop holds them: the
   loop's tp_traverse reports what such a handle references (handle.c has
   the argument). The loop calls this as it lets go of a handle; one that
   is still referenced elsewhere becomes an ordinary tracked GC object. */
static inline void al__handle_disown(HandleObject *h)
{
    /* A weak reference can hand out a strong one later: shared too. */
    if ((Py_REFCNT(h) > 1 || h->weakreflist != NULL) && !PyObject_GC_IsTracked((PyObject *)h)) {
        PyObject_GC_Track(h);
    }
}

/* timer.c */
int al__heap_push(al_heap *heap, TimerHandleObject *h);
TimerHandleObject *al__heap_pop(al_heap *heap);
void al__heap_compact(al_heap *heap);

/* asyncio's rule for dropping cancelled timers in bulk: when they are more
   than half of more than 100. Checked at cancel() too, so that cancelled
   timers never hold more than the live ones, running loop or not. */
static inline int al__heap_wants_compaction(const al_heap *heap)
{
    return heap->len > 100 && heap->cancelled * 2 > heap->len;
}
void al__heap_clear(al_heap *heap);

/* loop.c */
extern PyType_Spec al__loop_spec;
int al__ring_push(al_ring *ring, HandleObject *h);
int al__loop_defer(LoopObject *loop, PyObject *obj, PyObject *name, PyObject *ctx, char *flag);
int al__loop_defer_traverse(al_state *st, visitproc visit, void *arg);
void al__loop_defer_clear(al_state *st);
int al__is_coroutine_like(al_state *st, PyObject *obj);
PyObject *al__loop_call_exception_handler(LoopObject *loop, PyObject *context);
PyObject *al__loop_method_descriptors(PyObject *module, PyObject *cls);
void al__loop_gc_scan_all(al_state *st);
void al__loop_hold_gil(LoopObject *loop);

/* uv_poll_start through the loop. libuv applies a new or changed watch
   only at its next poll, and aborts the process if the fd is closed by
   then (epoll_ctl EBADF). The loop checks the fds started since its last
   poll just before polling: a closed one is stopped, and its callback
   called with UV_EBADF instead. */
int al__poll_start(LoopObject *loop, uv_poll_t *handle, int events, uv_poll_cb cb);
/* Before uv_close() or free of a handle given to al__poll_start. */
void al__poll_forget(LoopObject *loop, uv_poll_t *handle);

/* poll.c: stops the watchers still polling with nothing to wait for (see
   al_idle); the loop calls it before each poll and when a run ends. */
void al__poll_idle_flush(LoopObject *loop);
/* Frees the loop's datagram peer cache (loop dealloc). */
void al__poll_dgram_peer_free(LoopObject *loop);
/* uv_poll_init through the loop: libuv refuses a second handle on an fd
   (UV_EEXIST), and an idle watcher or released transport poll of a closed
   fd may still hold its number. */
int al__poll_init(LoopObject *loop, uv_poll_t *handle, int fd);

/* A transport's poll (stream.c, pipe.c, udp.c): the uv_poll_t is allocated
   apart and freed by its close callback, so libuv never touches a freed
   transport; while it polls, the transport holds a reference to itself (as
   asyncio's selector holds its bound methods), kept in io->held for the
   loop's traversal. */
typedef struct {
    uv_poll_t poll; /* first: the close callback casts the handle */
    al_state *st;
} al_poll_box;

typedef struct {
    al_poll_box *box; /* kept from the first start until close or dealloc */
    int events;       /* what the owner waits for now */
    int armed;        /* what libuv polls for: events, or more while idle */
    al_idle idle;     /* released but still polling, muted (see al_idle) */
    char held;        /* polling: owner holds a reference to itself */
} al_tpoll;

/* Polls for events (UV_READABLE|UV_WRITABLE; 0 releases), starting the
   handle with owner as its data. -1 with an exception. */
int al__tpoll_update(al_tpoll *tp, LoopObject *loop, PyObject *owner, al_io *io, int fd, int events,
                     uv_poll_cb cb);
/* Stops polling and drops owner's reference to itself, if held (owner may
   go with it: callers hold their own). */
void al__tpoll_release(al_tpoll *tp, LoopObject *loop, al_io *io);
/* Stops polling and closes the handle (freed by its close callback). */
void al__tpoll_close(al_tpoll *tp, LoopObject *loop, al_io *io);

/* Transport contexts: asyncio runs a transport's reader/writer in a Handle
   whose context is a copy of the one current when the reader/writer was
   added. al__ctx_copy stores such a copy in *slot; al__ctx_enter enters
   ctx (if any) around one poll event and returns what al__ctx_exit takes
   (its own reference: protocol code may replace the transport's). */
static inline int al__ctx_copy(PyObject **slot)
{
    PyObject *ctx = PyContext_CopyCurrent();
    if (ctx == NULL) {
        return -1;
    }
    Py_XSETREF(*slot, ctx);
    return 0;
}

static inline PyObject *al__ctx_enter(PyObject *ctx, int *rc)
{
    if (ctx == NULL) {
        return NULL;
    }
    if (PyContext_Enter(ctx) < 0) {
        *rc = -1;
        return NULL;
    }
    return Py_NewRef(ctx);
}

static inline void al__ctx_exit(PyObject *ctx, int *rc)
{
    if (ctx == NULL) {
        return;
    }
    if (PyContext_Exit(ctx) < 0) {
        *rc = -1;
    }
    Py_DECREF(ctx);
}

/* al__ctx_exit(ctx, &rc), returning rc. */
static inline int al__ctx_leave(PyObject *ctx, int rc)
{
    al__ctx_exit(ctx, &rc);
    return rc;
}

/* transport.c: asyncio's _FlowControlMixin, embedded in the socket, pipe
   and datagram transports. */
typedef struct {
    PyObject *high_obj, *low_obj; /* as given, for get_write_buffer_limits */
    double high, low;             /* what the buffer size is compared with */
    char paused;                  /* _protocol_paused */
} al_flow;

/* _set_write_buffer_limits(high, low) (NULL is None): asyncio's defaults
   and ValueError. */
int al__flow_set_limits(al_flow *f, PyObject *high, PyObject *low);
/* asyncio's default limits (64 KiB, 16 KiB) as the module's two shared ints */
void al__flow_set_default(al_flow *f, al_state *st);
/* protocol.pause_writing() (pause) or resume_writing() of *protocol, held
   during the call. SystemExit and KeyboardInterrupt: -1; anything else
   goes to the loop's exception handler ('protocol.pause_writing() failed',
   with the transport and the protocol it has then). */
int al__flow_notify(al_state *st, LoopObject *loop, PyObject *transport, PyObject **protocol,
                    int pause);

/* _maybe_pause_protocol / _maybe_resume_protocol, size being
   get_write_buffer_size(). */
static inline int al__flow_maybe_pause(al_flow *f, Py_ssize_t size, al_state *st, LoopObject *loop,
                                       PyObject *transport, PyObject **protocol)
{
    if ((double)size <= f->high || f->paused) {
        return 0;
    }
    f->paused = 1;
    return al__flow_notify(st, loop, transport, protocol, 1);
}

static inline int al__flow_maybe_resume(al_flow *f, Py_ssize_t size, al_state *st, LoopObject *loop,
                                        PyObject *transport, PyObject **protocol)
{
    if (!f->paused || (double)size > f->low) {
        return 0;
    }
    f->paused = 0;
    return al__flow_notify(st, loop, transport, protocol, 0);
}

static inline void al__flow_clear(al_flow *f)
{
    Py_CLEAR(f->high_obj);
    Py_CLEAR(f->low_obj);
}

/* transport.c: the write queue of the socket and pipe transports: owned
   bytes objects, each with how much of it was sent, in a FIFO array. */
typedef struct {
    PyObject *data;
    Py_ssize_t off;
} al_wentry;

typedef struct {
    al_wentry *q;
    Py_ssize_t head, len, cap;
    Py_ssize_t bytes; /* what is left to send: get_write_buffer_size() */
} al_wqueue;

/* Queues buf[off:len] of obj: a reference to exact bytes, a copy of
   anything else (it may change before it is sent). */
int al__wqueue_append(al_wqueue *w, PyObject *obj, const char *buf, Py_ssize_t len, Py_ssize_t off);
/* Drops everything queued (the array stays, for PyMem_Free). */
void al__wqueue_clear(al_wqueue *w);
/* n bytes were sent. */
void al__wqueue_consume(al_wqueue *w, Py_ssize_t n);
/* The first (at most max) chunks as iov entries; their count. */
struct iovec;
int al__wqueue_iov(const al_wqueue *w, struct iovec *iov, int max);

/* {'message', 'exception', 'transport', 'protocol' (None for NULL)} to
   the loop's exception handler. */
int al__transport_report(LoopObject *loop, const char *message, PyObject *exc, PyObject *transport,
                         PyObject *protocol);
/* The end of a transport's poll callback that failed (an exception set):
   SystemExit and KeyboardInterrupt are stashed (al__loop_stash_fatal_error),
   anything else reported as asyncio's Handle._run would for _read_ready:
   'Exception in transport callback'. */
void al__transport_callback_failed(LoopObject *loop, PyObject *transport);

/* stream.c: the transport of a connection accepted by server.c (nodelay:
   whether asyncio's _set_nodelay would set TCP_NODELAY on it; ctx: the
   connection's own context, current and entered by nothing else later,
   which the reader takes instead of a copy, or NULL). */
PyObject *al__stream_accepted(LoopObject *loop, PyObject *sock, PyObject *protocol, PyObject *extra,
                              PyObject *server, int nodelay, PyObject *ctx);
/* server.c: the listening socket's reader (asyncio's _accept_connection)
   and the end of its pause after EMFILE & co. */
PyObject *al__loop_accept_connection(LoopObject *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames);
PyObject *al__loop_accept_resume(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames);
PyObject *al__loop_accept_made(LoopObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames);
/* server.c: an AF_INET, AF_INET6 or AF_UNIX address as socket.accept()
   and getsockname() give it (socketmodule.c's makesockaddr), from a zeroed
   buffer; NULL without an error for another family. */
struct sockaddr_storage;
PyObject *al__sockaddr_to_py(const struct sockaddr_storage *ss, unsigned int len);
int al__server_init(al_state *st);
int al__server_traverse(al_state *st, visitproc visit, void *arg);
void al__server_clear(al_state *st);

/* I/O objects (see al_io). */
void al__loop_io_link(LoopObject *loop, al_io *io);
void al__loop_io_unlink(al_io *io);
/* Transports register the fd they use, as asyncio's loop._transports:
   add_reader/add_writer/sock_* refuse an fd whose transport is not closing. */
int al__loop_register_transport(LoopObject *loop, int fd, PyObject *transport);
void al__loop_unregister_transport(LoopObject *loop, int fd, PyObject *transport);
/* asyncio's _ensure_fd_no_transport: RuntimeError "File descriptor ... is
   used by transport ..." (fileobj is what the caller was given). */
int al__loop_ensure_fd_no_transport(LoopObject *loop, int fd, PyObject *fileobj);
/* For a libuv callback whose Python call failed: SystemExit and
   KeyboardInterrupt (any BaseException that is not an Exception) are kept
   to be raised from run_forever once uv_run returns, as asyncio lets them
   out of its _run_once; returns 1 then. Returns 0, the error still set,
   for an ordinary exception, which the caller reports (for a transport,
   through call_exception_handler and a fatal close, as asyncio does). */
int al__loop_stash_fatal_error(LoopObject *loop);

/* self.name(*args) by vectorcall, for up to AL_CALL_METHOD_MAX arguments. */
#define AL_CALL_METHOD_MAX 11
static inline PyObject *al__call_method(PyObject *name, PyObject *self, PyObject *const *args,
                                        Py_ssize_t nargs)
{
    PyObject *argv[AL_CALL_METHOD_MAX + 1];
    assert(nargs <= AL_CALL_METHOD_MAX);
    argv[0] = self;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        argv[i + 1] = args[i];
    }
    return PyObject_VectorcallMethod(name, argv, (size_t)nargs + 1, NULL);
}

/* Save and restore the raised exception around cleanup code. */
static inline PyObject *al__err_fetch(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Steals exc; a NULL exc leaves the error indicator alone. */
static inline void al__err_restore(PyObject *exc)
{
    if (exc == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

static inline double al__now(void)
{
    return (double)uv_hrtime() / 1e9;
}

/* signal.c */
void al__signal_wakeup_close(LoopObject *loop);
int al__signal_run_setup(LoopObject *loop);
int al__signal_run_cleanup(LoopObject *loop);
int al__signal_remove_all(LoopObject *loop);
PyObject *al__loop_add_signal_handler(LoopObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *al__loop_remove_signal_handler(LoopObject *self, PyObject *sig);
PyObject *al__loop_handle_signal(LoopObject *self, PyObject *const *args, Py_ssize_t nargs);

/* dns.c */
PyObject *al__loop_getaddrinfo(LoopObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *al__loop_getnameinfo(LoopObject *self, PyObject *const *args, Py_ssize_t nargs);
/* loop_close_uv: waits until the thread pool is done with the loop's lookups. */
void al__dns_close_wait(LoopObject *loop);
/* poll.c */
extern PyType_Spec al__watcher_spec;
extern PyType_Spec al__sock_done_spec;
extern PyType_Spec al__sock_call_spec;
PyObject *al__loop_add_reader(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames);
PyObject *al__loop_add_writer(LoopObject *self, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames);
PyObject *al__loop_remove_reader(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames);
PyObject *al__loop_remove_writer(LoopObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames);
PyObject *al__loop_sock_recv(LoopObject *self, PyObject *const *args, size_t nargsf,
                             PyObject *kwnames);
PyObject *al__loop_sock_recv_into(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);
PyObject *al__loop_sock_sendall(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames);
PyObject *al__loop_sock_connect(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames);
PyObject *al__loop_sock_recv_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);
PyObject *al__loop_sock_recv_into_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames);
PyObject *al__loop_sock_sendall_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames);
PyObject *al__loop_sock_accept_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames);
PyObject *al__loop_sock_accept(LoopObject *self, PyObject *const *args, size_t nargsf,
                               PyObject *kwnames);
PyObject *al__loop_sock_recv_start(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);
PyObject *al__loop_sock_recv_into_start(LoopObject *self, PyObject *const *args, size_t nargsf,
                                        PyObject *kwnames);
PyObject *al__loop_sock_sendall_start(LoopObject *self, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames);
PyObject *al__loop_sock_recv_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames);
PyObject *al__loop_sock_recv_into_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                     PyObject *kwnames);
PyObject *al__loop_sock_sendall_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);
PyObject *al__loop_sock_connect_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);
PyObject *al__loop_sock_accept_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);
PyObject *al__loop_sock_read_done(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);
PyObject *al__loop_sock_write_done(LoopObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);
/* poll.c: datagram sock_* (coroutines) and their retries */
PyObject *al__loop_sock_recvfrom_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames);
PyObject *al__loop_sock_recvfrom_into_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames);
PyObject *al__loop_sock_sendto_call(LoopObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames);
PyObject *al__loop_sock_recvfrom_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames);
PyObject *al__loop_sock_recvfrom_into_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames);
PyObject *al__loop_sock_sendto_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);

/* sendfile.c */
/* loop._sock_sendfile_native(sock, file, offset, count) -> Future, and its
   writability callback _sock_sendfile_native_impl (asyncio's unix loop). */
PyObject *al__loop_sock_sendfile_native(LoopObject *self, PyObject *const *args, size_t nargsf,
                                        PyObject *kwnames);
PyObject *al__loop_sock_sendfile_impl(LoopObject *self, PyObject *const *args, size_t nargsf,
                                      PyObject *kwnames);
PyObject *al__loop_sock_sendfile_cancel_cb(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames);
/* _sock_sendfile_native's file checks: the file's fd and, in *blocksize,
   count or the file's size; SendfileNotAvailableError("not a regular
   file") as asyncio raises it. */
int al__sendfile_file_fd(al_state *st, PyObject *file, PyObject *count, int *fileno,
                         long long *blocksize);
/* Sends with sendfile(2) from *offset until the socket would block
   (returns 0), the file ends or count is reached (returns 1), or an error
   (returns -1 with errno kept in *err). count < 0: to the end. */
int al__sendfile_round(int out_fd, int in_fd, long long *offset, long long count,
                       long long blocksize, long long *total, int *err);
/* The exception asyncio's _sock_sendfile_native_impl sets for a failed
   sendfile (midway: not its first call): a new reference. */
PyObject *al__sendfile_error(al_state *st, int err, long long total, int midway);
/* asyncio's _sock_sendfile_update_filepos: lseek to offset if anything
   was sent. */
int al__sendfile_update_filepos(int fileno, long long offset, long long total);

/* args.c */
typedef PyObject *(*al_fastcall_method)(PyObject *self, PyObject *const *args, size_t nargsf,
                                        PyObject *kwnames);
/* Calls fn with the keywords that name its first npos parameters moved into
   place; keywords listed in kwonly (NULL-terminated, may be NULL; {"*"}:
   any) are passed on, any other is a TypeError. */
PyObject *al__call_with_keywords_bound(PyObject *self, al_fastcall_method fn, const char *method,
                                       const char *const *names, Py_ssize_t npos,
                                       const char *const *kwonly, PyObject *const *args,
                                       Py_ssize_t nargs, PyObject *kwnames);
/* The single argument of a method f(self, name), given by position or by
   keyword; *out is borrowed. */
int al__one_arg(const char *method, const char *name, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames, PyObject **out);

/* stream.c */
int al__stream_init(PyObject *module, al_state *st);
int al__stream_traverse(al_state *st, visitproc visit, void *arg);
void al__stream_clear(al_state *st);
int al__stream_run_skipped(LoopObject *loop);
void al__stream_skipped_clear(LoopObject *loop);
int al__stream_skipped_traverse(LoopObject *loop, visitproc visit, void *arg);
/* loop._make_socket_transport(sock, protocol, waiter=None, *, extra=None,
   server=None), as asyncio's selector loop. */
PyObject *al__loop_make_socket_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                         PyObject *kwnames);

/* process.c */
extern PyType_Spec al__child_spec;
PyObject *al__loop_spawn_child_async(LoopObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *al__loop_watch_child(LoopObject *self, PyObject *const *args, Py_ssize_t nargs);
/* pipe.c */
int al__pipe_init(PyObject *module, al_state *st);
int al__pipe_traverse(al_state *st, visitproc visit, void *arg);
void al__pipe_clear(al_state *st);
void al__pipe_run_late_writes(LoopObject *loop);
void al__pipe_late_writes_clear(LoopObject *loop);
int al__pipe_late_writes_traverse(LoopObject *loop, visitproc visit, void *arg);
/* asyncio's _UnixReadPipeTransport / _UnixWritePipeTransport(loop, pipe,
   protocol, waiter, extra): a new transport, or NULL with an exception.
   pipe: an object with fileno() and close() (closed with the transport);
   waiter, extra: NULL or None for none. connection_made, the start of
   reading (the peer-close watch on the write side) and waiter's result
   are scheduled with call_soon, as asyncio does. */
PyObject *al__read_pipe_new(LoopObject *loop, PyObject *pipe, PyObject *protocol, PyObject *waiter,
                            PyObject *extra);
PyObject *al__write_pipe_new(LoopObject *loop, PyObject *pipe, PyObject *protocol, PyObject *waiter,
                             PyObject *extra);
/* loop._make_read_pipe_transport / _make_write_pipe_transport(pipe,
   protocol, waiter=None, extra=None) */
PyObject *al__loop_make_read_pipe_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                            PyObject *kwnames);
PyObject *al__loop_make_write_pipe_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                             PyObject *kwnames);
/* metrics.c: hooks of the iteration and the transports (all cheap). */
int al__metrics_init(PyObject *module, al_state *st);
void al__metrics_loop_init(LoopObject *loop);
/* Loop_new once the uv loop is ready: the prepare handle (a live uv handle,
   closed by loop_close_uv with the loop's others). */
void al__metrics_uv_init(LoopObject *loop);
int al__metrics_traverse(LoopObject *loop, visitproc visit, void *arg);
void al__metrics_clear(LoopObject *loop);
/* A callback timed (hook on, or debug mode): the slowest kept, the hook
   called; -1 only for an error that must end the run. */
int al__metrics_timed(LoopObject *loop, HandleObject *h, double dt);
PyObject *al__loop_metrics(LoopObject *self, PyObject *Py_UNUSED(ignored));
PyObject *al__loop_set_slow_callback_hook(LoopObject *self, PyObject *const *args, size_t nargsf,
                                          PyObject *kwnames);
PyObject *al__loop_count_server(LoopObject *self, PyObject *arg);
/* poll.c: fds with a reader / a writer now (add_reader, sock_*). */
void al__poll_count(LoopObject *loop, Py_ssize_t *readers, Py_ssize_t *writers);

static inline void al__metrics_bytes_in(LoopObject *loop, ssize_t n)
{
    if (n > 0 && loop != NULL) {
        loop->metrics.bytes_in += (uint64_t)n;
    }
}
static inline void al__metrics_bytes_out(LoopObject *loop, ssize_t n)
{
    if (n > 0 && loop != NULL) {
        loop->metrics.bytes_out += (uint64_t)n;
    }
}

/* The blocking poll is over: libuv updated its clock as epoll_wait returned. */
static inline void al__metrics_poll_end(LoopObject *loop)
{
    if (loop->metrics.poll_ms != 0) {
        loop->metrics.idle_ms += uv_now(&loop->uv) - loop->metrics.poll_ms;
        loop->metrics.poll_ms = 0;
    }
}

/* A timer ran late seconds after its deadline (late >= 0: it was due). */
static inline void al__metrics_lateness(al_metrics *m, double late)
{
    if (!(late < 1e6)) {
        late = 0; /* a NaN deadline is keyed as -inf: due at once, not late */
    }
    if (late > m->late_max) {
        m->late_max = late;
    }
    uint64_t bits;
    memcpy(&bits, &late, sizeof(bits));
    bits >>= 50;
    m->late_hist[bits <= AL_LATE_BASE ? 0 : bits - AL_LATE_BASE]++;
}
/* udp.c */
int al__udp_init(PyObject *module, al_state *st);
int al__udp_traverse(al_state *st, visitproc visit, void *arg);
void al__udp_clear(al_state *st);
/* A numeric (host, port[, flowinfo[, scope_id]]) of AF_INET/AF_INET6 as
   getsockaddrarg() makes it: 1 with *ss, 0 for the socket's own method. */
int al__udp_numeric_sockaddr(int fam, PyObject *addr, struct sockaddr_storage *ss,
                             unsigned int *len);
/* loop._make_datagram_transport(sock, protocol, address=None, waiter=None,
   extra=None), as asyncio's selector loop. */
PyObject *al__loop_make_datagram_transport(LoopObject *self, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames);
/* ssl.c */
int al__ssl_init(PyObject *module, al_state *st);
/* A read of a stream transport whose protocol is an SSLProtocol (stream.c):
   its data_received, given the loop's read buffer instead of a bytes. */
int al__ssl_feed(PyObject *proto, const char *data, Py_ssize_t len);
int al__ssl_traverse(al_state *st, visitproc visit, void *arg);
void al__ssl_clear(al_state *st);

/* errors.c */
PyObject *al__uv_error(int err);
int al__set_uv_error(int err);

#endif
