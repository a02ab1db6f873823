/* Every instruction-set path the machine has computes the same f32 results to f32 noise:
 * one fixed workload through every vector kernel (softmax, log_softmax, layer norm, the
 * SLEEF unary ops, cross-entropy, causal flash attention, LSTM and GRU layers, Adam) runs
 * in a child process per ISA (HEED_ISA is read once per process), and each vector path's
 * outputs and gradients are compared with the scalar path's, section by section,
 * normwise: |vector - scalar| <= 1e-5 max |scalar|, the bar of the f32-vs-f64 checks.
 * Sizes leave a partial vector on both widths (37 = 2*16 + 5 columns, 21 hidden units,
 * 45 keys: a last 16-column panel of the AVX-512 micro-kernel). A NaN anywhere fails. */
#include "check.h"
#include "heed/attention.h"
#include "heed/elementwise.h"
#include "heed/loss.h"
#include "heed/norm.h"
#include "heed/optim.h"
#include "heed/rnn.h"
#include "heed/softmax.h"

#include <sys/wait.h>
#include <unistd.h>

enum { MAX_VALUES = 1 << 16, SECTIONS = 48 };

typedef struct {
    char names[SECTIONS][32];
    int64_t start[SECTIONS + 1]; /* section s is values[start[s] .. start[s+1]) */
    int n;
    double values[MAX_VALUES];
    bool ok;
} results;

static uint64_t rng = 12345;
static double uniform(double lo, double hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(rng >> 11) * 0x1p-53;
}

static heed_tensor *random_input(heed_graph *g, heed_shape s, double lo, double hi) {
    heed_tensor *t = heed_zeros(g, HEED_F32, s);
    for (int64_t i = 0; t && i < t->numel; i++) ((float *)t->data)[i] = (float)uniform(lo, hi);
    return heed_requires_grad(t);
}

static void add(results *r, const char *name, const heed_tensor *t) {
    if (r->n == SECTIONS || !t || r->start[r->n] + t->numel > MAX_VALUES) {
        r->ok = false;
        return;
    }
    snprintf(r->names[r->n], sizeof r->names[0], "%s", name);
    for (int64_t i = 0; i < t->numel; i++) r->values[r->start[r->n] + i] = heed_get(t, i);
    r->start[r->n + 1] = r->start[r->n] + t->numel;
    r->n++;
}

/* Backward from y with a random seed gradient (a sum would give softmax a zero gradient). */
static void backward_random(heed_graph *g, heed_tensor *y) {
    if (!y) return;
    heed_tensor *seed = heed_zeros(g, HEED_F32, heed_tensor_shape(y));
    for (int64_t i = 0; seed && i < seed->numel; i++) ((float *)seed->data)[i] = (float)uniform(-1, 1);
    heed_backward_with(g, y, seed);
}

enum { ROWS = 7, COLS = 37 };

/* One elementwise or row op of x [ROWS, COLS]: its output and x's gradient. */
static void row_op(results *r, heed_ctx *ctx, const char *name, int which) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = random_input(g, HEED_SHAPE(ROWS, COLS), -4, 4), *y = NULL;
    heed_tensor *gamma = random_input(g, HEED_SHAPE(COLS), 0.5, 1.5), *beta = random_input(g, HEED_SHAPE(COLS), -1, 1);
    int64_t targets[ROWS];
    for (int i = 0; i < ROWS; i++) targets[i] = (i * 11) % COLS;
    switch (which) {
    case 0: y = heed_softmax(g, x); break;
    case 1: y = heed_log_softmax(g, x); break;
    case 2: y = heed_layernorm(g, x, gamma, beta, 1e-5); break;
    case 3: y = heed_gelu(g, x); break;
    case 4: y = heed_gelu_tanh(g, x); break;
    case 5: y = heed_sigmoid(g, x); break;
    case 6: y = heed_tanh(g, x); break;
    case 7: y = heed_softplus(g, x); break;
    case 8: y = heed_exp(g, x); break;
    default: y = heed_cross_entropy(g, x, targets, &(heed_ce_opts){.label_smoothing = 0.1}); break;
    }
    char buf[32];
    backward_random(g, y);
    snprintf(buf, sizeof buf, "%s y", name);
    add(r, buf, y);
    snprintf(buf, sizeof buf, "%s dx", name);
    add(r, buf, heed_grad(g, x));
    if (which == 2) add(r, "layernorm dgamma", heed_grad(g, gamma)), add(r, "layernorm dbeta", heed_grad(g, beta));
    if (heed_graph_status(g) != HEED_OK) r->ok = false;
    heed_graph_free(g);
}

static void attention(results *r, heed_ctx *ctx) {
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *q = random_input(g, HEED_SHAPE(1, 2, 45, 16), -1, 1),
                *k = random_input(g, HEED_SHAPE(1, 2, 45, 16), -1, 1);
    heed_tensor *v = random_input(g, HEED_SHAPE(1, 2, 45, 16), -1, 1);
    heed_tensor *o = heed_attention(g, q, k, v, &(heed_attention_opts){.causal = true, .impl = HEED_ATTN_FLASH}, NULL);
    backward_random(g, o);
    add(r, "flash o", o), add(r, "flash dq", heed_grad(g, q)), add(r, "flash dk", heed_grad(g, k));
    add(r, "flash dv", heed_grad(g, v));
    if (heed_graph_status(g) != HEED_OK) r->ok = false;
    heed_graph_free(g);
}

