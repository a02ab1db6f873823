/* The life of tensors and tapes: dead tensors of any age, marks and rewinds, no-grad
 * across resets, one backward per tape, what backward adds, the parameter count. */
#include "check.h"
#include "heed/elementwise.h"
#include "heed/matmul.h"
#include "heed/reduce.h"
#include "heed/shape.h"

#include <unistd.h>

static heed_ctx *ctx;

#define DEAD "(dead tensor)"

static void stale_tensors_of_any_age_are_dead(void) {
    heed_graph *g = heed_graph_new(ctx);
    /* the case of the report: two resets after 20000 tensors (their header pages go back) */
    heed_tensor *a = heed_zeros(g, HEED_F32, HEED_SHAPE(2));
    for (int i = 0; i < 20000; i++) heed_zeros(g, HEED_F32, HEED_SCALAR);
    heed_graph_reset(g);
    heed_graph_reset(g);
    CHECK(heed_add(g, a, a) == NULL, "a tensor two resets old must be refused");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_add: a was made before the last heed_graph_reset");
    /* the same, with new tensors made where old ones used to be */
    heed_tensor *b = heed_full(g, HEED_F32, HEED_SHAPE(2), 1);
    heed_graph_reset(g);
    heed_graph_reset(g);
    heed_tensor *newer[64];
    for (int i = 0; i < 64; i++) {
        newer[i] = heed_full(g, HEED_F32, HEED_SHAPE(2), 7);
        CHECK(newer[i] != b && newer[i] != a, "a live tensor at the address of a dead one (%d)", i);
    }
    CHECK(heed_add(g, b, newer[0]) == NULL, "b is dead though tensors were made since");
    CHECK_ERR(g, HEED_ERR_STATE, DEAD);
    /* and after many steps */
    heed_tensor *first = heed_full(g, HEED_F64, HEED_SHAPE(3), 2);
    for (int step = 0; step < 50; step++) {
        heed_graph_reset(g);
        for (int i = 0; i < 1000; i++) CHECK(heed_zeros(g, HEED_F64, HEED_SHAPE(3)) != first, "address reused");
    }
    CHECK(heed_neg(g, first) == NULL, "50 steps old");
    CHECK_ERR(g, HEED_ERR_STATE, DEAD);
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    heed_graph_free(g);
}

/* Resident memory in pages (Linux), or -1. */
static long resident_pages(void) {
    long size, rss = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &size, &rss) != 2) rss = -1;
    if (f) fclose(f);
    return rss;
}

/* Addresses are never reused, but the memory of dead headers goes back: a loop of steps
 * of 20000 tensors (2.5 MB of headers each) stays in place. */
static void header_memory_is_returned(void) {
    heed_graph *g = heed_graph_new(ctx);
    long rss10 = 0;
    for (int step = 0; step < 100; step++) {
        heed_graph_reset(g);
        for (int i = 0; i < 20000; i++) heed_zeros(g, HEED_F32, HEED_SCALAR);
        if (step == 9) rss10 = resident_pages();
    }
    long rss100 = resident_pages(), page = sysconf(_SC_PAGESIZE);
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    if (rss10 > 0 && rss100 > 0) /* 90 more steps would hold 225 MB if nothing went back */
        CHECK((rss100 - rss10) * page < (8 << 20), "resident memory grew by %ld kB over 90 steps",
              (rss100 - rss10) * page / 1024);
    heed_graph_free(g);
}

