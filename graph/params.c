/* The parameter store: all values in one flat aligned buffer and all gradients in
 * another. Headers are owned by the store and re-pointed when the buffers grow. */
#ifndef T /* ---------------------------------------------------------------- all but the kernels, compiled once */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ALIGN_ELEMS 16 /* each parameter starts on a 64-byte boundary (f32) */

typedef struct {
    heed_tensor *t;
    int64_t offset; /* in elements */
} param_slot;

struct heed_params {
    heed_ctx *ctx;
    heed_dtype dtype;
    param_slot *slots;
    int n, cap;
    int64_t numel, capacity; /* elements used (with padding) / allocated in the flat buffers */
    int64_t n_values;        /* parameter values: numel without the padding */
    void *values, *grads;
};

heed_params *heed_params_new(heed_ctx *ctx, heed_dtype dtype) {
    if (!ctx) return NULL;
    if (dtype != HEED_F32 && dtype != HEED_F64) {
        heed_ctx_fail(ctx, HEED_ERR_DTYPE, "heed_params_new: unknown dtype %d", (int)dtype);
        return NULL;
    }
    heed_params *P = calloc(1, sizeof *P);
    if (!P) {
        heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_params_new: out of memory");
        return NULL;
    }
    P->ctx = ctx;
    P->dtype = dtype;
    return P;
}

void heed_params_free(heed_params *P) {
    if (!P) return;
    for (int i = 0; i < P->n; i++) {
        free((void *)P->slots[i].t->name);
        free(P->slots[i].t);
    }
    free(P->slots);
    free(P->values);
    free(P->grads);
    free(P);
}

static bool grow(heed_params *P, int64_t need) {
    if (need <= P->capacity) return true;
    int64_t cap = P->capacity ? P->capacity : 4096;
    while (cap < need) cap *= 2;
    size_t es = heed_dtype_size(P->dtype), bytes = (size_t)cap * es;
    void *v = aligned_alloc(64, bytes), *gr = aligned_alloc(64, bytes);
    if (!v || !gr) {
        free(v);
        free(gr);
        return false;
    }
    memset(v, 0, bytes);
    memset(gr, 0, bytes);
    if (P->numel) {
        memcpy(v, P->values, (size_t)P->numel * es);
        memcpy(gr, P->grads, (size_t)P->numel * es);
    }
    free(P->values);
    free(P->grads);
    P->values = v;
    P->grads = gr;
    P->capacity = cap;
    for (int i = 0; i < P->n; i++) {
        P->slots[i].t->data = (char *)v + P->slots[i].offset * es;
        P->slots[i].t->grad = (char *)gr + P->slots[i].offset * es;
    }
    return true;
}

/* ---------------------------------------------------------------- initialisers */

static void fans(const heed_tensor *t, double *fan_in, double *fan_out) {
    double receptive = 1;
    for (int i = 2; i < t->ndim; i++) receptive *= (double)t->shape[i];
    *fan_in = t->ndim >= 2 ? (double)t->shape[1] * receptive : (double)t->shape[0];
    *fan_out = (double)t->shape[0] * receptive;
}

