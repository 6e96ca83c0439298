/* Aligned allocation and arenas. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define OC_ALIGN 64
/* Blocks at least this large ask for transparent huge pages: first-touch of fresh 4 KiB pages
 * is slow on these machines (DESIGN.md, "Memory and threads": ~12 us a page), and a training
 * step streams tensors far larger than the 4 KiB TLB reaches (mobilenetv2_cifar's step: 229k
 * page faults on its first step, 9k with huge pages; later steps 9 % faster). madvise needs a
 * page-aligned range and the kernel backs only whole aligned 2 MiB extents with huge pages,
 * so such a block is 2 MiB-aligned and rounded up to 2 MiB. */
#define OC_HUGEPAGE_MIN ((size_t)4 << 20)
#define OC_HUGEPAGE ((size_t)2 << 20)

void *oc_alloc(size_t n)
{
    void *p = NULL;
    if (n == 0)
        n = 1;
    if (n >= OC_HUGEPAGE_MIN) {
        if (n > SIZE_MAX - OC_HUGEPAGE)
            return NULL;
        size_t whole = (n + OC_HUGEPAGE - 1) / OC_HUGEPAGE * OC_HUGEPAGE;
        if (posix_memalign(&p, OC_HUGEPAGE, whole) != 0)
            return NULL;
#ifdef MADV_HUGEPAGE
        madvise(p, whole, MADV_HUGEPAGE); /* advice: a kernel without THP ignores it */
#endif
        return p;
    }
    size_t rounded = (n + OC_ALIGN - 1) / OC_ALIGN * OC_ALIGN;
    if (posix_memalign(&p, OC_ALIGN, rounded) != 0)
        return NULL;
    return p;
}

void *oc_alloc_zero(size_t n)
{
    void *p = oc_alloc(n);
    if (p)
        memset(p, 0, n == 0 ? 1 : n);
    return p;
}

void oc_free(void *p)
{
    free(p);
}

oc_status oc_arena_init(oc_arena *a, size_t cap)
{
    a->used = 0;
    a->cap = cap;
    a->base = oc_alloc(cap);
    if (!a->base)
        return oc_fail(OC_ERR_NOMEM, "out of memory allocating a %zu-byte arena", cap);
    return OC_OK;
}

void *oc_arena_alloc(oc_arena *a, size_t n)
{
    size_t start = (a->used + OC_ALIGN - 1) / OC_ALIGN * OC_ALIGN;
    if (start > a->cap || n > a->cap - start)
        return NULL;
    a->used = start + n;
    return a->base + start;
}

void oc_arena_reset(oc_arena *a)
{
    a->used = 0;
}

void oc_arena_release(oc_arena *a)
{
    oc_free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}
