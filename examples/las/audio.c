/* WAV in (libsndfile), resampling (libsamplerate), log-mel features (FFTW3), CMVN,
 * stacking, SpecAugment, noise. */
#include "audio.h"

#include <errno.h>
#include <fftw3.h>
#include <math.h>
#include <samplerate.h>
#include <sndfile.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- WAV in */

/* Reads an opened file: the length checks, mixdown, resampling. The encoding, channels
 * and rate were checked in the 'fmt ' chunk before libsndfile saw it (reduce_wav). */
static int read_opened(SNDFILE *sf, const SF_INFO *info, const char *name, float **out, int64_t *n, char *err,
                       size_t errlen) {
    *out = NULL, *n = 0;
    if (info->frames < 1) return snprintf(err, errlen, "%s: no samples (an empty recording)", name), -1;
    if (info->frames > (sf_count_t)LAS_MAX_SECONDS * info->samplerate)
        return snprintf(err, errlen, "%s: %lld samples at %d Hz is longer than %d s", name, (long long)info->frames,
                        info->samplerate, LAS_MAX_SECONDS),
               -1;
    int64_t frames = info->frames, ch = info->channels;
    float *buf = malloc((size_t)(frames * ch) * sizeof *buf);
    if (!buf) return snprintf(err, errlen, "%s: out of memory for %lld samples", name, (long long)frames), -1;
    sf_count_t got = sf_readf_float(sf, buf, frames);
    if (got < 1) {
        free(buf);
        return snprintf(err, errlen, "%s: no samples could be read (%s)", name, sf_strerror(sf)), -1;
    }
    /* A truncated data chunk gives fewer frames than the header says: keep what is there. */
    frames = got;
    /* Samples are read in [-1, 1] (libsndfile scales PCM so); a float file may hold more,
     * but past LAS_MAX_SAMPLE the resampler's sums and the filterbank's powers overflow
     * float (found by the fuzz target: a float WAV of 3.4e38 resampled to infinities). */
    for (int64_t i = 0; i < frames * ch; i++)
        if (!(fabsf(buf[i]) <= LAS_MAX_SAMPLE)) {
            float v = buf[i];
            free(buf);
            return snprintf(err, errlen, "%s: sample %lld is %g: %s (samples are read in [-1, 1]; at most %g)", name,
                            (long long)(i / ch), (double)v, isfinite(v) ? "too large" : "not a finite number",
                            LAS_MAX_SAMPLE),
                   -1;
        }
    if (ch == 2)
        for (int64_t i = 0; i < frames; i++) buf[i] = 0.5f * (buf[2 * i] + buf[2 * i + 1]);
    if (info->samplerate == LAS_RATE) {
        *out = buf, *n = frames;
        return 0;
    }
    int rc = las_resample(buf, frames, info->samplerate, LAS_RATE, out, n, err, errlen);
    free(buf);
    return rc;
}

int las_wav_read(const char *path, float **out, int64_t *n, char *err, size_t errlen) {
    *out = NULL, *n = 0;
    /* The whole file is read and goes the way of a file in memory: the chunk check below
     * sees it first, and the fuzz target covers this path exactly. */
    struct stat sb;
    if (stat(path, &sb) != 0)
        return snprintf(err, errlen, "%s: not a readable WAV file: %s", path, strerror(errno)), -1;
    if (!S_ISREG(sb.st_mode)) return snprintf(err, errlen, "%s: not a regular file", path), -1;
    if (sb.st_size > LAS_MAX_FILE_BYTES)
        return snprintf(err, errlen, "%s: %lld bytes is larger than %d MiB (no WAV of at most %d s is)", path,
                        (long long)sb.st_size, LAS_MAX_FILE_BYTES >> 20, LAS_MAX_SECONDS),
               -1;
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, errlen, "%s: not a readable WAV file: %s", path, strerror(errno)), -1;
    size_t size = (size_t)sb.st_size;
    unsigned char *data = malloc(size ? size : 1);
    size_t got = data ? fread(data, 1, size, f) : 0;
    fclose(f);
    if (!data || got != size) {
        free(data);
        return snprintf(err, errlen, "%s: %s", path, data ? "read error" : "out of memory"), -1;
    }
    int rc = las_wav_read_memory(data, size, path, out, n, err, errlen);
    free(data);
    return rc;
}

