/* The las program's flags: defaults, ranges and the rules between them. */
#include "args.h"
#include "../example_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef LAS_FSDD_DIR
#define LAS_FSDD_DIR "examples/las/fsdd/recordings"
#endif

void las_usage(FILE *f) {
    fprintf(f, "usage: las [options]                 train (and evaluate) a LAS model on connected digits\n"
               "       las --transcribe FILE.wav --checkpoint PATH [--beam K] [--alignment PATH.png|.svg]\n"
               "data (generated once, then read from --cache):\n"
               "  --cache DIR            feature cache (runs/las/cache)\n"
               "  --fsdd DIR             FSDD recordings (" LAS_FSDD_DIR ")\n"
               "  --train-synth N        espeak-ng training utterances (4000)\n"
               "  --train-fsdd N         FSDD training utterances, jackson/nicolas/theo takes 5-49 (2000)\n"
               "  --test-size N          utterances in each test set a-d (200)\n"
               "  --data-seed S          the data's seed (1)\n"
               "  --bands 40|80          log-mel bands (40)\n"
               "  --train-manifest PATH  also train on the utterances of a manifest (PATH<TAB>TRANSCRIPT)\n"
               "  --eval-manifest PATH   also evaluate on a manifest\n"
               "model:\n"
               "  --stack K              frames stacked into one listener input (2)\n"
               "  --listener-hidden H    per direction (64)   --pyramid-layers P  1..4 (2)\n"
               "  --speller-hidden S     (128)   --embed-dim E (32)   --attn-dim A (64)\n"
               "  --loc-channels C       location-aware attention (8; 0 = plain additive) --loc-kernel K (15)\n"
               "  --attention KIND       location (additive, location-aware), local-m or local-p (Luong's\n"
               "                         local attention: monotonic or predicted centre) (location)\n"
               "  --local-window D       the local kinds' window of 2D+1 encoder frames (10)\n"
               "  --dropout P            before the output layer (0.1)\n"
               "training:\n"
               "  --stop-after N         stop (checkpointed) after epoch N of --epochs, to --resume later\n"
               "  --epochs N (15)  --batch-size B (32)  --lr X (0.002)  --min-lr X (0.0001)  --warmup N (200)\n"
               "  --schedule cosine|constant   learning rate over the steps (cosine: warm-up, then cosine)\n"
               "  --clip X               gradient norm clipping (1; 0 = off)\n"
               "  --label-smoothing X    (0.1)\n"
               "  --sampling X           feed back a sampled prediction with probability X, ramped up\n"
               "                         linearly over the first half of training (0.1)\n"
               "  --specaugment N        time and frequency masks each (2; 0 = off)\n"
               "  --vtlp X               warp each training utterance's frequencies by a factor in\n"
               "                         [1-X, 1+X] (vocal-tract-length perturbation; 0 = off) (0)\n"
               "  --tempo X              and its tempo by a factor in [1-X, 1+X] (0 = off) (0)\n"
               "  --seed S               parameters, batches, masks (1)\n"
               "  --threads N            OpenMP threads (default: all)\n"
               "evaluation and output:\n"
               "  --eval-every N         epochs between evaluations (1; 0 = only at the end)\n"
               "  --eval-size N          utterances of each test set in the periodic evaluations (100)\n"
               "  --beam K               beam width of the final evaluation and --transcribe (8)\n"
               "  --length-penalty X     score = log p / steps^X (1)\n"
               "  --show N               print N hypotheses per test set at the end (3)\n"
               "  --no-test              skip the test sets\n"
               "  --out DIR              alignment pictures and curves (runs/las)\n"
               "  --checkpoint PATH      save after every epoch; an existing PATH needs --resume\n"
               "  --resume               continue from --checkpoint if the file exists\n"
               "  --metrics PATH.csv     per-epoch loss and error rates\n"
               "  --no-progress          no progress bar\n"
               "  --target-wer X         exit with status 3 if the final WER on set a is above X\n");
}

static int check_options(const las_options *o, char *err, size_t errlen) {
    const las_train_config *t = &o->train;
    if (o->resume && !o->checkpoint) return snprintf(err, errlen, "--resume needs --checkpoint PATH"), LAS_ARGS_ERROR;
    if (o->transcribe && !o->checkpoint)
        return snprintf(err, errlen, "--transcribe needs --checkpoint PATH (a trained model)"), LAS_ARGS_ERROR;
    if (o->alignment && !o->transcribe)
        return snprintf(err, errlen, "--alignment draws the alignment of --transcribe FILE: give both"), LAS_ARGS_ERROR;
    if ((t->model.loc_channels == 0) != (t->model.loc_kernel == 0) ||
        (t->model.loc_kernel && t->model.loc_kernel % 2 == 0))
        return snprintf(err, errlen,
                        "--loc-channels %lld --loc-kernel %lld: location features need both, the kernel odd "
                        "(or --loc-channels 0 for none)",
                        (long long)t->model.loc_channels, (long long)t->model.loc_kernel),
               LAS_ARGS_ERROR;
    if (o->data.bands != 40 && o->data.bands != 80)
        return snprintf(err, errlen, "--bands %d: 40 or 80", o->data.bands), LAS_ARGS_ERROR;
    return LAS_ARGS_OK;
}