/* Accessors that take no graph report a dead tensor on its graph. */
static void accessors_refuse_dead_tensors(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *old = heed_full(g, HEED_F32, HEED_SHAPE(2, 3), 1), *older = old;
    for (int i = 0; i < 10000; i++) heed_zeros(g, HEED_F32, HEED_SCALAR); /* older's page goes back */
    heed_graph_reset(g);
    old = heed_full(g, HEED_F32, HEED_SHAPE(2, 3), 1);
    heed_graph_reset(g);
    CHECK(isnan(heed_get(old, 0)), "heed_get of a dead tensor");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_get: the tensor was made before the last heed_graph_reset");
    CHECK(isnan(heed_get(older, 0)), "heed_get of a dead tensor whose page went back");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_get: the tensor was made before");
    heed_shape s = heed_tensor_shape(old);
    CHECK(s.ndim == 0 && s.d[0] == 0, "shape of a dead tensor");
    CHECK_ERR(g, HEED_ERR_STATE,
              "heed_tensor_shape: "
              "the tensor was made before");
    CHECK(heed_requires_grad(older) == NULL, "requires_grad of a dead tensor");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_requires_grad: the tensor was made before");
    char buf[64];
    CHECK(!strcmp(heed_shape_str(old, buf), DEAD), "%s", buf);
    CHECK_ERR(g, HEED_ERR_STATE, "heed_shape_str");
    /* live tensors and parameters read as before */
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(2), heed_init_constant(0.25));
    heed_tensor *live = heed_full(g, HEED_F32, HEED_SHAPE(2), 3);
    CHECK(heed_get(live, 1) == 3 && heed_get(w, 1) == 0.25 && heed_tensor_shape(live).d[0] == 2, "live reads");
    CHECK(isnan(heed_get(live, 2)) && heed_graph_status(g) == HEED_OK, "out of range is NaN, not an error");
    heed_params_free(P);
    heed_graph_free(g);
}

/* A decoder under no-grad: the encoder runs once before the mark, every step rewinds to
 * it. The carried state goes out to C and back in (it is made after the mark). */
enum { B = 4, D = 8, STEPS = 200 };

static void decode_step(heed_graph *g, heed_tensor *enc, heed_tensor *w, double *state) {
    heed_tensor *h = heed_input_f64(g, HEED_F64, HEED_SHAPE(B, D), state);
    h = heed_tanh(g, heed_add(g, heed_linear(g, h, w, NULL), enc));
    for (int i = 0; i < B * D; i++) state[i] = heed_get(h, i);
}

typedef struct { /* the decoder's weights and input, and its state after n steps on a graph that only grows */
    heed_params *P;
    heed_tensor *w_enc, *w;
    double xin[B * D], ref[B * D];
    heed_graph *grow;
} decoder_case;

static void decoder_case_init(decoder_case *c, int steps) {
    c->P = heed_params_new(ctx, HEED_F64);
    c->w_enc = heed_param(c->P, "enc", HEED_SHAPE(D, D), heed_init_normal(0, 0.5));
    c->w = heed_param(c->P, "dec", HEED_SHAPE(D, D), heed_init_normal(0, 0.5));
    for (int i = 0; i < B * D; i++) c->xin[i] = sin(i + 1.0), c->ref[i] = 0;
    c->grow = heed_graph_new(ctx);
    heed_tensor *enc =
        heed_linear(c->grow, heed_input_f64(c->grow, HEED_F64, HEED_SHAPE(B, D), c->xin), c->w_enc, NULL);
    for (int s = 0; s < steps; s++) decode_step(c->grow, enc, c->w, c->ref);
    CHECK(heed_graph_status(c->grow) == HEED_OK, "%s", heed_graph_error(c->grow));
}

static void decoder_case_free(decoder_case *c) {
    heed_graph_free(c->grow);
    heed_params_free(c->P);
}

