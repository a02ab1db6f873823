/* libFuzzer target for the caption command line (cap_parse_args, examples/caption/args.c):
 * the input is split at NUL bytes into arguments after argv[0]. Any arguments give options,
 * --help, or an error whose message starts with the flag at fault (and quotes the value it
 * got); never a crash, undefined behaviour, a leak, output or an exit. Accepted options are
 * in the ranges the program relies on. Built by tests/fuzz/run.sh; examples/meson.build
 * replays the seeds in the test suite. */
#include "../sasrec/fuzz_seeds.h"
#include "args.h"
#include "../example_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    FUZZ_SEED("tiny", "--fashion-mnist\0data\0--pretrain-epochs\0"
                      "1\0--pretrain-images\0"
                      "256\0--train-scenes\0"
                      "128\0--hidden\0"
                      "16\0--threads\0"
                      "1\0--no-progress\0--beam\0"
                      "2\0--checkpoint\0a.ckpt\0--resume\0--metrics\0a.csv");
    FUZZ_SEED("caption", "--caption\0x.png\0--checkpoint\0a.ckpt\0--out\0out");
    FUZZ_SEED("hard", "--attention\0hard\0--entropy\0"
                      "0.01\0--soft-mix\0"
                      "0.5\0--init\0constant\0--order\0any\0--lr\0"
                      "1e-3");
    FUZZ_SEED("resume-alone", "--resume");
    FUZZ_SEED("out-of-range", "--dropout\0"
                              "0.96");
    FUZZ_SEED("missing-value", "--epochs");
    FUZZ_SEED("unknown", "--nope\0"
                         "1");
    FUZZ_SEED("help", "--figures\0"
                      "3\0-h");
    return 0;
}

enum { MAX_ARGS = 64 };

/* s is an argument or "(nothing)", then a closing quote and the end. */
static bool quotes_an_argument(const char *s, int argc, char *const *argv) {
    size_t n = strlen(s);
    if (n == 0 || s[n - 1] != '\'') return false;
    if (n - 1 == strlen("(nothing)") && !strncmp(s, "(nothing)", n - 1)) return true;
    for (int i = 1; i < argc; i++)
        if (strlen(argv[i]) == n - 1 && !strncmp(s, argv[i], n - 1)) return true;
    return false;
}

/* The error is "unknown flag 'ARG' ..." for an argument ARG, or starts with a flag of the
 * command line and a space, and then quotes the value it got, if any, at its end. */
static bool names_its_flag(const char *err, int argc, char *const *argv) {
    const char *unknown = "unknown flag '", *got = ", got '";
    size_t u = strlen(unknown);
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (!strncmp(err, unknown, u) && !strncmp(err + u, argv[i], n) && err[u + n] == '\'') return true;
        if (argv[i][0] != '-' || strncmp(err, argv[i], n) || err[n] != ' ') continue;
        const char *value = strstr(err + n, got);
        return !value || quotes_an_argument(value + strlen(got), argc, argv);
    }
    return false;
}

static bool in(double x, double lo, double hi) { return x >= lo && x <= hi; } /* false for NaN */

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *buf, *argv[MAX_ARGS + 1];
    int argc = ex_fuzz_argv(data, size, "caption", &buf, argv, MAX_ARGS);
    if (!buf) return 0;
    cap_options o;
    static char err[2 * 4096 + 256]; /* never truncated: an argument is at most the input (-max_len=4096) */
    int rc = cap_parse_args(argc, argv, &o, err, sizeof err);
    if (rc == CAP_ARGS_ERROR && (!err[0] || (strlen(err) < sizeof err - 1 && !names_its_flag(err, argc, argv))))
        abort();
    if (rc == CAP_ARGS_HELP) {
        bool asked = false;
        for (int i = 1; i < argc; i++) asked |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
        if (!asked) abort();
    }
    if (rc != CAP_ARGS_ERROR && rc != CAP_ARGS_OK && rc != CAP_ARGS_HELP) abort();
    if (rc == CAP_ARGS_OK) {
        const cap_config *c = &o.cfg;
        if (!o.data_dir || (o.resume && !o.checkpoint) || (o.caption_png && !o.checkpoint) ||
            !in((double)o.pretrain_epochs, 0, 1000) || !in((double)o.epochs, 0, 100000) || !in((double)o.beam, 1, 64) ||
            o.eval_every < 0 || o.eval_size < 1 || !in((double)o.figures, 0, 100) || o.stop_after < 0 ||
            !(o.target_bleu4 == -1 || in(o.target_bleu4, 0, 1)) || !in((double)c->pretrain_images, 1, 60000) ||
            c->train_scenes < 1 || c->test_scenes < 1 || !in((double)c->batch, 1, 4096) ||
            !in((double)c->model.hidden, 1, 4096) || !in((double)c->model.embed_dim, 1, 4096) ||
            !in((double)c->model.attn_dim, 1, 4096) || !in(c->threads, 0, 256) || !in(c->lambda, 0, 1000) ||
            !in(c->entropy, 0, 1000) || !in(c->soft_mix, 0, 1) || !in(c->lr, 1e-9, 10) || !in(c->clip, 0, 1e6) ||
            !in(c->model.dropout, 0, 0.95) ||
            (c->attention != HEED_CAPTION_SOFT && c->attention != HEED_CAPTION_HARD) ||
            (c->model.init != HEED_CAPTION_INIT_MEAN && c->model.init != HEED_CAPTION_INIT_CONSTANT) ||
            (c->order != CAP_ORDER_READING && c->order != CAP_ORDER_ANY))
            abort();
    }
    free(buf);
    return 0;
}
