/* safetensors reader and writer: see safetensors.h for the layout. The reader trusts
 * nothing in the file: every length, count and offset is bounded before it is used, and
 * the JSON header is tokenized by jsmn into an array sized by a first counting pass, so
 * its memory stays within a small multiple of the header's size. */
#include "safetensors.h"
#include "heed/io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSMN_STATIC       /* this is the one file that includes jsmn.h */
#define JSMN_STRICT       /* primitives are numbers, true, false and null; keys are strings */
#define JSMN_PARENT_LINKS /* a ',' or a closing bracket follows a parent link, where without
                             them jsmn searches back through all tokens: quadratic time */
#include <jsmn.h>

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

/* ---------------------------------------------------------------- the JSON header
 *
 * jsmn (Debian's libjsmn-dev) splits the header into tokens -- objects, arrays, strings,
 * primitives -- with their byte ranges, into an array the caller gives it: one pass counts
 * them, a second fills an array of exactly that many. It checks brackets and escapes, not
 * what lies between tokens, numbers, literals, raw control characters or the depth:
 * json_check does, and decodes the strings in place. The walk reads checked tokens only. */

#define JSON_MAX_DEPTH 64
/* A token of a safetensors header takes at least 3 bytes with the separator after it (a
 * string its quotes, an array or object its brackets), but numbers, which appear only in
 * shape and data_offsets, where an entry's other tokens pay for them: the densest entry,
 * `"a":{"dtype":"U8","shape":[0,0,0,0,0,0,0,0],"data_offsets":[0,0]},`, holds 18 tokens in
 * 66 bytes (3.7 each), a metadata pair `"k":"",` 2 in 7. A header holding more than n/3 + 2
 * tokens (the 2: the top-level `{}`, and a last item with no separator) is no safetensors
 * header, and is refused before any token is allocated. */
#define JSON_BYTES_PER_TOKEN 3

typedef enum {
    JSON_OK,
    JSON_SYNTAX,
    JSON_TRAILING,
    JSON_NUL,
    JSON_SURROGATE,
    JSON_DEPTH,
    JSON_TOKENS,
    JSON_NOMEM
} json_error;

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Where the top-level object ends (just past its closing bracket; n if it does not) into
 * *top_end, or JSON_DEPTH with the first bracket nested more than JSON_MAX_DEPTH deep
 * there. Brackets are counted as jsmn sees them: strings skipped, a primitive running to
 * whitespace, ',', ']' or '}'. Run before jsmn, which closes a bracket by walking up from
 * the last token through the closed ones: time quadratic in the depth. */
static json_error json_scan(const char *buf, size_t n, size_t *top_end) {
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '"') {
            while (++i < n && buf[i] != '"') i += buf[i] == '\\';
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH) return *top_end = i, JSON_DEPTH;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return *top_end = i + 1, JSON_OK;
        } else if (!is_ws(c) && c != ',' && c != ':') {
            while (i + 1 < n && !is_ws(buf[i + 1]) && buf[i + 1] != ',' && buf[i + 1] != ']' && buf[i + 1] != '}') i++;
        }
    }
    *top_end = n;
    return JSON_OK;
}

/* Moves *at over whitespace, then sep (if not 0) and whitespace: true if that ends exactly
 * at `to` (else *at is the first byte out of place). */
static bool gap(const char *buf, size_t *at, size_t to, char sep) {
    size_t p = *at;
    for (;;) {
        while (p < to && is_ws(buf[p])) p++;
        if (!sep || p == to || buf[p] != sep) break;
        p++, sep = 0;
    }
    *at = p;
    return p == to && !sep;
}

static bool digits(const char **p, const char *end) {
    const char *s = *p;
    while (*p < end && is_digit(**p)) (*p)++;
    return *p > s;
}

/* true, false, null, or a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool primitive_ok(const char *s, size_t n) {
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
        (n == 4 && memcmp(s, "null", 4) == 0))
        return true;
    const char *p = s + (*s == '-'), *end = s + n;
    if (p < end && *p == '0') p++;
    else if (!digits(&p, end)) return false;
    if (p < end && *p == '.' && (++p, !digits(&p, end))) return false;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!digits(&p, end)) return false;
    }
    return p == end;
}

static uint32_t hex4(const char *p) { /* jsmn has checked the 4 digits */
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = 16 * v + (uint32_t)(is_digit(p[i]) ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
    return v;
}

