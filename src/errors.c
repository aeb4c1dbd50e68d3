/* libuv errors -> the OSError subclass asyncio raises, in one place. */
#include "internal.h"

/* On Unix a libuv error is a negated errno; OSError(errno, msg) picks the
   subclass (ConnectionResetError, BrokenPipeError, ...) from the errno. */
PyObject *al__uv_error(int err)
{
    int code = err < 0 ? -err : err;
    return PyObject_CallFunction(PyExc_OSError, "is", code, uv_strerror(err));
}

int al__set_uv_error(int err)
{
    PyObject *exc = al__uv_error(err);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}
