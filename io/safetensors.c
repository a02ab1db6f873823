/* safetensors reader and writer: see safetensors.h for the layout. The reader trusts
 * nothing in the file: every length, count and offset is bounded before it is used, and
 * the JSON header is read by the small reader below, whose memory stays within a small
 * multiple of the header's size. */
#define _GNU_SOURCE /* mkostemp */
#include "safetensors.h"
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "heed checkpoints copy tensor bytes as they are: a little-endian host is assumed"
#endif

/* ---------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8},
};

const char *st_dtype_name(heed_dtype dt) { return dt == HEED_F32 ? "F32" : dt == HEED_F64 ? "F64" : "?"; }

bool st_dtype_parse(const char *s, heed_dtype *dt) {
    if (strcmp(s, "F32") == 0) return *dt = HEED_F32, true;
    if (strcmp(s, "F64") == 0) return *dt = HEED_F64, true;
    return false;
}

static size_t dtype_size(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return st_dtypes[i].size;
    return 0;
}

/* ---------------------------------------------------------------- text checks */

bool st_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == 0) return false; /* a NUL would cut names short in C */
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
        else return false;
        if (n - i < (size_t)len) return false;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += (size_t)len;
    }
    return true;
}

/* A printable excerpt of buf at pos for error messages. */
static const char *excerpt(const char *buf, size_t n, size_t pos, char out[24]) {
    size_t k = 0;
    for (size_t i = pos; i < n && k < 20; i++) out[k++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '?';
    out[k] = 0;
    return out;
}

/* ---------------------------------------------------------------- reading */

static heed_status read_at(const st_source *src, uint64_t off, void *dst, size_t n, char *err, size_t errlen) {
    if (off > src->size || n > src->size - off) {
        snprintf(err, errlen, "read of %zu bytes at %" PRIu64 " runs past the end of the %" PRIu64 "-byte file", n, off,
                 src->size);
        return HEED_ERR_FORMAT;
    }
    if (src->mem) {
        if (n) memcpy(dst, src->mem + off, n);
        return HEED_OK;
    }
    char *p = dst;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = pread(src->fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "read failed at byte %" PRIu64 ": %s", off, strerror(errno));
            return HEED_ERR_IO;
        }
        if (r == 0) {
            snprintf(err, errlen, "file ended at byte %" PRIu64 " (it shrank while being read)", off);
            return HEED_ERR_IO;
        }
        p += r, off += (uint64_t)r, n -= (size_t)r;
    }
    return HEED_OK;
}

heed_status st_read(const st_source *src, const st_file *f, uint64_t off, void *dst, size_t n, char *err, size_t errlen) {
    if (off > f->data_len || n > f->data_len - off) {
        snprintf(err, errlen, "read of %zu bytes at data offset %" PRIu64 " is outside the %" PRIu64 "-byte data", n, off,
                 f->data_len);
        return HEED_ERR_FORMAT;
    }
    return read_at(src, f->data_start + off, dst, n, err, errlen);
}

/* Fills e from the tensor entry at *pp, moving *pp past it; the message names the tensor
 * and the field. */
