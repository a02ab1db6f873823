/* Checkpoints and weight files in the safetensors format (io/safetensors.c).
 *
 * A checkpoint's tensors: every parameter under its own name; per-element optimizer
 * state as per-parameter slices "optim.<state>/<param>" (same shape as the parameter, so
 * other frameworks can read them); other optimizer state flat as "optim.<state>".
 * Metadata (all strings): heed.format = "checkpoint", heed.version, step, epoch, rng.seed,
 * rng.counter, schedule.count and schedule.<i>, optim.steps and optim.states (when an
 * optimizer is saved), role.<tensor> = "param" or "optim.<state>", user.<key>.
 *
 * Loading runs in two phases: check (parse, validate, match every tensor against the
 * model, read all needed bytes into a staging buffer), then commit (copy). Nothing is
 * written to P, the optimizer or the ctx before the commit phase. */
#define _GNU_SOURCE                  /* vasprintf */
#include "../optim/optim_internal.h" /* heed__optimizer_state_min */
#include "heed/checkpoint.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRLEN 400
/* step, epoch and optim.steps are counts in [0, 2^53]: exact as doubles, and far from
 * overflowing when a loop adds one (HEED_MAX_STEPS is the same bound). */
#define MAX_COUNT ((int64_t)1 << 53)

/* ---------------------------------------------------------------- info */

heed_status heed_checkpoint_info_set(heed_ctx *ctx, heed_checkpoint_info *info, const char *key, const char *value) {
    static const char *fn = "heed_checkpoint_info_set";
    if (!info || !key || !value)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: %s is NULL", fn, !info ? "info" : !key ? "key" : "value");
    size_t kl = strlen(key), vl = strlen(value);
    if (kl == 0 || kl >= HEED_CKPT_KEY_LEN)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: key '%.40s' has %zu bytes (must be 1 to %d)", fn, key, kl,
                             HEED_CKPT_KEY_LEN - 1);
    if (vl >= HEED_CKPT_VALUE_LEN)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the value of '%s' has %zu bytes (at most %d)", fn, key, vl,
                             HEED_CKPT_VALUE_LEN - 1);
    if (!st_utf8_valid(key, kl)) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the key is not valid UTF-8", fn);
    if (!st_utf8_valid(value, vl))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: the value of '%s' is not valid UTF-8", fn, key);
    if (info->n_user < 0 || info->n_user > HEED_CKPT_MAX_USER)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: info->n_user = %d (must be in [0, %d])", fn, info->n_user,
                             HEED_CKPT_MAX_USER);
    int i = 0;
    while (i < info->n_user && strcmp(info->user[i].key, key) != 0) i++;
    if (i == HEED_CKPT_MAX_USER)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: no slot for '%s': all %d user keys are taken", fn, key,
                             HEED_CKPT_MAX_USER);
    memcpy(info->user[i].key, key, kl + 1);
    memcpy(info->user[i].value, value, vl + 1);
    if (i == info->n_user) info->n_user++;
    return HEED_OK;
}

const char *heed_checkpoint_info_get(const heed_checkpoint_info *info, const char *key) {
    if (!info || !key || info->n_user < 0 || info->n_user > HEED_CKPT_MAX_USER) return NULL;
    for (int i = 0; i < info->n_user; i++)
        if (strncmp(info->user[i].key, key, HEED_CKPT_KEY_LEN) == 0) return info->user[i].value;
    return NULL;
}

/* ---------------------------------------------------------------- strings */

/* A list of malloc'ed strings freed together (metadata keys and values). */
typedef struct {
    char **s;
    int n, cap;
    bool failed;
} strpool;

static const char *pool_fmt(strpool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *pool_fmt(strpool *p, const char *fmt, ...) {
    if (p->failed) return NULL;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        char **s = realloc(p->s, (size_t)cap * sizeof *s);
        if (!s) return p->failed = true, NULL;
        p->s = s, p->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int rc = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (rc < 0) return p->failed = true, NULL;
    return p->s[p->n++] = out;
}

static void pool_free(strpool *p) {
    for (int i = 0; i < p->n; i++) free(p->s[i]);
    free(p->s);
}

/* Strict decimal parsing: the whole string, no sign for unsigned, no spaces. */
static bool parse_u64(const char *s, uint64_t *v) {
    if (!s || !(*s >= '0' && *s <= '9')) return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return false;
    *v = x;
    return true;
}

static bool parse_i64(const char *s, int64_t *v) {
    if (!s || !((*s >= '0' && *s <= '9') || *s == '-')) return false;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || end == s) return false;
    *v = x;
    return true;
}