static void rewinds_bound_a_decode_loop(void) {
    decoder_case c;
    decoder_case_init(&c, STEPS);
    heed_tensor *w_enc = c.w_enc, *w = c.w;
    double state[B * D] = {0};

    heed_graph *g = heed_graph_new(ctx);
    heed_no_grad_begin(g);
    heed_tensor *enc = heed_linear(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, D), c.xin), w_enc, NULL);
    double enc0 = heed_get(enc, 5);
    heed_graph_mark m = heed_graph_mark_now(g);
    size_t bytes10 = 0, peak10 = 0;
    heed_tensor *last = NULL;
    for (int s = 0; s < STEPS; s++) {
        CHECK(heed_graph_rewind(g, m) == HEED_OK, "%s", heed_graph_error(g));
        decode_step(g, enc, w, state);
        last = heed_full(g, HEED_F64, HEED_SHAPE(2), 1);
        if (s == 9) bytes10 = heed_graph_bytes(g), peak10 = heed_graph_peak_bytes(g);
    }
    heed_no_grad_end(g);
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_graph_bytes(g) == bytes10 && heed_graph_peak_bytes(g) == peak10,
          "memory grows: %zu bytes (peak %zu) after 10 steps, %zu (%zu) after %d", bytes10, peak10, heed_graph_bytes(g),
          heed_graph_peak_bytes(g), STEPS);
    CHECK(heed_graph_peak_bytes(c.grow) > 50 * heed_graph_peak_bytes(g),
          "peak of the growing graph %zu, of the rewound one %zu", heed_graph_peak_bytes(c.grow),
          heed_graph_peak_bytes(g));
    double worst = check_max_err(state, c.ref, B * D); /* inf when a NaN appears on one side */
    CHECK(worst == 0, "decoded state differs from the reference by %g", worst);
    CHECK(heed_get(enc, 5) == enc0 && heed_graph_status(g) == HEED_OK, "the encoder output made before the mark lives");
    /* a tensor of the last step dies at the next rewind, even once its memory is reused */
    CHECK(heed_graph_rewind(g, m) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *reused = heed_full(g, HEED_F64, HEED_SHAPE(2), 9);
    CHECK(reused != last, "a new tensor at a dead one's address");
    CHECK(heed_add(g, last, reused) == NULL, "a tensor from after the mark is refused after the rewind");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_add: a was made before the last heed_graph_reset, or after the mark");
    heed_graph_free(g);
    decoder_case_free(&c);
}

/* The same decoder with its state kept over the rewind as a tensor: no copy out to C.
 * Over 1000 steps the values match the growing graph's bit for bit and the memory stays
 * what it was after 10 steps. */
static void rewind_keeping_carries_the_state(void) {
    enum { LONG = 1000 };
    decoder_case c;
    decoder_case_init(&c, LONG);
    heed_tensor *w_enc = c.w_enc, *w = c.w;
    double got[B * D];

    heed_graph *g = heed_graph_new(ctx);
    heed_no_grad_begin(g);
    heed_tensor *enc = heed_linear(g, heed_input_f64(g, HEED_F64, HEED_SHAPE(B, D), c.xin), w_enc, NULL);
    heed_tensor *h = heed_zeros(g, HEED_F64, HEED_SHAPE(B, D)), *h_before = h; /* made before the mark */
    heed_tensor *count = NULL; /* an f32 state that also carries over, made after the mark */
    heed_graph_mark m = heed_graph_mark_now(g);
    size_t bytes10 = 0, peak10 = 0;
    bool exact = true;
    for (int s = 0; s < LONG; s++) {
        float seen[1] = {count ? (float)heed_get(count, 0) : 0};
        double before[B * D];
        for (int i = 0; i < B * D; i++) before[i] = heed_get(h, i);
        CHECK(heed_graph_rewind_keeping(g, m, (heed_tensor * *[]){&h, &count}, 2) == HEED_OK, "%s",
              heed_graph_error(g));
        for (int i = 0; i < B * D; i++) exact &= !memcmp(&before[i], &(double){heed_get(h, i)}, sizeof(double));
        exact &= !count || heed_get(count, 0) == seen[0];
        CHECK(s > 0 || h == h_before, "a tensor made before the mark stays as is");
        h = heed_tanh(g, heed_add(g, heed_linear(g, h, w, NULL), enc));
        count = heed_add(g, count ? count : heed_zeros(g, HEED_F32, HEED_SCALAR), heed_scalar(g, HEED_F32, 1));
        heed_full(g, HEED_F64, HEED_SHAPE(64), 1); /* scratch of the step, not kept */
        if (s == 9) bytes10 = heed_graph_bytes(g), peak10 = heed_graph_peak_bytes(g);
    }
    heed_no_grad_end(g);
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(exact, "a kept tensor's values changed over a rewind");
    CHECK(heed_get(count, 0) == LONG, "the f32 counter is %g", heed_get(count, 0));
    CHECK(heed_graph_bytes(g) == bytes10 && heed_graph_peak_bytes(g) == peak10,
          "memory grows: %zu bytes (peak %zu) after 10 steps, %zu (%zu) after %d", bytes10, peak10, heed_graph_bytes(g),
          heed_graph_peak_bytes(g), LONG);
    for (int i = 0; i < B * D; i++) got[i] = heed_get(h, i);
    double worst = check_max_err(got, c.ref, B * D);
    CHECK(worst == 0, "kept state differs from the growing graph's by %g", worst);
    heed_graph_free(g);
    decoder_case_free(&c);
}

