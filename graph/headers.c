/* Tensor headers at addresses that are never reused while the graph lives.
 *
 * A user holds a tensor as a pointer to its header. If a header's memory were ever handed
 * to a newer tensor, a stale pointer would silently read that tensor: no generation
 * number stored in the header can tell the two apart, since the newer tensor overwrote
 * it. So header addresses only move forward: headers are slots bumped through large
 * reservations of address space (spans, mmap PROT_NONE, made read-write 1 MiB at a time).
 * What is returned when tensors die is the memory, not the addresses: whole pages of dead
 * headers go back to the system (madvise MADV_DONTNEED) and read as zeros afterwards, and
 * a full span whose headers are all dead is replaced by fresh zero pages (which also frees
 * its page tables). A dead header therefore reads either as zeros (graph NULL) or as
 * itself with a dead generation (graph.c checks both); it is never a live tensor.
 *
 * Dead ranges per span are tracked as one interval [dead_lo, dead_hi) whose slots are all
 * dead (and whose whole pages were returned), so rewinding to the same mark step after
 * step touches only the new slots. A process-wide registry of spans lets accessors that
 * get no graph (heed_get) find the graph of a zeroed header to report the error on. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define SPAN_BYTES ((size_t)1 << 30) /* 8M headers; smaller when the system refuses */
#define SPAN_MIN ((size_t)1 << 20)
#define COMMIT_STEP ((size_t)1 << 20)

_Static_assert(sizeof(heed_tensor) <= HEED_HEADER_SLOT, "a tensor header must fit in a slot");

struct heed_span {
    unsigned char *base;
    size_t size;             /* address space reserved */
    size_t used;             /* bytes of slots handed out; never goes back */
    size_t committed;        /* [0, committed) is read-write */
    size_t dead_lo, dead_hi; /* every slot in here is dead */
    size_t rel_lo, rel_hi;   /* pages returned to the system */
    size_t page;
    bool zeroed; /* the whole span was replaced by zero pages */
    heed_graph *owner;
    heed_span *next;     /* older span of the same graph */
    heed_span *next_all; /* the registry */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static heed_span *registry;

static heed_span *span_new(heed_graph *owner) {
    heed_span *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    for (size_t size = SPAN_BYTES; size >= SPAN_MIN; size /= 2) {
        void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) {
            s->base = p;
            s->size = size;
            break;
        }
    }
    if (!s->base) {
        free(s);
        return NULL;
    }
    long page = sysconf(_SC_PAGESIZE);
    s->page = page > 0 && page % HEED_HEADER_SLOT == 0 ? (size_t)page : 4096;
    s->owner = owner;
    pthread_mutex_lock(&registry_lock);
    s->next_all = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
    return s;
}

void *heed_headers_alloc(heed_headers *h, heed_graph *owner) {
    heed_span *s = h->spans;
    if (!s || s->used + HEED_HEADER_SLOT > s->size) {
        heed_span *n = span_new(owner);
        if (!n) return NULL;
        n->next = s;
        h->spans = s = n;
    }
    if (s->used + HEED_HEADER_SLOT > s->committed) {
        size_t step = s->size - s->committed < COMMIT_STEP ? s->size - s->committed : COMMIT_STEP;
        if (mprotect(s->base + s->committed, step, PROT_READ | PROT_WRITE) != 0) return NULL;
        s->committed += step;
    }
    void *p = s->base + s->used; /* fresh memory: zero, never held a header */
    s->used += HEED_HEADER_SLOT;
    h->live++;
    return p;
}

heed_headers_pos heed_headers_tell(const heed_headers *h) {
    return (heed_headers_pos){h->spans, h->spans ? h->spans->used : 0, h->live};
}

bool heed_headers_after(const heed_headers *h, heed_headers_pos pos, const void *p) {
    const unsigned char *c = p;
    for (const heed_span *s = h->spans; s; s = s->next) { /* newest first: spans before pos.span are newer */
        bool in = c >= s->base && c < s->base + s->used;
        if (s == pos.span) return in && (size_t)(c - s->base) >= pos.off;
        if (in) return true;
    }
    return false;
}

