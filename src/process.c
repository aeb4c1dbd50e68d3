/* Child processes: spawning with posix_spawn (glibc runs it as a
   clone(CLONE_VM | CLONE_VFORK), the fastest way measured, see
   benchmarks/spawn.py) and reaping through a pidfd the loop polls, so that
   no SIGCHLD handler, signal handler or policy child watcher is involved
   and a loop in any thread reaps its own children. Where there is no
   pidfd_open (Linux < 5.3, valgrind, gVisor, seccomp filters) or
   ASYNCLOOP_NO_PIDFD is set, a thread per child waits for it instead (see
   waiter_box).

   The asyncio protocol plumbing around a child (pipes, callbacks order,
   wait()) is asyncio's own BaseSubprocessTransport, subclassed in
   asyncloop/__init__.py: it runs once per process and per pipe event,
   while the costly parts (fork/exec, the wait for the exec, the reaping)
   are here. */
/* Python.h defines _GNU_SOURCE (posix_spawn_file_actions_addchdir_np,
   addclosefrom_np). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE_SPAWN_CLOSEFROM 1
#else
#define HAVE_SPAWN_CLOSEFROM 0
#endif

typedef struct {
    uv_poll_t poll;
    al_state *st;
} child_box;

/* Reaping without a pidfd, as asyncio's ThreadedChildWatcher: a detached
   thread per child blocks in waitid(pid) (no SIGCHLD handler, other
   children untouched) and hands the status to the loop through a
   uv_async_t. The box is shared by three owners, counted in refs under mu:
   the loop's async handle (until closed), the thread and the Child; the
   last one frees it. The thread touches nothing else: neither the loop,
   which may be closed and freed first, nor Python. */
typedef struct {
    uv_async_t async; /* data: the Child while the loop watches */
    al_state *st;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled when done */
    pid_t pid;
    int refs;
    unsigned char open;   /* the async handle may be sent to */
    unsigned char done;   /* reaped by the thread: status, or err (ECHILD) */
    unsigned char thread; /* the thread was started */
    int status;
    int err;
} waiter_box;

/* The Popen-like object of a spawned child (transport._proc). */
typedef struct {
    PyObject_HEAD
    LoopObject *loop;   /* NULL once the watch is over */
    child_box *box;     /* the pidfd's poll handle while watching */
    waiter_box *waiter; /* without pidfd: the Child's reference to it */
    char waiter_open;   /* its async handle is the loop's */
    al_io io;
    PyObject *callback; /* loop.call_soon(callback, returncode) at exit */
    PyObject *returncode;
    PyObject *args;
    PyObject *stdin_obj;
    PyObject *stdout_obj;
    PyObject *stderr_obj;
    PyObject *dict; /* instance attributes, as a Popen's */
    long pid;
    int pidfd;
    char reaped;      /* by the loop, Child.wait() or the thread of child_stop */
    char exited;      /* its exit status was seen here */
    char has_pending; /* reaped before a callback was set */
    int pending_rc;
} ChildObject;

#define IO_TO_CHILD(p) ((ChildObject *)((char *)(p)-offsetof(ChildObject, io)))

static void on_box_close(uv_handle_t *handle)
{
    child_box *box = (child_box *)handle;
    box->st->live_uv_handles--;
    PyMem_RawFree(box);
}

static void *reaper_thread(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    free(arg);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* A detached thread with a small stack, started with every signal blocked
   so that signals keep going to the interpreter's threads (0 or an errno). */
static int start_detached(void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, (size_t)64 * 1024);
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* A detached thread blocked in waitpid(pid): for a child whose loop is
   gone, so that it never stays a zombie. 0, or -1 if none could start. */
static int start_reaper(pid_t pid)
{
    pid_t *arg = malloc(sizeof(pid_t));
    if (arg == NULL) {
        return -1;
    }
    *arg = pid;
    int rc = start_detached(reaper_thread, arg);
    if (rc != 0) {
        free(arg);
        return -1;
    }
    return 0;
}

static void waiter_release(waiter_box *w)
{
    pthread_mutex_lock(&w->mu);
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cond);
        free(w);
    }
}

static void *waiter_thread(void *arg)
{
    waiter_box *w = arg;
    for (;;) {
        /* Waited for without reaping: until the reap below, made under mu,
           the pid cannot be reused, so child_signal's kill() under mu
           never reaches another process. */
        siginfo_t si;
        int r, status = 0, err = 0;
        do {
            r = waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOWAIT);
        } while (r < 0 && errno == EINTR);
        pthread_mutex_lock(&w->mu);
        if (r < 0) {
            err = errno;
        }
        else {
            pid_t p;
            do {
                p = waitpid(w->pid, &status, WNOHANG);
            } while (p < 0 && errno == EINTR);
            if (p == 0) {
                pthread_mutex_unlock(&w->mu);
                continue; /* cannot happen for a zombie: wait again */
            }
            if (p < 0) {
                err = errno; /* reaped by someone else meanwhile */
            }
        }
        w->done = 1;
        w->status = status;
        w->err = err;
        pthread_cond_broadcast(&w->cond);
        if (w->open) {
            uv_async_send(&w->async);
        }
        pthread_mutex_unlock(&w->mu);
        waiter_release(w);
        return NULL;
    }
}