/* What is kept and how: parameters, NULLs, duplicates, views, gradients, and the errors. */
static void rewind_keeping_rules(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *p = heed_param(P, "p", HEED_SHAPE(2), heed_init_constant(4));
    heed_graph *g = heed_graph_new(ctx), *other = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2, 3), 2));
    heed_graph_mark m = heed_graph_mark_now(g);
    heed_tensor *y = heed_mul(g, x, x), *y2 = y, *view = heed_reshape(g, y, HEED_SHAPE(3, 2));
    heed_tensor *empty = heed_zeros(g, HEED_F32, HEED_SHAPE(0, 3)), *none = NULL, *pp = p, *xx = x;
    heed_tensor *junk = heed_full(g, HEED_F32, HEED_SHAPE(5), 1);
    heed_tensor **vars[] = {&y, &y2, NULL, &none, &pp, &xx, &view, &empty};
    CHECK(heed_graph_rewind_keeping(g, m, vars, 8) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(y == y2 && heed_get(y, 5) == 4, "one copy for both variables");
    CHECK(view != y && heed_tensor_shape(view).d[0] == 3 && heed_get(view, 5) == 4, "a view is a copy of its own");
    CHECK(empty && heed_tensor_shape(empty).d[1] == 3 && heed_tensor_shape(empty).d[0] == 0, "empty kept");
    CHECK(none == NULL && pp == p && xx == x, "NULL, a parameter and a tensor from before the mark stay");
    CHECK(heed_graph_status(g) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_neg(g, junk) == NULL, "what is not kept dies");
    CHECK_ERR(g, HEED_ERR_STATE, DEAD);

    /* a kept tensor is a leaf: it takes no gradient, and what it came from gets none through it */
    x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2), 3));
    m = heed_graph_mark_now(g);
    y = heed_mul(g, x, x);
    CHECK(heed_graph_rewind_keeping(g, m, (heed_tensor * *[]){&y}, 1) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_graph_nodes(g) == 0, "the tape after the mark is dropped");
    CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_ERR_STATE, "no gradient history");
    CHECK_ERR(g, HEED_ERR_STATE, "does not depend on any parameter or input that needs a gradient");

    /* errors: nothing rewound, no variable changed */
    m = heed_graph_mark_now(g);
    y = heed_full(g, HEED_F32, HEED_SHAPE(2), 7);
    heed_tensor *y_was = y, *dead = NULL, *theirs = heed_zeros(other, HEED_F32, HEED_SHAPE(2));
    heed_graph_mark inner = heed_graph_mark_now(g);
    dead = heed_zeros(g, HEED_F32, HEED_SHAPE(2));
    heed_graph_rewind(g, inner);
    CHECK(heed_graph_rewind_keeping(g, m, (heed_tensor * *[]){&y, &dead}, 2) == HEED_ERR_STATE, "dead");
    CHECK(y == y_was && heed_get(y, 1) == 7, "nothing rewound on error");
    CHECK_ERR(g, HEED_ERR_STATE,
              "heed_graph_rewind_keeping: keep[1] was made before the last heed_graph_reset, or "
              "after the mark of a heed_graph_rewind (dead tensor)");
    m = heed_graph_mark_now(g);
    y = y_was = heed_full(g, HEED_F32, HEED_SHAPE(2), 7);
    CHECK(heed_graph_rewind_keeping(g, m, (heed_tensor * *[]){&y, &theirs}, 2) == HEED_ERR_STATE, "other graph");
    CHECK(y == y_was && heed_get(y, 0) == 7, "nothing rewound on error");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_rewind_keeping: keep[1] belongs to another graph");
    m = heed_graph_mark_now(g);
    CHECK(heed_graph_rewind_keeping(g, m, NULL, 2) == HEED_ERR_ARG, "NULL keep");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_graph_rewind_keeping: keep is NULL with n_keep = 2 (need n_keep >= 0, NULL only");
    m = heed_graph_mark_now(g);
    CHECK(heed_graph_rewind_keeping(g, m, (heed_tensor * *[]){&y}, -1) == HEED_ERR_ARG, "negative n_keep");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_graph_rewind_keeping: keep is given with n_keep = -1");
    m = heed_graph_mark_now(g);
    CHECK(heed_graph_rewind_keeping(g, m, NULL, 0) == HEED_OK, "nothing to keep: a plain rewind");
    /* the errors of heed_graph_rewind, named for this function */
    CHECK(heed_graph_rewind_keeping(g, (heed_graph_mark){0}, NULL, 0) == HEED_ERR_ARG, "empty mark");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_graph_rewind_keeping: the mark is empty");
    CHECK(heed_graph_rewind_keeping(g, heed_graph_mark_now(other), NULL, 0) == HEED_ERR_STATE, "other graph's mark");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_rewind_keeping: the mark belongs to another graph");
    m = heed_graph_mark_now(g);
    heed_graph_reset(g);
    CHECK(heed_graph_rewind_keeping(g, m, NULL, 0) == HEED_ERR_STATE, "mark from before a reset");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_rewind_keeping: the mark is dead (made before the last heed_graph_reset");
    x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2), 3));
    m = heed_graph_mark_now(g);
    CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, x, x))) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_graph_rewind_keeping(g, m, NULL, 0) == HEED_ERR_STATE, "after backward");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_rewind_keeping: a backward pass ran since the mark");
    m = heed_graph_mark_now(g);
    y = y_was = heed_full(g, HEED_F32, HEED_SHAPE(2), 7);
    heed_add(g, NULL, NULL);
    CHECK(heed_graph_rewind_keeping(g, m, (heed_tensor * *[]){&y}, 1) == HEED_ERR_ARG && y == y_was, "in error");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_add: a is NULL");
    heed_graph_free(other);
    heed_graph_free(g);
    heed_params_free(P);
}

