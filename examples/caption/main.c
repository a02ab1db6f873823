/* caption: Show, Attend and Tell on Fashion-MNIST scenes (docs/caption.md). Pretrains the
 * encoder on single objects, freezes it, trains the attending decoder on scene captions,
 * evaluates BLEU, exact captions and pointing, draws attention figures, checkpoints and
 * resumes bitwise; --caption FILE.png captions a 96x96 picture with a trained checkpoint. */
#include "args.h"
#include "figure.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *what, const char *msg) {
    fprintf(stderr, "caption: %s: %s\n", what, msg);
    return 1;
}

static void print_eval(const char *name, const cap_eval *e) {
    printf("%s: BLEU-1 %.4f BLEU-2 %.4f BLEU-3 %.4f BLEU-4 %.4f exact %.1f%% pointing teacher-forced %.1f%% (box mass "
           "%.3f, %lld nouns; by noun %.0f/%.0f/%.0f/%.0f%%) teacher-forced on the model's subject %.1f%% (box mass "
           "%.3f, %lld nouns; by noun %.0f/%.0f/%.0f/%.0f%%) free-running %.1f%% (box mass %.3f, %lld nouns)\n",
           name, e->bleu[0], e->bleu[1], e->bleu[2], e->bleu[3], 100 * e->exact, 100 * e->point_tf, e->mass_tf,
           (long long)e->nouns_tf, 100 * e->point_tf_at[0], 100 * e->point_tf_at[1], 100 * e->point_tf_at[2],
           100 * e->point_tf_at[3], 100 * e->point_tfs, e->mass_tfs, (long long)e->nouns_tfs, 100 * e->point_tfs_at[0],
           100 * e->point_tfs_at[1], 100 * e->point_tfs_at[2], 100 * e->point_tfs_at[3], 100 * e->point_fr, e->mass_fr,
           (long long)e->nouns_fr);
}

static void hyp_text(const heed_hypothesis *h, char *buf, size_t len) {
    int tok[64], n = h->len < 64 ? (int)h->len : 64;
    for (int i = 0; i < n; i++) tok[i] = (int)h->tokens[i];
    if (caption_text(tok, n, buf, len) < 0) snprintf(buf, len, "(too long)");
}

/* The figures of the first n test scenes into dir. */
static int draw_figures(cap_trainer *t, const scene_set *test, const heed_hypothesis *hyps, int64_t n,
                        const char *dir) {
    char path[4096], title[256], text[200], err[512];
    float *px = malloc(SCENE_SIDE * SCENE_SIDE * sizeof *px);
    scene *sc = malloc(sizeof *sc);
    int rc = 0;
    if (!px || !sc) rc = fail("figures", "out of memory");
    for (int64_t i = 0; i < n && !rc; i++) {
        scene_make(test->src, test->seed, (uint64_t)i, sc);
        for (int p = 0; p < SCENE_SIDE * SCENE_SIDE; p++) px[p] = sc->pixels[p] / 255.0f;
        hyp_text(&hyps[i], text, sizeof text);
        snprintf(title, sizeof title, "test scene %lld: \"%s\"", (long long)i, text);
        snprintf(path, sizeof path, "%s/caption-test-%lld.svg", dir, (long long)i);
        if (cap_figure_svg(t->g, path, px, &hyps[i], t->grid, title, err, sizeof err)) rc = fail("figure", err);
        else printf("  %s  %s\n", path, text);
        /* the scene alone as a grey PNG, for --caption */
        snprintf(path, sizeof path, "%s/scene-test-%lld.png", dir, (long long)i);
        heed_graph_reset(t->g);
        if (!rc && heed_heatmap_png(t->ctx, path, heed_input(t->g, HEED_F32, HEED_SHAPE(SCENE_SIDE, SCENE_SIDE), px),
                                    &(heed_heatmap_opts){.cell = 1, .lo = 0, .hi = 1}) != HEED_OK)
            rc = fail("scene picture", heed_ctx_error(t->ctx));
    }
    free(px), free(sc);
    return rc;
}