static bool parse_entry(char **pp, st_entry *e, uint64_t data_len, char *err, size_t errlen) {
    const char *nm = e->name;
    char *p = *pp, *dtype = NULL, *shape = NULL, *offs = NULL, *key;
    if (*p != '{') return snprintf(err, errlen, "tensor '%s': entry is not a JSON object", nm), false;
    for (p = json_ws(p + 1); json_next_member(&p, &key); p = json_ws(p)) {
        char **slot = strcmp(key, "dtype") == 0          ? &dtype
                      : strcmp(key, "shape") == 0        ? &shape
                      : strcmp(key, "data_offsets") == 0 ? &offs
                                                         : NULL;
        if (!slot) return snprintf(err, errlen, "tensor '%s': unexpected field '%s'", nm, key), false;
        if (*slot) return snprintf(err, errlen, "tensor '%s': field '%s' appears twice", nm, key), false;
        *slot = p;
        p = json_skip(p);
    }
    *pp = p;
    if (!dtype || !shape || !offs)
        return snprintf(err, errlen, "tensor '%s': missing field '%s'", nm, !dtype ? "dtype" : !shape ? "shape" : "data_offsets"),
               false;
    if (*dtype != '"') return snprintf(err, errlen, "tensor '%s': dtype is not a string", nm), false;
    e->dtype = json_take_string(&dtype);
    e->elem_size = dtype_size(e->dtype);
    if (!e->elem_size) return snprintf(err, errlen, "tensor '%s': unknown dtype '%.32s'", nm, e->dtype), false;
    if (*shape != '[') return snprintf(err, errlen, "tensor '%s': shape is not an array", nm), false;
    int nd = json_count(shape);
    if (nd > ST_MAX_DIMS) return snprintf(err, errlen, "tensor '%s': shape has %d dims (at most %d)", nm, nd, ST_MAX_DIMS), false;
    e->ndim = nd;
    uint64_t bytes = e->elem_size;
    bool overflow = false;
    int k = 0;
    for (p = json_ws(shape + 1); json_next_value(&p); p = json_ws(p), k++) {
        uint64_t d;
        if (!json_take_uint(&p, &d))
            return snprintf(err, errlen, "tensor '%s': shape dim %d is not an integer in [0, 2^53]", nm, k), false;
        e->shape[k] = (int64_t)d;
        overflow |= __builtin_mul_overflow(bytes, d, &bytes);
    }
    p = json_ws(offs + 1);
    if (*offs != '[' || json_count(offs) != 2 || !json_take_uint(&p, &e->begin) || (p = json_ws(json_ws(p) + 1), !json_take_uint(&p, &e->end)))
        return snprintf(err, errlen, "tensor '%s': data_offsets is not a pair of integers in [0, 2^53]", nm), false;
    if (e->begin > e->end)
        return snprintf(err, errlen, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed", nm, e->begin, e->end),
               false;
    if (e->end > data_len)
        return snprintf(err, errlen,
                        "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data (%" PRIu64 " bytes)",
                        nm, e->begin, e->end, data_len),
               false;
    if (overflow || bytes != e->end - e->begin)
        return snprintf(err, errlen,
                        "tensor '%s': shape of %d dims of %s needs %s%" PRIu64 " bytes but data_offsets [%" PRIu64 ", %" PRIu64
                        "] hold %" PRIu64,
                        nm, nd, e->dtype, overflow ? "more than " : "", overflow ? UINT64_MAX : bytes, e->begin, e->end,
                        e->end - e->begin),
               false;
    return true;
}

static int cmp_name(const void *a, const void *b) { return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name); }
static int cmp_key(const void *a, const void *b) { return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key); }
static int cmp_range(const void *a, const void *b) {
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors must tile [0, data_len): sorted by start, each begins where the last ended. */
static bool check_tiling(st_file *f, char *err, size_t errlen) {
    st_entry **order = malloc((size_t)(f->n_entries ? f->n_entries : 1) * sizeof *order);
    if (!order) return snprintf(err, errlen, "out of memory"), false;
    for (int i = 0; i < f->n_entries; i++) order[i] = &f->entries[i];
    qsort(order, (size_t)f->n_entries, sizeof *order, cmp_range);
    uint64_t at = 0;
    const st_entry *prev = NULL;
    bool ok = true;
    for (int i = 0; i < f->n_entries && ok; i++) {
        const st_entry *e = order[i];
        if (e->begin < at) {
            snprintf(err, errlen, "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap", prev->name,
                     prev->begin, prev->end, e->name, e->begin, e->end);
            ok = false;
        } else if (e->begin > at) {
            snprintf(err, errlen, "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (a hole before '%s')", at, e->begin,
                     e->name);
            ok = false;
        }
        at = e->end;
        prev = e;
    }
    if (ok && at != f->data_len) {
        snprintf(err, errlen, "the data section has %" PRIu64 " bytes but the tensors cover only %" PRIu64, f->data_len, at);
        ok = false;
    }
    free(order);
    return ok;
}

/* The __metadata__ object at *pp into f->meta (sized exactly: counted first). */
static heed_status parse_meta(char **pp, st_file *f, char *err, size_t errlen) {
    char *p = *pp, *key;
    if (*p != '{') return snprintf(err, errlen, "__metadata__ is not a JSON object"), HEED_ERR_FORMAT;
    int nm = json_count(p);
    f->meta = calloc((size_t)(nm ? nm : 1), sizeof *f->meta);
    if (!f->meta) return snprintf(err, errlen, "out of memory for %d metadata keys", nm), HEED_ERR_NOMEM;
    for (p = json_ws(p + 1); json_next_member(&p, &key); p = json_ws(p)) {
        if (*p != '"')
            return snprintf(err, errlen, "__metadata__ value of '%.64s' is not a string (safetensors metadata maps strings to strings)",
                            key),
                   HEED_ERR_FORMAT;
        f->meta[f->n_meta++] = (st_meta){key, json_take_string(&p)};
    }
    *pp = p;
    return HEED_OK;
}

/* The header buf[0..n) (buf[n] is a NUL) into f. Memory: the header itself, plus the
 * tables of what it describes -- an entry (about 120 bytes) per tensor, which takes at
 * least 50 bytes of header to declare, and 16 bytes per metadata pair (at least 6). */
static heed_status parse_header(char *buf, uint64_t n, st_file *f, char *err, size_t errlen) {
    char ex[24];
    if (!st_utf8_valid(buf, n)) return snprintf(err, errlen, "header is not valid UTF-8 (or holds a NUL byte)"), HEED_ERR_FORMAT;
    if (buf[0] != '{') return snprintf(err, errlen, "header does not start with '{' (found '%s')", excerpt(buf, n, 0, ex)), HEED_ERR_FORMAT;
    size_t bad = 0;
    switch (json_check(buf, (size_t)n, &bad)) {
    case JSON_OK: break;
    case JSON_NUL: return snprintf(err, errlen, "header holds a \\u0000 escape (a NUL inside a name) at byte %zu", bad), HEED_ERR_FORMAT;
    case JSON_SURROGATE:
        return snprintf(err, errlen, "header holds a lone UTF-16 surrogate escape at byte %zu ('%s')", bad, excerpt(buf, n, bad, ex)),
               HEED_ERR_FORMAT;
    case JSON_DEPTH:
        return snprintf(err, errlen, "header nests JSON more than %d levels deep (at byte %zu)", JSON_MAX_DEPTH, bad), HEED_ERR_FORMAT;
    case JSON_TRAILING:
        return snprintf(err, errlen, "header has bytes after the JSON object (at byte %zu: '%s')", bad, excerpt(buf, n, bad, ex)),
               HEED_ERR_FORMAT;
    case JSON_SYNTAX:
        return snprintf(err, errlen, "header is not valid JSON (error near byte %zu: '%s')", bad, excerpt(buf, n, bad, ex)),
               HEED_ERR_FORMAT;
    }
    bool have_meta = false;
    int cap = 0;
    char *p, *key;
    for (p = json_ws(buf + 1); json_next_member(&p, &key); p = json_ws(p)) {
        if (strcmp(key, "__metadata__") == 0) {
            if (have_meta) return snprintf(err, errlen, "__metadata__ appears twice"), HEED_ERR_FORMAT;
            have_meta = true;
            heed_status st = parse_meta(&p, f, err, errlen);
            if (st != HEED_OK) return st;
            continue;
        }
        if (!*key) return snprintf(err, errlen, "a tensor has an empty name"), HEED_ERR_FORMAT;
        if (f->n_entries == cap) { /* grows with entries that passed their checks only */
            cap = cap ? 2 * cap : 16;
            st_entry *e = realloc(f->entries, (size_t)cap * sizeof *e);
            if (!e) return snprintf(err, errlen, "out of memory for %d header entries", cap), HEED_ERR_NOMEM;
            f->entries = e;
        }
        st_entry *e = &f->entries[f->n_entries];
        *e = (st_entry){.name = key};
        if (!parse_entry(&p, e, f->data_len, err, errlen)) return HEED_ERR_FORMAT;
        f->n_entries++;
    }
    if (f->n_meta) qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_key);
    for (int i = 1; i < f->n_meta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return snprintf(err, errlen, "__metadata__ key '%.64s' appears twice", f->meta[i].key), HEED_ERR_FORMAT;
    if (f->n_entries) qsort(f->entries, (size_t)f->n_entries, sizeof *f->entries, cmp_name);
    for (int i = 1; i < f->n_entries; i++)
        if (strcmp(f->entries[i - 1].name, f->entries[i].name) == 0)
            return snprintf(err, errlen, "tensor '%.64s' appears twice in the header", f->entries[i].name), HEED_ERR_FORMAT;
    return check_tiling(f, err, errlen) ? HEED_OK : HEED_ERR_FORMAT;
}

heed_status st_parse(const st_source *src, st_file *f, char *err, size_t errlen) {
    *f = (st_file){0};
    unsigned char lenbuf[8];
    if (src->size < 8)
        return snprintf(err, errlen, "file is %" PRIu64 " bytes, too short for the 8-byte header length (truncated?)", src->size),
               HEED_ERR_FORMAT;
    heed_status st = read_at(src, 0, lenbuf, 8, err, errlen);
    if (st != HEED_OK) return st;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenbuf[i];
    if (n > ST_MAX_HEADER)
        return snprintf(err, errlen, "header length %" PRIu64 " is over the %" PRIu64 "-byte limit (corrupt length?)", n,
                        ST_MAX_HEADER),
               HEED_ERR_FORMAT;
    if (n > src->size - 8)
        return snprintf(err, errlen, "header length %" PRIu64 " runs past the end of the %" PRIu64 "-byte file (truncated?)", n,
                        src->size),
               HEED_ERR_FORMAT;
    if (n < 2) return snprintf(err, errlen, "header length %" PRIu64 " is too short for a JSON object", n), HEED_ERR_FORMAT;
    f->data_start = 8 + n;
    f->data_len = src->size - f->data_start;
    f->header = malloc((size_t)n + 1);
    if (!f->header) return snprintf(err, errlen, "out of memory for a %" PRIu64 "-byte header", n), HEED_ERR_NOMEM;
    st = read_at(src, 8, f->header, (size_t)n, err, errlen);
    if (st == HEED_OK) {
        f->header[n] = 0; /* the walk stops at it */
        st = parse_header(f->header, n, f, err, errlen);
    }
    if (st != HEED_OK) st_file_free(f);
    return st;
}

void st_file_free(st_file *f) {
    if (!f) return;
    free(f->header);
    free(f->entries);
    free(f->meta);
    *f = (st_file){0};
}

const st_entry *st_find(const st_file *f, const char *name) {
    st_entry key = {.name = name};
    return f->n_entries ? bsearch(&key, f->entries, (size_t)f->n_entries, sizeof key, cmp_name) : NULL;
}

const char *st_meta_get(const st_file *f, const char *key) {
    st_meta k = {.key = key};
    const st_meta *m = f->n_meta ? bsearch(&k, f->meta, (size_t)f->n_meta, sizeof k, cmp_key) : NULL;
    return m ? m->value : NULL;
}

/* ---------------------------------------------------------------- writing */

typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_fmt(strbuf *b, const char *fmt, uint64_t v) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    sb_add(b, tmp, (size_t)k);
}