/* Recording: the nodes after the mark are dropped; backward runs the rest. */
static void rewinds_drop_the_tape_after_the_mark(void) {
    heed_graph *g = heed_graph_new(ctx);
    double xv[3] = {1, -2, 0.5};
    heed_tensor *x = heed_requires_grad(heed_input(g, HEED_F64, HEED_SHAPE(3), xv));
    heed_tensor *y = heed_mul(g, x, x);
    heed_graph_mark m = heed_graph_mark_now(g);
    int64_t nodes = heed_graph_nodes(g);
    heed_tensor *junk = heed_mul(g, heed_exp(g, y), y);
    CHECK(heed_graph_nodes(g) == nodes + 2, "recorded");
    CHECK(heed_graph_rewind(g, m) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_graph_nodes(g) == nodes, "%lld nodes after the rewind, %lld at the mark", (long long)heed_graph_nodes(g),
          (long long)nodes);
    CHECK(heed_backward(g, heed_sum_all(g, y)) == HEED_OK, "%s", heed_graph_error(g));
    heed_tensor *gx = heed_grad(g, x);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(heed_get(gx, i), 2 * xv[i], 1e-15);
    CHECK(heed_grad(g, junk) == NULL, "junk is dead");
    CHECK_ERR(g, HEED_ERR_STATE, DEAD);
    heed_graph_free(g);
}

