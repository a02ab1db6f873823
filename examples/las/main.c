/* las: trains a Listen, Attend and Spell model (Chan et al. 2016) on connected digits
 * spoken by espeak-ng voices and FSDD speakers, watches it learn (loss, error rates and
 * the alignment picture at every evaluation), reports greedy and beam-search error rates
 * on the four test sets, and transcribes WAV files with a trained checkpoint.
 * Run with --help for the flags; docs/las.md has the details. */
#include "args.h"

#include <errno.h>
#include <omp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    las_options o;
    las_corpus sets[LAS_N_SETS], extra; /* extra: --eval-manifest */
    las_trainer t;
    heed_metrics *log;
    char err[2048];
} program;

/* CPU seconds used by the process so far (user + system, every thread). */
static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static int fail(const char *what, const char *why) {
    fprintf(stderr, "las: %s%s%s\n", what, *what ? ": " : "", why);
    return 1;
}

/* An output path must be creatable: not a directory, not a non-regular file (an atomic
 * write would replace it), its directory writable. */
static int check_output(const char *flag, const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (!*path) return snprintf(err, errlen, "%s: the path is empty", flag), -1;
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return snprintf(err, errlen, "%s %s: not a regular file", flag, path), -1;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    if (access(dir, W_OK | X_OK) != 0)
        return snprintf(err, errlen, "%s %s: cannot write in %.300s: %s", flag, path, dir, strerror(errno)), -1;
    return 0;
}

/* ---------------------------------------------------------------- pictures */

/* The utterance's log-mel spectrogram (bands x frames, low frequencies at the bottom) with
 * the alignment (characters x encoder frames, each frame widened to the input frames it
 * covers) under it, as one PNG; and the alignment alone as an SVG with the characters and
 * frame times as labels. */
static int write_alignment(las_trainer *t, const char *base, const float *feat, int64_t frames, const char *text,
                           const float *align, int64_t steps, int64_t N, char *err, size_t errlen) {
    int F = t->cfg.bands;
    int64_t per = t->cfg.stack << t->cfg.model.pyramid_layers; /* input frames per encoder frame */
    int64_t W = frames, rows_per_char = 4, H = F + 3 + steps * rows_per_char;
    float *img = calloc((size_t)(H * W), sizeof *img);
    if (!img) return snprintf(err, errlen, "out of memory"), -1;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < frames * F; i++) lo = fminf(lo, feat[i]), hi = fmaxf(hi, feat[i]);
    for (int j = 0; j < F; j++)
        for (int64_t c = 0; c < W; c++) img[(F - 1 - j) * W + c] = hi > lo ? (feat[c * F + j] - lo) / (hi - lo) : 0;
    for (int64_t c = 0; c < W; c++) img[(F + 1) * W + c] = 1; /* a white line between the two */
    for (int64_t s = 0; s < steps; s++) {
        float mx = 0;
        for (int64_t j = 0; j < N; j++) mx = fmaxf(mx, align[s * N + j]);
        for (int64_t r = 0; r < rows_per_char; r++)
            for (int64_t c = 0; c < W; c++) {
                int64_t j = c / per < N ? c / per : N - 1;
                img[(F + 3 + s * rows_per_char + r) * W + c] = mx > 0 ? align[s * N + j] / mx : 0;
            }
    }
    heed_graph_reset(t->g);
    heed_tensor *im = heed_input(t->g, HEED_F32, HEED_SHAPE(H, W), img);
    heed_tensor *al = heed_input(t->g, HEED_F32, HEED_SHAPE(steps, N), align);
    free(img);
    char path[4200], title[300];
    int cell = W < 800 ? (int)(800 / W) : 1; /* about 800 pixels wide */
    if (cell > 8) cell = 8;
    snprintf(path, sizeof path, "%s.png", base);
    if (!im || !al ||
        heed_heatmap_png(t->ctx, path, im,
                         &(heed_heatmap_opts){.cmap = HEED_CMAP_VIRIDIS, .cell = cell, .lo = 0, .hi = 1}) != HEED_OK)
        return snprintf(err, errlen, "%s", heed_ctx_error(t->ctx)), -1;
    char **q = calloc((size_t)steps, sizeof *q), **k = calloc((size_t)N, sizeof *k);
    int rc = -1;
    if (!q || !k) goto out;
    for (int64_t s = 0; s < steps; s++) {
        q[s] = malloc(8);
        if (!q[s]) goto out;
        int64_t n = (int64_t)strlen(text);
        if (s < n) snprintf(q[s], 8, "%c", text[s] == ' ' ? '_' : text[s]);
        else snprintf(q[s], 8, "<eos>");
    }
    for (int64_t j = 0; j < N; j++) {
        k[j] = malloc(16);
        if (!k[j]) goto out;
        snprintf(k[j], 16, "%.2fs", (double)(j * per) * 0.01);
    }
    snprintf(title, sizeof title, "LAS alignment: '%s' (characters down, encoder frames across)", text);
    snprintf(path, sizeof path, "%s.svg", base);
    if (heed_attention_svg(t->ctx, path, al, (const char *const *)q, (const char *const *)k,
                           &(heed_svg_opts){.cmap = HEED_CMAP_VIRIDIS,
                                            .cell = 14,
                                            .font_size = 9,
                                            .title = title,
                                            .lo = 0,
                                            .hi = 1}) != HEED_OK) {
        snprintf(err, errlen, "%s", heed_ctx_error(t->ctx));
        goto out;
    }
    rc = 0;