/* Decodes the string token t in place -- escapes, \uXXXX and surrogate pairs into UTF-8,
 * never longer than the escape -- and NUL-terminates it over its closing quote. Refuses a
 * raw control character, \u0000 (it would cut a name short in C) and a lone surrogate;
 * jsmn has checked the escapes' letters and digits, st_utf8_valid the other bytes. */
static json_error decode_string(char *buf, const jsmntok_t *t, size_t *bad) {
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0}; /* by the sequence's length */
    char *r = buf + t->start, *w = r, *end = buf + t->end;
    while (r < end) {
        *bad = (size_t)(r - buf);
        if ((unsigned char)*r < 0x20) return JSON_SYNTAX;
        if (*r != '\\') {
            *w++ = *r++;
            continue;
        }
        char e = r[1];
        if (e != 'u') {
            *w++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
            r += 2;
            continue;
        }
        uint32_t cp = hex4(r + 2), lo = 0;
        r += 6;
        if (cp == 0) return JSON_NUL;
        if (cp >= 0xD800 && cp <= 0xDFFF) { /* a high surrogate, then a low one */
            if (cp <= 0xDBFF && end - r >= 6 && r[0] == '\\' && r[1] == 'u') lo = hex4(r + 2);
            if (lo < 0xDC00 || lo > 0xDFFF) return JSON_SURROGATE;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            r += 6;
        }
        int len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        for (int k = len - 1; k > 0; k--, cp >>= 6) w[k] = (char)(0x80 | (cp & 0x3F));
        w[0] = (char)(lead[len] | cp);
        w += len;
    }
    *w = 0;
    return JSON_OK;
}

/* What jsmn leaves unchecked, over the tokens in text order with a stack of the open
 * arrays and objects: between tokens only whitespace and the separator the grammar wants
 * (':' after a key, ',' between items, none next to a bracket); keys are strings and each
 * has its value; primitives are numbers or literals; strings decode; nothing follows the
 * top-level object. */
static json_error json_check(char *buf, size_t n, const jsmntok_t *t, int nt, size_t *bad) {
    struct {
        const jsmntok_t *tok;
        int items;
    } open[JSON_MAX_DEPTH];
    int depth = 0;
    size_t at = 0; /* just past the last token or bracket walked over */
    for (int i = 0; i <= nt; i++) {
        size_t start = i == nt ? n : (size_t)t[i].start - (t[i].type == JSMN_STRING); /* a string's opening quote */
        for (; depth > 0 && (size_t)open[depth - 1].tok->end <= start; depth--) { /* the containers closed before it */
            bool lone_key = open[depth - 1].tok->type == JSMN_OBJECT && open[depth - 1].items % 2;
            if (!gap(buf, &at, (size_t)open[depth - 1].tok->end - 1, 0) || lone_key) return *bad = at, JSON_SYNTAX;
            at = (size_t)open[depth - 1].tok->end;
        }
        if (i == nt || (i > 0 && depth == 0)) break;
        if (depth > 0) {
            bool object = open[depth - 1].tok->type == JSMN_OBJECT;
            int items = open[depth - 1].items++;
            char sep = items == 0 ? 0 : object && items % 2 ? ':' : ',';
            if (!gap(buf, &at, start, sep) || (object && items % 2 == 0 && t[i].type != JSMN_STRING))
                return *bad = at, JSON_SYNTAX;
        }
        if (t[i].type == JSMN_STRING) {
            json_error e = decode_string(buf, &t[i], bad);
            if (e != JSON_OK) return e;
            at = (size_t)t[i].end + 1;
        } else if (t[i].type == JSMN_PRIMITIVE) {
            if (!primitive_ok(buf + start, (size_t)t[i].end - start)) return *bad = start, JSON_SYNTAX;
            at = (size_t)t[i].end;
        } else {
            if (depth == JSON_MAX_DEPTH) return *bad = start, JSON_DEPTH; /* json_scan has refused it already */
            open[depth].tok = &t[i];
            open[depth++].items = 0;
            at = start + 1;
        }
    }
    if (gap(buf, &at, n, 0)) return JSON_OK;
    *bad = at;
    return JSON_TRAILING;
}

