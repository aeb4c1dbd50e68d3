/* The timer heap: a binary min-heap ordered by deadline, ties in scheduling
   order. Entries carry their key inline, so sifting reads only the array and
   never a handle: with thousands of timers pending the handles are out of
   cache, and a key per comparison cost a miss each.

   Cancelling is lazy, as in asyncio: cancel() drops the callback and its
   arguments at once and counts the handle; the iteration discards cancelled
   handles when they reach the top, and rebuilds the heap when they are more
   than half of it. One uv_timer_t per loop is armed for the top. */
#include "internal.h"

static inline int before(const al_heap_entry *a, const al_heap_entry *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void sift_up(al_heap *heap, Py_ssize_t i)
{
    al_heap_entry e = heap->items[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (!before(&e, &heap->items[parent])) {
            break;
        }
        heap->items[i] = heap->items[parent];
        i = parent;
    }
    heap->items[i] = e;
}

static void sift_down(al_heap *heap, Py_ssize_t i)
{
    al_heap_entry e = heap->items[i];
    Py_ssize_t n = heap->len;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) {
            break;
        }
        if (child + 1 < n && before(&heap->items[child + 1], &heap->items[child])) {
            child++;
        }
        if (!before(&heap->items[child], &e)) {
            break;
        }
        heap->items[i] = heap->items[child];
        i = child;
    }
    heap->items[i] = e;
}

static int heap_resize(al_heap *heap, Py_ssize_t cap)
{
    al_heap_entry *items = PyMem_Realloc(heap->items, cap * sizeof(*items));
    if (items == NULL) {
        return -1;
    }
    heap->items = items;
    heap->cap = cap;
    return 0;
}

/* Takes a new reference to h; its deadline and seq are set. */
int al__heap_push(al_heap *heap, TimerHandleObject *h)
{
    if (heap->len == heap->cap) {
        if (heap->cap >= PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(al_heap_entry) / 2) {
            PyErr_SetString(PyExc_OverflowError, "too many scheduled timers");
            return -1;
        }
        if (heap_resize(heap, heap->cap ? heap->cap * 2 : 64) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_INCREF(h);
    h->base.scheduled = 1;
    heap->items[heap->len] = (al_heap_entry){h->deadline, h->seq, h};
    sift_up(heap, heap->len++);
    return 0;
}

/* Removes the earliest timer; the heap's reference passes to the caller,
   who finds out whether it was cancelled. */
TimerHandleObject *al__heap_pop(al_heap *heap)
{
    assert(heap->len > 0);
    TimerHandleObject *top = heap->items[0].h;
    heap->items[0] = heap->items[--heap->len];
    if (heap->len > 1) {
        /* The next top is one of these two: fetch them while sifting. */
        __builtin_prefetch(heap->items[1].h);
        if (heap->len > 2) {
            __builtin_prefetch(heap->items[2].h);
        }
        sift_down(heap, 0);
    }
    top->base.scheduled = 0;
    if (top->base.cancelled) {
        heap->cancelled--;
    }
    return top;
}

/* The loop's reference to a handle it no longer holds: a handle someone
   else still references becomes an ordinary GC object (see handle.c). */
static void heap_release(TimerHandleObject *h)
{
    al__handle_disown((HandleObject *)h);
    Py_DECREF(h);
}

/* Drops the cancelled handles and restores the heap order, in O(n).
   Releasing a handle can run arbitrary code (its context's values have
   __del__), so the heap is made whole before anything is released. */
void al__heap_compact(al_heap *heap)
{
    Py_ssize_t kept = 0, dropped = 0;
    TimerHandleObject **gone = PyMem_New(TimerHandleObject *, heap->cancelled);
    if (gone == NULL) {
        return; /* they go when they reach the top */
    }
    for (Py_ssize_t i = 0; i < heap->len; i++) {
        al_heap_entry e = heap->items[i];
        if (e.h->base.cancelled && dropped < heap->cancelled) {
            e.h->base.scheduled = 0;
            gone[dropped++] = e.h;
        }
        else {
            heap->items[kept++] = e;
        }
    }
    heap->len = kept;
    heap->cancelled -= dropped;
    for (Py_ssize_t i = kept / 2 - 1; i >= 0; i--) {
        sift_down(heap, i);
    }
    if (heap->cap > 256 && heap->len < heap->cap / 4) {
        (void)heap_resize(heap, heap->cap / 2 > 256 ? heap->cap / 2 : 256);
    }
    for (Py_ssize_t i = 0; i < dropped; i++) {
        heap_release(gone[i]);
    }
    PyMem_Free(gone);
}

/* Empties the heap. Releasing a handle can run arbitrary code that
   schedules timers again, so the array is detached first. */
void al__heap_clear(al_heap *heap)
{
    al_heap_entry *items = heap->items;
    Py_ssize_t n = heap->len;
    heap->items = NULL;
    heap->len = heap->cap = heap->cancelled = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i].h->base.scheduled = 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        heap_release(items[i].h);
    }
    PyMem_Free(items);
}
