/* libFuzzer target for the las manifest parser (las_manifest_read, examples/las/data.c):
 * any bytes give a manifest whose every line obeys the rules, or an error with a message
 * and nothing kept; never a crash, a leak or undefined behaviour. Built by
 * tests/fuzz/run.sh; examples/meson.build replays the seeds in the test suite. */
#include "data.h"
#include "fuzz_seeds.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    FUZZ_SEED("good", "# digits\nrec/a.wav\tthree seven zero nine\r\n\n/abs/b.wav\tnine\n");
    FUZZ_SEED("bad-char", "a.wav\tthree 7\n");
    FUZZ_SEED("no-tab", "a.wav three\n");
    FUZZ_SEED("spaces", "a.wav\t two\n");
    FUZZ_SEED("nul", "a.wav\tone\0two\n");
    FUZZ_SEED("apostrophe", "x\to'clock\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f) return 0;
    char err[512] = "", why[256];
    las_manifest m;
    int rc = las_manifest_read(f, "fuzz", "dir", &m, err, sizeof err);
    fclose(f);
    if (rc != 0) {
        if (!err[0] || m.n != 0 || m.path || m.text) abort(); /* an error says why and keeps nothing */
        return 0;
    }
    if (m.n < 1) abort();
    for (int64_t i = 0; i < m.n; i++) {
        if (!m.path[i][0] || las_check_text(m.text[i], why, sizeof why) != 0) abort();
        for (const char *c = m.text[i]; *c; c++)
            if (las_char_token((unsigned char)*c) < 2 || las_token_char(las_char_token((unsigned char)*c)) != *c)
                abort();
    }
    las_manifest_free(&m);
    return 0;
}