/* Starts the thread of w (its reference taken): 0, or an errno. All
   signals blocked in it: they are for the threads that run Python. */
static int waiter_start(waiter_box *w)
{
    pthread_mutex_lock(&w->mu);
    w->refs++;
    pthread_mutex_unlock(&w->mu);
    int rc = start_detached(waiter_thread, w);
    if (rc != 0) {
        waiter_release(w);
        return rc;
    }
    w->thread = 1;
    return 0;
}

static void on_waiter_close(uv_handle_t *handle)
{
    waiter_box *w = (waiter_box *)handle;
    w->st->live_uv_handles--;
    waiter_release(w);
}

/* Stops watching: the poll handle is closed, the loop's reference (held)
   dropped. A child not reaped yet (its loop closes first) is left to a
   detached thread blocked in waitpid: never a zombie. */
static void child_stop(ChildObject *c)
{
    LoopObject *loop = c->loop;
    if (loop == NULL) {
        return;
    }
    if (c->box != NULL) {
        child_box *box = c->box;
        c->box = NULL;
        if (loop->uv_ready) {
            al__poll_forget(loop, &box->poll);
            uv_poll_stop(&box->poll);
            box->poll.data = NULL;
            uv_close((uv_handle_t *)&box->poll, on_box_close);
        }
        loop->io_watchers--;
    }
    if (c->waiter_open) {
        /* The thread goes on (and reaps), without sending any more. */
        waiter_box *w = c->waiter;
        c->waiter_open = 0;
        pthread_mutex_lock(&w->mu);
        w->open = 0;
        pthread_mutex_unlock(&w->mu);
        w->async.data = NULL;
        if (loop->uv_ready) {
            uv_close((uv_handle_t *)&w->async, on_waiter_close);
        }
        loop->io_watchers--;
    }
    al__loop_io_unlink(&c->io);
    if (!c->reaped && (c->waiter == NULL || !c->waiter->thread) &&
        start_reaper((pid_t)c->pid) == 0) {
        c->reaped = 1;
    }
    c->loop = NULL;
    Py_CLEAR(c->callback);
    PyObject *held = c->io.held;
    c->io.held = NULL;
    Py_DECREF(loop);
    Py_XDECREF(held); /* last: may free c */
}

static void child_loop_closing(al_io *io)
{
    child_stop(IO_TO_CHILD(io));
}