static bool parse_f64(const char *s, double *v) {
    if (!s || !*s || *s == ' ' || *s == '\t' || *s == '\n') return false;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || end == s) return false; /* ERANGE is fine: %.17g of a subnormal reads back exactly */
    *v = x;
    return true;
}

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* The metadata role.<name> of a tensor, or NULL. */
static const char *role_of(const st_file *f, const char *name) {
    char *key = NULL;
    if (asprintf(&key, "role.%s", name) < 0) return NULL;
    const char *role = st_meta_get(f, key);
    free(key);
    return role;
}

/* ---------------------------------------------------------------- the tensors of a model */

/* One tensor a checkpoint holds for P and opt: where its bytes live in memory. */
typedef struct {
    const char *name; /* in the pool or a parameter's name */
    const char *role; /* "param" or "optim.<state>" */
    heed_dtype dtype;
    int ndim;
    int64_t shape[HEED_MAX_DIMS];
    void *data;
    size_t bytes;
    double min; /* values must be finite and >= min (optimizer state: heed__optimizer_state_min) */
} ckpt_tensor;

typedef struct {
    ckpt_tensor *t;
    int n;
    const char *states; /* optim.states: state names joined by ',' ("" for none) */
    void **state_data;  /* per state buffer: to zero the padding between slices */
    size_t *state_bytes;
    int n_state;
} ckpt_layout;

static void layout_free(ckpt_layout *L) {
    free(L->t);
    free(L->state_data);
    free(L->state_bytes);
}

/* The tensors of P and opt, as the checkpoint names them. */
static heed_status model_layout(const char *fn, heed_params *P, heed_optimizer *opt, strpool *pool, ckpt_layout *L) {
    heed_ctx *ctx = heed_params_ctx(P);
    *L = (ckpt_layout){.states = ""};
    int np = heed_params_count(P), ns = opt ? heed_optimizer_state_count(opt) : 0;
    if (ns < 0) ns = 0;
    size_t cap = (size_t)np * (size_t)(1 + ns) + (size_t)ns + 1;
    L->t = calloc(cap, sizeof *L->t);
    L->state_data = calloc((size_t)ns + 1, sizeof *L->state_data);
    L->state_bytes = calloc((size_t)ns + 1, sizeof *L->state_bytes);
    if (!L->t || !L->state_data || !L->state_bytes) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < np; i++) {
        heed_tensor *p = heed_params_at(P, i);
        ckpt_tensor *c = &L->t[L->n++];
        *c = (ckpt_tensor){.name = p->name,
                           .role = "param",
                           .dtype = p->dtype,
                           .ndim = p->ndim,
                           .data = p->data,
                           .bytes = (size_t)p->numel * heed_dtype_size(p->dtype),
                           .min = -INFINITY};
        memcpy(c->shape, p->shape, sizeof c->shape);
    }
    const char *states = "";
    int64_t store_numel = heed_params_padded_numel(P);
    for (int s = 0; s < ns; s++) {
        const char *sname = NULL;
        void *data = NULL;
        int64_t numel = 0;
        heed_dtype dt = HEED_F32;
        if (heed_optimizer_state(opt, s, &sname, &data, &numel, &dt) != HEED_OK || !sname || !*sname || numel < 0 ||
            (dt != HEED_F32 && dt != HEED_F64) || strchr(sname, ','))
            return heed_ctx_fail(ctx, HEED_ERR_ARG,
                                 "%s: optimizer state buffer %d is invalid (name '%s', %" PRId64 " elements)", fn, s,
                                 sname ? sname : "(null)", numel);
        if (numel > 0 && !data)
            return heed_ctx_fail(ctx, HEED_ERR_STATE, "%s: optimizer state '%s' has no buffer yet", fn, sname);
        size_t es = heed_dtype_size(dt);
        double min = heed__optimizer_state_min(opt, s);
        const char *role = pool_fmt(pool, "optim.%s", sname);
        states = pool_fmt(pool, "%s%s%s", states ? states : "", s ? "," : "", sname);
        L->state_data[s] = data;
        L->state_bytes[s] = (size_t)numel * es;
        if (numel == store_numel && np > 0) { /* per element: one slice per parameter */
            for (int i = 0; i < np; i++) {
                heed_tensor *p = heed_params_at(P, i);
                ckpt_tensor *c = &L->t[L->n++];
                *c = (ckpt_tensor){.name = pool_fmt(pool, "optim.%s/%s", sname, p->name),
                                   .role = role,
                                   .dtype = dt,
                                   .ndim = p->ndim,
                                   .data = (char *)data + (size_t)heed_params_offset(P, i) * es,
                                   .bytes = (size_t)p->numel * es,
                                   .min = min};
                memcpy(c->shape, p->shape, sizeof c->shape);
            }
        } else {
            L->t[L->n++] = (ckpt_tensor){.name = pool_fmt(pool, "optim.%s", sname),
                                         .role = role,
                                         .dtype = dt,
                                         .ndim = 1,
                                         .shape = {numel},
                                         .data = data,
                                         .bytes = (size_t)numel * es,
                                         .min = min};
        }
    }
    L->n_state = ns;
    L->states = states;
    if (pool->failed) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    return HEED_OK;
}