static uint64_t name_hash(const char *s) { /* FNV-1a: the init stream of a parameter */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Orthogonal init: Gram-Schmidt (twice, for stability) on the rows of a normal matrix
 * shaped [rows, cols] with rows <= cols, transposed when rows > cols (as PyTorch's QR).
 * Also draws Performer's orthogonal random features (ops/attention/linear.c). */
bool heed__orthogonal(double *w, int64_t rows, int64_t cols, heed_rng *r) {
    bool flip = rows > cols;
    int64_t m = flip ? cols : rows, n = flip ? rows : cols;
    double *q = malloc((size_t)(m * n) * sizeof *q);
    if (!q) return false;
    for (int64_t i = 0; i < m * n; i++) q[i] = heed_rng_normal(r);
    for (int64_t i = 0; i < m; i++) {
        for (int pass = 0; pass < 2; pass++)
            for (int64_t j = 0; j < i; j++) {
                double d = 0;
                for (int64_t k = 0; k < n; k++) d += q[i * n + k] * q[j * n + k];
                for (int64_t k = 0; k < n; k++) q[i * n + k] -= d * q[j * n + k];
            }
        double nrm = 0;
        for (int64_t k = 0; k < n; k++) nrm += q[i * n + k] * q[i * n + k];
        nrm = sqrt(nrm);
        for (int64_t k = 0; k < n; k++) q[i * n + k] /= nrm;
    }
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) w[i * cols + j] = flip ? q[j * n + i] : q[i * n + j];
    free(q);
    return true;
}

#define T float
#define FN(name) name##_f32
#include "params.c" /* the kernels after #else, once per element type (docs/design.md, "Kernels") */
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "params.c"
#undef T
#undef FN

static heed_status init_values(heed_params *P, heed_tensor *t, heed_init init);
/* The rules of PyTorch's initialisers, plus finite numbers everywhere (torch.nn.init
 * would fill a tensor with NaN). */
static heed_status check_init(heed_ctx *ctx, const char *name, heed_init init) {
    static const char *const kinds[] = {"zeros",           "constant",       "uniform",
                                        "normal",          "xavier_uniform", "xavier_normal",
                                        "kaiming_uniform", "kaiming_normal", "orthogonal"};
    if ((unsigned)init.kind > HEED_INIT_ORTHOGONAL)
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: %s: unknown init kind %d", name, (int)init.kind);
    const char *kind = kinds[init.kind];
    bool two = init.kind == HEED_INIT_UNIFORM || init.kind == HEED_INIT_NORMAL;
    if (two && !(isfinite(init.a) && isfinite(init.b)))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: %s: %s(%g, %g): arguments must be finite", name, kind,
                             init.a, init.b);
    if (!two && init.kind != HEED_INIT_ZEROS && !isfinite(init.a))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: %s: %s(%g): the argument must be finite", name, kind,
                             init.a);
    if (init.kind == HEED_INIT_UNIFORM && !(init.a <= init.b))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: %s: uniform(%g, %g) needs lo <= hi", name, init.a, init.b);
    if (init.kind == HEED_INIT_NORMAL && !(init.b >= 0))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: %s: normal(%g, %g) needs std >= 0", name, init.a, init.b);
    return HEED_OK;
}

heed_status heed_param_init(heed_params *P, heed_tensor *t, heed_init init) {
    bool mine = false;
    for (int i = 0; P && t && i < P->n && !mine; i++) mine = P->slots[i].t == t;
    if (!mine)
        return heed_ctx_fail(P ? P->ctx : NULL, HEED_ERR_ARG, "heed_param_init: %s is not a parameter of this store",
                             t && (t->flags & HEED_PARAM) ? t->name : "the tensor");
    return init_values(P, t, init);
}

