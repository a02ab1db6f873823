/* The caption program's flags: defaults, ranges and the rules between them. */
#include "args.h"
#include "../example_util.h"

#include <stdio.h>
#include <string.h>

void cap_usage(FILE *f) {
    fputs(
        "usage: caption [flags]\n"
        "  --fashion-mnist DIR     the dataset (default /usr/share/datasets/fashion-mnist)\n"
        "  --pretrain-epochs N     encoder pretraining epochs on single objects (default 3)\n"
        "  --pretrain-images N     images per pretraining epoch (default 60000: all)\n"
        "  --epochs N              captioning epochs (default 24)\n"
        "  --attention soft|hard   (default soft)\n"
        "  --beam K                beam width of the final evaluation and --caption (default 3; 1 = greedy)\n"
        "  --lambda X              doubly stochastic regulariser weight (default 0.01)\n"
        "  --order reading|any     train on the references naming the objects in reading order, or on any (default reading)\n"
        "  --init mean|constant    the decoder's initial state: from the mean annotation, or learned (default mean)\n"
        "  --entropy X, --soft-mix P  hard attention: entropy bonus (0.01), soft-context probability (0.5)\n"
        "  --lr X (0.002), --batch-size N (64), --clip X (5), --dropout P (0.1), --hidden N (128), --embed-dim N (64),\n"
        "  --attn-dim N (64)\n"
        "  --train-scenes N, --test-scenes N (default 24000, 1000)\n"
        "  --seed N, --threads N\n"
        "  --checkpoint PATH [--resume]  save after every epoch; resume from it bitwise\n"
        "  --stop-after N          stop after N captioning epochs this run (to test --resume)\n"
        "  --metrics FILE.csv      per-epoch metrics; curves go next to it (FILE.svg)\n"
        "  --out DIR               attention figures (SVG) and pictures (PNG) of the first --figures N test scenes (default 3)\n"
        "  --eval-every N, --eval-size N  greedy evaluation during training (default every epoch, 500 scenes)\n"
        "  --caption FILE.png      caption a 96x96 grey picture with --checkpoint's model (figure to --out)\n"
        "  --target-bleu4 X        exit 3 when the final BLEU-4 is below X\n"
        "  --no-progress\n",
        f);
}

int cap_parse_args(int argc, char *const *argv, cap_options *o, char *err, size_t len) {
    *o = (cap_options){.data_dir = "/usr/share/datasets/fashion-mnist",
                       .progress = true,
                       .pretrain_epochs = 3,
                       .epochs = 24,
                       .beam = 3,
                       .eval_every = 1,
                       .eval_size = 500,
                       .figures = 3,
                       .target_bleu4 = -1,
                       .cfg = cap_defaults()};
    cap_config *c = &o->cfg;
    if (err && len) err[0] = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n = 0;
        double x = 0;
#define INT(flag, field, lo, hi)                                                                                       \
    if (!strcmp(a, flag)) {                                                                                            \
        if (!ex_parse_i64(v, &n) || n < (lo) || n > (hi))                                                              \
            return snprintf(err, len, "%s needs a whole number in %lld..%lld, got '%s'", flag, (long long)(lo),        \
                            (long long)(hi), v ? v : "(nothing)"),                                                     \
                   CAP_ARGS_ERROR;                                                                                     \
        field = n, i++;                                                                                                \
        continue;                                                                                                      \
    }
#define REAL(flag, field, lo, hi)                                                                                      \
    if (!strcmp(a, flag)) {                                                                                            \
        if (!ex_parse_f64(v, &x) || x < (lo) || x > (hi))                                                              \
            return snprintf(err, len, "%s needs a number in [%g, %g], got '%s'", flag, (double)(lo), (double)(hi),     \
                            v ? v : "(nothing)"),                                                                      \
                   CAP_ARGS_ERROR;                                                                                     \
        field = x, i++;                                                                                                \
        continue;                                                                                                      \
    }
#define STR(flag, field)                                                                                               \
    if (!strcmp(a, flag)) {                                                                                            \
        if (!v) return snprintf(err, len, "%s needs a value", flag), CAP_ARGS_ERROR;                                   \
        field = v, i++;                                                                                                \
        continue;                                                                                                      \
    }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return CAP_ARGS_HELP;
        if (!strcmp(a, "--resume")) {
            o->resume = true;
            continue;
        }
        if (!strcmp(a, "--no-progress")) {
            o->progress = false;
            continue;
        }
        if (!strcmp(a, "--attention")) {
            if (!v || (strcmp(v, "soft") && strcmp(v, "hard")))
                return snprintf(err, len, "--attention is soft or hard, got '%s'", v ? v : "(nothing)"), CAP_ARGS_ERROR;
            c->attention = strcmp(v, "hard") ? HEED_CAPTION_SOFT : HEED_CAPTION_HARD, i++;
            continue;
        }
        if (!strcmp(a, "--order")) {
            if (cap_order_parse(v, &c->order))
                return snprintf(err, len, "--order is reading or any, got '%s'", v ? v : "(nothing)"), CAP_ARGS_ERROR;
            i++;
            continue;
        }
        if (!strcmp(a, "--init")) {
            if (cap_init_parse(v, &c->model.init))
                return snprintf(err, len, "--init is mean or constant, got '%s'", v ? v : "(nothing)"), CAP_ARGS_ERROR;
            i++;
            continue;
        }
        STR("--fashion-mnist", o->data_dir)
        STR("--checkpoint", o->checkpoint)
        STR("--metrics", o->metrics_csv)
        STR("--out", o->out_dir)
        STR("--caption", o->caption_png)
        INT("--pretrain-epochs", o->pretrain_epochs, 0, 1000)
        INT("--epochs", o->epochs, 0, 100000)
        INT("--beam", o->beam, 1, 64)
        INT("--eval-every", o->eval_every, 0, 100000)
        INT("--eval-size", o->eval_size, 1, 1000000)
        INT("--figures", o->figures, 0, 100)
        INT("--stop-after", o->stop_after, 0, 100000)
        INT("--pretrain-images", c->pretrain_images, 1, 60000)
        INT("--train-scenes", c->train_scenes, 1, 1000000)
        INT("--test-scenes", c->test_scenes, 1, 1000000)
        INT("--batch-size", c->batch, 1, 4096)
        INT("--hidden", c->model.hidden, 1, 4096)
        INT("--embed-dim", c->model.embed_dim, 1, 4096)
        INT("--attn-dim", c->model.attn_dim, 1, 4096)
        INT("--seed", c->seed, 0, INT64_MAX)
        INT("--threads", c->threads, 0, 256)
        REAL("--lambda", c->lambda, 0, 1000)
        REAL("--entropy", c->entropy, 0, 1000)
        REAL("--soft-mix", c->soft_mix, 0, 1)
        REAL("--lr", c->lr, 1e-9, 10)
        REAL("--clip", c->clip, 0, 1e6)
        REAL("--dropout", c->model.dropout, 0, 0.95)
        REAL("--target-bleu4", o->target_bleu4, 0, 1)
        return snprintf(err, len, "unknown flag '%s' (--help lists them)", a), CAP_ARGS_ERROR;
#undef INT
#undef REAL
#undef STR
    }
    if (o->resume && !o->checkpoint) return snprintf(err, len, "--resume needs --checkpoint"), CAP_ARGS_ERROR;
    if (o->caption_png && !o->checkpoint)
        return snprintf(err, len, "--caption needs --checkpoint (a trained model)"), CAP_ARGS_ERROR;
    return CAP_ARGS_OK;
}