/* ---------------------------------------------------------------- values */

/* The first of n values of dtype dt at data (maybe unaligned) that is not finite or is
 * below min: its index and value, or -1. */
static int64_t first_bad_value(const void *data, heed_dtype dt, int64_t n, double min, double *value) {
    const char *p = data;
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (dt == HEED_F32) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            v = f;
        } else {
            memcpy(&v, p + 8 * i, 8);
        }
        if (!isfinite(v) || v < min) return *value = v, i;
    }
    return -1;
}

/* True when the n values of t, held at data in dtype dt, are finite and >= t->min; else
 * err names the tensor, the element and the rule. */
static bool values_ok(const ckpt_tensor *t, const void *data, heed_dtype dt, int64_t n, char *err, size_t errlen) {
    double v = 0;
    int64_t bad = first_bad_value(data, dt, n, t->min, &v);
    if (bad < 0) return true;
    bool state = strcmp(t->role, "param") != 0;
    snprintf(err, errlen, "tensor '%s' element %" PRId64 " is %g (%s must be finite%s)", t->name, bad, v,
             state ? "optimizer state" : "parameters",
             t->min == 0 ? " and >= 0: a second moment or a sum of squares" : "");
    return false;
}

/* Loading: the staged values of t (dtype dt, n of them). */
static heed_status check_staged(heed_ctx *ctx, const char *fn, const char *label, const ckpt_tensor *t,
                                const void *data, heed_dtype dt, int64_t n) {
    char err[ERRLEN];
    return values_ok(t, data, dt, n, err, sizeof err)
               ? HEED_OK
               : heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: %s", fn, label, err);
}

/* Saving (st_check_fn): a file we would refuse to load is not written. */
static heed_status check_saved(const st_out *o, int i, void *layout, char *err, size_t errlen) {
    const ckpt_tensor *t = &((const ckpt_layout *)layout)->t[i];
    return values_ok(t, o->data, t->dtype, (int64_t)(t->bytes / heed_dtype_size(t->dtype)), err, errlen)
               ? HEED_OK
               : HEED_ERR_NUMERIC;
}

/* ---------------------------------------------------------------- save */

static heed_status check_info(heed_ctx *ctx, const char *fn, const heed_checkpoint_info *info) {
    if (info->step < 0 || info->step > MAX_COUNT || info->epoch < 0 || info->epoch > MAX_COUNT)
        return heed_ctx_fail(ctx, HEED_ERR_ARG,
                             "%s: info->step = %" PRId64 ", info->epoch = %" PRId64 " (each must be in [0, 2^53])", fn,
                             info->step, info->epoch);
    if (info->n_schedule < 0 || info->n_schedule > HEED_CKPT_MAX_SCHEDULE)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: info->n_schedule is %d (0 to %d allowed)", fn, info->n_schedule,
                             HEED_CKPT_MAX_SCHEDULE);
    if (info->n_user < 0 || info->n_user > HEED_CKPT_MAX_USER)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: info->n_user is %d (0 to %d allowed)", fn, info->n_user,
                             HEED_CKPT_MAX_USER);
    for (int i = 0; i < info->n_user; i++) {
        if (!memchr(info->user[i].key, 0, HEED_CKPT_KEY_LEN) || !memchr(info->user[i].value, 0, HEED_CKPT_VALUE_LEN) ||
            !info->user[i].key[0])
            return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: user key %d is empty or not NUL-terminated", fn, i);
    }
    return HEED_OK;
}

