/* libFuzzer target for the las audio path (las_wav_read_memory, examples/las/audio.c):
 * any bytes give mono samples at 8 kHz or an error naming the file and the rule; the
 * samples then go through the whole feature pipeline (log-mel, CMVN, stacking,
 * SpecAugment). Never a crash, a leak, undefined behaviour or a non-finite feature. Built
 * by tests/fuzz/run.sh; examples/meson.build replays the seeds in the test suite. */
#include "audio.h"
#include "fuzz_seeds.h"

#include <math.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A 16-bit PCM WAV header for n frames of ch channels at rate, then the samples. */
static size_t wav(unsigned char *out, int rate, int ch, int n, int bits) {
    int bytes = n * ch * (bits / 8);
    unsigned char h[44] = "RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0data\0\0\0\0";
    unsigned v[] = {(unsigned)(36 + bytes), (unsigned)rate, (unsigned)(rate * ch * bits / 8), (unsigned)bytes};
    memcpy(h + 4, &v[0], 4);
    h[22] = (unsigned char)ch;
    memcpy(h + 24, &v[1], 4);
    memcpy(h + 28, &v[2], 4);
    h[32] = (unsigned char)(ch * bits / 8);
    h[34] = (unsigned char)bits;
    memcpy(h + 40, &v[3], 4);
    memcpy(out, h, 44);
    for (int i = 0; i < bytes; i++) out[44 + i] = (unsigned char)(i * 37 % 251);
    return 44 + (size_t)bytes;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static unsigned char buf[44 + 4000];
    fuzz_seed("mono-8k", buf, wav(buf, 8000, 1, 1000, 16));
    fuzz_seed("stereo-22k", buf, wav(buf, 22050, 2, 900, 16));
    fuzz_seed("three-channels", buf, wav(buf, 8000, 3, 100, 16));
    fuzz_seed("rate-1", buf, wav(buf, 1, 1, 100, 16));
    fuzz_seed("8-bit", buf, wav(buf, 16000, 1, 1000, 8));
    fuzz_seed("truncated", buf, wav(buf, 8000, 1, 1000, 16) - 1500);
    fuzz_seed("header-only", buf, 44);
    FUZZ_SEED("not-wav", "hello");
    FUZZ_SEED("rf64-list",
              "RF64\xf4\x07\x00\x00WAVELIST\x10\x00\x00\x00\xfe\xff\x03\x00\x00\x00\x00\x00\xa0\x96\x00\x00"
              "\xef\xff\xff\xffVWAEfmt \x10\x00\x14\x60");
    FUZZ_SEED("list-in-list",
              "RIFF\xf4\x07\x00\x20WAVELIST\x10\x00\x00\x00\x02\x40\xfe\xff\xf7\xff\xff\xff\x00\x00\x00\x00"
              "\x00\x00VELIST\x10\x00\x00\x00\xfe\xff\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
              "\x00\x45LIST\x10\x00\x00");
    /* libsndfile spun for minutes on this (a LIST chunk claiming 4 GB); now refused at once */
    FUZZ_SEED("list-4gb",
              "RIFF\xf4\x07\x00\x01WAVELIST\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
              "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xf8\xff\xff\xff\xff\xff\xff\xff"
              "\xff\xff\xff\xff");
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char err[512] = "";
    float *x = NULL;
    int64_t n = 0;
    if (las_wav_read_memory(data, size, "fuzz.wav", &x, &n, err, sizeof err) != 0) {
        if (!err[0] || x || !strstr(err, "fuzz.wav")) abort(); /* names the file, keeps nothing */
        return 0;
    }
    if (n < 1 || n > (int64_t)LAS_MAX_SECONDS * LAS_RATE + 64) abort();
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) abort();
    las_fbank *fb = las_fbank_new(40);
    int64_t T = las_fbank_frames(n), S = las_stacked_frames(T, 3);
    float *f = fb ? malloc((size_t)(T * 40) * sizeof *f) : NULL, *s = f ? malloc((size_t)(S * 120) * sizeof *s) : NULL;
    if (s) {
        las_fbank_compute(fb, x, n, f);
        las_cmvn(f, T, 40);
        heed_rng r = heed_rng_make(1, 1);
        las_specaugment(f, T, 40, &r, &(las_specaug){.time_masks = 2, .max_time = 20, .freq_masks = 2, .max_freq = 8});
        las_stack(f, T, 40, 3, s);
        for (int64_t i = 0; i < S * 120; i++)
            if (!isfinite(s[i])) abort();
    }
    free(s), free(f), free(x);
    las_fbank_free(fb);
    return 0;
}