int las_parse_args(int argc, char *const *argv, las_options *o, char *err, size_t errlen) {
    *o = (las_options){.progress = true,
                       .epochs = 15,
                       .eval_every = 1,
                       .eval_size = 100,
                       .show = 3,
                       .target_wer = -1,
                       .out_dir = "runs/las",
                       .data = {.fsdd_dir = LAS_FSDD_DIR,
                                .cache_dir = "runs/las/cache",
                                .bands = 40,
                                .seed = 1,
                                .train_synth = 4000,
                                .train_fsdd = 2000,
                                .test_size = 200},
                       .train = las_train_defaults()};
    if (err && errlen) err[0] = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return LAS_ARGS_HELP;
        if (!strcmp(a, "--resume") || !strcmp(a, "--no-test") || !strcmp(a, "--no-progress")) {
            if (!strcmp(a, "--resume")) o->resume = true;
            else if (!strcmp(a, "--no-test")) o->no_test = true;
            else o->progress = false;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        int64_t iv = 0;
        double fv = 0;
        bool ok = true;
        las_train_config *t = &o->train;
        heed_las_config *m = &t->model;
        las_data_config *d = &o->data;
#define STR(name, lvalue) else if (!strcmp(a, name)) ok = v && ((lvalue) = v);
#define INT(name, lvalue, lo, hi)                                                                                      \
    else if (!strcmp(a, name)) ok = ex_parse_i64(v, &iv) && iv >= (lo) && iv <= (hi) && ((lvalue) = iv, 1);
#define DBL(name, lvalue, lo, hi)                                                                                      \
    else if (!strcmp(a, name)) ok = ex_parse_f64(v, &fv) && fv >= (lo) && fv <= (hi) && ((lvalue) = fv, 1);
        if (0) {}
        STR("--checkpoint", o->checkpoint)
        STR("--metrics", o->metrics_csv)
        STR("--out", o->out_dir)
        STR("--transcribe", o->transcribe)
        STR("--alignment", o->alignment)
        STR("--eval-manifest", o->eval_manifest)
        STR("--train-manifest", o->train_manifest)
        STR("--cache", d->cache_dir)
        STR("--fsdd", d->fsdd_dir)
        INT("--train-synth", d->train_synth, 0, 1000000)
        INT("--train-fsdd", d->train_fsdd, 0, 1000000)
        INT("--test-size", d->test_size, 1, 100000)
        INT("--data-seed", d->seed, 0, INT64_MAX)
        INT("--bands", d->bands, 1, 1000)
        INT("--stack", t->stack, 1, 8)
        INT("--listener-hidden", m->listener_hidden, 1, 4096)
        INT("--pyramid-layers", m->pyramid_layers, 1, HEED_LAS_MAX_PYRAMID)
        INT("--speller-hidden", m->speller_hidden, 1, 4096)
        INT("--embed-dim", m->embed_dim, 1, 4096)
        INT("--attn-dim", m->attn_dim, 1, 4096)
        INT("--loc-channels", m->loc_channels, 0, 256)
        INT("--loc-kernel", m->loc_kernel, 0, 255)
        INT("--local-window", m->local_window, 1, 1000)
        DBL("--dropout", m->dropout, 0, 0.9)
        INT("--epochs", o->epochs, 0, 100000)
        INT("--stop-after", o->stop_after, 1, 100000)
        INT("--batch-size", t->batch, 1, 4096)
        DBL("--lr", t->lr, 0, 10)
        DBL("--min-lr", t->min_lr, 0, 10)
        INT("--warmup", t->warmup, 0, 10000000)
        DBL("--clip", t->clip, 0, 1e6)
        DBL("--label-smoothing", t->label_smoothing, 0, 0.99)
        DBL("--sampling", t->sampling, 0, 1)
        INT("--specaugment", t->specaugment, 0, 10)
        DBL("--vtlp", t->vtlp, 0, 0.5)
        DBL("--tempo", t->tempo, 0, 0.5)
        INT("--seed", t->seed, 0, INT64_MAX)
        INT("--threads", o->threads, 0, 1024)
        INT("--eval-every", o->eval_every, 0, 1000000)
        INT("--eval-size", o->eval_size, 1, 1000000)
        INT("--beam", t->beam, 1, 256)
        DBL("--length-penalty", t->length_penalty, 0, 10)
        INT("--show", o->show, 0, 1000000)
        DBL("--target-wer", o->target_wer, 0, 100)
        else if (!strcmp(a, "--attention")) {
            int kind = las_attention_kind(v);
            ok = kind >= 0;
            if (ok) m->attention = (heed_las_attention)kind;
        }
        else if (!strcmp(a, "--schedule")) {
            ok = v && (!strcmp(v, "cosine") || !strcmp(v, "constant"));
            if (ok) t->cosine = !strcmp(v, "cosine");
        }
        else {
            return snprintf(err, errlen, "unknown flag %s (see --help)", a), LAS_ARGS_ERROR;
        }
#undef STR
#undef INT
#undef DBL
        if (!v) return snprintf(err, errlen, "%s needs a value (see --help)", a), LAS_ARGS_ERROR;
        if (!ok) return snprintf(err, errlen, "bad value '%s' for %s (see --help for the range)", v, a), LAS_ARGS_ERROR;
    }
    o->train.threads = (int)o->threads;
    o->train.bands = o->data.bands;
    return check_options(o, err, errlen);
}