/* asyncio's waitstatus_to_exitcode. */
static int exit_code(int status)
{
    if (WIFSIGNALED(status)) {
        return -WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

/* callback(returncode) two handles later, as asyncio: its child watcher's
   callback (PidfdChildWatcher._do_wait, the pidfd reader's handle queued
   behind those queued before the poll; ThreadedChildWatcher's
   call_soon_threadsafe) call_soon_threadsafe()s transport._process_exited.
   Here the first handle is loop.call_soon(cb, returncode) itself. */
static int schedule_exit(LoopObject *loop, PyObject *cb, int rc)
{
    PyObject *code = PyLong_FromLong(rc);
    if (code == NULL) {
        return -1;
    }
    PyObject *soon = PyObject_GetAttr((PyObject *)loop, loop->state->str_call_soon);
    PyObject *res = NULL;
    if (soon != NULL) {
        PyObject *argv[4] = {(PyObject *)loop, soon, cb, code};
        res = PyObject_VectorcallMethod(loop->state->str_call_soon, argv,
                                        4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(soon);
    }
    Py_DECREF(code);
    Py_XDECREF(res);
    return res == NULL ? -1 : 0;
}

/* The child is gone (r < 0: it was reaped elsewhere), with the GIL. */
static void child_exited(ChildObject *c, int r, int wstatus)
{
    LoopObject *loop = c->loop;
    al_state *st = loop->state;
    Py_INCREF(c);
    Py_INCREF(loop);
    int rc;
    if (r < 0 && c->exited && c->returncode != NULL && PyLong_Check(c->returncode)) {
        /* Child.wait() reaped it first. */
        rc = (int)PyLong_AsLong(c->returncode);
    }
    else if (r < 0) {
        /* Reaped by someone else (a waitpid(-1) elsewhere): asyncio's
           child watchers say so and report 255. */
        rc = 255;
        PyObject *res =
            PyObject_CallMethod(st->logger, "warning", "sl",
                                "Unknown child process pid %d, will report returncode 255", c->pid);
        if (res == NULL) {
            PyErr_WriteUnraisable((PyObject *)c);
        }
        Py_XDECREF(res);
    }
    else {
        rc = exit_code(wstatus);
    }
    c->reaped = 1;
    c->exited = 1;
    PyObject *cb = Py_XNewRef(c->callback);
    child_stop(c);
    if (cb == NULL) {
        /* Spawned by _spawn_child_async, no transport yet. */
        c->has_pending = 1;
        c->pending_rc = rc;
    }
    else if (schedule_exit(loop, cb, rc) < 0 && !al__loop_stash_fatal_error(loop)) {
        PyErr_WriteUnraisable(cb);
    }
    Py_XDECREF(cb);
    Py_DECREF(loop);
    Py_DECREF(c);
}

static void on_pidfd(uv_poll_t *handle, int status, int events)
{
    (void)status;
    (void)events;
    ChildObject *c = handle->data;
    if (c == NULL) {
        return;
    }
    al__loop_hold_gil(c->loop);
    int wstatus = 0;
    pid_t r;
    do {
        r = waitpid((pid_t)c->pid, &wstatus, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r != 0) {
        child_exited(c, r < 0 ? -1 : 1, wstatus);
    }
}

static void on_waiter(uv_async_t *async)
{
    ChildObject *c = async->data;
    if (c == NULL) {
        return;
    }
    waiter_box *w = c->waiter;
    pthread_mutex_lock(&w->mu);
    int done = w->done, wstatus = w->status, err = w->err;
    pthread_mutex_unlock(&w->mu);
    if (done) {
        al__loop_hold_gil(c->loop);
        child_exited(c, err != 0 ? -1 : 1, wstatus);
    }
}

static PyObject *child_signal(ChildObject *self, int sig);

/* --- spawning ------------------------------------------------------------- */

/* A NULL-terminated array of the fs-encoded items of seq (bytes kept in
 *keep). */
static char **fs_array(PyObject *seq, PyObject **keep, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject *list = PyList_New(n);
    char **out = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (list == NULL || out == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = NULL;
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &b)) {
            goto fail;
        }
        PyList_SET_ITEM(list, i, b);
        out[i] = PyBytes_AS_STRING(b);
    }
    Py_DECREF(fast);
    *keep = list;
    return out;
fail:
    Py_DECREF(fast);
    Py_XDECREF(list);
    PyMem_Free(out);
    if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    return NULL;
}

/* env as Popen builds it: b"key=value", a key with "=" refused. */
static char **env_array(PyObject *env, PyObject **keep)
{
    PyObject *items = PyMapping_Items(env);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *list = PyList_New(n);
    char **out = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (list == NULL || out == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *kv = PyList_GET_ITEM(items, i); /* borrowed */
        PyObject *k = NULL, *v = NULL;
        if (!PyTuple_Check(kv) || PyTuple_GET_SIZE(kv) != 2) {
            PyErr_SetString(PyExc_TypeError, "env items must be pairs");
            goto fail;
        }
        if (!PyUnicode_FSConverter(PyTuple_GET_ITEM(kv, 0), &k)) {
            goto fail;
        }
        if (strchr(PyBytes_AS_STRING(k), '=') != NULL) {
            Py_DECREF(k);
            PyErr_SetString(PyExc_ValueError, "illegal environment variable name");
            goto fail;
        }
        if (!PyUnicode_FSConverter(PyTuple_GET_ITEM(kv, 1), &v)) {
            Py_DECREF(k);
            goto fail;
        }
        PyObject *e = PyBytes_FromFormat("%s=%s", PyBytes_AS_STRING(k), PyBytes_AS_STRING(v));
        Py_DECREF(k);
        Py_DECREF(v);
        if (e == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(list, i, e);
        out[i] = PyBytes_AS_STRING(e);
    }
    Py_DECREF(items);
    *keep = list;
    return out;
fail:
    Py_DECREF(items);
    Py_XDECREF(list);
    PyMem_Free(out);
    if (!PyErr_Occurred()) {
        PyErr_NoMemory();
    }
    return NULL;
}

static int as_fd(PyObject *o, int *fd)
{
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
        return -1;
    }
    *fd = (int)v;
    return 0;
}

/* Is path something execve could run (the first one on PATH wins, as
   execvp's search)? 0, or the errno. */
static int exec_candidate(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) < 0) {
        return errno;
    }
    if (!S_ISREG(sb.st_mode)) {
        return EACCES;
    }
    return access(path, X_OK) == 0 ? 0 : errno;
}

/* A spawn request: everything posix_spawn needs, made with the GIL held,
   so that the call itself can run without it, in the caller's thread
   (_spawn_child) or on libuv's thread pool (_spawn_child_async). */
typedef struct {
    uv_work_t work;
    LoopObject *loop;   /* async: strong */
    PyObject *future;   /* async: strong */
    PyObject *callback; /* strong, or NULL */
    PyObject *argv_obj;
    PyObject *err_filename; /* the program as given, or cwd */
    PyObject *cwd_obj;
    PyObject *argv_keep, *env_keep, *exe_b, *cwd_b, *cand;
    char **argv;
    char **envp;
    const char *exe;
    posix_spawn_file_actions_t files;
    posix_spawnattr_t attr;
    int files_ready, attr_ready;
    int high[3];
    int close_after[3]; /* the child's ends of its pipes, closed at the end */
    int search_err;
    int err;
    pid_t pid;
} spawn_req;

static void spawn_req_free(spawn_req *req)
{
    for (int i = 0; i < 3; i++) {
        if (req->high[i] >= 0) {
            close(req->high[i]);
        }
        if (req->close_after[i] >= 0) {
            close(req->close_after[i]);
        }
    }
    if (req->files_ready) {
        posix_spawn_file_actions_destroy(&req->files);
    }
    if (req->attr_ready) {
        posix_spawnattr_destroy(&req->attr);
    }
    PyMem_Free(req->argv);
    PyMem_Free(req->envp);
    Py_XDECREF(req->loop);
    Py_XDECREF(req->future);
    Py_XDECREF(req->callback);
    Py_XDECREF(req->argv_obj);
    Py_XDECREF(req->err_filename);
    Py_XDECREF(req->cwd_obj);
    Py_XDECREF(req->argv_keep);
    Py_XDECREF(req->env_keep);
    Py_XDECREF(req->exe_b);
    Py_XDECREF(req->cwd_b);
    Py_XDECREF(req->cand);
    PyMem_RawFree(req);
}