static void rewind_rules(void) {
    heed_graph *g = heed_graph_new(ctx), *other = heed_graph_new(ctx);
    /* nested marks: rewinding to the inner one keeps what came before it */
    heed_graph_mark m1 = heed_graph_mark_now(g);
    heed_tensor *t1 = heed_full(g, HEED_F32, HEED_SHAPE(2), 1);
    heed_graph_mark m2 = heed_graph_mark_now(g);
    heed_tensor *t2 = heed_full(g, HEED_F32, HEED_SHAPE(2), 2);
    CHECK(heed_graph_rewind(g, m2) == HEED_OK && heed_get(t1, 0) == 1, "%s", heed_graph_error(g));
    CHECK(heed_neg(g, t2) == NULL, "t2 died with the rewind to m2");
    CHECK_ERR(g, HEED_ERR_STATE, DEAD);
    /* a mark made after the mark rewound to dies with it */
    m1 = heed_graph_mark_now(g);
    t1 = heed_full(g, HEED_F32, HEED_SHAPE(2), 1);
    m2 = heed_graph_mark_now(g);
    CHECK(heed_graph_rewind(g, m1) == HEED_OK && heed_graph_rewind(g, m1) == HEED_OK, "again and again");
    CHECK(heed_neg(g, t1) == NULL, "t1 died with the rewind to m1");
    CHECK_ERR(g, HEED_ERR_STATE, DEAD);
    m1 = heed_graph_mark_now(g);
    m2 = heed_graph_mark_now(g);
    CHECK(heed_graph_rewind(g, m1) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_graph_rewind(g, m2) == HEED_ERR_STATE, "m2 was made after m1");
    CHECK_ERR(g, HEED_ERR_STATE,
              "heed_graph_rewind: the mark is dead (made before the last heed_graph_reset, or after");
    /* a mark from before a reset */
    m1 = heed_graph_mark_now(g);
    heed_graph_reset(g);
    CHECK(heed_graph_rewind(g, m1) == HEED_ERR_STATE, "mark from before a reset");
    CHECK_ERR(g, HEED_ERR_STATE, "the mark is dead");
    /* another graph's mark, the empty mark */
    heed_graph_mark mo = heed_graph_mark_now(other);
    CHECK(heed_graph_rewind(g, mo) == HEED_ERR_STATE, "other graph");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_rewind: the mark belongs to another graph");
    CHECK(heed_graph_rewind(g, (heed_graph_mark){0}) == HEED_ERR_ARG, "empty");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_graph_rewind: the mark is empty");
    /* a backward since the mark: its gradients live after the mark */
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2), 3));
    m1 = heed_graph_mark_now(g);
    CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, x, x))) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_graph_rewind(g, m1) == HEED_ERR_STATE, "rewind after backward");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_graph_rewind: a backward pass ran since the mark");
    /* a graph in error: nothing happens, the error stays; mark_now gives the empty mark */
    m1 = heed_graph_mark_now(g);
    t1 = heed_full(g, HEED_F32, HEED_SHAPE(2), 1);
    heed_add(g, NULL, NULL);
    CHECK(heed_graph_rewind(g, m1) == HEED_ERR_ARG && heed_graph_mark_now(g).at == NULL, "in error");
    CHECK_ERR(g, HEED_ERR_ARG, "heed_add: a is NULL");
    heed_graph_free(other);
    heed_graph_free(g);
}

/* no-grad is a mode of the graph: it survives reset, so the plain evaluation loop
 * records nothing in any batch. */
