/* IDX reader through zlib (idx.h). gzread reads gzip members and passes other bytes
 * through unchanged, so one path serves both compressed and plain files. */
#include "idx.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const fm_class_names[FM_CLASSES] = {"top",    "trouser", "pullover", "dress", "coat",
                                                "sandal", "shirt",   "sneaker",  "bag",   "boot"};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads up to n bytes; the count read, or -1 when zlib reports an error (message in msg). */
static int64_t read_bytes(gzFile f, uint8_t *buf, int64_t n, const char **msg) {
    int64_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1 << 30) ? 1u << 30 : (unsigned)(n - got);
        int r = gzread(f, buf + got, chunk);
        if (r < 0) break;
        if (r == 0) break;
        got += r;
    }
    int errnum = Z_OK;
    const char *m = gzerror(f, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        *msg = m;
        return -1;
    }
    return got;
}

static void dims_str(const idx_array *a, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < a->ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, i ? "x%lld" : "%lld", (long long)a->dims[i]);
}

int idx_read(gzFile f, const char *name, idx_array *out, char *err, size_t errlen) {
    *out = (idx_array){0};
    if (!name) name = "(idx)";
    const char *zmsg = "";
    uint8_t head[4];
    int64_t got = read_bytes(f, head, 4, &zmsg);
    if (got < 0) return fail(err, errlen, "%s: not readable as gzip or plain bytes: %s", name, zmsg);
    if (got < 4)
        return fail(err, errlen, "%s: ends after %lld bytes; an IDX file starts with 4 magic bytes", name,
                    (long long)got);
    if (head[0] || head[1])
        return fail(err, errlen, "%s: not an IDX file (magic bytes %02x %02x %02x %02x; the first two must be 0)", name,
                    head[0], head[1], head[2], head[3]);
    if (head[2] != 0x08)
        return fail(err, errlen, "%s: data type 0x%02x is not supported (only 0x08, unsigned bytes)", name, head[2]);
    idx_array a = {.ndim = head[3], .count = 1};
    if (a.ndim < 1 || a.ndim > IDX_MAX_DIMS)
        return fail(err, errlen, "%s: %d dims (1 to %d allowed)", name, a.ndim, IDX_MAX_DIMS);
    uint8_t raw[4 * IDX_MAX_DIMS];
    got = read_bytes(f, raw, 4 * a.ndim, &zmsg);
    if (got < 0) return fail(err, errlen, "%s: the header is not readable: %s", name, zmsg);
    if (got < 4 * a.ndim)
        return fail(err, errlen, "%s: the header ends after %lld of its %d dim bytes", name, (long long)got,
                    4 * a.ndim);
    for (int i = 0; i < a.ndim; i++) {
        const uint8_t *p = raw + 4 * i;
        a.dims[i] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        /* dims are below 2^32, so the product stays below 2^63 while it is <= 2^31 */
        a.count = a.count > IDX_MAX_BYTES ? a.count : a.count * a.dims[i];
    }
    char dims[128];
    dims_str(&a, dims, sizeof dims);
    if (a.count > IDX_MAX_BYTES)
        return fail(err, errlen, "%s: dims %s announce more than %lld data bytes", name, dims,
                    (long long)IDX_MAX_BYTES);
    /* grow with the data actually read */
    int64_t cap = 0, have = 0;
    uint8_t *buf = NULL;
    while (have < a.count) {
        int64_t want = cap ? 2 * cap : 1 << 20;
        if (want > a.count) want = a.count;
        uint8_t *nb = realloc(buf, (size_t)want);
        if (!nb) {
            free(buf);
            return fail(err, errlen, "%s: out of memory for %lld bytes", name, (long long)want);
        }
        buf = nb, cap = want;
        got = read_bytes(f, buf + have, cap - have, &zmsg);
        if (got < 0) {
            free(buf);
            return fail(err, errlen, "%s: the data is not readable after %lld bytes: %s", name, (long long)have, zmsg);
        }
        have += got;
        if (have < cap) break;
    }
    if (have < a.count) {
        free(buf);
        return fail(err, errlen, "%s: ends after %lld of the %lld data bytes its dims %s announce", name,
                    (long long)have, (long long)a.count, dims);
    }
    uint8_t extra[64];
    got = read_bytes(f, extra, sizeof extra, &zmsg);
    if (got != 0) {
        free(buf);
        if (got < 0) return fail(err, errlen, "%s: the end of the file is not readable: %s", name, zmsg);
        return fail(err, errlen, "%s: has more bytes after the %lld data bytes its dims %s announce", name,
                    (long long)a.count, dims);
    }
    a.data = buf;
    *out = a;
    return 0;
}

int idx_load(const char *path, idx_array *out, char *err, size_t errlen) {
    *out = (idx_array){0};
    if (!path) return fail(err, errlen, "idx: no path given");
    gzFile f = gzopen(path, "rb");
    if (!f) return fail(err, errlen, "%s: cannot open", path);
    int rc = idx_read(f, path, out, err, errlen);
    gzclose(f);
    return rc;
}

void idx_free(idx_array *a) {
    if (!a) return;
    free(a->data);
    *a = (idx_array){0};
}

/* ---------------------------------------------------------------- Fashion-MNIST */

int fm_from_arrays(idx_array *images, const char *images_name, idx_array *labels, const char *labels_name, fm_set *out,
                   char *err, size_t errlen) {
    *out = (fm_set){0};
    char dims[128];
    dims_str(images, dims, sizeof dims);
    if (images->ndim != 3 || images->dims[1] != FM_SIDE || images->dims[2] != FM_SIDE || images->dims[0] < 1)
        return fail(err, errlen, "%s: images are %s; Fashion-MNIST images are Nx%dx%d with N >= 1", images_name, dims,
                    FM_SIDE, FM_SIDE);
    dims_str(labels, dims, sizeof dims);
    if (labels->ndim != 1 || labels->dims[0] != images->dims[0])
        return fail(err, errlen, "%s: labels are %s; %s has %lld images, so they must be %lld", labels_name, dims,
                    images_name, (long long)images->dims[0], (long long)images->dims[0]);
    for (int64_t i = 0; i < labels->count; i++)
        if (labels->data[i] >= FM_CLASSES)
            return fail(err, errlen, "%s: label %d at index %lld is not a class (0..%d)", labels_name, labels->data[i],
                        (long long)i, FM_CLASSES - 1);
    *out = (fm_set){.n = images->dims[0], .images = images->data, .labels = labels->data};
    images->data = labels->data = NULL;
    idx_free(images), idx_free(labels);
    return 0;
}

int fm_load(const char *dir, const char *split, fm_set *out, char *err, size_t errlen) {
    *out = (fm_set){0};
    char ip[4096], lp[4096];
    if (snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, split) >= (int)sizeof ip ||
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, split) >= (int)sizeof lp)
        return fail(err, errlen, "fashion-mnist: the path %s is too long", dir);
    idx_array images, labels;
    if (idx_load(ip, &images, err, errlen) != 0) return -1;
    if (idx_load(lp, &labels, err, errlen) != 0) {
        idx_free(&images);
        return -1;
    }
    int rc = fm_from_arrays(&images, ip, &labels, lp, out, err, errlen);
    idx_free(&images), idx_free(&labels);
    return rc;
}

void fm_free(fm_set *s) {
    if (!s) return;
    free(s->images);
    free(s->labels);
    *s = (fm_set){0};
}