/* The arguments of _spawn_child_async (see there). The fds of
   close_after are closed in every case, once the spawn is over. */
static spawn_req *spawn_prepare(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "_spawn_child_async takes 14 arguments");
        return NULL;
    }
    spawn_req *req = PyMem_RawCalloc(1, sizeof(spawn_req));
    if (req == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    req->high[0] = req->high[1] = req->high[2] = -1;
    req->close_after[0] = req->close_after[1] = req->close_after[2] = -1;
    PyObject *after = PySequence_Fast(args[13], "close_after must be a sequence");
    if (after == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(after) && i < 3; i++) {
        if (as_fd(PySequence_Fast_GET_ITEM(after, i), &req->close_after[i]) < 0) {
            req->close_after[i] = -1;
            Py_DECREF(after);
            goto fail;
        }
    }
    Py_DECREF(after);
    if (self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        goto fail;
    }
    PyObject *argv_obj = args[0], *exe_obj = args[1], *path_obj = args[2], *cwd_obj = args[3],
             *env_obj = args[4];
    int fds[3], close_fds, setsid_, pgroup, restore;
    for (int i = 0; i < 3; i++) {
        if (as_fd(args[5 + i], &fds[i]) < 0) {
            goto fail;
        }
    }
    if ((close_fds = PyObject_IsTrue(args[8])) < 0 || (setsid_ = PyObject_IsTrue(args[9])) < 0 ||
        as_fd(args[10], &pgroup) < 0 || (restore = PyObject_IsTrue(args[11])) < 0) {
        goto fail;
    }
    req->work.data = req;
    req->callback = args[12] == Py_None ? NULL : Py_NewRef(args[12]);
    req->argv_obj = Py_NewRef(argv_obj);
    req->cwd_obj = Py_NewRef(cwd_obj);

    if ((req->argv = fs_array(argv_obj, &req->argv_keep, "args must be a sequence")) == NULL) {
        goto fail;
    }
    if (req->argv[0] == NULL) {
        PyErr_SetString(PyExc_ValueError, "args is empty");
        goto fail;
    }
    req->err_filename = exe_obj == Py_None ? PySequence_GetItem(argv_obj, 0) : Py_NewRef(exe_obj);
    if (req->err_filename == NULL || !PyUnicode_FSConverter(req->err_filename, &req->exe_b)) {
        goto fail;
    }
    if (cwd_obj != Py_None && !PyUnicode_FSConverter(cwd_obj, &req->cwd_b)) {
        goto fail;
    }
    if (env_obj != Py_None && (req->envp = env_array(env_obj, &req->env_keep)) == NULL) {
        goto fail;
    }

    /* The program: a name with a slash as it is, else the first runnable
       file on PATH (an existing but unrunnable one noted, as execvp). */
    req->exe = PyBytes_AS_STRING(req->exe_b);
    if (strchr(req->exe, '/') == NULL) {
        PyObject *fast = PySequence_Fast(path_obj, "exec_path must be a sequence");
        if (fast == NULL) {
            goto fail;
        }
        req->search_err = ENOENT;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
            PyObject *dir = NULL;
            if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &dir)) {
                Py_DECREF(fast);
                goto fail;
            }
            Py_XSETREF(req->cand, PyBytes_FromFormat("%s/%s", PyBytes_AS_STRING(dir), req->exe));
            Py_DECREF(dir);
            if (req->cand == NULL) {
                Py_DECREF(fast);
                goto fail;
            }
            int e = exec_candidate(PyBytes_AS_STRING(req->cand));
            if (e == 0) {
                req->search_err = 0;
                break;
            }
            if (e != ENOENT && e != ENOTDIR && req->search_err == ENOENT) {
                req->search_err = e;
            }
        }
        Py_DECREF(fast);
        if (req->search_err == 0) {
            req->exe = PyBytes_AS_STRING(req->cand);
        }
    }

    /* Sources among 0-2 that another dup2 would overwrite first move up. */
    int spawn_fds[3];
    for (int i = 0; i < 3; i++) {
        spawn_fds[i] = fds[i];
        if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i) {
            req->high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (req->high[i] < 0) {
                PyErr_SetFromErrno(PyExc_OSError);
                goto fail;
            }
            spawn_fds[i] = req->high[i];
        }
    }

    int err = posix_spawn_file_actions_init(&req->files);
    req->files_ready = err == 0;
    if (err == 0) {
        err = posix_spawnattr_init(&req->attr);
        req->attr_ready = err == 0;
    }
    short flags = 0;
    for (int i = 0; i < 3 && err == 0; i++) {
        if (spawn_fds[i] >= 0) {
            /* dup2 onto itself clears FD_CLOEXEC (glibc >= 2.29). */
            err = posix_spawn_file_actions_adddup2(&req->files, spawn_fds[i], i);
        }
    }
    if (err == 0 && req->cwd_b != NULL) {
        err = posix_spawn_file_actions_addchdir_np(&req->files, PyBytes_AS_STRING(req->cwd_b));
    }