static unsigned le16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The WAV file d[size] reduced to what decoding needs: "RIFF" size "WAVE", its 'fmt ' and
 * 'fact' chunks, and its 'data' chunk (cut to the bytes present when truncated), into a
 * new buffer *out[*out_size]. Every other chunk (LIST, cue, smpl, ... metadata) is
 * dropped before libsndfile sees the bytes: libsndfile 1.2.0 spins for minutes on
 * malformed LIST chunks of a few dozen bytes (found by the fuzz target). A file that is not
 * little-endian RIFF/WAVE (RF64, RIFX too), a chunk before 'data' that claims more bytes
 * than the file holds, or a missing 'fmt ' or 'data' is refused naming the rule. */
static int reduce_wav(const unsigned char *d, size_t size, const char *name, unsigned char **out, size_t *out_size,
                      char *err, size_t errlen) {
    *out = NULL;
    if (size < 12 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WAVE", 4) != 0)
        return snprintf(err, errlen, "%s: not a readable WAV file: it does not start with RIFF....WAVE", name), -1;
    size_t fmt = 0, fmt_len = 0, fact = 0, fact_len = 0, data = 0, data_len = 0;
    for (size_t at = 12; at + 8 <= size;) {
        uint32_t len = le32(d + at + 4);
        if (!memcmp(d + at, "data", 4)) {
            data = at, data_len = len < size - at - 8 ? len : size - at - 8;
            break;
        }
        if (len > size - at - 8)
            return snprintf(err, errlen,
                            "%s: the '%.4s' chunk at byte %zu declares %u bytes, past the end of the file (%zu "
                            "bytes): a chunk must fit in the file",
                            name, (const char *)(d + at), at, len, size),
                   -1;
        if (!memcmp(d + at, "fmt ", 4) && !fmt) fmt = at, fmt_len = len;
        if (!memcmp(d + at, "fact", 4) && !fact) fact = at, fact_len = len;
        at += 8 + (size_t)len + (len & 1);
    }
    if (!fmt || !data)
        return snprintf(err, errlen, "%s: not a readable WAV file: no '%s' chunk", name, fmt ? "data" : "fmt "), -1;
    /* The 'fmt ' fields are checked here, before libsndfile sees them: libsndfile 1.2.0 spins
     * for seconds on PCM files whose block align disagrees with channels x bits / 8, or
     * whose channel count is 0 (both found by the fuzz target). Only the plain encodings
     * are read (PCM, float, A-law, mu-law, plain or in WAVE_FORMAT_EXTENSIBLE), so
     * libsndfile's ADPCM/GSM decoders never run on untrusted bytes. */
    if (fmt_len < 16)
        return snprintf(err, errlen, "%s: the 'fmt ' chunk has %zu bytes (at least 16)", name, fmt_len), -1;
    unsigned tag = le16(d + fmt + 8), channels = le16(d + fmt + 10), align = le16(d + fmt + 20),
             bits = le16(d + fmt + 22);
    uint32_t rate = le32(d + fmt + 12);
    if (tag == 0xfffe) { /* extensible: the encoding is the first two bytes of the subformat GUID */
        if (fmt_len < 40)
            return snprintf(err, errlen, "%s: an extensible 'fmt ' chunk has %zu bytes (at least 40)", name, fmt_len),
                   -1;
        tag = le16(d + fmt + 8 + 24);
    }
    if (tag != 1 && tag != 3 && tag != 6 && tag != 7 && tag != 0xfffe)
        return snprintf(err, errlen,
                        "%s: WAV encoding 0x%04x is not read (PCM 0x0001, float 0x0003, A-law 0x0006 or mu-law "
                        "0x0007, plain or in an extensible 'fmt ' chunk)",
                        name, tag),
               -1;
    if (channels < 1 || channels > 2)
        return snprintf(err, errlen, "%s: %u channels (1 or 2 are read; stereo is mixed down)", name, channels), -1;
    if (rate < LAS_MIN_RATE || rate > LAS_MAX_RATE)
        return snprintf(err, errlen, "%s: sample rate %u Hz (must be in %d..%d Hz)", name, (unsigned)rate, LAS_MIN_RATE,
                        LAS_MAX_RATE),
               -1;
    bool bits_ok = tag == 3               ? bits == 32 || bits == 64
                   : tag == 6 || tag == 7 ? bits == 8
                                          : bits % 8 == 0 && bits >= 8 && bits <= 32;
    if (!bits_ok)
        return snprintf(
                   err, errlen,
                   "%s: %u bits per sample for WAV encoding 0x%04x (PCM: 8, 16, 24 or 32; float: 32 or 64; A-law, mu-law: 8)",
                   name, bits, tag),
               -1;
    if (align != channels * bits / 8)
        return snprintf(err, errlen,
                        "%s: block align %u does not match %u channels of %u bits (a frame is channels x "
                        "bits / 8 bytes)",
                        name, align, channels, bits),
               -1;
    size_t n = 12 + 8 + fmt_len + (fmt_len & 1) + (fact ? 8 + fact_len + (fact_len & 1) : 0) + 8 + data_len;
    unsigned char *r = calloc(n, 1);
    if (!r) return snprintf(err, errlen, "%s: out of memory", name), -1;
    size_t at = 12;
    memcpy(r, "RIFF\0\0\0\0WAVE", 12);
    memcpy(r + at, d + fmt, 8 + fmt_len), at += 8 + fmt_len + (fmt_len & 1);
    if (fact) memcpy(r + at, d + fact, 8 + fact_len), at += 8 + fact_len + (fact_len & 1);
    memcpy(r + at, "data", 4);
    for (int i = 0; i < 4; i++)
        r[at + 4 + i] = (unsigned char)(data_len >> (8 * i)), r[4 + i] = (unsigned char)((n - 8) >> (8 * i));
    memcpy(r + at + 8, d + data + 8, data_len);
    *out = r, *out_size = n;
    return 0;
}

typedef struct {
    const unsigned char *data;
    sf_count_t size, pos;
} memfile;

static sf_count_t mem_len(void *u) { return ((memfile *)u)->size; }
static sf_count_t mem_tell(void *u) { return ((memfile *)u)->pos; }
/* As lseek on a file: a position past the end is allowed (reads there give nothing).
 * Refusing it made libsndfile 1.2.0 spin on a data chunk of odd length, whose pad byte
 * lies past the end (found by the fuzz target). */
static sf_count_t mem_seek(sf_count_t off, int whence, void *u) {
    memfile *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
    sf_count_t p = base + off;
    if (p < 0) return -1;
    return m->pos = p;
}
static sf_count_t mem_read(void *dst, sf_count_t count, void *u) {
    memfile *m = u;
    sf_count_t k = count < m->size - m->pos ? count : m->size - m->pos;
    if (k <= 0) return 0;
    memcpy(dst, m->data + m->pos, (size_t)k);
    m->pos += k;
    return k;
}
static sf_count_t mem_write(const void *src, sf_count_t count, void *u) { return 0; }

int las_wav_read_memory(const void *data, size_t size, const char *name, float **out, int64_t *n, char *err,
                        size_t errlen) {
    *out = NULL, *n = 0;
    unsigned char *wav;
    size_t wav_size;
    if (reduce_wav(data, size, name, &wav, &wav_size, err, errlen)) return -1;
    memfile m = {wav, (sf_count_t)wav_size, 0};
    SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info = {0};
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    int rc = sf ? read_opened(sf, &info, name, out, n, err, errlen)
                : (snprintf(err, errlen, "%s: not a readable WAV file: %s", name, sf_strerror(NULL)), -1);
    if (sf) sf_close(sf);
    free(wav);
    return rc;
}

int las_resample(const float *x, int64_t n, int rate_in, int rate_out, float **out, int64_t *n_out, char *err,
                 size_t errlen) {
    double ratio = (double)rate_out / rate_in;
    int64_t cap = (int64_t)ceil((double)n * ratio) + 16;
    float *y = malloc((size_t)cap * sizeof *y);
    if (!y) return snprintf(err, errlen, "out of memory resampling %lld samples", (long long)n), -1;
    SRC_DATA d = {.data_in = x, .data_out = y, .input_frames = n, .output_frames = cap, .src_ratio = ratio};
    int rc = src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1);
    if (rc != 0) {
        free(y);
        return snprintf(err, errlen, "resampling %d -> %d Hz: %s", rate_in, rate_out, src_strerror(rc)), -1;
    }
    if (d.output_frames_gen < 1) y[0] = 0, d.output_frames_gen = 1;
    *out = y, *n_out = d.output_frames_gen;
    return 0;
}