/* The header's tokens into *tokens (the caller frees it, on errors too) and their count
 * into *nt (also for JSON_TOKENS), or where and why the header is refused. */
static json_error json_tokenize(char *buf, size_t n, jsmntok_t **tokens, int *nt, size_t *bad) {
    jsmn_parser p;
    size_t len; /* jsmn reads the top-level object only: bytes after it are json_check's */
    if (json_scan(buf, n, &len) == JSON_DEPTH) return *bad = len, JSON_DEPTH;
    jsmn_init(&p);
    int count = jsmn_parse(&p, buf, len, NULL, 0);
    if (count >= 0) {
        *nt = count;
        if ((size_t)count > n / JSON_BYTES_PER_TOKEN + 2) return JSON_TOKENS;
        if (!(*tokens = malloc((size_t)count * sizeof **tokens))) return JSON_NOMEM;
        jsmn_init(&p);
        count = jsmn_parse(&p, buf, len, *tokens, (unsigned)count);
    }
    if (count < 0) {
        *bad = p.pos;
        return JSON_SYNTAX;
    }
    *nt = count;
    return json_check(buf, n, *tokens, *nt, bad);
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

heed_status st_read(const st_source *src, const st_file *f, uint64_t off, void *dst, size_t n, char *err,
                    size_t errlen) {
    if (off > f->data_len || n > f->data_len - off) {
        snprintf(err, errlen, "read of %zu bytes at data offset %" PRIu64 " is outside the %" PRIu64 "-byte data", n,
                 off, f->data_len);
        return HEED_ERR_FORMAT;
    }
    return read_at(src, f->data_start + off, dst, n, err, errlen);
}

/* The token after the value at t[i] and everything inside it. */
static int next_value(const jsmntok_t *t, int nt, int i) {
    int end = t[i].end;
    do i++;
    while (i < nt && t[i].start < end);
    return i;
}

/* The integer token t, if written as an integer in [0, 2^53] (`24`, not `24.0` or `2.4e1`,
 * as the reference reader wants); json_check has checked the number's syntax. */
static bool token_uint(const char *buf, const jsmntok_t *t, uint64_t *v) {
    uint64_t x = 0;
    if (t->type != JSMN_PRIMITIVE) return false;
    for (int i = t->start; i < t->end; i++)
        if (!is_digit(buf[i]) || (x = 10 * x + (uint64_t)(buf[i] - '0')) > ((uint64_t)1 << 53)) return false;
    *v = x;
    return true;
}

/* Fills e from the tensor entry at t[v]; the message names the tensor and the field. */
static bool parse_entry(const char *buf, const jsmntok_t *t, int nt, int v, st_entry *e, uint64_t data_len, char *err,
                        size_t errlen) {
    const char *nm = e->name;
    int dtype = 0, shape = 0, offs = 0; /* the values' tokens; 0 (the whole header) for none */
    if (t[v].type != JSMN_OBJECT) return snprintf(err, errlen, "tensor '%s': entry is not a JSON object", nm), false;
    for (int k = v + 1; k < nt && t[k].start < t[v].end; k = next_value(t, nt, k + 1)) {
        const char *key = buf + t[k].start;
        int *slot = strcmp(key, "dtype") == 0          ? &dtype
                    : strcmp(key, "shape") == 0        ? &shape
                    : strcmp(key, "data_offsets") == 0 ? &offs
                                                       : NULL;
        if (!slot) return snprintf(err, errlen, "tensor '%s': unexpected field '%s'", nm, key), false;
        if (*slot) return snprintf(err, errlen, "tensor '%s': field '%s' appears twice", nm, key), false;
        *slot = k + 1;
    }
    if (!dtype || !shape || !offs)
        return snprintf(err, errlen, "tensor '%s': missing field '%s'", nm,
                        !dtype   ? "dtype"
                        : !shape ? "shape"
                                 : "data_offsets"),
               false;
    if (t[dtype].type != JSMN_STRING) return snprintf(err, errlen, "tensor '%s': dtype is not a string", nm), false;
    e->dtype = buf + t[dtype].start;
    e->elem_size = dtype_size(e->dtype);
    if (!e->elem_size) return snprintf(err, errlen, "tensor '%s': unknown dtype '%.32s'", nm, e->dtype), false;
    if (t[shape].type != JSMN_ARRAY) return snprintf(err, errlen, "tensor '%s': shape is not an array", nm), false;
    int nd = t[shape].size;
    if (nd > ST_MAX_DIMS)
        return snprintf(err, errlen, "tensor '%s': shape has %d dims (at most %d)", nm, nd, ST_MAX_DIMS), false;
    e->ndim = nd;
    uint64_t bytes = e->elem_size;
    bool overflow = false;
    for (int k = 0; k < nd; k++) { /* the dims are tokens shape+1.. as long as each is a number */
        uint64_t d;
        if (!token_uint(buf, &t[shape + 1 + k], &d))
            return snprintf(err, errlen, "tensor '%s': shape dim %d is not an integer in [0, 2^53]", nm, k), false;
        e->shape[k] = (int64_t)d;
        overflow |= __builtin_mul_overflow(bytes, d, &bytes);
    }
    if (t[offs].type != JSMN_ARRAY || t[offs].size != 2 || !token_uint(buf, &t[offs + 1], &e->begin) ||
        !token_uint(buf, &t[offs + 2], &e->end))
        return snprintf(err, errlen, "tensor '%s': data_offsets is not a pair of integers in [0, 2^53]", nm), false;
    if (e->begin > e->end)
        return snprintf(err, errlen, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed", nm, e->begin,
                        e->end),
               false;
    if (e->end > data_len)
        return snprintf(err, errlen,
                        "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the end of the data (%" PRIu64
                        " bytes)",
                        nm, e->begin, e->end, data_len),
               false;
    if (overflow || bytes != e->end - e->begin)
        return snprintf(err, errlen,
                        "tensor '%s': shape of %d dims of %s needs %s%" PRIu64 " bytes but data_offsets [%" PRIu64
                        ", %" PRIu64 "] hold %" PRIu64,
                        nm, nd, e->dtype, overflow ? "more than " : "", overflow ? UINT64_MAX : bytes, e->begin, e->end,
                        e->end - e->begin),
               false;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}
static int cmp_key(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}
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
            snprintf(err, errlen, "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64 ") overlap",
                     prev->name, prev->begin, prev->end, e->name, e->begin, e->end);
            ok = false;
        } else if (e->begin > at) {
            snprintf(err, errlen, "data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor (a hole before '%s')", at,
                     e->begin, e->name);
            ok = false;
        }
        at = e->end;
        prev = e;
    }
    if (ok && at != f->data_len) {
        snprintf(err, errlen, "the data section has %" PRIu64 " bytes but the tensors cover only %" PRIu64, f->data_len,
                 at);
        ok = false;
    }
    free(order);
    return ok;
}