static void no_grad_survives_reset(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(3, 4), heed_init_normal(0, 1));
    heed_graph *g = heed_graph_new(ctx);
    heed_no_grad_begin(g);
    for (int batch = 0; batch < 5; batch++) {
        heed_graph_reset(g);
        heed_tensor *y = heed_linear(g, heed_full(g, HEED_F32, HEED_SHAPE(2, 4), batch), w, NULL);
        CHECK(y && heed_graph_nodes(g) == 0 && !(y->flags & HEED_REQUIRES_GRAD), "batch %d recorded %lld nodes", batch,
              (long long)heed_graph_nodes(g));
    }
    heed_no_grad_end(g);
    heed_graph_reset(g);
    heed_linear(g, heed_full(g, HEED_F32, HEED_SHAPE(2, 4), 1), w, NULL);
    CHECK(heed_graph_nodes(g) == 1, "records again after the region: %lld nodes", (long long)heed_graph_nodes(g));
    /* nested regions: a reset closes none of them */
    heed_no_grad_begin(g);
    heed_no_grad_begin(g);
    heed_graph_reset(g);
    heed_no_grad_end(g);
    heed_linear(g, heed_full(g, HEED_F32, HEED_SHAPE(2, 4), 1), w, NULL);
    CHECK(heed_graph_nodes(g) == 0, "the outer region is still open: %lld nodes", (long long)heed_graph_nodes(g));
    heed_no_grad_end(g);
    heed_linear(g, heed_full(g, HEED_F32, HEED_SHAPE(2, 4), 1), w, NULL);
    CHECK(heed_graph_nodes(g) == 1, "both closed: %lld nodes", (long long)heed_graph_nodes(g));
    /* backward of a loss made under no-grad names the region */
    heed_no_grad_begin(g);
    heed_tensor *loss = heed_sum_all(g, heed_linear(g, heed_full(g, HEED_F32, HEED_SHAPE(2, 4), 1), w, NULL));
    heed_no_grad_end(g);
    CHECK(heed_backward(g, loss) == HEED_ERR_STATE, "no-grad loss");
    CHECK_ERR(g, HEED_ERR_STATE, "heed_backward: loss was computed inside a no-grad region (heed_no_grad_begin)");
    loss = heed_sum_all(g, heed_full(g, HEED_F32, HEED_SHAPE(2), 1));
    CHECK(heed_backward(g, loss) == HEED_ERR_STATE, "constant loss");
    CHECK_ERR(g, HEED_ERR_STATE, "loss does not depend on any parameter or input that needs a gradient");
    heed_graph_free(g);
    heed_params_free(P);
}

static void a_tape_runs_backward_once(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w = heed_param(P, "w", HEED_SHAPE(3), heed_init_constant(2));
    heed_graph *g = heed_graph_new(ctx);
    heed_params_zero_grad(P);
    heed_tensor *h = heed_mul(g, w, w); /* dh/dw = 2w = 4 */
    heed_tensor *loss = heed_sum_all(g, h);
    CHECK(heed_backward(g, loss) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_backward(g, loss) == HEED_ERR_STATE, "a second backward must be refused");
    CHECK(strstr(heed_graph_error(g), "heed_backward: this tape was already used by a backward pass") &&
              strstr(heed_graph_error(g), "add the same gradients again"),
          "%s", heed_graph_error(g));
    CHECK(((double *)w->grad)[0] == 4, "gradient doubled: %g", ((double *)w->grad)[0]);
    /* a second loss through the used part is refused too, before any gradient moves */
    heed_graph_reset(g);
    heed_params_zero_grad(P);
    h = heed_mul(g, w, w);
    CHECK(heed_backward(g, heed_sum_all(g, h)) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_backward(g, heed_sum_all(g, heed_exp(g, h))) == HEED_ERR_STATE, "through h again");
    CHECK(((double *)w->grad)[1] == 4, "gradient moved: %g", ((double *)w->grad)[1]);
    CHECK_ERR(g, HEED_ERR_STATE, "heed_mul ran backward once");
    /* a new loss of new ops adds into the parameters */
    heed_params_zero_grad(P);
    CHECK(heed_backward(g, heed_sum_all(g, heed_mul(g, w, w))) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_backward(g, heed_sum_all(g, w)) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(((double *)w->grad)[2] == 5, "4 + 1, got %g", ((double *)w->grad)[2]);
    heed_graph_free(g);
    heed_params_free(P);
}

/* Starting from a leaf adds the seed into what the leaf has, as every gradient adds. */
static void backward_from_a_leaf_adds(void) {
    heed_params *P = heed_params_new(ctx, HEED_F64);
    heed_tensor *w = heed_param(P, "w", HEED_SCALAR, heed_init_constant(2));
    heed_graph *g = heed_graph_new(ctx);
    heed_params_zero_grad(P);
    CHECK(heed_backward(g, heed_mul(g, w, heed_scalar(g, HEED_F64, 3))) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(heed_backward(g, w) == HEED_OK, "%s", heed_graph_error(g));
    CHECK(((double *)w->grad)[0] == 4, "3 + 1, got %g", ((double *)w->grad)[0]);
    /* a leaf input, twice, with a seed */
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2), 1));
    heed_tensor *seed = heed_input_f64(g, HEED_F64, HEED_SHAPE(2), (double[]){0.5, -1});
    CHECK(heed_backward_with(g, x, seed) == HEED_OK && heed_backward_with(g, x, seed) == HEED_OK, "%s",
          heed_graph_error(g));
    CHECK(heed_get(heed_grad(g, x), 0) == 1 && heed_get(heed_grad(g, x), 1) == -2, "seed added twice");
    heed_graph_free(g);
    heed_params_free(P);
}