static heed_status write_file(const char *fn, const char *path, heed_ctx *ctx, const ckpt_layout *L, strpool *pool,
                              const char **keys, const char **values, int n_meta) {
    st_out *out = calloc((size_t)L->n + 1, sizeof *out);
    if (!out) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    for (int i = 0; i < L->n; i++)
        out[i] = (st_out){L->t[i].name, L->t[i].dtype, L->t[i].ndim, L->t[i].shape, L->t[i].data};
    char err[ERRLEN];
    heed_status st =
        st_write_atomic(ctx, fn, path, out, L->n, keys, values, n_meta, check_saved, (void *)L, err, sizeof err);
    free(out);
    if (st != HEED_OK && err[0]) return heed_ctx_fail(ctx, st, "%s: %s: %s", fn, path, err);
    return st; /* an I/O error: the atomic writer's message is already in ctx */
}

heed_status heed_checkpoint_save(heed_params *P, const char *path, heed_optimizer *opt,
                                 const heed_checkpoint_info *info) {
    static const char *fn = "heed_checkpoint_save";
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!path || !*path) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: path is NULL or empty", fn);
    heed_checkpoint_info none = {0};
    if (!info) info = &none;
    heed_status st = check_info(ctx, fn, info);
    if (st != HEED_OK) return st;
    strpool pool = {0};
    ckpt_layout L;
    st = model_layout(fn, P, opt, &pool, &L);
    int cap = 16 + L.n + HEED_CKPT_MAX_SCHEDULE + HEED_CKPT_MAX_USER, n = 0;
    const char **keys = calloc((size_t)cap, sizeof *keys), **values = calloc((size_t)cap, sizeof *values);
    if (st == HEED_OK && (!keys || !values)) st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    if (st == HEED_OK) {
        uint64_t seed, counter;
        heed_ctx_rng_state(ctx, &seed, &counter);
#define META(k, ...) (keys[n] = (k), values[n++] = pool_fmt(&pool, __VA_ARGS__))
        META("heed.format", "checkpoint");
        META("heed.version", "%s", HEED_VERSION);
        META("step", "%" PRId64, info->step);
        META("epoch", "%" PRId64, info->epoch);
        META("rng.seed", "%" PRIu64, seed);
        META("rng.counter", "%" PRIu64, counter);
        META("schedule.count", "%d", info->n_schedule);
        for (int i = 0; i < info->n_schedule; i++) META(pool_fmt(&pool, "schedule.%d", i), "%.17g", info->schedule[i]);
        if (opt) {
            META("optim.steps", "%" PRId64, heed_optimizer_steps(opt));
            META("optim.states", "%s", L.states);
        }
        for (int i = 0; i < info->n_user; i++)
            META(pool_fmt(&pool, "user.%s", info->user[i].key), "%s", info->user[i].value);
        for (int i = 0; i < L.n; i++) META(pool_fmt(&pool, "role.%s", L.t[i].name), "%s", L.t[i].role);
#undef META
        if (pool.failed) st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    }
    if (st == HEED_OK) st = write_file(fn, path, ctx, &L, &pool, keys, values, n);
    free(keys);
    free(values);
    layout_free(&L);
    pool_free(&pool);
    return st;
}

heed_status heed_safetensors_export(heed_params *P, const char *path) {
    static const char *fn = "heed_safetensors_export";
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!path || !*path) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: path is NULL or empty", fn);
    strpool pool = {0};
    ckpt_layout L;
    heed_status st = model_layout(fn, P, NULL, &pool, &L);
    const char *keys[2] = {"heed.format", "heed.version"}, *values[2] = {"weights", HEED_VERSION};
    if (st == HEED_OK) st = write_file(fn, path, ctx, &L, &pool, keys, values, 2);
    layout_free(&L);
    pool_free(&pool);
    return st;
}

/* ---------------------------------------------------------------- load */

/* The file, opened or in memory, with its parsed header. */
typedef struct {
    st_source src;
    st_file f;
    const char *label; /* the path, or "(memory)" */
} ckpt_file;