/* The __metadata__ object at t[o] into f->meta (sized exactly: jsmn counted its keys). */
static heed_status parse_meta(const char *buf, const jsmntok_t *t, int o, st_file *f, char *err, size_t errlen) {
    if (t[o].type != JSMN_OBJECT) return snprintf(err, errlen, "__metadata__ is not a JSON object"), HEED_ERR_FORMAT;
    int nm = t[o].size;
    f->meta = calloc((size_t)(nm ? nm : 1), sizeof *f->meta);
    if (!f->meta) return snprintf(err, errlen, "out of memory for %d metadata keys", nm), HEED_ERR_NOMEM;
    for (int k = o + 1; f->n_meta < nm; k += 2) { /* key, value, key, ...: the values are strings, no tokens inside */
        const char *key = buf + t[k].start;
        if (t[k + 1].type != JSMN_STRING)
            return snprintf(
                       err, errlen,
                       "__metadata__ value of '%.64s' is not a string (safetensors metadata maps strings to strings)",
                       key),
                   HEED_ERR_FORMAT;
        f->meta[f->n_meta++] = (st_meta){key, buf + t[k + 1].start};
    }
    return HEED_OK;
}

/* The checked tokens t[0..nt) of the header buf into f. */
static heed_status read_header(const char *buf, const jsmntok_t *t, int nt, st_file *f, char *err, size_t errlen) {
    bool have_meta = false;
    int cap = 0;
    for (int k = 1; k < nt; k = next_value(t, nt, k + 1)) { /* the top-level object's keys */
        const char *key = buf + t[k].start;
        if (strcmp(key, "__metadata__") == 0) {
            if (have_meta) return snprintf(err, errlen, "__metadata__ appears twice"), HEED_ERR_FORMAT;
            have_meta = true;
            heed_status st = parse_meta(buf, t, k + 1, f, err, errlen);
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
        if (!parse_entry(buf, t, nt, k + 1, e, f->data_len, err, errlen)) return HEED_ERR_FORMAT;
        f->n_entries++;
    }
    return HEED_OK;
}

/* The tables read from the header: no key or name twice, the tensors tile the data. */
static heed_status check_tables(st_file *f, char *err, size_t errlen) {
    if (f->n_meta) qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_key);
    for (int i = 1; i < f->n_meta; i++)
        if (strcmp(f->meta[i - 1].key, f->meta[i].key) == 0)
            return snprintf(err, errlen, "__metadata__ key '%.64s' appears twice", f->meta[i].key), HEED_ERR_FORMAT;
    if (f->n_entries) qsort(f->entries, (size_t)f->n_entries, sizeof *f->entries, cmp_name);
    for (int i = 1; i < f->n_entries; i++)
        if (strcmp(f->entries[i - 1].name, f->entries[i].name) == 0)
            return snprintf(err, errlen, "tensor '%.64s' appears twice in the header", f->entries[i].name),
                   HEED_ERR_FORMAT;
    return check_tiling(f, err, errlen) ? HEED_OK : HEED_ERR_FORMAT;
}