out:
    if (rc && !*err) snprintf(err, errlen, "out of memory");
    for (int64_t s = 0; q && s < steps; s++) free(q[s]);
    for (int64_t j = 0; k && j < N; j++) free(k[j]);
    free(q), free(k);
    return rc;
}

/* ---------------------------------------------------------------- transcription */

static int transcribe(program *p) {
    las_options *o = &p->o;
    char *err = p->err;
    size_t errlen = sizeof p->err;
    las_train_config cfg = o->train;
    if (las_checkpoint_config(o->checkpoint, &cfg, err, errlen)) return fail("", err);
    if (las_trainer_init(&p->t, NULL, &cfg, 0, err, errlen) || las_trainer_load(&p->t, o->checkpoint, err, errlen))
        return fail("", err);
    float *x = NULL, *feat = NULL, *align = NULL;
    char *text = NULL;
    int64_t n, steps, N;
    double score;
    int rc = 1;
    las_fbank *fb = las_fbank_new(cfg.bands);
    if (!fb) return fail("", "out of memory");
    if (las_wav_read(o->transcribe, &x, &n, err, errlen)) goto out;
    int64_t T = las_fbank_frames(n);
    if (!(feat = malloc((size_t)(T * cfg.bands) * sizeof *feat))) goto out;
    las_fbank_compute(fb, x, n, feat);
    las_cmvn(feat, T, cfg.bands);
    if (las_transcribe(&p->t, feat, T, o->train.beam, &text, &score, &align, &steps, &N, err, errlen)) goto out;
    printf("%s: \"%s\" (score %.4f, beam %lld)\n", o->transcribe, text, score, (long long)o->train.beam);
    if (o->alignment) {
        char base[4096];
        snprintf(base, sizeof base, "%s", o->alignment);
        char *dot = strrchr(base, '.');
        if (dot && (!strcmp(dot, ".png") || !strcmp(dot, ".svg"))) *dot = 0;
        if (write_alignment(&p->t, base, feat, T, text, align, steps, N, err, errlen)) goto out;
        printf("alignment: %s.png, %s.svg\n", base, base);
    }
    rc = 0;
out:
    if (rc) fail("", *err ? err : "out of memory");
    free(x), free(feat), free(align), free(text);
    las_fbank_free(fb);
    return rc;
}

/* ---------------------------------------------------------------- training */

static const char *set_title(las_set s) {
    static const char *const t[] = {"train", "(a) espeak-ng held-out voices", "(b) flite (unseen synthesiser)",
                                    "(c) FSDD test takes 0-4 of jackson/nicolas/theo",
                                    "(d) FSDD yweweler (unseen speaker)"};
    return t[s];
}