static size_t page_up(const heed_span *s, size_t x) { return (x + s->page - 1) / s->page * s->page; }
static size_t page_down(const heed_span *s, size_t x) { return x / s->page * s->page; }

static void give_back(heed_span *s, size_t a, size_t b) {
    if (a < b) (void)madvise(s->base + a, b - a, MADV_DONTNEED); /* on failure the pages just stay */
}

static void tombstone(heed_span *s, size_t a, size_t b) {
    for (size_t off = a; off < b; off += HEED_HEADER_SLOT) {
        heed_tensor *t = (heed_tensor *)(s->base + off);
        if (t->gen) t->gen = 0; /* a returned page reads 0 already: do not write it back in */
    }
}

/* Every slot in [lo, s->used) is dead from now on: kill the ones not known dead yet
 * (when `kill`; at a reset their generation is old already) and return the whole pages
 * of the dead interval that were not returned yet. */
static void mark_dead(heed_span *s, size_t lo, bool kill) {
    size_t hi = s->used;
    if (lo >= hi) return;
    if (s->dead_lo < s->dead_hi && lo <= s->dead_hi) { /* overlaps the known interval */
        if (kill) {
            if (lo < s->dead_lo) tombstone(s, lo, s->dead_lo);
            tombstone(s, s->dead_hi, hi);
        }
        if (lo > s->dead_lo) lo = s->dead_lo;
    } else if (kill) {
        tombstone(s, lo, hi);
    }
    s->dead_lo = lo;
    s->dead_hi = hi;

    size_t a = page_up(s, lo), b = page_down(s, hi);
    if (a >= b) return;
    if (s->rel_lo < s->rel_hi && a <= s->rel_hi && b >= s->rel_lo) {
        give_back(s, a, s->rel_lo);
        give_back(s, s->rel_hi, b);
        s->rel_lo = a < s->rel_lo ? a : s->rel_lo;
        s->rel_hi = b > s->rel_hi ? b : s->rel_hi;
    } else {
        give_back(s, a, b);
        s->rel_lo = a;
        s->rel_hi = b;
    }
}

void heed_headers_kill_after(heed_headers *h, heed_headers_pos pos) {
    for (heed_span *s = h->spans; s; s = s->next) {
        mark_dead(s, s == pos.span ? pos.off : 0, true);
        if (s == pos.span) break;
    }
    h->live = pos.live;
}

void heed_headers_release_all(heed_headers *h) {
    if (!h->spans) return;
    mark_dead(h->spans, 0, false);
    for (heed_span *s = h->spans->next; s && !s->zeroed; s = s->next) {
        /* A full span of dead headers: fresh zero pages over all of it (frees its page
         * tables too). On failure it keeps its dead headers, which still read as dead. */
        void *p = mmap(s->base, s->size, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        s->zeroed = p != MAP_FAILED;
        if (!s->zeroed) mark_dead(s, 0, false);
    }
    h->live = 0;
}

void heed_headers_free(heed_headers *h) {
    pthread_mutex_lock(&registry_lock);
    for (heed_span **pp = &registry; *pp;) {
        if ((*pp)->owner && h->spans && (*pp)->owner == h->spans->owner) *pp = (*pp)->next_all;
        else pp = &(*pp)->next_all;
    }
    pthread_mutex_unlock(&registry_lock);
    for (heed_span *s = h->spans, *n; s; s = n) {
        n = s->next;
        munmap(s->base, s->size);
        free(s);
    }
    *h = (heed_headers){0};
}

bool heed_headers_own(const heed_headers *h, const void *p) {
    const unsigned char *c = p;
    for (const heed_span *s = h->spans; s; s = s->next)
        if (c >= s->base && c < s->base + s->used) return true;
    return false;
}

heed_graph *heed_headers_owner(const void *p) {
    const unsigned char *c = p;
    heed_graph *g = NULL;
    pthread_mutex_lock(&registry_lock);
    for (const heed_span *s = registry; s && !g; s = s->next_all)
        if (c >= s->base && c < s->base + s->size) g = s->owner;
    pthread_mutex_unlock(&registry_lock);
    return g;
}
