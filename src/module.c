/* asyncloop._core: module initialisation (multi-phase, PEP 489) and the
   module state: the types, cached asyncio objects and interned names. */
#include "internal.h"

#include <pthread.h>

/* Bumped in the child after fork(): a loop made before it refuses to run. */
unsigned long al__fork_generation = 0;

static void after_fork_child(void)
{
    al__fork_generation++;
}

PyObject *al__import_attr(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

/* Whether BaseEventLoop.create_task of this CPython takes `context=` and
   whether it takes **kwargs (newer releases pass eager_start and others). */
static int inspect_create_task(al_state *st)
{
    PyObject *func = al__import_attr("asyncio.base_events", "BaseEventLoop");
    if (func == NULL) {
        return -1;
    }
    PyObject *meth = PyObject_GetAttrString(func, "create_task");
    Py_DECREF(func);
    PyObject *code = meth ? PyObject_GetAttrString(meth, "__code__") : NULL;
    Py_XDECREF(meth);
    if (code == NULL) {
        return -1;
    }
    PyObject *flags = PyObject_GetAttrString(code, "co_flags");
    PyObject *names = flags ? PyObject_GetAttrString(code, "co_varnames") : NULL;
    Py_DECREF(code);
    if (names == NULL) {
        Py_XDECREF(flags);
        return -1;
    }
    st->create_task_varkw = (PyLong_AsLong(flags) & 0x08) != 0; /* CO_VARKEYWORDS */
    st->create_task_has_context = PySequence_Contains(names, st->str_context) == 1;
    Py_DECREF(flags);
    Py_DECREF(names);

    PyObject *fmt = st->format_callback_source;
    code = PyObject_GetAttrString(fmt, "__code__");
    if (code == NULL) {
        return -1;
    }
    names = PyObject_GetAttrString(code, "co_varnames");
    Py_DECREF(code);
    if (names == NULL) {
        return -1;
    }
    st->format_source_has_debug = PySequence_Contains(names, st->str_debug) == 1;
    Py_DECREF(names);
    return 0;
}

static PyObject *debug_counters(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    al_state *st = PyModule_GetState(module);
    return Py_BuildValue("{s:n,s:n,s:n,s:i}", "handles", st->live_handles, "loops", st->live_loops,
                         "uv_handles", st->live_uv_handles, "free_handles", st->n_free_handles);
}

static PyMethodDef module_methods[] = {
    {"_debug_counters", debug_counters, METH_NOARGS,
     "Live Handle/TimerHandle objects, loops and libuv handles of this module."},
    {"_method_descriptors", al__loop_method_descriptors, METH_O,
     "{name: Loop's method as a descriptor of the given subclass}."},
    {NULL, NULL},
};

#define IMPORT(field, module, name)                                                                \
    do {                                                                                           \
        if ((st->field = al__import_attr(module, name)) == NULL) {                                 \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* In gc.callbacks: every collection first looks at the handles queued on
   stopped loops since the last one (loop.c, handle.c). */
static PyObject *gc_hook(PyObject *module, PyObject *const *Py_UNUSED(args),
                         Py_ssize_t Py_UNUSED(nargs))
{
    al_state *st = PyModule_GetState(module);
    if (st != NULL) {
        al__loop_gc_scan_all(st);
    }
    Py_RETURN_NONE;
}

static PyMethodDef gc_hook_def = {"_gc_hook", (PyCFunction)(void (*)(void))gc_hook, METH_FASTCALL,
                                  NULL};

static int gc_hook_install(PyObject *module, al_state *st)
{
    PyObject *callbacks = al__import_attr("gc", "callbacks");
    if (callbacks == NULL) {
        return -1;
    }
    st->gc_hook = PyCFunction_New(&gc_hook_def, module);
    int rc =
        st->gc_hook == NULL || !PyList_Check(callbacks) || PyList_Append(callbacks, st->gc_hook) < 0
            ? -1
            : 0;
    if (rc < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_TypeError, "gc.callbacks is not a list");
    }
    Py_DECREF(callbacks);
    return rc;
}

/* Out of gc.callbacks, if it is still there (not at interpreter exit). */
static void gc_hook_remove(al_state *st)
{
    if (st->gc_hook == NULL) {
        return;
    }
    PyObject *exc = al__err_fetch();
    PyObject *callbacks = al__import_attr("gc", "callbacks");
    if (callbacks != NULL && PyList_Check(callbacks)) {
        for (Py_ssize_t i = PyList_GET_SIZE(callbacks) - 1; i >= 0; i--) {
            if (PyList_GET_ITEM(callbacks, i) == st->gc_hook) {
                (void)PyList_SetSlice(callbacks, i, i + 1, NULL);
                break;
            }
        }
    }
    Py_XDECREF(callbacks);
    PyErr_Clear();
    al__err_restore(exc);
    Py_CLEAR(st->gc_hook);
}

static int module_exec(PyObject *module)
{
    static int atfork_registered = 0;
    al_state *st = PyModule_GetState(module);

    INTERN(str_context, "context");
    INTERN(str_loop, "loop");
    INTERN(str_name, "name");
    INTERN(str_call_exception_handler, "call_exception_handler");
    INTERN(str_message, "message");
    INTERN(str_exception, "exception");
    INTERN(str_handle, "handle");
    INTERN(str_source_traceback, "source_traceback");
    INTERN(str_log_destroy_pending, "_log_destroy_pending");
    INTERN(str_add_done_callback, "add_done_callback");
    INTERN(str_remove_done_callback, "remove_done_callback");
    INTERN(str_result, "result");
    INTERN(str_exception_meth, "exception");
    INTERN(str_done, "done");
    INTERN(str_cancelled, "cancelled");
    INTERN(str_set_name, "set_name");
    INTERN(str_set_result, "set_result");
    INTERN(str_submit, "submit");
    INTERN(str_shutdown, "shutdown");
    INTERN(str_wait, "wait");
    INTERN(str_debug, "debug");
    INTERN(str_firstiter, "firstiter");
    INTERN(str_finalizer, "finalizer");
    INTERN(str_firstiter_hook, "_asyncgen_firstiter_hook");
    INTERN(str_finalizer_hook, "_asyncgen_finalizer_hook");
    INTERN(str_set_wakeup_fd, "set_wakeup_fd");
    INTERN(str_warn_on_full_buffer, "warn_on_full_buffer");
    INTERN(str_signal, "signal");
    INTERN(str_siginterrupt, "siginterrupt");
    INTERN(str_valid_signals, "valid_signals");
    INTERN(str_default_int_handler, "default_int_handler");
    INTERN(str_handle_signal, "_handle_signal");
    INTERN(str_set_coro_depth, "set_coroutine_origin_tracking_depth");
    INTERN(str_get_coro_depth, "get_coroutine_origin_tracking_depth");
    INTERN(str_get_asyncgen_hooks, "get_asyncgen_hooks");
    INTERN(str_set_asyncgen_hooks, "set_asyncgen_hooks");
    INTERN(str_is_finalizing, "is_finalizing");
    /* dns.c */
    INTERN(str_create_future, "create_future");
    IMPORT(socket_gaierror, "socket", "gaierror");
    IMPORT(AddressFamily, "socket", "AddressFamily");
    IMPORT(SocketKind, "socket", "SocketKind");

    if ((st->empty_tuple = PyTuple_New(0)) == NULL ||
        (st->kwnames_loop = PyTuple_Pack(1, st->str_loop)) == NULL ||
        (st->kwnames_loop_name = PyTuple_Pack(2, st->str_loop, st->str_name)) == NULL ||
        (st->kwnames_loop_context = PyTuple_Pack(2, st->str_loop, st->str_context)) == NULL ||
        (st->kwnames_loop_name_context =
             PyTuple_Pack(3, st->str_loop, st->str_name, st->str_context)) == NULL ||
        (st->kwnames_context = PyTuple_Pack(1, st->str_context)) == NULL ||
        (st->kwnames_name = PyTuple_Pack(1, st->str_name)) == NULL ||
        (st->kwnames_name_context = PyTuple_Pack(2, st->str_name, st->str_context)) == NULL) {
        return -1;
    }

    IMPORT(Future, "asyncio", "Future");
    IMPORT(Task, "asyncio", "Task");
    IMPORT(ensure_future, "asyncio", "ensure_future");
    IMPORT(isfuture, "asyncio", "isfuture");
    IMPORT(iscoroutine, "asyncio.coroutines", "iscoroutine");
    IMPORT(iscoroutinefunction, "asyncio.coroutines", "iscoroutinefunction");
    IMPORT(get_running_loop, "asyncio.events", "_get_running_loop");
    IMPORT(set_running_loop, "asyncio.events", "_set_running_loop");
    IMPORT(run_until_complete_cb, "asyncio.base_events", "_run_until_complete_cb");
    IMPORT(format_handle, "asyncio.base_events", "_format_handle");
    IMPORT(format_callback_source, "asyncio.format_helpers", "_format_callback_source");
    IMPORT(extract_stack, "asyncio.format_helpers", "extract_stack");
    IMPORT(logger, "asyncio.log", "logger");
    IMPORT(wrap_future, "asyncio", "wrap_future");
    IMPORT(set_result_unless_cancelled, "asyncio.futures", "_set_result_unless_cancelled");
    IMPORT(debug_stack_depth, "asyncio.constants", "DEBUG_STACK_DEPTH");
    if ((st->coroutines_module = PyImport_ImportModule("asyncio.coroutines")) == NULL ||
        (st->sys_module = PyImport_ImportModule("sys")) == NULL ||
        (st->signal_module = PyImport_ImportModule("signal")) == NULL) {
        return -1;
    }
    /* Gone in 3.13, where create_task calls task.set_name(). */
    st->set_task_name = al__import_attr("asyncio.tasks", "_set_task_name");
    if (st->set_task_name == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    if (inspect_create_task(st) < 0) {
        return -1;
    }

    st->HandleType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__handle_spec, NULL);
    if (st->HandleType == NULL) {
        return -1;
    }
    st->TimerHandleType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__timer_handle_spec,
                                                                   (PyObject *)st->HandleType);
    if (st->TimerHandleType == NULL) {
        return -1;
    }
    /* poll.c */
    st->WatcherType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__watcher_spec, NULL);
    if (st->WatcherType == NULL) {
        return -1;
    }
    st->SockDoneType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__sock_done_spec, NULL);
    if (st->SockDoneType == NULL) {
        return -1;
    }
    st->SockCallType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__sock_call_spec, NULL);
    if (st->SockCallType == NULL || PyModule_AddType(module, st->SockCallType) < 0) {
        return -1;
    }
    IMPORT(partial, "functools", "partial");
    IMPORT(socket_type, "socket", "socket");
    if ((st->SSLSocket = al__import_attr("ssl", "SSLSocket")) == NULL) {
        PyErr_Clear(); /* asyncio's _check_ssl_socket without ssl: no check */
    }
    INTERN(str_gettimeout, "gettimeout");
    INTERN(str_cancel, "cancel");
    INTERN(str_fileno, "fileno");
    INTERN(str_recv, "recv");
    INTERN(str_recv_into, "recv_into");
    INTERN(str_send, "send");
    INTERN(str_connect, "connect");
    INTERN(str_accept, "accept");
    INTERN(str_set_exception, "set_exception");
    INTERN(str_sock_recv, "_sock_recv");
    INTERN(str_sock_recv_into, "_sock_recv_into");
    INTERN(str_sock_sendall, "_sock_sendall");
    INTERN(str_sock_connect_cb, "_sock_connect_cb");
    INTERN(str_sock_accept_cb, "_sock_accept");
    INTERN(str_sock_read_done, "_sock_read_done");
    INTERN(str_sock_write_done, "_sock_write_done");
    /* poll.c: datagram sock_* */
    INTERN(str_recvfrom, "recvfrom");
    INTERN(str_recvfrom_into, "recvfrom_into");
    INTERN(str_sendto, "sendto");
    INTERN(str_sock_recvfrom, "_sock_recvfrom");
    INTERN(str_sock_recvfrom_into, "_sock_recvfrom_into");
    INTERN(str_sock_sendto, "_sock_sendto");
    /* sendfile.c */
    IMPORT(SendfileNotAvailableError, "asyncio.exceptions", "SendfileNotAvailableError");
    INTERN(str_sock_sendfile_impl, "_sock_sendfile_native_impl");

    st->LoopType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__loop_spec, NULL);
    if (st->LoopType == NULL) {
        return -1;
    }
    if (PyModule_AddType(module, st->HandleType) < 0 ||
        PyModule_AddType(module, st->TimerHandleType) < 0 ||
        PyModule_AddType(module, st->LoopType) < 0) {
        return -1;
    }
    if (al__stream_init(module, st) < 0 || al__server_init(st) < 0 ||
        gc_hook_install(module, st) < 0) {
        return -1;
    }
    /* process.c */
    st->ChildType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &al__child_spec, NULL);
    if (st->ChildType == NULL || PyModule_AddType(module, st->ChildType) < 0) {
        return -1;
    }
    if (al__pipe_init(module, st) < 0) { /* pipe.c */
        return -1;
    }
    if (al__metrics_init(module, st) < 0) { /* metrics.c */
        return -1;
    }
    if (al__udp_init(module, st) < 0) { /* udp.c */
        return -1;
    }
    if (al__ssl_init(module, st) < 0) {
        return -1;
    }
    if (PyModule_AddStringConstant(module, "__libuv_version__", uv_version_string()) < 0) {
        return -1;
    }
    if (!atfork_registered) {
        if (pthread_atfork(NULL, NULL, after_fork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            return -1;
        }
        atfork_registered = 1;
    }
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    al_state *st = PyModule_GetState(module);
    Py_VISIT(st->LoopType);
    Py_VISIT(st->gc_hook);
    Py_VISIT(st->HandleType);
    Py_VISIT(st->TimerHandleType);
    Py_VISIT(st->Future);
    Py_VISIT(st->Task);
    Py_VISIT(st->ensure_future);
    Py_VISIT(st->isfuture);
    Py_VISIT(st->iscoroutine);
    Py_VISIT(st->iscoroutinefunction);
    Py_VISIT(st->coroutines_module);
    Py_VISIT(st->get_running_loop);
    Py_VISIT(st->set_running_loop);
    Py_VISIT(st->run_until_complete_cb);
    Py_VISIT(st->format_handle);
    Py_VISIT(st->format_callback_source);
    Py_VISIT(st->extract_stack);
    Py_VISIT(st->set_task_name);
    Py_VISIT(st->logger);
    Py_VISIT(st->ThreadPoolExecutor);
    Py_VISIT(st->wrap_future);
    Py_VISIT(st->set_result_unless_cancelled);
    Py_VISIT(st->sys_module);
    Py_VISIT(st->signal_module);
    Py_VISIT(st->debug_stack_depth);
    if (al__loop_defer_traverse(st, visit, arg) != 0) {
        return -1;
    }
    /* dns.c */
    Py_VISIT(st->socket_gaierror);
    Py_VISIT(st->AddressFamily);
    Py_VISIT(st->SocketKind);
    /* poll.c */
    Py_VISIT(st->WatcherType);
    Py_VISIT(st->SockDoneType);
    Py_VISIT(st->SockCallType);
    Py_VISIT(st->partial);
    Py_VISIT(st->SSLSocket);
    Py_VISIT(st->socket_type);
    Py_VISIT(st->sock_family);
    Py_VISIT(st->sock_timeout);
    /* process.c */
    Py_VISIT(st->ChildType);
    int rc = al__pipe_traverse(st, visit, arg); /* pipe.c */
    if (rc != 0) {
        return rc;
    }
    /* sendfile.c */
    Py_VISIT(st->SendfileNotAvailableError);
    Py_VISIT(st->MetricsType);                     /* metrics.c */
    int udp_rc = al__udp_traverse(st, visit, arg); /* udp.c */
    if (udp_rc != 0) {
        return udp_rc;
    }
    if (al__ssl_traverse(st, visit, arg) < 0 || al__server_traverse(st, visit, arg) < 0) {
        return -1;
    }
    return al__stream_traverse(st, visit, arg);
}

