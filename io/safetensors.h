/* The safetensors file format, reader and writer (used by io/checkpoint.c).
 *
 *   [8 bytes: N, little-endian u64] [N bytes: JSON header, padded with spaces] [data]
 *
 * The header maps each tensor name to {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]} (byte offsets into the data that follows the header) and may hold
 * "__metadata__", a string -> string map. The reader checks everything before anything
 * is used: header length, UTF-8, JSON, every field's type and range, offsets inside the
 * data, and that the tensors tile the data exactly (no overlap, no hole, nothing after).
 * Parsing memory stays within a small multiple of the header (jsmn tokens, counted first).
 * Not installed; users see only heed.h. */
#ifndef HEED_SAFETENSORS_H
#define HEED_SAFETENSORS_H

#include "../graph/internal.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* 100 MiB, as the reference implementation */
#define ST_MAX_DIMS 8

/* Where the bytes come from: a file descriptor or a memory buffer. */
typedef struct {
    int fd;                   /* -1 for memory */
    const unsigned char *mem; /* NULL for a file */
    uint64_t size;            /* whole file */
} st_source;

typedef struct {
    const char *name;  /* points into the st_file's header text */
    const char *dtype; /* the dtype string as found ("F32", "BF16", ...) */
    size_t elem_size;  /* bytes per element of that dtype */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* byte range inside the data section */
} st_entry;

typedef struct {
    const char *key, *value;
} st_meta;

typedef struct {
    char *header;      /* the header text, strings decoded in place */
    st_entry *entries; /* sorted by name */
    int n_entries;
    st_meta *meta; /* sorted by key */
    int n_meta;
    uint64_t data_start; /* 8 + N: file offset of data byte 0 */
    uint64_t data_len;
} st_file;

/* Parses and validates the header of src. On failure returns HEED_ERR_FORMAT (or
 * HEED_ERR_IO / HEED_ERR_NOMEM), writes a message into err and leaves *f empty. */
heed_status st_parse(const st_source *src, st_file *f, char *err, size_t errlen);
void st_file_free(st_file *f);
const st_entry *st_find(const st_file *f, const char *name);
const char *st_meta_get(const st_file *f, const char *key); /* NULL if absent */
/* Reads n bytes at data offset off into dst. */
heed_status st_read(const st_source *src, const st_file *f, uint64_t off, void *dst, size_t n, char *err,
                    size_t errlen);

/* heed dtype <-> safetensors dtype string. */
const char *st_dtype_name(heed_dtype dt);
bool st_dtype_parse(const char *s, heed_dtype *dt); /* false for dtypes heed does not hold */
/* True if s is valid UTF-8 (what the format requires of every name and string). */
bool st_utf8_valid(const char *s, size_t n);

/* A tensor to write. */
typedef struct {
    const char *name;
    heed_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} st_out;

/* Called on tensor t[i] just before its bytes are written; a status other than HEED_OK
 * (with err filled) stops the write. Checking there, not in a pass before, reads each
 * tensor once while it is hot and keeps the work inside the save's window. */
typedef heed_status (*st_check_fn)(const st_out *t, int i, void *user, char *err, size_t errlen);

/* Writes a safetensors file through the atomic writer (heed_atomic_open/close, who names
 * the caller): path is replaced whole or not at all. On an error of the header or a
 * refusal of check (check may be NULL) err holds the reason; on an I/O error err is empty
 * and the atomic writer's message is in heed_ctx_error(ctx). meta holds n_meta key/value
 * pairs (keys[i], values[i]). */
heed_status st_write_atomic(heed_ctx *ctx, const char *who, const char *path, const st_out *t, int n,
                            const char *const *keys, const char *const *values, int n_meta, st_check_fn check,
                            void *user, char *err, size_t errlen);

#endif