/* ---------------------------------------------------------------- log-mel */

struct las_fbank {
    int bands, bins;
    float *window;       /* [LAS_WIN] Hamming */
    float *filters;      /* [bands, bins] triangular weights */
    float *frame;        /* [LAS_NFFT] FFT input */
    fftwf_complex *spec; /* [bins] */
    fftwf_plan plan;
};

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

las_fbank *las_fbank_new(int n_mels) {
    if (n_mels != 40 && n_mels != 80) return NULL;
    las_fbank *fb = calloc(1, sizeof *fb);
    if (!fb) return NULL;
    fb->bands = n_mels, fb->bins = LAS_NFFT / 2 + 1;
    fb->window = malloc(LAS_WIN * sizeof *fb->window);
    fb->filters = calloc((size_t)(n_mels * fb->bins), sizeof *fb->filters);
    fb->frame = fftwf_malloc(LAS_NFFT * sizeof *fb->frame);
    fb->spec = fftwf_malloc((size_t)fb->bins * sizeof *fb->spec);
    if (!fb->window || !fb->filters || !fb->frame || !fb->spec) {
        las_fbank_free(fb);
        return NULL;
    }
    /* FFTW_ESTIMATE: no timing runs, so the plan (and the features) never depend on load. */
    fb->plan = fftwf_plan_dft_r2c_1d(LAS_NFFT, fb->frame, fb->spec, FFTW_ESTIMATE);
    if (!fb->plan) {
        las_fbank_free(fb);
        return NULL;
    }
    for (int i = 0; i < LAS_WIN; i++) fb->window[i] = (float)(0.54 - 0.46 * cos(2 * M_PI * i / (LAS_WIN - 1)));
    /* Filter m rises from edge m to edge m+1 and falls to edge m+2 (edges evenly spaced in
     * mel), evaluated at each bin's frequency k * rate / nfft. */
    double lo = hz_to_mel(LAS_FMIN), hi = hz_to_mel(LAS_FMAX);
    for (int m = 0; m < n_mels; m++) {
        double f0 = mel_to_hz(lo + (hi - lo) * m / (n_mels + 1)),
               f1 = mel_to_hz(lo + (hi - lo) * (m + 1) / (n_mels + 1)),
               f2 = mel_to_hz(lo + (hi - lo) * (m + 2) / (n_mels + 1));
        for (int k = 0; k < fb->bins; k++) {
            double f = (double)k * LAS_RATE / LAS_NFFT, w = 0;
            if (f > f0 && f <= f1) w = (f - f0) / (f1 - f0);
            else if (f > f1 && f < f2) w = (f2 - f) / (f2 - f1);
            fb->filters[m * fb->bins + k] = (float)w;
        }
    }
    return fb;
}