static int load_data(program *p) {
    las_options *o = &p->o;
    double t0 = now();
    for (int s = 0; s < LAS_N_SETS; s++) {
        if (s != LAS_SET_TRAIN && o->no_test) continue;
        if (las_data_get(&o->data, (las_set)s, &p->sets[s], p->err, sizeof p->err)) return fail("data", p->err);
    }
    const char *paths[2] = {o->train_manifest, o->eval_manifest};
    las_corpus *into[2] = {&p->sets[LAS_SET_TRAIN], &p->extra};
    for (int i = 0; i < 2; i++) { /* --train-manifest joins the training set, --eval-manifest is its own */
        if (!paths[i]) continue;
        las_fbank *fb = las_fbank_new(o->data.bands);
        las_manifest m;
        if (!fb) return fail("", "out of memory");
        int rc = las_manifest_load(paths[i], &m, p->err, sizeof p->err);
        if (!rc) rc = las_corpus_add_manifest(into[i], fb, &m, paths[i], p->err, sizeof p->err), las_manifest_free(&m);
        las_fbank_free(fb);
        if (rc) return fail("", p->err);
    }
    double frames = 0;
    for (int64_t i = 0; i < p->sets[0].n; i++) frames += (double)p->sets[0].u[i].frames;
    printf("data: %lld training utterances (%.1f minutes of speech)", (long long)p->sets[0].n, frames / 6000);
    for (int s = 1; s < LAS_N_SETS && !o->no_test; s++)
        printf(", %s %lld", las_set_name((las_set)s), (long long)p->sets[s].n);
    if (p->extra.n) printf(", %s %lld", o->eval_manifest, (long long)p->extra.n);
    printf(" (%.1fs)\n", now() - t0);
    return 0;
}

/* Greedy error rates on the first `size` utterances of every test set; the alignment of
 * one utterance of set c (real speech) is drawn. wer[] and cer[] get NaN for skipped sets. */
static int periodic_eval(program *p, double *wer, double *cer) {
    las_options *o = &p->o;
    for (int s = 1; s < LAS_N_SETS; s++) {
        wer[s] = cer[s] = NAN;
        if (o->no_test) continue;
        heed_error_counts c = {0};
        float *align = NULL;
        int64_t steps = 0, N = 0;
        /* the picture: the longest transcript among the first 20 of set c (real speech) */
        int64_t pick = 0;
        for (int64_t i = 1; i < 20 && i < p->sets[s].n && i < o->eval_size; i++)
            if (strlen(p->sets[s].u[i].text) > strlen(p->sets[s].u[pick].text)) pick = i;
        char *hyp0 = NULL, **hyps = calloc((size_t)p->sets[s].n, sizeof *hyps);
        if (!hyps || las_evaluate(&p->t, &p->sets[s], o->eval_size, 1, &c, hyps, pick, s == LAS_SET_C ? &align : NULL,
                                  &steps, &N, p->err, sizeof p->err)) {
            free(hyps);
            return -1;
        }
        wer[s] = heed_wer(&c), cer[s] = heed_cer(&c);
        hyp0 = hyps[pick];
        if (align && hyp0) {
            char base[4200];
            snprintf(base, sizeof base, "%s/alignment", o->out_dir);
            const las_utt *u = &p->sets[s].u[pick];
            if (write_alignment(&p->t, base, u->feat, u->frames, hyp0, align, steps, N, p->err, sizeof p->err)) {
                for (int64_t i = 0; i < p->sets[s].n; i++) free(hyps[i]);
                free(hyps), free(align);
                return -1;
            }
        }
        for (int64_t i = 0; i < p->sets[s].n; i++) free(hyps[i]);
        free(hyps), free(align);
    }
    return 0;
}

/* The final table: greedy and beam on every test set in full, with examples. */
static int final_eval(program *p, double *beam_wer_a) {
    las_options *o = &p->o;
    printf("\nresults (%lld epochs; WER / CER / SER in %%):\n", (long long)p->t.epoch);
    printf("  %-50s %5s  %-22s  %-22s\n", "test set", "utts", "greedy WER CER SER", "beam WER CER SER");
    for (int s = 1; s <= LAS_N_SETS; s++) {
        las_corpus *c = s < LAS_N_SETS ? &p->sets[s] : &p->extra;
        if (c->n == 0 || (s < LAS_N_SETS && o->no_test)) continue;
        heed_error_counts g = {0}, b = {0};
        char **hyps = calloc((size_t)c->n, sizeof *hyps);
        if (!hyps || las_evaluate(&p->t, c, c->n, 1, &g, NULL, 0, NULL, NULL, NULL, p->err, sizeof p->err) ||
            las_evaluate(&p->t, c, c->n, o->train.beam, &b, hyps, 0, NULL, NULL, NULL, p->err, sizeof p->err)) {
            for (int64_t i = 0; hyps && i < c->n; i++) free(hyps[i]);
            free(hyps);
            return -1;
        }
        printf("  %-50s %5lld  %6.2f %6.2f %6.2f    %6.2f %6.2f %6.2f\n",
               s < LAS_N_SETS ? set_title((las_set)s) : o->eval_manifest, (long long)c->n, 100 * heed_wer(&g),
               100 * heed_cer(&g), 100 * heed_ser(&g), 100 * heed_wer(&b), 100 * heed_cer(&b), 100 * heed_ser(&b));
        if (s == LAS_SET_A) *beam_wer_a = heed_wer(&b);
        for (int64_t i = 0; i < o->show && i < c->n; i++)
            printf("      ref: %-40s hyp: %s\n", c->u[i].text, hyps[i] ? hyps[i] : "");
        for (int64_t i = 0; i < c->n; i++) free(hyps[i]);
        free(hyps);
    }
    return 0;
}

