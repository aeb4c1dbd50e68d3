"""Expected failures of the conformance run, per loop, with their reasons.

Keys are "test_module.Class.test_method" as the harness names them (the
generated class names of suite.py: test_events.EventLoopTests, ...), or
fnmatch patterns of those.  The first entry that matches wins.

Kinds:
  xfail  the test fails deterministically; strict, so that the day it passes
         the run fails and the entry has to go
  flaky  fails only sometimes (non-strict xfail); say why
  skip   the test hangs or crashes the process; say so

Updating the table (e.g. when networking lands): run
    PYTHONPATH=. python -m pytest tests/test_conformance.py -q -rfEX -p no:cacheprovider
on each of 3.10-3.13; XPASS(strict) lines are entries to delete, FAILED lines
tests to fix (or, if they test asyncio's private internals, to add here as
PERMANENT).  A hang ends the run through the watchdog with every thread's
traceback on stderr (ASYNCLOOP_CONFORMANCE_TIMEOUT, default 120 s); -v shows
which test it was.
"""

import fnmatch

import pytest

from . import PY


class Reason:
    def __init__(self, kind, text, since=None, until=None):
        assert kind in ("xfail", "flaky", "skip")
        self.kind = kind
        self.text = text
        self.since = since      # first Python version it applies to
        self.until = until      # last Python version it applies to

    def applies(self):
        return ((self.since is None or PY >= self.since)
                and (self.until is None or PY <= self.until))

    def only(self, since=None, until=None):
        return Reason(self.kind, self.text, since, until)


def xfail(text):
    return Reason("xfail", text)


def flaky(text):
    return Reason("flaky", text)


def skip(text):
    return Reason("skip", text)


class Entry:
    def __init__(self, pattern, reason):
        self.pattern = pattern
        self.reason = reason

    def mark(self):
        r = self.reason
        if r.kind == "skip":
            return pytest.mark.skip(reason=r.text)
        return pytest.mark.xfail(reason=r.text, strict=(r.kind == "xfail"))


def lookup(table, key):
    for pattern, reason in table.items():
        if not reason.applies():
            continue
        if pattern == key or fnmatch.fnmatchcase(key, pattern):
            return Entry(pattern, reason)
    return None


def applicable_patterns(table):
    return [p for p, r in table.items() if r.applies()]


# ----------------------------------------------------------------------------
# Reasons

# PERMANENT: these will never apply to a loop that is not asyncio's.
# Skipped, not xfailed: the child really runs, and the unclosed transport the
# failing test leaves is collected inside pytest's report formatting
# (ast.parse), which trips CPython 3.11.7's re-entrant AST bug gh-106905
# (INTERNALERROR "AST constructor recursion depth mismatch").
POPEN_MOCK = skip("PERMANENT: patches subprocess.Popen to fail; asyncloop spawns with "
                  "posix_spawn (process.c) and calls Popen only for preexec_fn/user/"
                  "group/extra_groups/umask/pass_fds")
INTERNALS = xfail("PERMANENT: tests BaseEventLoop/selector private internals "
                  "(_run_once, _clock_resolution, _selector, ...), not loop behaviour")

# Bugs of our core get  xfail("BUG: <what>")  entries here, only while the
# fix is under way, and are reported to the lead; none at the moment.


# ----------------------------------------------------------------------------
# Tables

# The table for asyncloop.  Networking is in (streams, servers, sock_*,
# add_reader/add_writer, DNS, TLS, UDP, pipes, sendfile) and so are
# subprocesses (process.c): what is left are two PERMANENT skips
# (POPEN_MOCK) and one PERMANENT INTERNALS.
# Built from runs on 3.10-3.13: an entry limited with .only(since=, until=)
# covers a test that exists only on those versions (the staleness check of
# test_conformance.py needs it).
ASYNCLOOP = {
    # -- test_events
    # _run_once, _clock_resolution, _selector
    "test_events.EventLoopTests.test_timeout_rounding": INTERNALS,
    # -- test_subprocess
    "test_subprocess.SubprocessTests.test_popen_error": POPEN_MOCK,
    "test_subprocess.SubprocessTests.test_popen_error_with_stdin_pipe": POPEN_MOCK,
}

# For developing the harness without our core: uvloop, on 3.10-3.13 (best
# effort, non-strict, not checked for staleness).
UV_DIFFERS = flaky("uvloop differs from asyncio here (or lacks the feature / the "
                   "private attribute the test uses)")
UV_HANGS = skip("hangs on uvloop")