static void backward_with_checks_the_seed(void) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2, 3), 1));
    heed_tensor *y = heed_exp(g, x);
    CHECK(heed_backward_with(g, y, heed_full(g, HEED_F64, HEED_SHAPE(3, 2), 1)) == HEED_ERR_SHAPE,
          "same numel, other shape");
    CHECK_ERR(g, HEED_ERR_SHAPE, "heed_backward_with: seed[3,2] must have the shape of t[2,3]");
    x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2, 3), 1));
    y = heed_exp(g, x);
    CHECK(heed_backward_with(g, y, heed_full(g, HEED_F64, HEED_SHAPE(6), 1)) == HEED_ERR_SHAPE, "flat seed");
    CHECK_ERR(g, HEED_ERR_SHAPE, "seed[6] must have the shape of t[2,3]");
    x = heed_requires_grad(heed_full(g, HEED_F64, HEED_SHAPE(2, 3), 1));
    y = heed_exp(g, x);
    CHECK(heed_backward_with(g, y, heed_full(g, HEED_F32, HEED_SHAPE(2, 3), 1)) == HEED_ERR_DTYPE, "f32 seed");
    CHECK_ERR(g, HEED_ERR_DTYPE, "heed_backward_with: seed is f32 but the other operand is f64");
    heed_graph_free(g);
}

static void params_count_and_ownership(void) {
    heed_params *P = heed_params_new(ctx, HEED_F32), *Q = heed_params_new(ctx, HEED_F32);
    heed_param(P, "a", HEED_SHAPE(7), heed_init_zeros());
    heed_param(P, "b", HEED_SHAPE(13), heed_init_zeros());
    heed_param(P, "c", HEED_SHAPE(3), heed_init_zeros());
    heed_tensor *q = heed_param(Q, "q", HEED_SHAPE(2), heed_init_constant(1));
    CHECK(heed_params_numel(P) == 23, "numel %lld (7 + 13 + 3)", (long long)heed_params_numel(P));
    CHECK(heed_params_padded_numel(P) == 35, "padded %lld (16 + 16 + 3)", (long long)heed_params_padded_numel(P));
    CHECK(heed_params_numel(NULL) == 0 && heed_params_padded_numel(NULL) == 0, "NULL");
    CHECK(heed_param_init(P, q, heed_init_constant(5)) == HEED_ERR_ARG, "a parameter of another store");
    CHECK(strstr(heed_ctx_error(ctx), "heed_param_init: q is not a parameter of this store"), "%s",
          heed_ctx_error(ctx));
    CHECK(heed_get(q, 0) == 1, "q was changed");
    CHECK(heed_param_init(Q, q, heed_init_constant(5)) == HEED_OK && heed_get(q, 1) == 5, "its own store");
    heed_params_free(Q);
    heed_params_free(P);
}

int main(void) {
    ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 7});
    RUN(stale_tensors_of_any_age_are_dead);
    RUN(header_memory_is_returned);
    RUN(accessors_refuse_dead_tensors);
    RUN(rewinds_bound_a_decode_loop);
    RUN(rewind_keeping_carries_the_state);
    RUN(rewind_keeping_rules);
    RUN(rewinds_drop_the_tape_after_the_mark);
    RUN(rewind_rules);
    RUN(no_grad_survives_reset);
    RUN(a_tape_runs_backward_once);
    RUN(backward_from_a_leaf_adds);
    RUN(backward_with_checks_the_seed);
    RUN(params_count_and_ownership);
    heed_ctx_free(ctx);
    return check_summary();
}