static heed_status open_file(heed_ctx *ctx, const char *fn, const char *path, const void *mem, size_t size,
                             ckpt_file *cf) {
    *cf = (ckpt_file){.src = {.fd = -1}, .label = path ? path : "(memory)"};
    if (mem || !path) {
        if (!mem && size) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: data is NULL", fn);
        cf->src.mem = mem ? mem : (const unsigned char *)"";
        cf->src.size = size;
    } else {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
        if (fd < 0) return heed_ctx_fail(ctx, HEED_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(errno));
        struct stat sb;
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            close(fd);
            return heed_ctx_fail(ctx, HEED_ERR_IO, "%s: %s: not a regular file", fn, path);
        }
        cf->src.fd = fd;
        cf->src.size = (uint64_t)sb.st_size;
    }
    char err[ERRLEN];
    heed_status st = st_parse(&cf->src, &cf->f, err, sizeof err);
    if (st != HEED_OK) {
        if (cf->src.fd >= 0) close(cf->src.fd);
        cf->src.fd = -1;
        return heed_ctx_fail(ctx, st, "%s: %s: %s", fn, cf->label, err);
    }
    return HEED_OK;
}

static void close_file(ckpt_file *cf) {
    st_file_free(&cf->f);
    if (cf->src.fd >= 0) close(cf->src.fd);
}

static const char *shape_str(int ndim, const int64_t *shape, char buf[200]) {
    int k = snprintf(buf, 200, "[");
    for (int i = 0; i < ndim && k < 180; i++)
        k += snprintf(buf + k, (size_t)(200 - k), i ? ",%" PRId64 : "%" PRId64, shape[i]);
    snprintf(buf + k, (size_t)(200 - k), "]");
    return buf;
}

/* The file's entry for t: present, same shape; same dtype unless convert (F32/F64 only). */
static heed_status match_entry(heed_ctx *ctx, const char *fn, const ckpt_file *cf, const ckpt_tensor *t, bool convert,
                               const st_entry **out) {
    const char *what = strcmp(t->role, "param") == 0 ? "parameter" : "optimizer state";
    const st_entry *e = st_find(&cf->f, t->name);
    *out = e;
    if (!e)
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: %s '%s' is missing from the file", fn, cf->label, what,
                             t->name);
    heed_dtype dt;
    if (convert ? !st_dtype_parse(e->dtype, &dt) : strcmp(e->dtype, st_dtype_name(t->dtype)) != 0)
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: tensor '%s': dtype %s in the file, %s expected%s", fn,
                             cf->label, t->name, e->dtype, convert ? "F32 or F64" : st_dtype_name(t->dtype),
                             convert ? " (convert it first, e.g. tensor.float() in PyTorch)" : "");
    bool same = e->ndim == t->ndim;
    for (int i = 0; same && i < t->ndim; i++) same = e->shape[i] == t->shape[i];
    char a[200], b[200];
    if (!same)
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: tensor '%s': shape %s in the file, %s expected", fn,
                             cf->label, t->name, shape_str(e->ndim, e->shape, a), shape_str(t->ndim, t->shape, b));
    return HEED_OK;
}

/* Reads the entries for t[0..n) (e[i] == NULL: skipped) into one staging buffer, in
 * the file's dtype. offsets[i] is where tensor i starts in it. */
static heed_status stage(heed_ctx *ctx, const char *fn, const ckpt_file *cf, const st_entry **e, int n, char **buf,
                         size_t *offsets) {
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        offsets[i] = total;
        if (e[i]) total += (size_t)(e[i]->end - e[i]->begin);
    }
    *buf = malloc(total ? total : 1);
    if (!*buf)
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: %s: out of memory staging %zu bytes", fn, cf->label, total);
    char err[ERRLEN];
    for (int i = 0; i < n; i++) {
        if (!e[i]) continue;
        heed_status st = st_read(&cf->src, &cf->f, e[i]->begin, *buf + offsets[i], (size_t)(e[i]->end - e[i]->begin),
                                 err, sizeof err);
        if (st != HEED_OK) return heed_ctx_fail(ctx, st, "%s: %s: tensor '%s': %s", fn, cf->label, e[i]->name, err);
    }
    return HEED_OK;
}