/* The header buf[0..n) into f. Memory: the header itself, its tokens (20 bytes each, at
 * most one per 3 bytes: 6.7x), and the tables of what it describes -- an entry (about 120
 * bytes) per tensor, which takes at least 66 bytes of header to declare, and 16 bytes per
 * metadata pair (at least 6). */
static heed_status parse_header(char *buf, uint64_t n, st_file *f, char *err, size_t errlen) {
    char ex[24];
    if (!st_utf8_valid(buf, n))
        return snprintf(err, errlen, "header is not valid UTF-8 (or holds a NUL byte)"), HEED_ERR_FORMAT;
    if (buf[0] != '{')
        return snprintf(err, errlen, "header does not start with '{' (found '%s')", excerpt(buf, n, 0, ex)),
               HEED_ERR_FORMAT;
    size_t bad = 0;
    jsmntok_t *t = NULL;
    int nt = 0;
    heed_status st = HEED_ERR_FORMAT;
    switch (json_tokenize(buf, (size_t)n, &t, &nt, &bad)) {
    case JSON_OK: st = read_header(buf, t, nt, f, err, errlen); break; /* then check_tables, without the tokens */
    case JSON_NOMEM:
        snprintf(err, errlen, "out of memory for the %d JSON tokens of a %" PRIu64 "-byte header", nt, n);
        st = HEED_ERR_NOMEM;
        break;
    case JSON_TOKENS:
        snprintf(err, errlen,
                 "header holds %d JSON tokens in %" PRIu64
                 " bytes, more than the one per %d bytes a safetensors header can hold",
                 nt, n, JSON_BYTES_PER_TOKEN);
        break;
    case JSON_NUL: snprintf(err, errlen, "header holds a \\u0000 escape (a NUL inside a name) at byte %zu", bad); break;
    case JSON_SURROGATE:
        snprintf(err, errlen, "header holds a lone UTF-16 surrogate escape at byte %zu ('%s')", bad,
                 excerpt(buf, n, bad, ex));
        break;
    case JSON_DEPTH:
        snprintf(err, errlen, "header nests JSON more than %d levels deep (at byte %zu)", JSON_MAX_DEPTH, bad);
        break;
    case JSON_TRAILING:
        snprintf(err, errlen, "header has bytes after the JSON object (at byte %zu: '%s')", bad,
                 excerpt(buf, n, bad, ex));
        break;
    case JSON_SYNTAX:
        snprintf(err, errlen, "header is not valid JSON (error near byte %zu: '%s')", bad, excerpt(buf, n, bad, ex));
        break;
    }
    free(t);
    return st == HEED_OK ? check_tables(f, err, errlen) : st;
}