/* --caption FILE.png: read, encode, decode, print, draw. */
static int caption_file(cap_trainer *t, const cap_options *o) {
    float *px = NULL;
    int64_t h = 0, w = 0;
    char err[512], text[200];
    if (heed_png_read_gray(t->ctx, o->caption_png, SCENE_SIDE * SCENE_SIDE * 16, &px, &h, &w) != HEED_OK)
        return fail("--caption", heed_ctx_error(t->ctx));
    if (h != SCENE_SIDE || w != SCENE_SIDE) {
        free(px);
        snprintf(err, sizeof err, "the picture is %lldx%lld; the model reads %dx%d grey scenes", (long long)w,
                 (long long)h, SCENE_SIDE, SCENE_SIDE);
        return fail(o->caption_png, err);
    }
    heed_graph_reset(t->g);
    heed_graph_set_training(t->g, false);
    heed_no_grad_begin(t->g);
    heed_decode_result r = {0};
    heed_tensor *a =
        heed_caption_encode(t->g, &t->m, heed_input(t->g, HEED_F32, HEED_SHAPE(1, 1, SCENE_SIDE, SCENE_SIDE), px));
    heed_status st = a ? heed_caption_decode(t->g, &t->m, a,
                                             &(heed_decode_opts){.beam = o->beam,
                                                                 .bos = TOK_START,
                                                                 .eos = TOK_END,
                                                                 .max_len = CAPTION_MAX_TOKENS + 1},
                                             &r)
                       : heed_graph_status(t->g);
    heed_no_grad_end(t->g);
    if (st != HEED_OK) return free(px), fail(o->caption_png, heed_graph_error(t->g));
    hyp_text(&r.hyp[0], text, sizeof text);
    printf("%s: %s\n", o->caption_png, text);
    int rc = 0;
    if (o->out_dir) {
        char path[4096], title[300];
        const char *base = strrchr(o->caption_png, '/');
        snprintf(path, sizeof path, "%s/caption-%s.svg", o->out_dir, base ? base + 1 : o->caption_png);
        snprintf(title, sizeof title, "\"%s\"", text);
        if (cap_figure_svg(t->g, path, px, &r.hyp[0], t->grid, title, err, sizeof err)) rc = fail("figure", err);
        else printf("attention figure: %s\n", path);
    }
    heed_decode_result_free(&r);
    free(px);
    return rc;
}

/* Metrics columns. */
enum {
    C_EPOCH,
    C_LOSS,
    C_CE,
    C_REG,
    C_BLEU4,
    C_EXACT,
    C_POINT_TF,
    C_POINT_FR,
    C_MASS_TF,
    C_MASS_FR,
    C_POINT_TFS,
    C_MASS_TFS,
    N_COLS
};
static const char *const columns[N_COLS] = {"epoch",   "loss",    "cross_entropy", "regulariser",
                                            "bleu4",   "exact",   "pointing_tf",   "pointing_fr",
                                            "mass_tf", "mass_fr", "pointing_tfs",  "mass_tfs"};

/* mkdir -p */
static int make_dirs(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
            if (!(*s = c)) return 0;
        }
    }
}