/* Metadata of a checkpoint into info; everything checked, nothing applied. */
static heed_status read_info(heed_ctx *ctx, const char *fn, const ckpt_file *cf, heed_checkpoint_info *info) {
    const st_file *f = &cf->f;
    const char *format = st_meta_get(f, "heed.format");
    if (!format || strcmp(format, "checkpoint") != 0)
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                             "%s: %s: not a heed checkpoint (metadata heed.format is %s%s%s; plain weights load with "
                             "heed_safetensors_import)",
                             fn, cf->label, format ? "'" : "", format ? format : "missing", format ? "'" : "");
    *info = (heed_checkpoint_info){0};
    int64_t nsched = 0;
    struct {
        const char *key;
        int kind; /* 0 int64, 1 uint64 */
        void *dst;
    } fields[] = {{"step", 0, &info->step},
                  {"epoch", 0, &info->epoch},
                  {"rng.seed", 1, &info->rng_seed},
                  {"rng.counter", 1, &info->rng_counter},
                  {"schedule.count", 0, &nsched}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = st_meta_get(f, fields[i].key);
        bool ok = fields[i].kind ? parse_u64(v, fields[i].dst) : parse_i64(v, fields[i].dst);
        if (!ok)
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: metadata '%s' is %s%.40s%s (an integer is expected)",
                                 fn, cf->label, fields[i].key, v ? "'" : "", v ? v : "missing", v ? "'" : "");
    }
    for (int i = 0; i < 2; i++) { /* step, epoch */
        int64_t v = *(int64_t *)fields[i].dst;
        if (v < 0 || v > MAX_COUNT)
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: metadata '%s' is %" PRId64 " (must be in [0, 2^53])",
                                 fn, cf->label, fields[i].key, v);
    }
    if (nsched < 0 || nsched > HEED_CKPT_MAX_SCHEDULE)
        return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: metadata schedule.count is %" PRId64 " (0 to %d allowed)",
                             fn, cf->label, nsched, HEED_CKPT_MAX_SCHEDULE);
    info->n_schedule = (int)nsched;
    for (int i = 0; i < info->n_schedule; i++) {
        char key[32];
        snprintf(key, sizeof key, "schedule.%d", i);
        const char *v = st_meta_get(f, key);
        if (!parse_f64(v, &info->schedule[i]))
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: metadata '%s' is %s%.40s%s (a number is expected)", fn,
                                 cf->label, key, v ? "'" : "", v ? v : "missing", v ? "'" : "");
    }
    for (int i = 0; i < f->n_meta; i++) {
        const st_meta *m = &f->meta[i];
        if (has_prefix(m->key, "role.") && !st_find(f, m->key + 5))
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: metadata '%.64s' names a tensor the file does not hold",
                                 fn, cf->label, m->key);
        if (!has_prefix(m->key, "user.")) continue;
        const char *key = m->key + 5;
        if (info->n_user == HEED_CKPT_MAX_USER)
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: more than %d user.* metadata keys", fn, cf->label,
                                 HEED_CKPT_MAX_USER);
        if (!*key || strlen(key) >= HEED_CKPT_KEY_LEN || strlen(m->value) >= HEED_CKPT_VALUE_LEN)
            return heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                                 "%s: %s: metadata '%.64s': key empty or over %d bytes, or value over %d", fn,
                                 cf->label, m->key, HEED_CKPT_KEY_LEN - 1, HEED_CKPT_VALUE_LEN - 1);
        strcpy(info->user[info->n_user].key, key);
        strcpy(info->user[info->n_user].value, m->value);
        info->n_user++;
    }
    return HEED_OK;
}