heed_status st_parse(const st_source *src, st_file *f, char *err, size_t errlen) {
    *f = (st_file){0};
    unsigned char lenbuf[8];
    if (src->size < 8)
        return snprintf(err, errlen, "file is %" PRIu64 " bytes, too short for the 8-byte header length (truncated?)",
                        src->size),
               HEED_ERR_FORMAT;
    heed_status st = read_at(src, 0, lenbuf, 8, err, errlen);
    if (st != HEED_OK) return st;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenbuf[i];
    if (n > ST_MAX_HEADER)
        return snprintf(err, errlen, "header length %" PRIu64 " is over the %" PRIu64 "-byte limit (corrupt length?)",
                        n, ST_MAX_HEADER),
               HEED_ERR_FORMAT;
    if (n > src->size - 8)
        return snprintf(err, errlen,
                        "header length %" PRIu64 " runs past the end of the %" PRIu64 "-byte file (truncated?)", n,
                        src->size),
               HEED_ERR_FORMAT;
    if (n < 2)
        return snprintf(err, errlen, "header length %" PRIu64 " is too short for a JSON object", n), HEED_ERR_FORMAT;
    f->data_start = 8 + n;
    f->data_len = src->size - f->data_start;
    f->header = malloc((size_t)n + 1);
    if (!f->header) return snprintf(err, errlen, "out of memory for a %" PRIu64 "-byte header", n), HEED_ERR_NOMEM;
    st = read_at(src, 8, f->header, (size_t)n, err, errlen);
    if (st == HEED_OK) {
        f->header[n] = 0; /* a C string too, though every reader here stops at n */
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

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Names must be non-empty UTF-8, unique, and not "__metadata__". */
static bool check_names(const char **names, int n, const char *what, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        if (!names[i] || !*names[i]) return snprintf(err, errlen, "a %s is NULL or empty", what), false;
        if (!st_utf8_valid(names[i], strlen(names[i])))
            return snprintf(err, errlen, "%s '%.64s' is not valid UTF-8", what, names[i]), false;
        if (strcmp(names[i], "__metadata__") == 0)
            return snprintf(err, errlen, "a %s may not be named __metadata__", what), false;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return snprintf(err, errlen, "%s '%.64s' appears twice", what, names[i]), false;
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

heed_status st_write_atomic(heed_ctx *ctx, const char *who, const char *path, const st_out *t, int n,
                            const char *const *keys, const char *const *values, int n_meta, st_check_fn check,
                            void *user, char *err, size_t errlen) {
    err[0] = 0;
    strbuf b = {0};
    uint64_t data_len = 0;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return snprintf(err, errlen, "out of memory"), HEED_ERR_NOMEM;
    heed_status st = build_header(t, n, keys, values, n_meta, &b, order, &data_len, err, errlen);
    heed_atomic_file af = {0};
    if (st == HEED_OK) st = heed_atomic_open(ctx, who, path, &af); /* its message is in ctx, err stays empty */
    if (st == HEED_OK) {
        unsigned char lenbuf[8];
        for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
        /* a failed fwrite sets the stream's error, which heed_atomic_close reports */
        bool ok = fwrite(lenbuf, 1, 8, af.f) == 8 && fwrite(b.s, 1, b.len, af.f) == b.len;
        for (int j = 0; ok && st == HEED_OK && j < n; j++) {
            const st_out *o = &t[order[j]];
            size_t bytes = heed_dtype_size(o->dtype);
            for (int d = 0; d < o->ndim; d++) bytes *= (size_t)o->shape[d];
            if (check) st = check(o, order[j], user, err, errlen); /* a refusal: err holds check's message */
            if (st == HEED_OK && bytes) ok = fwrite(o->data, 1, bytes, af.f) == bytes;
        }
        st = heed_atomic_close(ctx, &af, st); /* commits, or removes the temporary file */
    }
    free(order);
    free(b.s);
    return st;
}