static heed_status init_values(heed_params *P, heed_tensor *t, heed_init init) {
    const char *name = t->name;
    heed_status st = check_init(P->ctx, name, init);
    if (st != HEED_OK) return st;
    double fan_in = 1, fan_out = 1;
    bool needs_fans = init.kind >= HEED_INIT_XAVIER_UNIFORM;
    if (needs_fans && t->ndim < 2)
        return heed_ctx_fail(P->ctx, HEED_ERR_SHAPE,
                             "heed_param: %s is %s; fan-based and orthogonal inits need at least 2 dims", name,
                             HEED_S(t));
    if (t->numel == 0) return HEED_OK;
    if (needs_fans) fans(t, &fan_in, &fan_out);
    double *w = malloc((size_t)t->numel * sizeof *w);
    if (!w) return heed_ctx_fail(P->ctx, HEED_ERR_NOMEM, "heed_param: out of memory initialising %s", name);
    heed_rng r = heed_rng_make(P->ctx->seed, name_hash(name));
    double a = init.a, b = init.b, bound, std;
    switch (init.kind) {
    case HEED_INIT_ZEROS: a = 0; /* fall through */
    case HEED_INIT_CONSTANT:
        for (int64_t i = 0; i < t->numel; i++) w[i] = a;
        break;
    case HEED_INIT_UNIFORM:
        for (int64_t i = 0; i < t->numel; i++) w[i] = a + (b - a) * heed_rng_uniform(&r);
        break;
    case HEED_INIT_NORMAL:
        for (int64_t i = 0; i < t->numel; i++) w[i] = a + b * heed_rng_normal(&r);
        break;
    case HEED_INIT_XAVIER_UNIFORM:
        bound = a * sqrt(6.0 / (fan_in + fan_out));
        for (int64_t i = 0; i < t->numel; i++) w[i] = bound * (2 * heed_rng_uniform(&r) - 1);
        break;
    case HEED_INIT_XAVIER_NORMAL:
        std = a * sqrt(2.0 / (fan_in + fan_out));
        for (int64_t i = 0; i < t->numel; i++) w[i] = std * heed_rng_normal(&r);
        break;
    case HEED_INIT_KAIMING_UNIFORM:
        bound = sqrt(6.0 / ((1 + a * a) * fan_in));
        for (int64_t i = 0; i < t->numel; i++) w[i] = bound * (2 * heed_rng_uniform(&r) - 1);
        break;
    case HEED_INIT_KAIMING_NORMAL:
        std = sqrt(2.0 / ((1 + a * a) * fan_in));
        for (int64_t i = 0; i < t->numel; i++) w[i] = std * heed_rng_normal(&r);
        break;
    case HEED_INIT_ORTHOGONAL:
        if (!heed__orthogonal(w, t->shape[0], t->numel / t->shape[0], &r)) {
            free(w);
            return heed_ctx_fail(P->ctx, HEED_ERR_NOMEM, "heed_param: %s: out of memory for the orthogonal init", name);
        }
        for (int64_t i = 0; i < t->numel; i++) w[i] *= a;
        break;
    }
    if (t->dtype == HEED_F32) init_values_kernel_f32(t, w);
    else init_values_kernel_f64(t, w);
    free(w);
    return HEED_OK;
}

/* ---------------------------------------------------------------- store */

heed_tensor *heed_param(heed_params *P, const char *name, heed_shape shape, heed_init init) {
    if (!P) return NULL;
    heed_ctx *ctx = P->ctx;
    if (!name || !*name) return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: name is NULL or empty"), NULL;
    if (heed_params_find(P, name))
        return heed_ctx_fail(ctx, HEED_ERR_ARG, "heed_param: a parameter named '%s' exists already", name), NULL;
    if (shape.ndim < 0 || shape.ndim > HEED_MAX_DIMS)
        return heed_ctx_fail(ctx, HEED_ERR_SHAPE, "heed_param: %s: %d dims (0 to %d allowed)", name, shape.ndim,
                             HEED_MAX_DIMS),
               NULL;
    int64_t numel = 1;
    for (int i = 0; i < shape.ndim; i++) {
        if (shape.d[i] < 0 || shape.d[i] > ((int64_t)1 << 34) ||
            (shape.d[i] && numel > ((int64_t)1 << 34) / shape.d[i]))
            return heed_ctx_fail(ctx, HEED_ERR_SHAPE,
                                 "heed_param: %s: dim %d is %lld (must be in 0..2^34, total under 2^34)", name, i,
                                 (long long)shape.d[i]),
                   NULL;
        numel *= shape.d[i];
    }
    if (P->n == P->cap) {
        int cap = P->cap ? 2 * P->cap : 32;
        param_slot *s = realloc(P->slots, (size_t)cap * sizeof *s);
        if (!s) return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_param: out of memory"), NULL;
        P->slots = s;
        P->cap = cap;
    }
    int64_t offset = (P->numel + ALIGN_ELEMS - 1) / ALIGN_ELEMS * ALIGN_ELEMS;
    heed_tensor *t = calloc(1, sizeof *t);
    char *nm = strdup(name);
    if (!t || !nm || !grow(P, offset + numel)) {
        free(t);
        free(nm);
        return heed_ctx_fail(ctx, HEED_ERR_NOMEM, "heed_param: out of memory for %s", name), NULL;
    }
    size_t es = heed_dtype_size(P->dtype);
    *t = (heed_tensor){.dtype = P->dtype,
                       .ndim = shape.ndim,
                       .numel = numel,
                       .flags = HEED_PARAM | HEED_REQUIRES_GRAD,
                       .name = nm,
                       .data = (char *)P->values + offset * es,
                       .grad = (char *)P->grads + offset * es};
    for (int i = 0; i < shape.ndim; i++) t->shape[i] = shape.d[i];
    P->slots[P->n++] = (param_slot){t, offset};
    int64_t padded_before = P->numel;
    P->numel = offset + numel;
    P->n_values += numel;
    if (init_values(P, t, init) != HEED_OK) {
        P->n--;
        P->numel = padded_before;
        P->n_values -= numel;
        free(nm);
        free(t);
        return NULL;
    }
    return t;
}

