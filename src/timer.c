/* The timer heap: a binary min-heap of TimerHandles ordered by deadline, ties
   in scheduling order. One uv_timer_t per loop is armed for its top; a
   handle keeps its heap index so that cancel() removes it in O(log n) and
   cancelled timers cost no memory. */
#include "internal.h"

static inline int __before(const TimerHandleObject *a, const TimerHandleObject *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void __place(__heap *heap, Py_ssize_t i, TimerHandleObject *h)
{
    heap->items[i] = h;
    h->base.heap_index = (int32_t)i;
}

static void __sift_up(__heap *heap, Py_ssize_t i)
{
    TimerHandleObject *h = heap->items[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!__before(h, heap->items[parent])) {
            break;
        }
        __place(heap, i, heap->items[parent]);
        i = parent;
    }
    __place(heap, i, h);
}

static void __sift_down(__heap *heap, Py_ssize_t i)
{
    TimerHandleObject *h = heap->items[i];
    Py_ssize_t n = heap->len;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && __before(heap->items[child + 1], heap->items[child])) {
            child++;
        }
        if (!__before(heap->items[child], h)) {
            break;
        }
        __place(heap, i, heap->items[child]);
        i = child;
    }
    __place(heap, i, h);
}

/* Takes a new reference to h. */
int __heap_push(__heap *heap, TimerHandleObject *h)
{
    if (heap->len >= INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "too many scheduled timers");
        return -1;
    }
    if (heap->len == heap->cap) {
        Py_ssize_t cap = heap->cap ? heap->cap * 2 : 64;
        TimerHandleObject **items = PyMem_Realloc(heap->items, cap * sizeof(*items));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        heap->items = items;
        heap->cap = cap;
    }
    Py_INCREF(h);
    heap->items[heap->len] = h;
    h->base.heap_index = (int32_t)heap->len++;
    __sift_up(heap, h->base.heap_index);
    return 0;
}

/* Returns the earliest timer; the heap's reference passes to the caller. */
TimerHandleObject *__heap_pop(__heap *heap)
{
    assert(heap->len > 0);
    TimerHandleObject *top = heap->items[0];
    TimerHandleObject *last = heap->items[--heap->len];
    if (heap->len > 0) {
        __place(heap, 0, last);
        __sift_down(heap, 0);
    }
    top->base.heap_index = -1;
    return top;
}

/* Drops h from the heap and releases the heap's reference (last, since it
   may be the only one). */
void __heap_remove(__heap *heap, TimerHandleObject *h)
{
    Py_ssize_t i = h->base.heap_index;
    assert(i >= 0 && i < heap->len && heap->items[i] == h);
    TimerHandleObject *last = heap->items[--heap->len];
    if (i < heap->len) {
        __place(heap, i, last);
        if (i > 0 && __before(last, heap->items[(i - 1) / 2])) {
            __sift_up(heap, i);
        }
        else {
            __sift_down(heap, i);
        }
    }
    h->base.heap_index = -1;
    /* Shrink after mass cancellation so 100 000 cancelled timers leave
       nothing behind. */
    if (heap->cap > 256 && heap->len < heap->cap / 4) {
        Py_ssize_t cap = heap->cap / 2;
        TimerHandleObject **items = PyMem_Realloc(heap->items, cap * sizeof(*items));
        if (items != NULL) {
            heap->items = items;
            heap->cap = cap;
        }
    }
    Py_DECREF(h);
}

/* Empties the heap. Releasing a handle can run arbitrary code (a callback
   argument's __del__) that schedules timers again, so the array is
   detached before anything is released. */
void __heap_clear(__heap *heap)
{
    TimerHandleObject **items = heap->items;
    Py_ssize_t n = heap->len;
    heap->items = NULL;
    heap->len = heap->cap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i]->base.heap_index = -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(items[i]);
    }
    PyMem_Free(items);
}
