/* Bump allocator for one graph step. Chunks grow geometrically; a rewind that finds more
 * than one chunk replaces them with a single chunk of their total size, so a steady
 * training loop settles on one chunk and one pointer bump per allocation. A seek goes
 * back to a position of the same step (graph marks) and keeps every chunk. */
#include "internal.h"

#include <stdlib.h>

#define ALIGN 64
#define FIRST_CHUNK (1u << 20)

struct heed_chunk {
    heed_chunk *next;
    size_t size, off;
    unsigned char *mem;
};

static heed_chunk *chunk_new(size_t size) {
    heed_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->mem = aligned_alloc(ALIGN, size);
    if (!c->mem) {
        free(c);
        return NULL;
    }
    c->next = NULL;
    c->size = size;
    c->off = 0;
    return c;
}

void *heed_arena_alloc(heed_arena *a, size_t bytes) {
    if (bytes > SIZE_MAX / 2) return NULL;
    size_t need = (bytes + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need == 0) need = ALIGN;
    while (a->cur && a->cur->off + need > a->cur->size) {
        if (a->cur->next && a->cur->next->size >= need) {
            a->cur = a->cur->next;
            a->cur->off = 0;
        } else {
            break;
        }
    }
    if (!a->cur || a->cur->off + need > a->cur->size) {
        size_t size = a->reserved ? a->reserved : FIRST_CHUNK;
        if (size < need) size = need;
        heed_chunk *c = chunk_new(size);
        if (!c) return NULL;
        if (a->cur) {
            c->next = a->cur->next;
            a->cur->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
        a->cur = c;
        a->reserved += size;
    }
    void *p = a->cur->mem + a->cur->off;
    a->cur->off += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void heed_arena_rewind(heed_arena *a) {
    if (a->head && a->head->next) {
        size_t total = a->reserved;
        heed_arena_free(a);
        heed_chunk *c = chunk_new(total);
        if (c) { /* on failure the next alloc simply starts over */
            a->head = a->cur = c;
            a->reserved = total;
        }
    }
    if (a->head) a->head->off = 0;
    a->cur = a->head;
    a->used = 0;
}

void heed_arena_free(heed_arena *a) {
    for (heed_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c->mem);
        free(c);
    }
    size_t peak = a->peak;
    *a = (heed_arena){0};
    a->peak = peak;
}

heed_arena_pos heed_arena_tell(const heed_arena *a) {
    return (heed_arena_pos){a->cur, a->cur ? a->cur->off : 0, a->used};
}

void heed_arena_seek(heed_arena *a, heed_arena_pos pos) {
    a->cur = pos.chunk ? pos.chunk : a->head; /* chunks made after pos follow pos.chunk in the list */
    if (a->cur) a->cur->off = pos.chunk ? pos.off : 0;
    a->used = pos.used;
}