#if HAVE_SPAWN_CLOSEFROM
    if (err == 0 && close_fds) {
        err = posix_spawn_file_actions_addclosefrom_np(&req->files, 3);
    }
#else
    (void)close_fds; /* inheritable fds stay open */
#endif
    if (err == 0 && setsid_) {
        flags |= POSIX_SPAWN_SETSID;
    }
    if (err == 0 && pgroup >= 0) {
        flags |= POSIX_SPAWN_SETPGROUP;
        err = posix_spawnattr_setpgroup(&req->attr, pgroup);
    }
    if (err == 0 && restore) {
        /* What Python ignores at startup, as _posixsubprocess restores. */
        sigset_t def;
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGXFSZ);
        flags |= POSIX_SPAWN_SETSIGDEF;
        err = posix_spawnattr_setsigdefault(&req->attr, &def);
    }
    if (err == 0) {
        err = posix_spawnattr_setflags(&req->attr, flags);
    }
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    return req;
fail:
    spawn_req_free(req);
    return NULL;
}

/* Without the GIL. */
static void spawn_run(spawn_req *req)
{
    if (req->search_err != 0) {
        req->err = req->search_err;
        return;
    }
    req->err = posix_spawn(&req->pid, req->exe, &req->files, &req->attr, req->argv,
                           req->envp ? req->envp : environ);
}

static void spawn_work(uv_work_t *work)
{
    spawn_run(work->data);
}

static atomic_int pidfd_enosys; /* the kernel has none: not asked again */

/* A pidfd for pid, or -1 to reap it with a thread (no pidfd_open, or the
   loop made with ASYNCLOOP_NO_PIDFD). */
