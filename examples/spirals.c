/* Two-spirals classifier: the smallest end-to-end heed program. A 2 -> H -> H -> 2 tanh
 * MLP trained with Adam on two interleaved spirals; prints progress and the final
 * accuracy, logs metrics to CSV and draws the loss curve as SVG.
 *
 *   spirals [--steps N] [--hidden H] [--lr LR] [--seed S] [--out DIR]
 */
#include <heed/core.h>
#include <heed/elementwise.h>
#include <heed/io.h>
#include <heed/loss.h>
#include <heed/matmul.h>
#include <heed/optim.h>
#include <heed/viz.h>

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_POINTS 1000 /* per spiral */

typedef struct {
    heed_tensor *w1, *b1, *w2, *b2, *w3, *b3;
} mlp;

static heed_tensor *forward(heed_graph *g, const mlp *m, heed_tensor *x) {
    heed_tensor *h = heed_tanh(g, heed_linear(g, x, m->w1, m->b1));
    h = heed_tanh(g, heed_linear(g, h, m->w2, m->b2));
    return heed_linear(g, h, m->w3, m->b3);
}

/* Spiral k (0 or 1): radius grows with the angle, the second spiral is the first turned
 * by pi; a little noise makes the boundary less trivial. */
static void make_spirals(uint64_t seed, float *x, int64_t *y) {
    heed_rng r = heed_rng_make(seed, 1);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < N_POINTS; i++) {
            double t = 0.25 + 2.75 * M_PI * i / N_POINTS, rad = t / (3 * M_PI);
            double a = t + k * M_PI;
            int j = k * N_POINTS + i;
            x[2 * j] = (float)(rad * cos(a) + 0.01 * heed_rng_normal(&r));
            x[2 * j + 1] = (float)(rad * sin(a) + 0.01 * heed_rng_normal(&r));
            y[j] = k;
        }
}

static int usage(const char *prog) {
    fprintf(stderr, "usage: %s [--steps N] [--hidden H] [--lr LR] [--seed S] [--out DIR]\n", prog);
    return 2;
}

/* Makes dir; with make_parent also its parent (the default runs/spirals). */
static int make_dir(const char *dir, bool make_parent) {
    char parent[512];
    const char *slash = strrchr(dir, '/');
    if (make_parent && slash && slash != dir && (size_t)(slash - dir) < sizeof parent) {
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - dir), dir);
        if (mkdir(parent, 0777) != 0 && errno != EEXIST)
            return fprintf(stderr, "spirals: %s: %s\n", parent, strerror(errno)), -1;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return fprintf(stderr, "spirals: %s: %s\n", dir, strerror(errno)), -1;
    return 0;
}