void las_fbank_free(las_fbank *fb) {
    if (!fb) return;
    if (fb->plan) fftwf_destroy_plan(fb->plan);
    free(fb->window);
    free(fb->filters);
    fftwf_free(fb->frame);
    fftwf_free(fb->spec);
    free(fb);
}

int las_fbank_bands(const las_fbank *fb) { return fb->bands; }

int64_t las_fbank_frames(int64_t n) { return n < LAS_WIN ? 1 : 1 + (n - LAS_WIN) / LAS_HOP; }

void las_fbank_compute(las_fbank *fb, const float *x, int64_t n, float *out) {
    int64_t T = las_fbank_frames(n);
    float power[LAS_NFFT / 2 + 1];
    for (int64_t t = 0; t < T; t++) {
        int64_t s = t * LAS_HOP;
        for (int i = 0; i < LAS_NFFT; i++) fb->frame[i] = 0;
        for (int i = 0; i < LAS_WIN && s + i < n; i++) {
            float prev = s + i > 0 ? x[s + i - 1] : 0; /* pre-emphasis y[i] = x[i] - 0.97 x[i-1] */
            fb->frame[i] = (x[s + i] - 0.97f * prev) * fb->window[i];
        }
        fftwf_execute(fb->plan);
        for (int k = 0; k < fb->bins; k++) power[k] = fb->spec[k][0] * fb->spec[k][0] + fb->spec[k][1] * fb->spec[k][1];
        for (int m = 0; m < fb->bands; m++) {
            const float *w = fb->filters + m * fb->bins;
            double e = 0;
            for (int k = 0; k < fb->bins; k++) e += (double)w[k] * power[k];
            out[t * fb->bands + m] = (float)log(e > 1e-10 ? e : 1e-10);
        }
    }
}