/* An LSTM or GRU layer, its gradients, then three Adam steps on its parameters. */
static void recurrent(results *r, heed_ctx *ctx, heed_rnn_kind kind) {
    bool lstm = kind == HEED_RNN_LSTM;
    heed_params *P = heed_params_new(ctx, HEED_F32);
    heed_rnn rnn;
    heed_rnn_opts o = {.kind = kind, .input_size = 5, .hidden_size = 21};
    if (heed_rnn_declare(&rnn, P, "rnn", &o) != HEED_OK) r->ok = false;
    heed_graph *g = heed_graph_new(ctx);
    heed_tensor *x = random_input(g, HEED_SHAPE(4, 3, 5), -2, 2);
    heed_tensor *y =
        lstm ? heed_lstm(g, &rnn, x, NULL, NULL, NULL, NULL, NULL) : heed_gru(g, &rnn, x, NULL, NULL, NULL);
    backward_random(g, y);
    add(r, lstm ? "lstm y" : "gru y", y), add(r, lstm ? "lstm dx" : "gru dx", heed_grad(g, x));
    add(r, lstm ? "lstm dw_hh" : "gru dw_hh", heed_grad(g, rnn.w_hh[0][0]));
    heed_optimizer *opt = heed_adam(P, NULL);
    for (int s = 0; s < 3; s++) heed_optimizer_step(opt);
    add(r, lstm ? "adam on lstm w_hh" : "adam on gru w_hh", rnn.w_hh[0][0]);
    if (heed_graph_status(g) != HEED_OK) r->ok = false;
    heed_optimizer_free(opt);
    heed_graph_free(g);
    heed_params_free(P);
}

static const char *const row_ops[] = {"softmax", "log_softmax", "layernorm", "gelu", "gelu_tanh",
                                      "sigmoid", "tanh",        "softplus",  "exp",  "cross_entropy"};

static void workload(results *r) {
    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = 3});
    r->ok = true;
    for (int i = 0; i < (int)(sizeof row_ops / sizeof *row_ops); i++) row_op(r, ctx, row_ops[i], i);
    attention(r, ctx);
    recurrent(r, ctx, HEED_RNN_LSTM);
    recurrent(r, ctx, HEED_RNN_GRU);
    heed_ctx_free(ctx);
}

/* The workload in a child under HEED_ISA = isa; false when it did not run that ISA. */
static bool run_on(const char *isa, results *r) {
    int fd[2];
    if (pipe(fd)) return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        setenv("HEED_ISA", isa, 1);
        static results mine;
        if (strcmp(heed_isa(), isa) == 0) workload(&mine);
        const char *p = (const char *)&mine;
        for (size_t left = sizeof mine; left > 0;) {
            ssize_t w = write(fd[1], p, left);
            if (w <= 0) _exit(1);
            p += w, left -= (size_t)w;
        }
        _exit(0);
    }
    close(fd[1]);
    char *p = (char *)r;
    size_t got = 0;
    for (ssize_t n; got < sizeof *r && (n = read(fd[0], p + got, sizeof *r - got)) > 0;) got += (size_t)n;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return got == sizeof *r && WIFEXITED(status) && WEXITSTATUS(status) == 0 && r->ok;
}

static results scalar, vec;

/* The machine's best ISA, as heed's detection sees it (graph/simd.c). */
static bool cpu_runs(const char *isa) {
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return !strcmp(isa, "avx2") ? avx2 : avx2 && __builtin_cpu_supports("avx512f");
}

static void compare(const char *isa) {
    if (!cpu_runs(isa)) {
        printf("  %s: this CPU lacks it, not compared\n", isa);
        return;
    }
    CHECK(run_on(isa, &vec), "the workload did not run on %s", isa);
    CHECK(vec.n == scalar.n && vec.n > 0, "%s: %d sections, scalar %d", isa, vec.n, scalar.n);
    for (int s = 0; s < vec.n && s < scalar.n; s++) {
        check_norm n = check_norm_start(1e-3);
        int64_t len = scalar.start[s + 1] - scalar.start[s];
        if (vec.start[s + 1] - vec.start[s] != len) n.err = INFINITY;
        for (int64_t i = 0; i < len && isfinite(n.err); i++)
            check_norm_add(&n, vec.values[vec.start[s] + i], scalar.values[scalar.start[s] + i]);
        CHECK(check_norm_ok(n, 1e-5) && !strcmp(vec.names[s], scalar.names[s]), "%s %s vs scalar: error %.3g of %.3g",
              isa, vec.names[s], n.err, n.scale);
    }
}

static void paths_agree(void) {
    CHECK(run_on("scalar", &scalar), "the workload did not run on the scalar path");
    compare("avx2");
    compare("avx512");
}

int main(void) {
    RUN(paths_agree);
    return check_summary();
}