/* A JSON string literal: quotes, backslashes and control characters escaped. */
static void sb_json_string(strbuf *b, const char *s) {
    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_add(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_add(b, esc, 6);
        } else {
            sb_add(b, (const char *)&c, 1);
        }
    }
    sb_add(b, "\"", 1);
}

static bool write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return false;
        }
        p += w, n -= (size_t)w;
    }
    return true;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Names must be non-empty UTF-8, unique, and not "__metadata__". */
static bool check_names(const char **names, int n, const char *what, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        if (!names[i] || !*names[i]) return snprintf(err, errlen, "a %s is NULL or empty", what), false;
        if (!st_utf8_valid(names[i], strlen(names[i])))
            return snprintf(err, errlen, "%s '%.64s' is not valid UTF-8", what, names[i]), false;
        if (strcmp(names[i], "__metadata__") == 0) return snprintf(err, errlen, "a %s may not be named __metadata__", what), false;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return snprintf(err, errlen, "%s '%.64s' appears twice", what, names[i]), false;
    return true;
}

/* The header: __metadata__ first, then the 8-byte dtypes, then the 4-byte ones (every
 * tensor stays aligned to its element size: the data starts at a multiple of 8). */
static heed_status build_header(const st_out *t, int n, const char *const *keys, const char *const *values, int n_meta,
                                strbuf *b, int *order, uint64_t *data_len, char *err, size_t errlen) {
    const char **names = malloc((size_t)(n + n_meta + 1) * sizeof *names);
    if (!names) return snprintf(err, errlen, "out of memory"), HEED_ERR_NOMEM;
    for (int i = 0; i < n; i++) names[i] = t[i].name;
    bool ok = check_names(names, n, "tensor name", err, errlen);
    for (int i = 0; ok && i < n_meta; i++) {
        names[i] = keys[i];
        if (!values[i] || !st_utf8_valid(values[i], strlen(values[i]))) {
            snprintf(err, errlen, "metadata value of '%.64s' is NULL or not valid UTF-8", keys[i] ? keys[i] : "(null)");
            ok = false;
        }
    }
    ok = ok && check_names(names, n_meta, "metadata key", err, errlen);
    free(names);
    if (!ok) return HEED_ERR_ARG;
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if ((heed_dtype_size(t[i].dtype) == 8) == (pass == 0)) order[k++] = i;
    sb_str(b, "{\"__metadata__\":{");
    for (int i = 0; i < n_meta; i++) {
        if (i) sb_str(b, ",");
        sb_json_string(b, keys[i]);
        sb_str(b, ":");
        sb_json_string(b, values[i]);
    }
    sb_str(b, "}");
    uint64_t at = 0;
    for (int j = 0; j < n; j++) {
        const st_out *o = &t[order[j]];
        if (o->ndim < 0 || o->ndim > ST_MAX_DIMS || (o->dtype != HEED_F32 && o->dtype != HEED_F64))
            return snprintf(err, errlen, "tensor '%.64s': bad dtype or %d dims", o->name, o->ndim), HEED_ERR_ARG;
        uint64_t bytes = heed_dtype_size(o->dtype);
        sb_str(b, ",");
        sb_json_string(b, o->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, st_dtype_name(o->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < o->ndim; d++) {
            sb_fmt(b, d ? ",%" PRIu64 : "%" PRIu64, (uint64_t)o->shape[d]);
            bytes *= (uint64_t)o->shape[d]; /* shapes come from live tensors: no overflow */
        }
        sb_fmt(b, "],\"data_offsets\":[%" PRIu64, at);
        sb_fmt(b, ",%" PRIu64 "]}", at + bytes);
        at += bytes;
    }
    sb_str(b, "}");
    while (!b->failed && b->len % 8) sb_str(b, " ");
    if (b->failed) return snprintf(err, errlen, "out of memory building the header"), HEED_ERR_NOMEM;
    *data_len = at;
    return HEED_OK;
}

/* fsync the directory holding path, so the rename itself is durable. */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 || errno == EINVAL ? 0 : errno; /* EINVAL: the file system cannot sync directories */
    close(fd);
    return rc;
}