UVLOOP = {
    "test_eager_task_factory.CEagerTaskFactoryLoopTests.*": UV_DIFFERS,
    "test_eager_task_factory.PyEagerTaskFactoryLoopTests.*": UV_DIFFERS,
    "test_sendfile.SendfileTests.*": UV_DIFFERS,
    "test_server.TestServer2.*": UV_DIFFERS,
    "test_events.EventLoopTests.test_add_signal_handler": UV_HANGS,
    "test_events.EventLoopTests.test_bidirectional_pty": UV_HANGS,
    "test_sock_lowlevel.SockTests.test_sock_client_racing": UV_HANGS,
    "test_ssl.TestSSL.test_flush_before_shutdown": UV_HANGS,
    "test_sslproto.StartTLSTests.test_create_connection_memory_leak": UV_HANGS,
    "test_sslproto.StartTLSTests.test_start_tls_client_buf_proto_1": UV_HANGS,
    "test_sslproto.StartTLSTests.test_start_tls_client_reg_proto_1": UV_HANGS,
    "test_eager_task_factory.EagerCTaskTests.test_awaitables_chain": UV_DIFFERS,
    "test_eager_task_factory.EagerCTaskTests.test_recursive_gather": UV_DIFFERS,
    "test_eager_task_factory.EagerCTaskTests.test_recursive_taskgroups": UV_DIFFERS,
    "test_eager_task_factory.EagerPyTaskTests.test_awaitables_chain": UV_DIFFERS,
    "test_eager_task_factory.EagerPyTaskTests.test_recursive_gather": UV_DIFFERS,
    "test_eager_task_factory.EagerPyTaskTests.test_recursive_taskgroups": UV_DIFFERS,
    "test_eager_task_factory.EagerTests.test_awaitables_chain": UV_DIFFERS,
    "test_eager_task_factory.EagerTests.test_recursive_gather": UV_DIFFERS,
    "test_eager_task_factory.EagerTests.test_recursive_taskgroups": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_connection": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_connection_local_addr_in_use": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_server_multiple_hosts_ipv4": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_server_multiple_hosts_ipv6": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_server_trsock": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_ssl_connection": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_ssl_unix_connection": UV_DIFFERS,
    "test_events.EventLoopTests.test_create_unix_connection": UV_DIFFERS,
    "test_events.EventLoopTests.test_prompt_cancellation": UV_DIFFERS,
    "test_events.EventLoopTests.test_run_until_complete_nesting": UV_DIFFERS,
    "test_events.EventLoopTests.test_subprocess_shell_invalid_args": UV_DIFFERS,
    "test_events.EventLoopTests.test_timeout_rounding": UV_DIFFERS,
    "test_events.EventLoopTests.test_unclosed_pipe_transport": UV_DIFFERS,
    "test_events.EventLoopTests.test_writer_callback": UV_DIFFERS,
    "test_events.TestCGetEventLoop.test_get_event_loop_new_process": UV_DIFFERS,
    "test_events.TestCGetEventLoop.test_get_event_loop_returns_running_loop": UV_DIFFERS,
    "test_events.TestCGetEventLoop.test_get_event_loop_returns_running_loop2": UV_DIFFERS,
    "test_events.TestPyGetEventLoop.test_get_event_loop_new_process": UV_DIFFERS,
    "test_events.TestPyGetEventLoop.test_get_event_loop_returns_running_loop": UV_DIFFERS,
    "test_events.TestPyGetEventLoop.test_get_event_loop_returns_running_loop2": UV_DIFFERS,
    "test_futures2.CFutureTests.test_task_exc_handler_correct_context": UV_DIFFERS,
    "test_futures2.PyFutureTests.test_task_exc_handler_correct_context": UV_DIFFERS,
    "test_runners.RunTests.test_asyncio_run_debug": UV_DIFFERS,
    "test_server.StartServerTests.test_start_server_1": UV_DIFFERS,
    "test_sock_lowlevel.SockTests.test_create_connection_sock": UV_DIFFERS,
    "test_sock_lowlevel.SockTests.test_recvfrom": UV_DIFFERS,
    "test_sock_lowlevel.SockTests.test_recvfrom_into": UV_DIFFERS,
    "test_sock_lowlevel.SockTests.test_sendto_blocking": UV_DIFFERS,
    "test_ssl.TestSSL.test_remote_shutdown_receives_trailing_data": UV_DIFFERS,
    "test_ssl.TestSSL.test_shutdown_timeout_handler_not_set": UV_DIFFERS,
    "test_streams.StreamTests.test_read_all_from_pipe_reader": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_close_dont_kill_finished": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_close_kill_running": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_devstdin_input": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_pause_reading": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_popen_error": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_popen_error_with_stdin_pipe": UV_DIFFERS,
    "test_subprocess.SubprocessTests.test_stdin_broken_pipe": UV_DIFFERS,
    "test_tasks.RunCoroutineThreadsafeTests.test_run_coroutine_threadsafe_task_factory_exception":
        UV_DIFFERS,
    "test_unix_events.TestFork.test_fork_not_share_event_loop": UV_DIFFERS,
}

ASYNCIO = {
}

TABLES = {"asyncloop": ASYNCLOOP, "uvloop": UVLOOP, "asyncio": ASYNCIO}


def table_for(loop_name):
    return TABLES.get(loop_name, {})