static int run(const cap_options *o) {
    char err[1024];
    if (o->out_dir && make_dirs(o->out_dir)) {
        snprintf(err, sizeof err, "cannot make %s: %s", o->out_dir, strerror(errno));
        return fail("--out", err);
    }
    cap_config cfg = o->cfg;
    if (o->caption_png && !o->resume && cap_checkpoint_config(o->checkpoint, &cfg, err, sizeof err))
        return fail("--checkpoint", err);
    cap_trainer t;
    if (cap_trainer_init(&t, &cfg, o->epochs, err, sizeof err)) return fail("model", err);
    int rc = 0;
    if (o->caption_png) {
        if (cap_load(&t, o->checkpoint, false, err, sizeof err)) rc = fail("--checkpoint", err);
        else rc = caption_file(&t, o);
        cap_trainer_free(&t);
        return rc;
    }
    fm_set train = {0}, test = {0};
    scene_source src_train = {0}, src_test = {0};
    scene_set strain = {0}, stest = {0};
    heed_metrics *log = NULL;
    heed_hypothesis *hyps = NULL;
    struct stat sb;
    bool resumed = o->resume && stat(o->checkpoint, &sb) == 0;
    if (fm_load(o->data_dir, "train", &train, err, sizeof err) ||
        fm_load(o->data_dir, "t10k", &test, err, sizeof err) ||
        scene_source_init(&src_train, &train, err, sizeof err) ||
        scene_source_init(&src_test, &test, err, sizeof err)) {
        rc = fail("data", err);
        goto done;
    }
    const heed_caption_config *m = &cfg.model;
    printf(
        "caption: encoder conv %lld-%lld-%lld -> %lldx%lld grid of %lld; decoder LSTM %lld, embed %lld, attention %lld "
        "(%s), initial state %s, trained on %s-order captions; %lld parameters; %d threads\n",
        (long long)m->channels[0], (long long)m->channels[1], (long long)m->channels[2], (long long)t.grid,
        (long long)t.grid, (long long)m->channels[2], (long long)m->hidden, (long long)m->embed_dim,
        (long long)m->attn_dim, cfg.attention == HEED_CAPTION_HARD ? "hard" : "soft", cap_init_name(m->init),
        cap_order_name(cfg.order), (long long)heed_params_numel(t.P), heed_ctx_threads(t.ctx));
    if (resumed) {
        if (cap_load(&t, o->checkpoint, true, err, sizeof err)) {
            rc = fail("--resume", err);
            goto done;
        }
        printf("resumed from %s after epoch %lld (pretraining skipped: the encoder is in the checkpoint)\n",
               o->checkpoint, (long long)t.epoch);
    } else {
        for (int64_t e = 0; e < o->pretrain_epochs; e++) {
            int64_t steps = (cfg.pretrain_images + cfg.batch - 1) / cfg.batch;
            heed_progress *bar =
                o->progress ? heed_progress_new(t.ctx, &(heed_progress_opts){.total = steps, .label = "pretrain"})
                            : NULL;
            double acc = 0, l = cap_pretrain_epoch(&t, &train, e, bar, &acc, err, sizeof err);
            heed_progress_free(bar);
            if (isnan(l)) {
                rc = fail("pretraining", err);
                goto done;
            }
            printf("pretrain epoch %lld: loss %.4f, accuracy %.1f%% on the images seen\n", (long long)e + 1, l,
                   100 * acc);
        }
    }
    heed_caption_freeze_encoder(&t.m, true);
    if (cap_scene_set(&t, &src_train, cfg.seed, cfg.train_scenes, &strain, err, sizeof err) ||
        cap_scene_set(&t, &src_test, cfg.seed + 1000003, cfg.test_scenes, &stest, err, sizeof err)) {
        rc = fail("scenes", err);
        goto done;
    }
    if (o->metrics_csv && !(log = heed_metrics_new(t.ctx, o->metrics_csv, N_COLS, columns))) {
        rc = fail("--metrics", heed_ctx_error(t.ctx));
        goto done;
    }
    int64_t this_run = 0;
    while (t.epoch < o->epochs && !(o->stop_after && this_run >= o->stop_after)) {
        int64_t steps = (strain.n + cfg.batch - 1) / cfg.batch;
        char label[32];
        snprintf(label, sizeof label, "epoch %lld", (long long)t.epoch + 1);
        heed_progress *bar =
            o->progress ? heed_progress_new(t.ctx, &(heed_progress_opts){.total = steps, .label = label}) : NULL;
        double st[2], l = cap_train_epoch(&t, &strain, bar, st, err, sizeof err);
        heed_progress_free(bar);
        if (isnan(l)) {
            rc = fail("training", err);
            goto done;
        }
        this_run++;
        double row[N_COLS] = {(double)t.epoch, l, st[0], st[1], NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
        printf("epoch %lld: loss %.4f (cross-entropy %.4f, regulariser %.3f)\n", (long long)t.epoch, l, st[0], st[1]);
        if (o->eval_every && t.epoch % o->eval_every == 0) {
            cap_eval e;
            if (cap_evaluate(&t, &stest, o->eval_size, 1, &e, NULL, 0, err, sizeof err)) {
                rc = fail("evaluation", err);
                goto done;
            }
            print_eval("  test greedy", &e);
            row[C_BLEU4] = e.bleu[3], row[C_EXACT] = e.exact, row[C_POINT_TF] = e.point_tf,
            row[C_POINT_FR] = e.point_fr;
            row[C_MASS_TF] = e.mass_tf, row[C_MASS_FR] = e.mass_fr;
            row[C_POINT_TFS] = e.point_tfs, row[C_MASS_TFS] = e.mass_tfs;
        }
        if (log && heed_metrics_add(log, row) != HEED_OK) {
            rc = fail("--metrics", heed_ctx_error(t.ctx));
            goto done;
        }
        if (o->checkpoint && cap_save(&t, o->checkpoint, err, sizeof err)) {
            rc = fail("--checkpoint", err);
            goto done;
        }
    }
    if (t.epoch < o->epochs) {
        printf("stopped after %lld epochs (--stop-after); resume with --resume\n", (long long)t.epoch);
        goto done;
    }
    int64_t nf = o->out_dir ? o->figures : 0;
    hyps = calloc((size_t)(nf > 0 ? nf : 1), sizeof *hyps);
    cap_eval e;
    if (!hyps || cap_evaluate(&t, &stest, stest.n, o->beam, &e, hyps, nf, err, sizeof err)) {
        rc = fail("evaluation", err);
        goto done;
    }
    char name[64];
    snprintf(name, sizeof name, "test (%lld scenes, beam %lld)", (long long)stest.n, (long long)o->beam);
    print_eval(name, &e);
    if (o->out_dir && nf > 0) rc = draw_figures(&t, &stest, hyps, nf < stest.n ? nf : stest.n, o->out_dir);
    if (!rc && log && heed_metrics_rows(log) > 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s.svg", o->metrics_csv);
        if (heed_metrics_plot_svg(log, path, C_EPOCH,
                                  (const int[]){C_LOSS, C_BLEU4, C_EXACT, C_POINT_TF, C_POINT_TFS, C_POINT_FR}, 6,
                                  &(heed_plot_opts){.title =
                                                        "caption: training loss, greedy BLEU-4, exact captions and "
                                                        "pointing per epoch",
                                                    .xlabel = "epoch"}) != HEED_OK)
            rc = fail("curves", heed_ctx_error(t.ctx));
        else printf("curves: %s\n", path);
    }
    if (!rc && o->target_bleu4 >= 0 && !(e.bleu[3] >= o->target_bleu4)) {
        fprintf(stderr, "caption: BLEU-4 %.4f is below --target-bleu4 %g\n", e.bleu[3], o->target_bleu4);
        rc = 3;
    }
done:
    for (int64_t i = 0; hyps && o->out_dir && i < o->figures; i++) cap_hypothesis_free(&hyps[i]); /* nf of them */
    free(hyps);
    if (log && heed_metrics_free(log) != HEED_OK && !rc) rc = fail("--metrics", heed_ctx_error(t.ctx));
    cap_scene_set_free(&strain), cap_scene_set_free(&stest);
    scene_source_free(&src_train), scene_source_free(&src_test);
    fm_free(&train), fm_free(&test);
    cap_trainer_free(&t);
    return rc;
}

int main(int argc, char **argv) {
    cap_options o;
    char err[512];
    int p = cap_parse_args(argc, argv, &o, err, sizeof err);
    if (p == CAP_ARGS_HELP) return cap_usage(stdout), 0;
    if (p == CAP_ARGS_ERROR) return fprintf(stderr, "caption: %s\n", err), cap_usage(stderr), 2;
    if (o.cfg.threads > 0) omp_set_num_threads(o.cfg.threads); /* the BLAS follows OpenMP's count, not the ctx's */
    setvbuf(stdout, NULL, _IOLBF, 0);                          /* progress in logs as it happens */
    return run(&o);
}