static int train(program *p) {
    las_options *o = &p->o;
    char *err = p->err;
    size_t errlen = sizeof p->err;
    if (load_data(p)) return 1;
    las_trainer *t = &p->t;
    if (las_trainer_init(t, &p->sets[LAS_SET_TRAIN], &o->train, o->epochs, err, errlen)) return fail("", err);
    const heed_las_config *m = &t->cfg.model;
    int64_t n_params = 0; /* the parameters' own sizes */
    for (int i = 0; i < heed_params_count(t->P); i++) n_params += heed_params_at(t->P, i)->numel;
    printf(
        "model: LAS, %lld parameters: listener BLSTM + %d pyramidal BLSTM (%lld per direction, time / %lld), speller "
        "2 x LSTM %lld, attention %lld%s, %lld tokens; batch %lld, %lld steps per epoch, Adam lr %g, %d threads\n",
        (long long)n_params, m->pyramid_layers, (long long)m->listener_hidden,
        (long long)(o->train.stack << m->pyramid_layers), (long long)m->speller_hidden, (long long)m->attn_dim,
        m->attention == HEED_LAS_LOCAL_M   ? " local-m"
        : m->attention == HEED_LAS_LOCAL_P ? " local-p"
        : m->loc_channels                  ? " location-aware"
                                           : "",
        (long long)m->vocab, (long long)o->train.batch, (long long)las_trainer_steps_per_epoch(t), o->train.lr,
        heed_ctx_threads(t->ctx));
    if (o->resume && access(o->checkpoint, F_OK) == 0) {
        if (las_trainer_load(t, o->checkpoint, err, errlen)) return fail("resume", err);
        printf("resumed from %s after epoch %lld\n", o->checkpoint, (long long)t->epoch);
    }
    if (o->metrics_csv) {
        const char *cols[] = {"epoch", "loss", "seconds", "lr", "wer_a", "wer_b", "wer_c", "wer_d", "cer_a", "cer_c"};
        if (!(p->log = heed_metrics_new(t->ctx, o->metrics_csv, 10, cols)))
            return fail("--metrics", heed_ctx_error(t->ctx));
    }
    fflush(stdout);
    double t_train = 0, cpu0 = cpu_seconds();
    int64_t stop = o->stop_after && o->stop_after < o->epochs ? o->stop_after : o->epochs;
    while (t->epoch < stop) {
        char label[32];
        snprintf(label, sizeof label, "epoch %lld", (long long)t->epoch + 1);
        int64_t steps = las_trainer_steps_per_epoch(t);
        heed_progress *bar =
            o->progress ? heed_progress_new(t->ctx, &(heed_progress_opts){.total = steps, .label = label}) : NULL;
        double e0 = now(), loss = las_train_epoch(t, bar, err, errlen), secs = now() - e0;
        if (bar) heed_progress_free(bar);
        if (isnan(loss)) return fail("", err);
        t_train += secs;
        printf("epoch %lld: loss %.4f, %.1fs (%.0f ms/step), lr %.2g", (long long)t->epoch, loss, secs,
               1e3 * secs / (double)steps, heed_optimizer_lr(t->opt));
        double wer[LAS_N_SETS], cer[LAS_N_SETS];
        for (int s = 0; s < LAS_N_SETS; s++) wer[s] = cer[s] = NAN;
        bool last = t->epoch == o->epochs;
        if (!o->no_test && ((o->eval_every > 0 && t->epoch % o->eval_every == 0) || last)) {
            double v0 = now();
            if (periodic_eval(p, wer, cer)) return printf("\n"), fail("", err);
            printf("; greedy WER a %.1f%% b %.1f%% c %.1f%% d %.1f%% (eval %.1fs)", 100 * wer[1], 100 * wer[2],
                   100 * wer[3], 100 * wer[4], now() - v0);
        }
        printf("\n");
        fflush(stdout);
        if (o->checkpoint && las_trainer_save(t, o->checkpoint, err, errlen)) return fail("checkpoint", err);
        if (p->log) {
            double row[10] = {(double)t->epoch, loss,   secs,  heed_optimizer_lr(t->opt), wer[1], wer[2], wer[3],
                              wer[4],           cer[1], cer[3]};
            if (heed_metrics_add(p->log, row) != HEED_OK) return fail("--metrics", heed_ctx_error(t->ctx));
            char path[4200];
            snprintf(path, sizeof path, "%s/curves.svg", o->out_dir);
            if (heed_metrics_plot_svg(p->log, path, 0, (const int[]){1, 4, 5, 6, 7}, 5,
                                      &(heed_plot_opts){.title = "LAS: training loss and greedy WER per test set",
                                                        .xlabel = "epoch",
                                                        .log_y = true}) != HEED_OK)
                return fail("curves", heed_ctx_error(t->ctx));
        }
    }
    heed_status closed = heed_metrics_free(p->log);
    p->log = NULL;
    if (closed != HEED_OK) return fail("--metrics", heed_ctx_error(t->ctx));
    if (t_train > 0)
        printf("training: %.1f minutes (wall clock), %.1f minutes of CPU time with evaluations\n", t_train / 60,
               (cpu_seconds() - cpu0) / 60);
    if (t->epoch < o->epochs) {
        printf("stopped after epoch %lld of %lld (--stop-after)%s\n", (long long)t->epoch, (long long)o->epochs,
               o->checkpoint ? "; --resume continues" : "");
        return 0;
    }
    double wer_a = NAN;
    if ((!o->no_test || p->extra.n) && final_eval(p, &wer_a)) return fail("", err);
    if (o->target_wer >= 0 && !(wer_a <= o->target_wer)) {
        fprintf(stderr, "las: beam WER on set a %.4f is above the target %.4f\n", wer_a, o->target_wer);
        return 3;
    }
    return 0;
}