heed_status st_write_atomic(const char *path, const st_out *t, int n, const char *const *keys, const char *const *values,
                            int n_meta, st_check_fn check, void *user, char *err, size_t errlen) {
    strbuf b = {0};
    uint64_t data_len = 0;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return snprintf(err, errlen, "out of memory"), HEED_ERR_NOMEM;
    heed_status st = build_header(t, n, keys, values, n_meta, &b, order, &data_len, err, errlen);
    if (st != HEED_OK) {
        free(order);
        free(b.s);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12);
    if (!tmp) {
        free(order);
        free(b.s);
        return snprintf(err, errlen, "out of memory"), HEED_ERR_NOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file next to it: %s", strerror(errno));
        free(tmp);
        free(order);
        free(b.s);
        return HEED_ERR_IO;
    }
    /* mkostemp makes the file 0600; keep the mode of the file we replace, else 0644 */
    struct stat old;
    fchmod(fd, stat(path, &old) == 0 ? (old.st_mode & 07777) : 0644);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    const char *failed = NULL;
    int saved_errno = 0;
    if (!write_all(fd, lenbuf, 8) || !write_all(fd, b.s, b.len)) failed = "write";
    heed_status refused = HEED_OK;
    for (int j = 0; !failed && j < n; j++) {
        const st_out *o = &t[order[j]];
        size_t bytes = heed_dtype_size(o->dtype);
        for (int d = 0; d < o->ndim; d++) bytes *= (size_t)o->shape[d];
        if (check && (refused = check(o, order[j], user, err, errlen)) != HEED_OK) failed = "check";
        else if (bytes && !write_all(fd, o->data, bytes)) failed = "write";
    }
    if (!failed && fsync(fd) != 0) failed = "fsync";
    if (failed) saved_errno = errno;
    if (close(fd) != 0 && !failed) failed = "close", saved_errno = errno;
    if (!failed && rename(tmp, path) != 0) failed = "rename", saved_errno = errno;
    if (refused != HEED_OK) {
        unlink(tmp);
        st = refused; /* err holds check's message */
    } else if (failed) {
        unlink(tmp);
        snprintf(err, errlen, "%s of the temporary file failed: %s (the previous file is untouched)", failed,
                 strerror(saved_errno));
        st = HEED_ERR_IO;
    } else if ((saved_errno = sync_dir(path)) != 0) {
        snprintf(err, errlen, "the file was written but syncing its directory failed: %s", strerror(saved_errno));
        st = HEED_ERR_IO;
    }
    free(tmp);
    free(order);
    free(b.s);
    return st;
}