static int open_pidfd(LoopObject *loop, pid_t pid)
{
    if (loop->no_pidfd || atomic_load_explicit(&pidfd_enosys, memory_order_relaxed)) {
        return -1;
    }
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        if (errno == ENOSYS) {
            atomic_store_explicit(&pidfd_enosys, 1, memory_order_relaxed);
        }
        return -1;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

/* c watched by a waiter thread (c->loop set by the caller on success): 0,
   or -1 with an exception. */
static int child_watch_thread(ChildObject *c, LoopObject *self)
{
    waiter_box *w = calloc(1, sizeof(waiter_box));
    if (w == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    w->st = self->state;
    w->pid = (pid_t)c->pid;
    w->refs = 1; /* the Child's */
    c->waiter = w;
    int err = uv_async_init(&self->uv, &w->async, on_waiter);
    if (err < 0) {
        al__set_uv_error(err);
        return -1;
    }
    w->async.data = c;
    w->refs++; /* the handle's */
    w->open = 1;
    c->waiter_open = 1;
    self->state->live_uv_handles++;
    self->io_watchers++;
    err = waiter_start(w);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* A Child watching pid (the pidfd consumed; -1: a thread waits), or NULL
   with an exception (the child then reaped by a thread). */
static PyObject *child_new(LoopObject *self, pid_t pid, int pidfd, PyObject *callback,
                           PyObject *argv_obj)
{
    al_state *st = self->state;
    ChildObject *c = PyObject_GC_New(ChildObject, st->ChildType);
    if (c == NULL) {
        if (pidfd >= 0) {
            close(pidfd);
        }
        (void)start_reaper(pid);
        return NULL;
    }
    c->loop = NULL;
    c->box = NULL;
    c->waiter = NULL;
    c->waiter_open = 0;
    c->io.prev = c->io.next = NULL;
    c->io.loop_closing = child_loop_closing;
    c->io.held = NULL;
    c->callback = Py_XNewRef(callback);
    c->returncode = NULL;
    c->args = Py_XNewRef(argv_obj);
    c->stdin_obj = c->stdout_obj = c->stderr_obj = NULL;
    c->dict = NULL;
    c->pid = pid;
    c->pidfd = pidfd;
    c->reaped = 0;
    c->exited = 0;
    c->pending_rc = 0;
    c->has_pending = 0;
    PyObject_GC_Track(c);

    if (pidfd < 0) {
        int failed = child_watch_thread(c, self);
        c->loop = (LoopObject *)Py_NewRef(self);
        c->io.held = Py_NewRef(c);
        al__loop_io_link(self, &c->io);
        if (failed) {
            child_stop(c); /* the detached reaper of child_stop waits */
            Py_DECREF(c);
            return NULL;
        }
        return (PyObject *)c;
    }

    int err = 0;
    child_box *box = PyMem_RawMalloc(sizeof(child_box));
    if (box == NULL) {
        PyErr_NoMemory();
    }
    else if ((err = al__poll_init(self, &box->poll, pidfd)) < 0) {
        PyMem_RawFree(box);
        box = NULL;
        al__set_uv_error(err);
    }
    if (box == NULL) {
        c->loop = (LoopObject *)Py_NewRef(self);
        child_stop(c); /* a thread reaps it */
        Py_DECREF(c);
        return NULL;
    }
    box->st = st;
    box->poll.data = c;
    st->live_uv_handles++;
    c->box = box;
    c->loop = (LoopObject *)Py_NewRef(self);
    c->io.held = Py_NewRef(c);
    al__loop_io_link(self, &c->io);
    self->io_watchers++;
    if (al__poll_start(self, &box->poll, UV_READABLE, on_pidfd) < 0) {
        child_stop(c);
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

/* After spawn_run, with the GIL: the Child, or NULL with Popen's error. */
static PyObject *spawn_finish(LoopObject *self, spawn_req *req)
{
    if (req->err != 0) {
        int err = req->err;
        /* Popen names the cwd when the chdir failed, the program else. */
        if (req->cwd_b != NULL) {
            const char *cwd = PyBytes_AS_STRING(req->cwd_b);
            struct stat sb;
            int cwd_err = 0;
            if (stat(cwd, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
                cwd_err = ENOTDIR;
            }
            else if (stat(cwd, &sb) < 0 || access(cwd, X_OK) < 0) {
                cwd_err = errno;
            }
            if (cwd_err != 0) {
                err = cwd_err;
                Py_SETREF(req->err_filename, Py_NewRef(req->cwd_obj));
            }
        }
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, req->err_filename);
        return NULL;
    }
    return child_new(self, req->pid, open_pidfd(self, req->pid), req->callback, req->argv_obj);
}

static void spawn_after_work(uv_work_t *work, int status)
{
    spawn_req *req = work->data;
    LoopObject *loop = req->loop;
    al__loop_hold_gil(loop);
    al_state *st = loop->state;
    loop->dns_pending--;
    loop->io_watchers--;
    if (status == UV_ECANCELED) {
        req->err = ECANCELED;
    }
    if (loop->closed) {
        /* Closed while the spawn ran: nobody waits for this child. */
        if (req->err == 0) {
            kill(req->pid, SIGKILL);
            (void)start_reaper(req->pid);
        }
        spawn_req_free(req);
        return;
    }
    PyObject *child = spawn_finish(loop, req);
    PyObject *exc = child == NULL ? al__err_fetch() : NULL;
    PyObject *fut = req->future;
    PyObject *res =
        PyObject_VectorcallMethod(st->str_done, &fut, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    int done = res == NULL ? -1 : PyObject_IsTrue(res);
    Py_XDECREF(res);
    if (done != 0) {
        /* Cancelled while spawning: the child is killed, still reaped. */
        PyErr_Clear();
        if (child != NULL) {
            PyObject *r = child_signal((ChildObject *)child, SIGKILL);
            Py_XDECREF(r);
            PyErr_Clear();
        }
    }
    else {
        PyObject *argv[2] = {fut, child != NULL ? child : exc};
        PyObject *r =
            PyObject_VectorcallMethod(child != NULL ? st->str_set_result : st->str_set_exception,
                                      argv, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_XDECREF(r);
        if (r == NULL && !al__loop_stash_fatal_error(loop)) {
            PyErr_WriteUnraisable(fut);
        }
    }
    Py_XDECREF(exc);
    Py_XDECREF(child);
    spawn_req_free(req);
}

/* loop._spawn_child_async(argv, executable, exec_path, cwd, env, stdin,
   stdout, stderr, close_fds, start_new_session, process_group,
   restore_signals, callback, close_after) -> Future of a Child.
   argv: the program's arguments; executable: what to run (argv[0] if
   None) and the filename of errors; exec_path: PATH's directories
   (os.get_exec_path(env)) for a name without a slash; the stdio fds are
   -1 to inherit; callback(returncode) is scheduled with call_soon once
   the child is reaped (None: set later with Child._set_exit_callback);
   close_after: the child's ends of the pipes, closed once the spawn is
   over (whatever happens to the future).
   posix_spawn returns only once the child has exec'd: it runs on libuv's
   thread pool, so that the children of concurrent calls exec at once. A
   future cancelled meanwhile gets its child killed (and reaped). */
PyObject *al__loop_spawn_child_async(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    al_state *st = self->state;
    spawn_req *req = spawn_prepare(self, args, nargs);
    if (req == NULL) {
        return NULL;
    }
    PyObject *fut = PyObject_CallMethodNoArgs((PyObject *)self, st->str_create_future);
    if (fut == NULL) {
        spawn_req_free(req);
        return NULL;
    }
    int err = uv_queue_work(&self->uv, &req->work, spawn_work, spawn_after_work);
    if (err < 0) {
        spawn_req_free(req);
        Py_DECREF(fut);
        al__set_uv_error(err);
        return NULL;
    }
    req->loop = (LoopObject *)Py_NewRef(self);
    req->future = Py_NewRef(fut);
    /* Counted with the lookups: loop_close_uv waits for the thread pool's
       requests (al__dns_close_wait); the loop polls while one runs. */
    self->dns_pending++;
    self->io_watchers++;
    return fut;
}

/* loop._watch_child(pid, callback) -> Child: reaps a child spawned
   elsewhere (subprocess.Popen, for the options posix_spawn lacks). */
PyObject *al__loop_watch_child(LoopObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_watch_child takes 2 arguments");
        return NULL;
    }
    long pid = PyLong_AsLong(args[0]);
    if (pid == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (pid <= 0 || pid > INT_MAX) {
        /* waitpid would take it for a process group. */
        errno = EINVAL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* No pidfd for a pid that is not a process (ESRCH) either: the thread
       then reports it as asyncio's watchers do, 255 with a warning. */
    int pidfd = open_pidfd(self, (pid_t)pid);
    return child_new(self, (pid_t)pid, pidfd, args[1] == Py_None ? NULL : args[1], NULL);
}

/* --- Child methods: Popen's, over the pidfd (no pid reuse race) ----------- */

static PyObject *Child_poll(ChildObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self->returncode ? self->returncode : Py_None);
}

static PyObject *child_signal(ChildObject *self, int sig)
{
    if (self->returncode != NULL && self->returncode != Py_None) {
        Py_RETURN_NONE; /* Popen: a process known to be dead is not signalled */
    }
    long r;
    if (self->pidfd >= 0) {
        r = syscall(SYS_pidfd_send_signal, self->pidfd, sig, NULL, 0);
    }
    else if (self->waiter != NULL) {
        /* Under mu, the pid is not reused: its thread reaps under mu. */
        waiter_box *w = self->waiter;
        pthread_mutex_lock(&w->mu);
        r = w->done ? 0 : kill((pid_t)self->pid, sig);
        int e = errno;
        pthread_mutex_unlock(&w->mu);
        errno = e;
    }
    else {
        r = kill((pid_t)self->pid, sig);
    }
    if (r < 0 && errno != ESRCH) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* Child._set_exit_callback(loop, callback): callback(returncode) once the
   child is reaped (now, through call_soon, if it already is). */
static PyObject *Child_set_exit_callback(ChildObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_set_exit_callback takes 2 arguments");
        return NULL;
    }
    if (self->has_pending) {
        self->has_pending = 0;
        if (schedule_exit((LoopObject *)args[0], args[1], self->pending_rc) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_XSETREF(self->callback, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

static PyObject *Child_send_signal(ChildObject *self, PyObject *sig)
{
    int s;
    if (as_fd(sig, &s) < 0) {
        return NULL;
    }
    return child_signal(self, s);
}

static PyObject *Child_terminate(ChildObject *self, PyObject *unused)
{
    (void)unused;
    return child_signal(self, SIGTERM);
}

static PyObject *Child_kill(ChildObject *self, PyObject *unused)
{
    (void)unused;
    return child_signal(self, SIGKILL);
}

static PyObject *timeout_expired(ChildObject *self, PyObject *timeout)
{
    PyObject *exc_type = al__import_attr("subprocess", "TimeoutExpired");
    if (exc_type != NULL) {
        PyObject *exc = PyObject_CallFunctionObjArgs(exc_type, self->args ? self->args : Py_None,
                                                     timeout, NULL);
        if (exc != NULL) {
            PyErr_SetObject(exc_type, exc);
            Py_DECREF(exc);
        }
        Py_DECREF(exc_type);
    }
    return NULL;
}

/* Child.wait() of a child reaped by a waiter thread: for the thread's
   result (the loop may be closed, the thread still goes on). */
static PyObject *child_wait_thread(ChildObject *self, PyObject *timeout)
{
    waiter_box *w = self->waiter;
    struct timespec deadline = {0, 0};
    int timed = timeout != Py_None;
    if (timed) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        if (t > 0) {
            double sec = t > 1e9 ? 1e9 : t;
            deadline.tv_sec += (time_t)sec;
            deadline.tv_nsec += (long)((sec - (double)(time_t)sec) * 1e9);
            if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
            }
        }
    }
    int done, wstatus, err;
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&w->mu);
    while (!w->done) {
        if (!timed) {
            pthread_cond_wait(&w->cond, &w->mu);
        }
        else if (pthread_cond_timedwait(&w->cond, &w->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    done = w->done;
    wstatus = w->status;
    err = w->err;
    pthread_mutex_unlock(&w->mu);
    Py_END_ALLOW_THREADS if (!done)
    {
        return timeout_expired(self, timeout);
    }
    if (self->returncode == NULL || self->returncode == Py_None) {
        /* Reaped elsewhere: the loop's callback says so (255). */
        Py_XSETREF(self->returncode, PyLong_FromLong(err != 0 ? 255 : exit_code(wstatus)));
        self->exited = 1;
    }
    return Py_XNewRef(self->returncode);
}

/* Popen.wait(timeout=None): blocks (the GIL released) until the child
   exits; subprocess.TimeoutExpired after timeout seconds. */
static PyObject *Child_wait(ChildObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    PyObject *timeout = Py_None;
    if (nargs > 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 1)) {
        PyErr_SetString(PyExc_TypeError, "wait() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        timeout = args[0];
    }
    else if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout") != 0) {
            PyErr_SetString(PyExc_TypeError, "wait() got an unexpected keyword argument");
            return NULL;
        }
        timeout = args[0];
    }
    if (self->returncode != NULL && self->returncode != Py_None) {
        return Py_NewRef(self->returncode);
    }
    if (self->has_pending) {
        return PyLong_FromLong(self->pending_rc);
    }
    if (self->waiter != NULL) {
        return child_wait_thread(self, timeout);
    }
    if (self->exited || self->reaped) {
        /* The loop reaped it; its callback sets returncode soon. */
        PyErr_SetString(PyExc_ChildProcessError, "the child was reaped by its event loop");
        return NULL;
    }
    if (timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        struct pollfd pfd = {.fd = self->pidfd, .events = POLLIN};
        int n;
        Py_BEGIN_ALLOW_THREADS n = poll(&pfd, 1, t <= 0 ? 0 : (int)(t * 1000.0 + 0.999));
        Py_END_ALLOW_THREADS if (n < 0)
        {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (n == 0) {
            return timeout_expired(self, timeout);
        }
    }
    int wstatus = 0;
    pid_t r;
    Py_BEGIN_ALLOW_THREADS do
    {
        r = waitpid((pid_t)self->pid, &wstatus, 0);
    }
    while (r < 0 && errno == EINTR)
        ;
    Py_END_ALLOW_THREADS if (r < 0)
    {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->exited = 1;
    Py_XSETREF(self->returncode, PyLong_FromLong(exit_code(wstatus)));
    return Py_XNewRef(self->returncode);
}

/* Popen's ResourceWarning for a child collected while it may still run. */
static void Child_finalize(ChildObject *self)
{
    if (self->exited || (self->returncode != NULL && self->returncode != Py_None)) {
        return;
    }
    PyObject *exc = al__err_fetch();
    if (PyErr_ResourceWarning((PyObject *)self, 1, "subprocess %ld is still running", self->pid) <
        0) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    al__err_restore(exc);
}

static PyObject *Child_repr(ChildObject *self)
{
    return PyUnicode_FromFormat("<Child: returncode: %R args: %R>",
                                self->returncode ? self->returncode : Py_None,
                                self->args ? self->args : Py_None);
}

static int Child_traverse(ChildObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->callback);
    Py_VISIT(self->returncode);
    Py_VISIT(self->args);
    Py_VISIT(self->stdin_obj);
    Py_VISIT(self->stdout_obj);
    Py_VISIT(self->stderr_obj);
    Py_VISIT(self->dict);
    return 0;
}

static int Child_clear(ChildObject *self)
{
    Py_CLEAR(self->callback);
    Py_CLEAR(self->returncode);
    Py_CLEAR(self->args);
    Py_CLEAR(self->stdin_obj);
    Py_CLEAR(self->stdout_obj);
    Py_CLEAR(self->stderr_obj);
    Py_CLEAR(self->dict);
    return 0;
}

static void Child_dealloc(ChildObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    if (self->loop != NULL) {
        /* Collected with its loop: the held reference is this one. */
        self->io.held = NULL;
        child_stop(self);
    }
    if (self->pidfd >= 0) {
        close(self->pidfd);
        self->pidfd = -1;
    }
    if (self->waiter != NULL) {
        waiter_release(self->waiter);
        self->waiter = NULL;
    }
    Child_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef Child_methods[] = {
    {"poll", (PyCFunction)Child_poll, METH_NOARGS, "The return code, or None while it runs."},
    {"send_signal", (PyCFunction)Child_send_signal, METH_O,
     "Send a signal (pidfd_send_signal, or kill while not reaped)."},
    {"terminate", (PyCFunction)Child_terminate, METH_NOARGS, "Send SIGTERM."},
    {"kill", (PyCFunction)Child_kill, METH_NOARGS, "Send SIGKILL."},
    {"_set_exit_callback", (PyCFunction)(void (*)(void))Child_set_exit_callback, METH_FASTCALL,
     "_set_exit_callback(loop, callback): callback(returncode) once reaped."},
    {"wait", (PyCFunction)(void (*)(void))Child_wait, METH_FASTCALL | METH_KEYWORDS,
     "Block until the child exits (as Popen.wait); its return code."},
    {NULL, NULL},
};

static PyMemberDef Child_members[] = {
    {"pid", T_LONG, offsetof(ChildObject, pid), READONLY, NULL},
    {"returncode", T_OBJECT, offsetof(ChildObject, returncode), 0, NULL},
    {"args", T_OBJECT, offsetof(ChildObject, args), 0, NULL},
    {"stdin", T_OBJECT, offsetof(ChildObject, stdin_obj), 0, NULL},
    {"stdout", T_OBJECT, offsetof(ChildObject, stdout_obj), 0, NULL},
    {"stderr", T_OBJECT, offsetof(ChildObject, stderr_obj), 0, NULL},
    {"__dictoffset__", T_PYSSIZET, offsetof(ChildObject, dict), READONLY, NULL},
    {NULL},
};

static PyType_Slot Child_slots[] = {
    {Py_tp_dealloc, Child_dealloc},
    {Py_tp_finalize, Child_finalize},
    {Py_tp_traverse, Child_traverse},
    {Py_tp_clear, Child_clear},
    {Py_tp_repr, Child_repr},
    {Py_tp_methods, Child_methods},
    {Py_tp_members, Child_members},
    {Py_tp_doc, "A child process spawned or watched by the loop (as subprocess.Popen)."},
    {0, NULL},
};

PyType_Spec al__child_spec = {
    .name = "asyncloop._core.Child",
    .basicsize = sizeof(ChildObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Child_slots,
};