static heed_status load(const char *fn, const char *path, const void *mem, size_t size, heed_params *P,
                        heed_optimizer *opt, heed_checkpoint_info *info_out) {
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    if (!path && !mem && size) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: path is NULL", fn);
    ckpt_file cf;
    heed_status st = open_file(ctx, fn, path, mem, size, &cf);
    if (st != HEED_OK) return st;
    strpool pool = {0};
    ckpt_layout L = {0};
    heed_checkpoint_info info;
    int64_t opt_steps = 0;
    const st_entry **entries = NULL;
    size_t *offsets = NULL;
    char *staged = NULL;
    bool *claimed = calloc((size_t)cf.f.n_entries + 1, sizeof *claimed);
    if (!claimed) st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    if (st == HEED_OK) st = read_info(ctx, fn, &cf, &info);
    if (st == HEED_OK) st = model_layout(fn, P, opt, &pool, &L);
    if (st == HEED_OK && opt) {
        const char *states = st_meta_get(&cf.f, "optim.states"), *steps = st_meta_get(&cf.f, "optim.steps");
        if (!states || !steps)
            st = heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: the file holds no optimizer state (saved without one?)",
                               fn, cf.label);
        else if (strcmp(states, L.states) != 0)
            st = heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                               "%s: %s: optimizer state in the file is '%.60s', the optimizer has '%.60s'", fn,
                               cf.label, states, L.states);
        else if (!parse_i64(steps, &opt_steps) || opt_steps < 0 || opt_steps > HEED_MAX_STEPS)
            st = heed_ctx_fail(
                ctx, HEED_ERR_FORMAT,
                "%s: %s: metadata optim.steps is '%.40s' (a count in [0, 2^53 = HEED_MAX_STEPS] is expected)", fn,
                cf.label, steps);
    }
    if (st == HEED_OK) {
        entries = calloc((size_t)L.n + 1, sizeof *entries);
        offsets = calloc((size_t)L.n + 1, sizeof *offsets);
        if (!entries || !offsets) st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    }
    for (int i = 0; st == HEED_OK && i < L.n; i++) {
        st = match_entry(ctx, fn, &cf, &L.t[i], false, &entries[i]);
        if (st != HEED_OK) break;
        claimed[entries[i] - cf.f.entries] = true;
        const char *role = role_of(&cf.f, L.t[i].name);
        if (!role || strcmp(role, L.t[i].role) != 0)
            st = heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: tensor '%s': role %s%.40s%s in the file, '%s' expected",
                               fn, cf.label, L.t[i].name, role ? "'" : "", role ? role : "missing", role ? "'" : "",
                               L.t[i].role);
    }
    for (int i = 0; st == HEED_OK && i < cf.f.n_entries; i++) {
        if (claimed[i]) continue;
        const char *role = role_of(&cf.f, cf.f.entries[i].name);
        if (!opt && role && has_prefix(role, "optim.")) continue; /* optimizer state, not asked for */
        st = heed_ctx_fail(ctx, HEED_ERR_FORMAT, "%s: %s: tensor '%s' in the file is not in the model%s", fn, cf.label,
                           cf.f.entries[i].name, opt ? " or the optimizer" : "");
    }
    if (st == HEED_OK) st = stage(ctx, fn, &cf, entries, L.n, &staged, offsets);
    for (int i = 0; st == HEED_OK && i < L.n; i++)
        st = check_staged(ctx, fn, cf.label, &L.t[i], staged + offsets[i], L.t[i].dtype,
                          (int64_t)(L.t[i].bytes / heed_dtype_size(L.t[i].dtype)));
    if (st == HEED_OK) { /* commit: everything is validated and in memory */
        for (int s = 0; s < L.n_state; s++)
            if (L.state_bytes[s]) memset(L.state_data[s], 0, L.state_bytes[s]); /* padding between slices */
        for (int i = 0; i < L.n; i++)
            if (L.t[i].bytes) memcpy(L.t[i].data, staged + offsets[i], L.t[i].bytes);
        if (opt) heed_optimizer_set_steps(opt, opt_steps);
        heed_ctx_set_rng_state(ctx, info.rng_seed, info.rng_counter);
        if (info_out) *info_out = info;
    }
    free(staged);
    free(offsets);
    free(entries);
    free(claimed);
    layout_free(&L);
    pool_free(&pool);
    close_file(&cf);
    return st;
}

heed_status heed_checkpoint_load(heed_params *P, const char *path, heed_optimizer *opt,
                                 heed_checkpoint_info *info_out) {
    if (P && !path) return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG, "heed_checkpoint_load: path is NULL");
    return load("heed_checkpoint_load", path, NULL, 0, P, opt, info_out);
}

heed_status heed_checkpoint_load_memory(heed_params *P, const void *data, size_t size, heed_optimizer *opt,
                                        heed_checkpoint_info *info_out) {
    return load("heed_checkpoint_load_memory", NULL, data, size, P, opt, info_out);
}

/* The metadata alone: the header is parsed and checked as for a load (st_parse reads the
 * header, never the tensor data), then read_info; nothing is applied. */
static heed_status read_info_only(heed_ctx *ctx, const char *fn, const char *path, const void *mem, size_t size,
                                  heed_checkpoint_info *info) {
    if (!ctx) return HEED_ERR_ARG;
    if (!info) return heed_ctx_fail(ctx, HEED_ERR_ARG, "%s: info is NULL", fn);
    ckpt_file cf;
    heed_status st = open_file(ctx, fn, path, mem, size, &cf);
    if (st != HEED_OK) return st;
    heed_checkpoint_info found;
    st = read_info(ctx, fn, &cf, &found);
    close_file(&cf);
    if (st == HEED_OK) *info = found;
    return st;
}

heed_status heed_checkpoint_read_info(heed_ctx *ctx, const char *path, heed_checkpoint_info *info) {
    if (ctx && !path) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_checkpoint_read_info: path is NULL");
    return read_info_only(ctx, "heed_checkpoint_read_info", path, NULL, 0, info);
}