heed_tensor *heed_param_prefixed(heed_params *P, const char *prefix, const char *name, heed_shape shape,
                                 heed_init init) {
    if (!prefix || !*prefix || !name) return heed_param(P, name, shape, init);
    char full[256];
    int n = snprintf(full, sizeof full, "%s.%s", prefix, name);
    if (n < 0 || n >= (int)sizeof full)
        return heed_ctx_fail(heed_params_ctx(P), HEED_ERR_ARG,
                             "heed_param_prefixed: '%.40s...' + '.%.40s' is over %d bytes", prefix, name,
                             (int)sizeof full - 1),
               NULL;
    return heed_param(P, full, shape, init);
}

heed_tensor *heed_params_find(const heed_params *P, const char *name) {
    if (!P || !name) return NULL;
    for (int i = 0; i < P->n; i++)
        if (strcmp(P->slots[i].t->name, name) == 0) return P->slots[i].t;
    return NULL;
}

int heed_params_count(const heed_params *P) { return P ? P->n : 0; }
/* An index outside [0, count): the message names the call; false. */
static bool index_ok(const heed_params *P, int i, const char *fn) {
    if (!P) return false;
    if (i >= 0 && i < P->n) return true;
    heed_ctx_fail(P->ctx, HEED_ERR_ARG, "%s: index %d is outside [0, %d) (the parameter count)", fn, i, P->n);
    return false;
}

heed_tensor *heed_params_at(const heed_params *P, int i) {
    return index_ok(P, i, "heed_params_at") ? P->slots[i].t : NULL;
}
int64_t heed_params_numel(const heed_params *P) { return P ? P->n_values : 0; }
int64_t heed_params_padded_numel(const heed_params *P) { return P ? P->numel : 0; }
heed_dtype heed_params_dtype(const heed_params *P) { return P ? P->dtype : HEED_F32; }
heed_ctx *heed_params_ctx(const heed_params *P) { return P ? P->ctx : NULL; }
void *heed_params_values(heed_params *P) { return P ? P->values : NULL; }
void *heed_params_grads(heed_params *P) { return P ? P->grads : NULL; }
int64_t heed_params_offset(const heed_params *P, int i) {
    return index_ok(P, i, "heed_params_offset") ? P->slots[i].offset : -1;
}

void heed_params_zero_grad(heed_params *P) {
    if (P && P->grads) memset(P->grads, 0, (size_t)P->numel * heed_dtype_size(P->dtype));
}

void heed_param_freeze(heed_tensor *t, bool frozen) {
    if (!t || !(t->flags & HEED_PARAM)) return;
    if (frozen) t->flags &= ~(uint32_t)HEED_REQUIRES_GRAD;
    else t->flags |= HEED_REQUIRES_GRAD;
}
#else /* ---------------------------------------------------------------- the kernels, once per element type T */

static void FN(init_values_kernel)(heed_tensor *t, double *w) {
    T *p = t->data;
    for (int64_t i = 0; i < t->numel; i++) p[i] = (T)w[i];
}
#endif