static int module_clear(PyObject *module)
{
    al_state *st = PyModule_GetState(module);
    /* First: freeing a parked handle reads its type, which the free list
       holds no reference to (the state's reference below is the one). */
    al__handle_free_list_clear(st);
    gc_hook_remove(st);
    Py_CLEAR(st->LoopType);
    Py_CLEAR(st->HandleType);
    Py_CLEAR(st->TimerHandleType);
    Py_CLEAR(st->Future);
    Py_CLEAR(st->Task);
    Py_CLEAR(st->ensure_future);
    Py_CLEAR(st->isfuture);
    Py_CLEAR(st->iscoroutine);
    Py_CLEAR(st->iscoroutinefunction);
    Py_CLEAR(st->coroutines_module);
    Py_CLEAR(st->get_running_loop);
    Py_CLEAR(st->set_running_loop);
    Py_CLEAR(st->run_until_complete_cb);
    Py_CLEAR(st->format_handle);
    Py_CLEAR(st->format_callback_source);
    Py_CLEAR(st->extract_stack);
    Py_CLEAR(st->set_task_name);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->ThreadPoolExecutor);
    Py_CLEAR(st->wrap_future);
    Py_CLEAR(st->set_result_unless_cancelled);
    Py_CLEAR(st->sys_module);
    Py_CLEAR(st->signal_module);
    Py_CLEAR(st->debug_stack_depth);
    al__loop_defer_clear(st);
    /* dns.c */
    Py_CLEAR(st->socket_gaierror);
    Py_CLEAR(st->AddressFamily);
    Py_CLEAR(st->SocketKind);
    Py_CLEAR(st->str_create_future);
    Py_CLEAR(st->str_set_exception);
    al__stream_clear(st);
    al__server_clear(st);
    al__pipe_clear(st);        /* pipe.c */
    Py_CLEAR(st->MetricsType); /* metrics.c */
    al__udp_clear(st);         /* udp.c */
    al__ssl_clear(st);         /* ssl.c */
    Py_CLEAR(st->str_context_seen);
    Py_CLEAR(st->kwnames_context_seen);
    Py_CLEAR(st->empty_tuple);
    Py_CLEAR(st->kwnames_loop);
    Py_CLEAR(st->kwnames_loop_name);
    Py_CLEAR(st->kwnames_loop_context);
    Py_CLEAR(st->kwnames_loop_name_context);
    Py_CLEAR(st->kwnames_context);
    Py_CLEAR(st->kwnames_name);
    Py_CLEAR(st->kwnames_name_context);
    /* poll.c */
    Py_CLEAR(st->WatcherType);
    Py_CLEAR(st->SockDoneType);
    Py_CLEAR(st->SockCallType);
    Py_CLEAR(st->partial);
    Py_CLEAR(st->SSLSocket);
    Py_CLEAR(st->socket_type);
    Py_CLEAR(st->sock_family);
    Py_CLEAR(st->sock_timeout);
    /* process.c */
    Py_CLEAR(st->ChildType);
    PyMem_RawFree(st->recv_scratch);
    st->recv_scratch = NULL;
    Py_CLEAR(st->recv_spare); /* poll.c */
    PyMem_RawFree(st->recv_hints);
    st->recv_hints = NULL;
    st->recv_hints_len = 0;
    Py_CLEAR(st->str_gettimeout);
    Py_CLEAR(st->str_cancel);
    Py_CLEAR(st->str_fileno);
    Py_CLEAR(st->str_recv);
    Py_CLEAR(st->str_recv_into);
    Py_CLEAR(st->str_send);
    Py_CLEAR(st->str_connect);
    Py_CLEAR(st->str_accept);
    Py_CLEAR(st->str_sock_recv);
    Py_CLEAR(st->str_sock_recv_into);
    Py_CLEAR(st->str_sock_sendall);
    Py_CLEAR(st->str_sock_connect_cb);
    Py_CLEAR(st->str_sock_accept_cb);
    Py_CLEAR(st->str_sock_read_done);
    Py_CLEAR(st->str_sock_write_done);
    /* poll.c: datagram sock_* */
    Py_CLEAR(st->str_recvfrom);
    Py_CLEAR(st->str_recvfrom_into);
    Py_CLEAR(st->str_sendto);
    Py_CLEAR(st->str_sock_recvfrom);
    Py_CLEAR(st->str_sock_recvfrom_into);
    Py_CLEAR(st->str_sock_sendto);
    /* sendfile.c */
    Py_CLEAR(st->SendfileNotAvailableError);
    Py_CLEAR(st->str_sock_sendfile_impl);
    /* Interned names stay valid for the interpreter; drop our references. */
    PyObject **names[] = {
        &st->str_context,
        &st->str_loop,
        &st->str_name,
        &st->str_call_exception_handler,
        &st->str_message,
        &st->str_exception,
        &st->str_handle,
        &st->str_source_traceback,
        &st->str_log_destroy_pending,
        &st->str_add_done_callback,
        &st->str_remove_done_callback,
        &st->str_result,
        &st->str_exception_meth,
        &st->str_done,
        &st->str_cancelled,
        &st->str_set_name,
        &st->str_set_result,
        &st->str_submit,
        &st->str_shutdown,
        &st->str_wait,
        &st->str_debug,
        &st->str_firstiter,
        &st->str_finalizer,
        &st->str_firstiter_hook,
        &st->str_finalizer_hook,
        &st->str_set_wakeup_fd,
        &st->str_warn_on_full_buffer,
        &st->str_signal,
        &st->str_siginterrupt,
        &st->str_valid_signals,
        &st->str_default_int_handler,
        &st->str_handle_signal,
        &st->str_set_coro_depth,
        &st->str_get_coro_depth,
        &st->str_get_asyncgen_hooks,
        &st->str_set_asyncgen_hooks,
        &st->str_is_finalizing,
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Py_CLEAR(*names[i]);
    }
    return 0;
}

static void module_free(void *module)
{
    al_state *st = PyModule_GetState((PyObject *)module);
    if (st != NULL) {
        al__handle_free_list_clear(st);
    }
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "asyncloop._core",
    .m_doc = "The C core of asyncloop: an asyncio event loop over libuv.",
    .m_size = sizeof(al_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&module_def);
}
