/* Arguments bound as asyncio's Python signatures bind them.

   asyncio's loop methods are Python functions, so their positional
   parameters may also be passed by keyword: call_soon(callback=f),
   call_later(delay=1, callback=f), run_until_complete(future=f). The C
   methods take positional arguments on their fast paths; the rare call
   that names one of them goes through here first. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static Py_ssize_t name_index(PyObject *key, const char *const *names, Py_ssize_t n)
{
    if (!PyUnicode_Check(key)) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n && names[i] != NULL; i++) {
        if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* "f() missing 2 required positional arguments: 'a' and 'b'", as Python
   words it (for three or more: "'a', 'b', and 'c'"). */
static void missing(const char *method, const char *const *names, PyObject **slots, Py_ssize_t npos)
{
    char text[256] = "";
    Py_ssize_t n = 0, left = 0;
    for (Py_ssize_t i = 0; i < npos; i++) {
        left += slots[i] == NULL;
    }
    for (Py_ssize_t i = 0; i < npos; i++) {
        if (slots[i] != NULL) {
            continue;
        }
        const char *sep = n == 0 ? "" : left == n + 1 ? (n > 1 ? ", and " : " and ") : ", ";
        size_t used = strlen(text);
        /* Bounded; a list too long for the buffer is cut short, which a
           message can afford (strlen above stays within the buffer). */
        (void)snprintf(text + used, sizeof(text) - used, "%s'%s'", sep, names[i]);
        n++;
    }
    PyErr_Format(PyExc_TypeError, "%s() missing %zd required positional argument%s: %s", method, n,
                 n == 1 ? "" : "s", text);
}

PyObject *al__call_with_keywords_bound(PyObject *self, al_fastcall_method fn, const char *method,
                                       const char *const *names, Py_ssize_t npos,
                                       const char *const *kwonly, PyObject *const *args,
                                       Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    Py_ssize_t total = (nargs > npos ? nargs : npos) + nkw;
    /* One slot in front for PY_VECTORCALL_ARGUMENTS_OFFSET users. */
    PyObject **stack = PyMem_Calloc(total + 1, sizeof(PyObject *));
    if (stack == NULL) {
        return PyErr_NoMemory();
    }
    PyObject **argv = stack + 1;
    PyObject *rest_names = NULL, *res = NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        argv[i] = args[i];
    }
    Py_ssize_t npositional = nargs > npos ? nargs : npos;
    Py_ssize_t nrest = 0;
    if ((rest_names = PyList_New(0)) == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i); /* borrowed */
        Py_ssize_t j = name_index(key, names, npos);
        if (j >= 0) {
            if (j < nargs || argv[j] != NULL) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", method,
                             names[j]);
                goto done;
            }
            argv[j] = args[nargs + i];
        }
        else if (kwonly != NULL &&
                 (strcmp(kwonly[0], "*") == 0 || name_index(key, kwonly, PY_SSIZE_T_MAX) >= 0)) {
            if (PyList_Append(rest_names, key) < 0) {
                goto done;
            }
            argv[npositional + nrest++] = args[nargs + i];
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", method,
                         key);
            goto done;
        }
    }
    for (Py_ssize_t i = nargs; i < npos; i++) {
        if (argv[i] == NULL) {
            missing(method, names, argv, npos);
            goto done;
        }
    }
    PyObject *kw = NULL;
    if (nrest > 0 && (kw = PyList_AsTuple(rest_names)) == NULL) {
        goto done;
    }
    res = fn(self, argv, npositional | PY_VECTORCALL_ARGUMENTS_OFFSET, kw);
    Py_XDECREF(kw);
done:
    Py_XDECREF(rest_names);
    PyMem_Free(stack);
    return res;
}

int al__one_arg(const char *method, const char *name, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames, PyObject **out)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 positional arguments but %zd were given",
                     method, nargs + 1);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i); /* borrowed */
        if (!PyUnicode_Check(key) || PyUnicode_CompareWithASCIIString(key, name) != 0) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'", method,
                         key);
            return -1;
        }
        if (nargs == 1) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", method,
                         name);
            return -1;
        }
    }
    if (nargs + nkw == 0) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%s'", method,
                     name);
        return -1;
    }
    *out = args[0]; /* borrowed: the keyword's value follows the positionals */
    return 0;
}