/* ---------------------------------------------------------------- normalisation, stacking, masks */

void las_cmvn(float *f, int64_t T, int F) {
    for (int j = 0; j < F; j++) {
        double s = 0, ss = 0;
        for (int64_t t = 0; t < T; t++) s += f[t * F + j];
        double mean = s / (double)T;
        for (int64_t t = 0; t < T; t++) ss += (f[t * F + j] - mean) * (f[t * F + j] - mean);
        double sd = sqrt(ss / (double)T);
        for (int64_t t = 0; t < T; t++) f[t * F + j] = sd > 1e-5 ? (float)((f[t * F + j] - mean) / sd) : 0.0f;
    }
}

int64_t las_stacked_frames(int64_t T, int k) { return (T + k - 1) / k; }

void las_stack(const float *f, int64_t T, int F, int k, float *out) {
    int64_t S = las_stacked_frames(T, k);
    for (int64_t s = 0; s < S; s++)
        for (int i = 0; i < k; i++) {
            int64_t t = s * k + i;
            float *dst = out + (s * k + i) * F;
            if (t < T) memcpy(dst, f + t * F, (size_t)F * sizeof *f);
            else memset(dst, 0, (size_t)F * sizeof *f);
        }
}

void las_specaugment(float *f, int64_t T, int F, heed_rng *r, const las_specaug *s) {
    double frac = s->time_fraction > 0 ? s->time_fraction : 0.2;
    for (int m = 0; m < s->freq_masks && s->max_freq > 0; m++) {
        int w = (int)heed_rng_below(r, (uint64_t)s->max_freq + 1);
        if (w > F) w = F;
        int f0 = (int)heed_rng_below(r, (uint64_t)(F - w) + 1);
        for (int64_t t = 0; t < T; t++)
            for (int j = f0; j < f0 + w; j++) f[t * F + j] = 0;
    }
    int64_t cap = (int64_t)(frac * (double)T);
    if (cap > s->max_time) cap = s->max_time;
    for (int m = 0; m < s->time_masks && cap > 0; m++) {
        int64_t w = (int64_t)heed_rng_below(r, (uint64_t)cap + 1);
        int64_t t0 = (int64_t)heed_rng_below(r, (uint64_t)(T - w) + 1);
        memset(f + t0 * F, 0, (size_t)(w * F) * sizeof *f);
    }
}

int64_t las_warp_frames(int64_t T, double tempo) {
    int64_t n = (int64_t)floor((double)(T - 1) / tempo) + 1;
    return n < 1 ? 1 : n;
}

void las_warp(const float *f, int64_t T, int F, double alpha, double tempo, float *out) {
    double lo = hz_to_mel(LAS_FMIN), hi = hz_to_mel(LAS_FMAX), step = (hi - lo) / (F + 1);
    int64_t T2 = las_warp_frames(T, tempo);
    for (int k = 0; k < F; k++) { /* source band position of output band k */
        double pos = (hz_to_mel(mel_to_hz(lo + step * (k + 1)) / alpha) - lo) / step - 1;
        pos = pos < 0 ? 0 : pos > F - 1 ? F - 1 : pos;
        int k0 = (int)pos, k1 = k0 + 1 < F ? k0 + 1 : k0;
        double wk = pos - k0;
        for (int64_t t = 0; t < T2; t++) {
            double ts = fmin((double)t * tempo, (double)(T - 1));
            int64_t t0 = (int64_t)ts, t1 = t0 + 1 < T ? t0 + 1 : t0;
            double wt = ts - (double)t0;
            double a = (1 - wk) * f[t0 * F + k0] + wk * f[t0 * F + k1],
                   b = (1 - wk) * f[t1 * F + k0] + wk * f[t1 * F + k1];
            out[t * F + k] = (float)((1 - wt) * a + wt * b);
        }
    }
}

void las_add_noise(float *x, int64_t n, double snr_db, heed_rng *r) {
    double p = 0;
    for (int64_t i = 0; i < n; i++) p += (double)x[i] * x[i];
    p /= (double)(n > 0 ? n : 1);
    double sd = sqrt(p / pow(10.0, snr_db / 10.0));
    for (int64_t i = 0; i < n; i++) x[i] += (float)(sd * heed_rng_normal(r));
}