int main(int argc, char **argv) {
    long steps = 2000, hidden = 64;
    double lr = 0.01;
    unsigned long long seed = 1;
    const char *out = NULL; /* --out DIR; runs/spirals by default */
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v) return usage(argv[0]);
        if (!strcmp(argv[i], "--steps")) steps = strtol(v, &end, 10);
        else if (!strcmp(argv[i], "--hidden")) hidden = strtol(v, &end, 10);
        else if (!strcmp(argv[i], "--lr")) lr = strtod(v, &end);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(v, &end, 10);
        else if (!strcmp(argv[i], "--out")) out = v, end = (char *)v + strlen(v);
        else return usage(argv[0]);
        if (!end || *end || steps < 1 || hidden < 1 || hidden > 4096 || !(lr > 0) || (out && !*out))
            return usage(argv[0]);
        i++;
    }
    /* The output directory first: a run that cannot write its results does not start. Only
     * the default's parent (runs/) is made; --out DIR must be in an existing directory. */
    bool default_out = !out;
    if (default_out) out = "runs/spirals";
    char csv[512], svg[512];
    if (snprintf(csv, sizeof csv, "%s/metrics.csv", out) >= (int)sizeof csv ||
        snprintf(svg, sizeof svg, "%s/loss.svg", out) >= (int)sizeof svg) {
        fprintf(stderr, "spirals: --out %s: the path is too long\n", out);
        return 2;
    }
    if (make_dir(out, default_out)) return 1;

    heed_ctx *ctx = heed_ctx_new(&(heed_ctx_opts){.seed = seed});
    if (!ctx) return fprintf(stderr, "spirals: out of memory\n"), 1;
    heed_params *P = heed_params_new(ctx, HEED_F32);
    mlp m = {
        .w1 = heed_param(P, "w1", HEED_SHAPE(hidden, 2), heed_init_xavier_uniform(1.0)),
        .b1 = heed_param(P, "b1", HEED_SHAPE(hidden), heed_init_zeros()),
        .w2 = heed_param(P, "w2", HEED_SHAPE(hidden, hidden), heed_init_xavier_uniform(1.0)),
        .b2 = heed_param(P, "b2", HEED_SHAPE(hidden), heed_init_zeros()),
        .w3 = heed_param(P, "w3", HEED_SHAPE(2, hidden), heed_init_xavier_uniform(1.0)),
        .b3 = heed_param(P, "b3", HEED_SHAPE(2), heed_init_zeros()),
    };
    heed_optimizer *opt = heed_adam(P, &(heed_adam_opts){.lr = lr});
    heed_metrics *log = opt ? heed_metrics_new(ctx, csv, 3, (const char *[]){"step", "loss", "accuracy"}) : NULL;
    heed_graph *g = log ? heed_graph_new(ctx) : NULL;
    if (!g) {
        fprintf(stderr, "spirals: %s\n", heed_ctx_error(ctx));
        heed_metrics_free(log);
        heed_optimizer_free(opt);
        heed_params_free(P);
        heed_ctx_free(ctx);
        return 1;
    }
    static float x[2 * 2 * N_POINTS];
    static int64_t y[2 * N_POINTS];
    make_spirals(seed, x, y);

    heed_progress *bar = heed_progress_new(ctx, &(heed_progress_opts){.total = steps, .label = "spirals"});
    heed_schedule sched = heed_schedule_cosine(lr, steps, lr * 0.05);
    double acc = 0;
    int status = 0;
    for (long step = 1; step <= steps; step++) {
        heed_graph_reset(g);
        heed_params_zero_grad(P);
        heed_schedule_apply(opt, &sched);
        heed_tensor *xb = heed_input(g, HEED_F32, HEED_SHAPE(2 * N_POINTS, 2), x);
        heed_tensor *logits = forward(g, &m, xb);
        heed_tensor *loss = heed_cross_entropy(g, logits, y, NULL);
        if (heed_backward(g, loss) != HEED_OK || heed_optimizer_step(opt) != HEED_OK) {
            fprintf(stderr, "spirals: %s%s\n", heed_graph_error(g), heed_ctx_error(ctx));
            status = 1;
            break;
        }
        /* accuracy of this step's logits (full batch) */
        int correct = 0;
        for (int i = 0; i < 2 * N_POINTS; i++)
            correct += (heed_get(logits, 2 * i + 1) > heed_get(logits, 2 * i)) == (y[i] == 1);
        acc = correct / (2.0 * N_POINTS);
        double l = heed_get(loss, 0);
        heed_progress_update(bar, step, l);
        if ((step % 10 == 0 || step == steps) && heed_metrics_add(log, (double[]){(double)step, l, acc}) != HEED_OK) {
            fprintf(stderr, "spirals: %s\n", heed_ctx_error(ctx));
            status = 1;
            break;
        }
    }
    heed_progress_free(bar);
    /* The curve is drawn from the rows in memory, so it is written even if the CSV failed;
     * only the files actually written are named. */
    bool csv_ok = status == 0, svg_ok = true;
    if (heed_metrics_plot_svg(log, svg, 0, (int[]){1, 2}, 2,
                              &(heed_plot_opts){.title = "two spirals", .xlabel = "step", .log_y = true}) != HEED_OK) {
        fprintf(stderr, "spirals: %s\n", heed_ctx_error(ctx));
        svg_ok = false;
    }
    if (heed_metrics_free(log) != HEED_OK) {
        fprintf(stderr, "spirals: %s\n", heed_ctx_error(ctx));
        csv_ok = false;
    }
    if (!status) printf("final accuracy %.2f%% after %ld steps\n", 100 * acc, steps);
    if (csv_ok) printf("metrics: %s\n", csv);
    if (svg_ok) printf("loss curve: %s\n", svg);
    if (!csv_ok || !svg_ok) status = 1;
    heed_graph_free(g);
    heed_optimizer_free(opt);
    heed_params_free(P);
    heed_ctx_free(ctx);
    return status;
}