int main(int argc, char **argv) {
    program p = {0};
    int args = las_parse_args(argc, argv, &p.o, p.err, sizeof p.err);
    if (args == LAS_ARGS_HELP) las_usage(stdout);
    if (args == LAS_ARGS_OK && !p.o.transcribe) {
        if ((p.o.checkpoint && check_output("--checkpoint", p.o.checkpoint, p.err, sizeof p.err)) ||
            (p.o.metrics_csv && check_output("--metrics", p.o.metrics_csv, p.err, sizeof p.err)))
            args = LAS_ARGS_ERROR;
        else if (p.o.checkpoint && !p.o.resume && access(p.o.checkpoint, F_OK) == 0)
            snprintf(p.err, sizeof p.err, "--checkpoint %s exists: pass --resume to continue from it, or remove it",
                     p.o.checkpoint),
                args = LAS_ARGS_ERROR;
        else if (las_mkdir_p(p.o.out_dir) != 0)
            snprintf(p.err, sizeof p.err, "--out %s: %s", p.o.out_dir, strerror(errno)), args = LAS_ARGS_ERROR;
    }
    if (args == LAS_ARGS_ERROR) {
        fail("", p.err);
        return 2;
    }
    /* --threads is for the whole program: heed's kernels (the ctx) and the BLAS, which
     * follows OpenMP's process-wide count (a program may set it, a library may not); left
     * at the default, one thread of ours waited in libgomp for a second BLAS thread that a
     * loaded machine had not scheduled */
    if (args == LAS_ARGS_OK && p.o.threads > 0) omp_set_num_threads((int)p.o.threads);
    int status = args == LAS_ARGS_HELP ? 0 : p.o.transcribe ? transcribe(&p) : train(&p);
    heed_metrics_free(p.log);
    las_trainer_free(&p.t);
    for (int s = 0; s < LAS_N_SETS; s++) las_corpus_free(&p.sets[s]);
    las_corpus_free(&p.extra);
    las_espeak_close();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "las: writing the standard output: %s\n", strerror(errno));
        if (!status) status = 1;
    }
    return status;
}