heed_status heed_checkpoint_read_info_memory(heed_ctx *ctx, const void *data, size_t size, heed_checkpoint_info *info) {
    return read_info_only(ctx, "heed_checkpoint_read_info_memory", NULL, data, size, info);
}

/* ---------------------------------------------------------------- weights import */

static heed_status import(const char *fn, const char *path, const void *mem, size_t size, heed_params *P, bool strict) {
    if (!P) return HEED_ERR_ARG;
    heed_ctx *ctx = heed_params_ctx(P);
    ckpt_file cf;
    heed_status st = open_file(ctx, fn, path, mem, size, &cf);
    if (st != HEED_OK) return st;
    strpool pool = {0};
    ckpt_layout L = {0};
    const st_entry **entries = NULL;
    size_t *offsets = NULL;
    char *staged = NULL;
    bool *claimed = calloc((size_t)cf.f.n_entries + 1, sizeof *claimed);
    if (!claimed) st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    if (st == HEED_OK) st = model_layout(fn, P, NULL, &pool, &L);
    if (st == HEED_OK) {
        entries = calloc((size_t)L.n + 1, sizeof *entries);
        offsets = calloc((size_t)L.n + 1, sizeof *offsets);
        if (!entries || !offsets) st = heed_ctx_fail(ctx, HEED_ERR_NOMEM, "%s: out of memory", fn);
    }
    int found = 0;
    for (int i = 0; st == HEED_OK && i < L.n; i++) {
        if (!strict && !st_find(&cf.f, L.t[i].name)) continue;
        st = match_entry(ctx, fn, &cf, &L.t[i], true, &entries[i]);
        if (st == HEED_OK) claimed[entries[i] - cf.f.entries] = true, found++;
    }
    for (int i = 0; st == HEED_OK && strict && i < cf.f.n_entries; i++)
        if (!claimed[i])
            st = heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                               "%s: %s: tensor '%s' in the file is not a parameter of the model (strict)", fn, cf.label,
                               cf.f.entries[i].name);
    if (st == HEED_OK && !found && L.n > 0)
        st = heed_ctx_fail(ctx, HEED_ERR_FORMAT,
                           "%s: %s: no tensor in the file has the name of a parameter (first parameter '%s')", fn,
                           cf.label, L.t[0].name);
    if (st == HEED_OK) st = stage(ctx, fn, &cf, entries, L.n, &staged, offsets);
    for (int i = 0; st == HEED_OK && i < L.n; i++) {
        heed_dtype src_dt = HEED_F32;
        if (entries[i] && st_dtype_parse(entries[i]->dtype, &src_dt))
            st = check_staged(ctx, fn, cf.label, &L.t[i], staged + offsets[i], src_dt,
                              (int64_t)(L.t[i].bytes / heed_dtype_size(L.t[i].dtype)));
    }
    if (st == HEED_OK) {
        for (int i = 0; i < L.n; i++) {
            if (!entries[i]) continue;
            heed_dtype src_dt = HEED_F32;
            st_dtype_parse(entries[i]->dtype, &src_dt);
            const char *src = staged + offsets[i];
            int64_t n = (int64_t)(L.t[i].bytes / heed_dtype_size(L.t[i].dtype));
            if (src_dt == L.t[i].dtype) {
                if (L.t[i].bytes) memcpy(L.t[i].data, src, L.t[i].bytes);
            } else if (src_dt == HEED_F32) { /* memcpy per element: the staged bytes may be unaligned */
                for (int64_t k = 0; k < n; k++) {
                    float v;
                    memcpy(&v, src + 4 * k, 4);
                    ((double *)L.t[i].data)[k] = v;
                }
            } else {
                for (int64_t k = 0; k < n; k++) {
                    double v;
                    memcpy(&v, src + 8 * k, 8);
                    ((float *)L.t[i].data)[k] = (float)v;
                }
            }
        }
    }
    free(staged);
    free(offsets);
    free(entries);
    free(claimed);
    layout_free(&L);
    pool_free(&pool);
    close_file(&cf);
    return st;
}

heed_status heed_safetensors_import(heed_params *P, const char *path, bool strict) {
    if (P && !path) return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG, "heed_safetensors_import: path is NULL");
    return import("heed_safetensors_import", path, NULL, 0, P, strict);
}

heed_status heed_safetensors_import_memory(heed_params *P, const void *data, size_t size, bool strict) {
    return import("heed_safetensors_import_memory", NULL, data, size, P, strict);
}
